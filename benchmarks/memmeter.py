"""Peak memory of a block of code, on CUDA or on the CPU (shared by bench_memory.py and bench_gpu.py).

* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus what was allocated
  on entry (the caching allocator's own reserve is not counted).
* CPU: the process's resident set size (psutil), sampled every millisecond by a thread, minus the RSS on
  entry. torch's CPU tensors come from malloc, which tracemalloc does not see; RSS does, provided freed
  blocks go back to the OS: :func:`reexec_with_malloc_env` restarts the script with glibc's mmap
  threshold fixed at 64 KiB (every tensor larger than that is its own mapping, unmapped when freed), so
  one analysis's freed memory does not hide the next one's peak. A transient shorter than the sampling
  interval (plus GIL hand-off, up to ~5 ms) can be missed; the numbers are lower bounds of that order.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


def reexec_with_malloc_env() -> None:
    """Restart this Python process with :data:`MALLOC_ENV` unless it is already set (CPU runs only)."""
    if all(os.environ.get(k) == v for k, v in MALLOC_ENV.items()):
        return
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_ENV})


@dataclass
class Peak:
    """Result of one :func:`peak_memory` block."""

    bytes: int = 0
    """Peak memory above the level on entry."""
    method: str = ""
    """How it was measured: ``cuda.max_memory_allocated`` or ``cpu rss sampling``."""
    seconds: float = 0.0
    """Wall time of the block."""


class _RssSampler(threading.Thread):
    def __init__(self, interval: float) -> None:
        import psutil

        super().__init__(daemon=True)
        self.proc, self.interval = psutil.Process(), interval
        self.peak = self.proc.memory_info().rss
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)


@contextmanager
def peak_memory(device: torch.device, interval: float = 0.001):
    """Yield a :class:`Peak` filled in when the block ends."""
    gc.collect()
    out = Peak()
    t0 = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        yield out
        torch.cuda.synchronize(device)
        out.bytes = torch.cuda.max_memory_allocated(device) - base
        out.method = "cuda.max_memory_allocated"
    else:
        sampler = _RssSampler(interval)
        base = sampler.peak
        sampler.start()
        try:
            yield out
        finally:
            sampler.stop.set()
            sampler.join()
        out.bytes = max(sampler.peak, sampler.proc.memory_info().rss) - base
        out.method = "cpu rss sampling (psutil, 1 ms; glibc mmap threshold 64 KiB)"
    out.seconds = time.perf_counter() - t0
