"""`phantom`: a synthetic abdominal-CT cohort with exact labels and a clinical sheet (no source needed).

Presets `default` and `small` are the parametric phantom (`livervae.data.phantom`); `synthetic`, `synthetic-pool`
and `synthetic-train` the generator built on real label maps (`livervae.data.synthetic`, reads the shared data
folder); `synthetic-train` adds the BodyParts3D organs and negative (no-liver) cases.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

from livervae.data.case import Case
from livervae.data.formats import SourceOptions
from livervae.data.phantom import PhantomConfig, generate_cohort
from livervae.data.synthetic.generator import SYNTHETIC_PRESETS, SyntheticConfig, generate_synthetic_cohort
from livervae.errors import InputError

PRESETS = {"default": PhantomConfig, "small": PhantomConfig.small, **SYNTHETIC_PRESETS}


def iter_cases(source: Path | None, options: SourceOptions) -> Iterator[Case]:
    """Generate `options.phantom_n` cases deterministically from `options.phantom_seed` at the chosen preset."""
    if options.phantom_preset not in PRESETS:
        raise InputError(None, f"phantom preset must be one of {', '.join(PRESETS)}, got {options.phantom_preset!r}")
    if options.phantom_n < 1:
        raise InputError(None, f"the phantom cohort needs at least 1 case, got {options.phantom_n}")
    config = PRESETS[options.phantom_preset]()
    if options.phantom_blurred_fraction is not None:
        try:
            config = dataclasses.replace(config, blurred_fraction=float(options.phantom_blurred_fraction))
        except ValueError as exc:
            raise InputError(None, str(exc)) from None
    if isinstance(config, SyntheticConfig):
        yield from generate_synthetic_cohort(options.phantom_n, options.phantom_seed, config)
    else:
        yield from generate_cohort(options.phantom_n, options.phantom_seed, config)
