"""The benchmark passes: compile → warm-up → timing pass → profiling pass, with markers.

The timing pass runs with no profiler attached (CUDA events per run → ``latencies``); the
profiling pass attaches the profilers and rebuilds each layer's window on the host clock
(``model.windows``). Layer records are streamed to disk, so the profiling pass's memory does not
grow with ``profile_runs``; the timing pass keeps every latency (a Python float each, about 32
bytes per run, 1 MB at 30 000 runs) because the downstream JSON lists them all.
"""

from __future__ import annotations

import json
import math
import platform
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from common.layout import write_text
from model.backend import Backend
from model.output import (
    PAUSE,
    MarkerWriter,
    RecordWriter,
    ResultPaths,
    write_layer_latency,
    write_summary,
)
from model.windows import layer_windows


@dataclass
class BenchConfig:
    """The profiler's settings; the seed's names first, then ours."""

    model: str
    dtype: str
    input_shape: list[int]
    warmup: int
    runs: int
    optimization_level: int
    min_block_size: int
    result_dir: str
    backend: str
    weights: str
    profile_runs: int
    max_aux_streams: int = 0
    engine: str | None = None
    isolation: bool = False
    isolation_updates: int = 20
    isolation_settle_s: float = 2.0


class _Lines:
    """tqdm's refreshes as whole lines, for a log that is not a terminal (docker logs, a file):
    one line per refresh instead of carriage returns piling up in one line."""

    def write(self, text: str) -> None:
        text = text.strip("\r\n")
        if text:
            sys.stderr.write(text + "\n")

    def flush(self) -> None:
        sys.stderr.flush()


def _progress(iterable, desc: str, total: int):
    try:
        from tqdm import tqdm
    except ImportError:  # progress bars are a convenience only
        return iterable

    terminal = sys.stderr.isatty()
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        mininterval=2.0 if terminal else 10.0,
        file=sys.stderr if terminal else _Lines(),
        disable=total < 200,
    )


def layer_sum_figures(
    medians: dict[str, float], span_ms: list[float], latencies, concurrent: set[str]
) -> dict:
    """Σ of the layer medians, and the median Σ of an inference's layer windows, against the
    unprofiled median latency: how far the profiled layer times add up to an inference timed
    with nothing attached (1.0: exactly). Layers in ``concurrent`` ran beside others (a
    TensorRT auxiliary stream) and are left out of the sums."""
    total = sum(
        v for k, v in medians.items() if not math.isnan(v) and k not in concurrent
    )  # NaN: no record
    timing = 1e3 * statistics.median(latencies)
    windows = statistics.median(span_ms) if span_ms and timing > 0 else None
    return {
        "sum_of_layer_medians_ms": total,
        "sum_of_layer_medians_per_timing_median": total / timing if timing > 0 else None,
        "median_sum_of_windows_per_timing_median": windows and windows / timing,
        "concurrent_layers_not_summed": len(concurrent),
    }


def pauses(backend: Backend, markers: MarkerWriter) -> None:
    """Mark the backend's pauses (time in the profiling pass that is no inference's)."""
    for start, end in backend.pauses():
        markers.mark(PAUSE + "_start", start)
        markers.mark(PAUSE + "_end", end)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_benchmark(cfg: BenchConfig, backend: Backend, load_model, clock) -> dict:
    """Run every pass for one model and write its result files; return the summary."""
    import torch

    paths = ResultPaths(Path(cfg.result_dir), cfg.model, backend.name)
    paths.profiling_dir.mkdir(parents=True, exist_ok=True)
    markers = MarkerWriter(paths.markers, clock)
    try:
        markers.mark("load_start", time.monotonic_ns())
        model = load_model()
        example = torch.randn(*cfg.input_shape)
        markers.mark("load_end", time.monotonic_ns())
        markers.mark("compile_start", time.monotonic_ns())
        backend.prepare(model, example)
        backend.synchronize()
        markers.mark("compile_end", time.monotonic_ns())
        write_text(paths.engine_info, json.dumps(backend.engine_info(), indent=4) + "\n")

        markers.mark("warmup_start", time.monotonic_ns())
        for _ in _progress(range(cfg.warmup), "warm-up", cfg.warmup):
            backend.infer()
        backend.synchronize()
        markers.mark("warmup_end", time.monotonic_ns())

        markers.mark("timing_start", time.monotonic_ns())
        t0 = time.perf_counter()
        latencies = [backend.timed_infer() for _ in _progress(range(cfg.runs), "timing", cfg.runs)]
        total_time = time.perf_counter() - t0
        markers.mark("timing_end", time.monotonic_ns())

        backend.attach_profilers()
        records = RecordWriter(paths, backend.record_columns)
        wall_ms: list[float] = []
        sum_ms: list[float] = []
        span_ms: list[float] = []  # Σ window lengths (equal to Σ layer times on CUDA)
        markers.mark("profiling_start", time.monotonic_ns())

        stream = (
            4 + backend.record_columns.index("stream")
            if "stream" in backend.record_columns
            else None
        )
        concurrent: set[str] = set()  # layers on an auxiliary stream: not summed

        def add(done: list[tuple[int, list]]) -> None:
            for done_run, segments in done:
                windows = layer_windows(segments)
                if not windows:  # dropped by the backend, which counts it
                    continue
                records.add(done_run, windows)
                if stream is not None:
                    concurrent.update(w[0] for w in windows if w[stream] != 0)
                    windows = [w for w in windows if w[stream] == 0]
                if len(sum_ms) < 100_000:  # bounded: enough for the figures below
                    sum_ms.append(sum(w[1] for w in windows))
                    span_ms.append(sum(w[3] - w[2] for w in windows) / 1e6)

        for run in _progress(range(cfg.profile_runs), "profiling", cfg.profile_runs):
            backend.synchronize()
            anchor = time.monotonic_ns()
            markers.mark("inference_start", anchor, run)
            segments = backend.profiled_infer(anchor)
            end = time.monotonic_ns()
            if run < 100_000 and segments != []:  # []: dropped by the backend, which counts it
                wall_ms.append((end - anchor) / 1e6)
            add(backend.completed(run, segments))
            pauses(backend, markers)
        add(backend.finish_profiling())
        pauses(backend, markers)
        markers.mark("profiling_end", time.monotonic_ns())
        names = records.close()
        if cfg.isolation:
            from model.isolation import run_isolation

            isolation = run_isolation(cfg, backend, markers.mark)
    finally:
        markers.close()
    medians = write_layer_latency(paths, names, clock)
    extra = {
        **({"isolation": isolation} if cfg.isolation else {}),
        "backend": backend.describe(),
        "profiling": {
            "runs": cfg.profile_runs,
            "layers": len(names),
            "mean_wall_latency_ms": statistics.fmean(wall_ms) if wall_ms else None,
            "mean_sum_of_layers_ms": statistics.fmean(sum_ms) if sum_ms else None,
            "mean_sum_of_windows_ms": statistics.fmean(span_ms) if span_ms else None,
            "median_layer_ms": medians,
            **layer_sum_figures(medians, span_ms, latencies, concurrent),
            **backend.profiling_report(),
        },
        "timing": {
            "mean_latency_ms": 1e3 * statistics.fmean(latencies),
            "median_latency_ms": 1e3 * statistics.median(latencies),
        },
        "peak_rss_mb": peak_rss_mb(),
        "python": platform.python_version(),
        "clock_origin": {"mono_ns": clock.mono_ns, "wall_ns": clock.wall_ns},
    }
    return write_summary(paths, asdict(cfg), latencies, total_time, clock.stamp(), extra)
