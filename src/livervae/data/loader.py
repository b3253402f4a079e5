"""MONAI's ThreadDataLoader, with errors raised in its loading thread re-raised in the training loop.

`monai.data.ThreadDataLoader` produces batches on a background thread (`ThreadBuffer`). An exception there (an
unreadable file, an empty liver met by a random crop) kills that thread, and the consumer sees the buffer run dry:
the epoch silently ends early and training carries on with part of the data. This loader records the exception
in the thread and raises it in the caller once the buffered batches are consumed, so bad data stops training
with its own message.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from monai.data import ThreadDataLoader
from monai.data.thread_buffer import buffer_iterator
from torch.utils.data import DataLoader


class CheckedThreadDataLoader(ThreadDataLoader):
    """`monai.data.ThreadDataLoader` that re-raises errors from its loading thread (same arguments)."""

    def __iter__(self) -> Iterator[Any]:
        failures: list[BaseException] = []

        def guarded(source: Iterator[Any]) -> Iterator[Any]:
            try:
                yield from source
            except BaseException as exc:  # re-raised below, in the consumer's thread
                failures.append(exc)

        yield from buffer_iterator(
            guarded(DataLoader.__iter__(self)), self.buffer_size, self.buffer_timeout, self.repeats
        )
        if failures:
            raise failures[0]
