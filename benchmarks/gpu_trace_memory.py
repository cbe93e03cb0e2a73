"""Resident memory of the CUDA kernel-trace profiling pass (resnet50 fp16 batch 1, graph
replays): RSS growth over successive 1 000 traced inferences, with the backend's own collection
after each traced batch, then with a ``malloc_trim`` added (what glibc still holds).

Usage: python3 benchmarks/gpu_trace_memory.py
"""

from __future__ import annotations

import ctypes
import json
import time

import torch

import model.torch_backend as tb
from model.zoo import load_model


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def growth(backend, n: int, after_collect=None) -> float:
    """RSS growth (MiB) over ``n`` profiled inferences."""
    original = backend._kernels.collect

    def collect(last=False):
        out = original(last)
        if after_collect:
            after_collect()
        return out

    backend._kernels.collect = collect
    before = rss_mb()
    for run in range(n):
        backend.synchronize()
        backend.completed(run, backend.profiled_infer(time.monotonic_ns()))
    backend._kernels.collect = original
    return rss_mb() - before


def main() -> None:
    backend = tb.TorchBackend("float16")
    backend.prepare(load_model("resnet50", "random"), torch.randn(1, 3, 224, 224))
    tb.RESUME_S = 0.0
    backend.attach_profilers()
    trim = ctypes.CDLL("libc.so.6").malloc_trim
    out = {"gpu": torch.cuda.get_device_name(), "start_rss_mb": rss_mb()}
    out["growth_mb_per_1000"] = [growth(backend, 1000) for _ in range(3)]
    out["growth_mb_per_1000_trimmed"] = [growth(backend, 1000, lambda: trim(0)) for _ in range(2)]
    out["end_rss_mb"] = rss_mb()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
