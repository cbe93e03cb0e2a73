"""Σ layer medians / unprofiled median on CUDA: the model replayed from a CUDA graph (what the
PyTorch backend does) against the same model run eager.

In one process, per model (resnet50 and resnet18, fp16, batch 1, random weights) and per
execution (graph, then eager): an unprofiled timing pass, a profiled pass (kernel traces
collected every ``KERNEL_BATCH`` inferences, as ``python -m model`` does), and the timing pass
again (the host's speed drifts). Prints the unprofiled medians, Σ of the layers' window medians
(the layer times: they tile the device span, launch gaps included) and Σ of their busy-time
medians (their own kernels only), each divided by the unprofiled median taken before.

Usage: python3 benchmarks/gpu_layer_sum.py [RUNS]
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections import defaultdict

import torch

import model.torch_backend as tb
from model.zoo import load_model


def timing(backend, n: int) -> float:
    return 1e3 * statistics.median(backend.timed_infer() for _ in range(n))


def profiled(backend, n: int) -> tuple[float, float, float, int]:
    """(Σ busy-time medians ms, Σ window medians ms (the layer times), median wall ms of a
    profiled inference, dropped batches)."""
    per_layer: dict[str, list[float]] = defaultdict(list)
    per_window: dict[str, list[float]] = defaultdict(list)
    walls = []

    def add(done) -> None:
        for _, segments in done:
            for name, window_ms, _, busy_ms in segments[0].layers:
                per_layer[name].append(busy_ms)
                per_window[name].append(window_ms)

    backend.attach_profilers()
    for run in range(n):
        backend.synchronize()
        anchor = time.monotonic_ns()
        segments = backend.profiled_infer(anchor)
        walls.append((time.monotonic_ns() - anchor) / 1e6)
        add(backend.completed(run, segments))
    add(backend.finish_profiling())
    total = sum(statistics.median(v) for v in per_layer.values())
    span = sum(statistics.median(v) for v in per_window.values())
    return total, span, statistics.median(walls), backend._kernels.dropped_batches


def go_eager(backend) -> None:
    """The same backend without its graph (what it does when the model cannot be captured)."""
    backend.graph, backend.execution = None, "eager"
    backend.layer_kernels, backend.prologue = tb.calibrate(backend, None)


def measure(backend, runs: int) -> dict:
    for _ in range(300):
        backend.infer()
    before = timing(backend, 2000)
    total, span, wall, dropped = profiled(backend, runs)
    after = timing(backend, 2000)
    return {
        "execution": backend.execution,
        "timing_median_before_ms": before,
        "timing_median_after_ms": after,
        "sum_busy_medians_ms": total,
        "sum_window_medians_ms": span,
        "busy_per_unprofiled": total / before,
        "windows_per_unprofiled": span / before,
        "profiled_wall_median_ms": wall,
        "kernels_per_inference": backend._kernels.per_inference,
        "dropped_batches": dropped,
    }


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    out = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    for name in ("resnet50", "resnet18"):
        backend = tb.TorchBackend("float16")
        backend.prepare(load_model(name, "random"), torch.randn(1, 3, 224, 224))
        out[name] = {"graph": measure(backend, runs)}
        print(name, json.dumps(out[name]["graph"]), flush=True)
        go_eager(backend)
        out[name]["eager"] = measure(backend, runs)
        print(name, json.dumps(out[name]["eager"]), flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
