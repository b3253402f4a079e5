"""Machine facts every benchmark shares: the one-line machine description and the one peak-memory measure."""

from __future__ import annotations

import os
import platform
import resource
import sys

MIB = 2**20
_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def describe(gpu: bool = False) -> str:
    """CPU model (or architecture), CPU count, torch version and, with `gpu`, the CUDA device's name."""
    import torch

    text = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; torch {torch.__version__}"
    if gpu and torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def rss_mib() -> float:
    """This process's current resident set size in MiB (Linux /proc; elsewhere its peak, see `PeakMemory`)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB
    except OSError:
        return _ru_maxrss_mib()


def _ru_maxrss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _vmhwm_mib() -> float | None:
    try:
        with open(_STATUS) as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


class PeakMemory:
    """The benchmarks' one peak-memory measure: this process's peak host RSS and peak CUDA memory.

    Host: the kernel's RSS high-water mark (`VmHWM` in /proc/self/status), which `reset` sets back to the current
    RSS where Linux allows it (writing 5 to /proc/self/clear_refs). Without /proc it falls back to `ru_maxrss`,
    which cannot be reset. `ru_maxrss` is not used on Linux: a process started with spawn (fork + exec) inherits
    its parent's peak in it, so a fresh worker would report at least its parent's memory.

    CUDA (only when `device` is a CUDA device, so a CPU run never creates a CUDA context):
    `torch.cuda.max_memory_allocated`, reset with `torch.cuda.reset_peak_memory_stats`.

    Example:
        peak = PeakMemory("cpu")
        peak.reset()
        run_the_benchmark()
        print(peak.peak_rss_mib(), peak.peak_cuda_mib())

    Args:
        device: the torch device the measured work runs on ("cpu", "cuda", "cuda:1").
    """

    def __init__(self, device: str = "cpu") -> None:
        self.device = str(device)
        self.cuda = self.device.startswith("cuda")
        self.host_reset = False
        self._before_reset_mib = 0.0

    def reset(self) -> bool:
        """Start a new measurement: host peak back to the current RSS, CUDA peak back to the current allocation.

        Returns:
            Whether the host peak was reset (False where /proc/self/clear_refs cannot be written; the host peak
            then stays the process's peak so far).
        """
        before = self.peak_rss_mib()
        try:
            with open(_CLEAR_REFS, "w") as handle:
                handle.write("5")
            self.host_reset = True
        except OSError:
            self.host_reset = False
        self._before_reset_mib = max(self._before_reset_mib, before)
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats(torch.device(self.device))
        return self.host_reset

    def peak_rss_mib(self) -> float:
        """Peak resident set size in MiB since the last successful `reset` (else since the process started)."""
        peak = _vmhwm_mib()
        return _ru_maxrss_mib() if peak is None else peak

    def process_peak_rss_mib(self) -> float:
        """Peak resident set size in MiB since the process started, across resets."""
        return max(self._before_reset_mib, self.peak_rss_mib())

    def peak_cuda_mib(self) -> float | None:
        """Peak CUDA memory allocated by torch in MiB since the last `reset`; None when `device` is not CUDA."""
        if not self.cuda:
            return None
        import torch

        return torch.cuda.max_memory_allocated(torch.device(self.device)) / MIB
