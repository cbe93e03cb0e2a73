"""Synthetic result folders with known answers, for tests and benchmarks.

Inferences of ``layers`` layers (each ``layer_ms`` long) follow each other with random gaps; the
board power is ``base_uw``, plus ``step_uw`` while layer ``step_layer`` runs, plus noise; a
sensor samples it at ``sample_hz`` with a random phase. The files are those the profiler and the
logger write (records, names, engine info, markers, summary, rails CSV) plus the downstream raw
files (``<model>_power_log.log`` and the layer-latency JSON), all on one clock.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from common.clock import Clock
from model.output import RECORDS_HEADER, ResultPaths, write_layer_latency

T0 = 1_000_000_000_000  # monotonic ns of the first inference


def write_markers(path: Path, timing: tuple[int, int], starts: np.ndarray, end_all: int) -> None:
    """A markers file: the timing pass, the profiling pass from just before ``T0`` to just after
    ``end_all``, and each profiled inference's start."""
    with open(path, "w") as f:
        f.write("event,run,mono_ns,timestamp\n")
        f.write(f"timing_start,,{timing[0]},\ntiming_end,,{timing[1]},\n")
        f.write(f"profiling_start,,{T0 - 1000},\n")
        f.writelines(f"inference_start,{i},{s},\n" for i, s in enumerate(starts.tolist()))
        f.write(f"profiling_end,,{end_all + 1000},\n")


def write_folder(
    result_dir: Path,
    model: str = "synth",
    inferences: int = 2000,
    layers: int = 10,
    layer_ms: float = 0.1,
    gap_ms: float = 2.0,
    sample_hz: float = 300.0,
    base_uw: float = 5e6,
    step_uw: float = 0.0,
    step_layer: int | None = None,
    noise_uw: float = 0.0,
    seed: int = 0,
    downstream: bool = True,
) -> dict:
    """Write the folder; return the truth (windows, layer powers)."""
    rng = np.random.default_rng(seed)
    paths = ResultPaths(result_dir, model, "torch")
    paths.profiling_dir.mkdir(parents=True, exist_ok=True)
    clock = Clock(T0, 1_732_166_400_000_000_000)
    step = round(layer_ms * 1e6)
    span = layers * step
    gaps = rng.uniform(0.5, 1.5, inferences) * gap_ms * 1e6
    starts = T0 + np.concatenate(([0], np.cumsum(span + gaps[:-1]))).astype(np.int64)
    run = np.repeat(np.arange(inferences), layers)
    layer = np.tile(np.arange(layers), inferences)
    start = starts[run] + layer * step
    end = start + step
    latency = np.full(len(run), step / 1e6)
    with open(paths.layer_records, "w") as f:
        f.write(RECORDS_HEADER)
        np.savetxt(
            f,
            np.column_stack([run, layer, latency, start, end]),
            fmt=["%d", "%d", "%.6f", "%d", "%d"],
            delimiter=",",
        )
    names = [f"layer{i}" for i in range(layers)]
    paths.layer_names.write_text(json.dumps(names))
    paths.engine_info.write_text(
        json.dumps(
            {
                "Layers": [
                    {"Name": n, "LayerType": "CaskConvolution" if i % 2 == 0 else "Reformat"}
                    for i, n in enumerate(names)
                ]
            }
        )
    )
    end_all = int(end[-1])
    t = np.arange(
        T0 - 200_000_000 + rng.integers(0, 1e9 / sample_hz),
        end_all + 200_000_000,
        round(1e9 / sample_hz),
        dtype=np.int64,
    )
    k = np.searchsorted(starts, t, side="right") - 1
    phase = t - starts[np.clip(k, 0, None)]
    power = np.full(len(t), base_uw)
    if step_layer is not None:
        inside = (k >= 0) & (phase >= step_layer * step) & (phase <= (step_layer + 1) * step)
        power[inside] += step_uw
    power += rng.normal(0, noise_uw, len(t)) if noise_uw else 0.0
    mv = np.full(len(t), 5000.0)
    ma = power / mv
    wall = [clock.wall_string(int(x)) for x in t]
    with open(paths.power["rails_csv"], "w") as f:
        f.write("mono_ns,read_ns,timestamp,board_uW,X_mV,X_mA,X_uW\n")
        f.writelines(
            f"{a},100,{w},{p!r},5000,{c!r},{p!r}\n"
            for a, w, p, c in zip(t.tolist(), wall, power.tolist(), ma.tolist(), strict=True)
        )
    if downstream:
        with open(paths.model_dir / f"{model}_power_log.log", "w") as f:
            f.writelines(
                f"{w},{v!r},{c!r}\n" for w, v, c in zip(wall, mv.tolist(), ma.tolist(), strict=True)
            )
        write_layer_latency(paths, names, clock)
    write_markers(paths.markers, (T0 - 150_000_000, T0 - 10_000_000), starts, end_all)
    latencies = [span / 1e9] * 10
    paths.summary_json.write_text(
        json.dumps(
            {
                "config": {
                    "model": model,
                    "backend": "torch",
                    "dtype": "float32",
                    "runs": 10,
                    "input_shape": [1, 3, 224, 224],
                },
                "total_time": 1.0,
                "timestamp": "20241121-000000",
                "latencies": latencies,
                "avg_latency": span / 1e9,
                "avg_throughput": 1e9 / span,
            }
        )
    )
    return {
        "paths": paths,
        "starts": starts,
        "span_ns": span,
        "step_ns": step,
        "base_uw": base_uw,
        "step_uw": step_uw,
        "samples": len(t),
    }
