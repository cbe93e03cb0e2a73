"""Σ layer medians / unprofiled median of the CUDA kernel-trace layer times, by trace batch size.

In one process (resnet50 and resnet18, fp16, batch 1, random weights): an unprofiled timing pass,
then profiled passes collecting the kernel trace every ``KERNEL_BATCH`` inferences for several
batch sizes, then the timing pass again (the host's speed drifts). Prints, per batch size, the
median wall time of a profiled inference, Σ layer medians (device time of each layer's kernels)
/ unprofiled median, and the same for the windows (which also hold the launch gaps).

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
    """(Σ layer medians ms, Σ window medians ms, median wall ms of a profiled inference,
    dropped batches)."""
    per_layer: dict[str, list[float]] = defaultdict(list)
    per_window: dict[str, list[float]] = defaultdict(list)
    walls = []

    def add(done) -> None:
        for _, segments in done:
            for name, ms, _, window_ns in segments[0].layers:
                per_layer[name].append(ms)
                per_window[name].append(window_ns / 1e6)

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


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 600
    out = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    for name in ("resnet50", "resnet18"):
        backend = tb.TorchBackend("float16")
        backend.prepare(load_model(name, "random"), torch.randn(1, 3, 224, 224))
        for _ in range(300):
            backend.infer()
        before = timing(backend, 2000)
        backend.attach_profilers()
        rows = {}
        for batch in (200, 20, 5):
            tb.KERNEL_BATCH = batch
            if batch != 200:
                backend._kernels._start()
            total, span, wall, dropped = profiled(backend, runs)
            rows[batch] = {
                "sum_layer_medians_ms": total,
                "sum_window_medians_ms": span,
                "window_ratio_to_timing_before": span / before,
                "profiled_wall_median_ms": wall,
                "ratio_to_timing_before": total / before,
                "dropped_batches": dropped,
            }
            print(name, batch, json.dumps(rows[batch]), flush=True)
        after = timing(backend, 2000)
        out[name] = {
            "timing_median_before_ms": before,
            "timing_median_after_ms": after,
            "kernels_per_inference": backend._kernels.per_inference,
            "by_batch": rows,
        }
        print(name, json.dumps(out[name]), flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
