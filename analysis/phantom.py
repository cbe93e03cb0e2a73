"""A phantom: a result folder whose power files come from a **known** per-layer power, read
through the INA3221 model, so every per-layer method can be scored against the truth.

- ``write_records``: layer records, markers and summaries of a profiled run, resampled from a
  real layer profile (``tests/fixtures/profiles/*.json``: whole inferences of real layer windows
  and the real gaps between inferences; ``time_scale`` shrinks them, e.g. towards a Jetson
  GPU's layer times).
- ``rewrite_power``: the truth is piecewise constant (one level per layer, one between layers,
  the inference's mean power over the timing pass, idle elsewhere); the chip refreshes channel
  1's current every ``period × (1 + drift)`` at a random phase with the mean power over its
  conversion window, plus conversion noise, quantized to 8 mA at a constant bus voltage; a
  logger reads it twice per refresh with jitter and read durations. Writes the rails CSV, the
  logger's summary (sensor description) and ``idling_power.json``; removes the downstream raw
  log (it would describe the old power).
- ``score``: per method, median and p90 relative error of power and of power above idle over
  layers of at least ``min_ms``, how often the 95 % interval covers the truth, and closure.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.synthetic import T0, write_markers
from common.layout import IDLE_JSON, power_files
from model.output import RECORDS_HEADER, ResultPaths
from power.sensor_model import Ina3221, window_means

BUS_MV = 5160.0
RAIL_DESCRIPTIONS = [
    {"name": name, "chip": "1-0040", "driver": "ina3221", "channel": ch}
    for ch, name in enumerate(("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"), start=1)
]


def load_profile(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def write_records(
    result_dir: Path,
    profile: dict,
    inferences: int,
    model: str = "resnet18",
    time_scale: float = 1.0,
    seed: int = 0,
) -> ResultPaths:
    """Layer records, names, engine info, markers and ``<model>_torch.json`` of a profiled run
    of ``inferences`` inferences, each a real inference of ``profile`` drawn at random."""
    rng = np.random.default_rng(seed)
    paths = ResultPaths(result_dir, model, "torch")
    paths.profiling_dir.mkdir(parents=True, exist_ok=True)
    prof = [p for p in profile["inferences"] if p["next_start_us"]]  # whole inference + gap
    pick = rng.integers(0, len(prof), inferences)
    step = np.array([prof[i]["next_start_us"] for i in pick]) * time_scale
    starts = T0 + np.round(1e3 * np.concatenate(([0.0], np.cumsum(step[:-1])))).astype(np.int64)
    counts = np.array([len(prof[i]["layer"]) for i in pick])
    run = np.repeat(np.arange(inferences), counts)
    layer = np.concatenate([prof[i]["layer"] for i in pick])
    offset = np.concatenate([prof[i]["start_us"] for i in pick]) * time_scale
    duration = np.concatenate([prof[i]["duration_us"] for i in pick]) * time_scale
    start = starts[run] + np.round(offset * 1e3).astype(np.int64)
    end = start + np.maximum(np.round(duration * 1e3).astype(np.int64), 1)
    with open(paths.layer_records, "w") as f:
        f.write(RECORDS_HEADER)
        np.savetxt(
            f,
            np.column_stack([run, layer, (end - start) / 1e6, start, end]),
            fmt=["%d", "%d", "%.6f", "%d", "%d"],
            delimiter=",",
        )
    paths.layer_names.write_text(json.dumps(profile["names"]))
    paths.engine_info.write_text(
        json.dumps(
            {
                "Layers": [
                    {"Name": n, "LayerType": t}
                    for n, t in zip(profile["names"], profile["types"], strict=True)
                ]
            }
        )
    )
    span = float(np.mean(step)) * 1e3  # ns per inference, gap included
    timing = (T0 - int(300 * span) - 50_000_000, T0 - 50_000_000)
    end_all = int(end.max())
    write_markers(paths.markers, timing, starts, end_all)
    latency = span / 1e9
    paths.summary_json.write_text(
        json.dumps(
            {
                "config": {"model": model, "backend": "torch", "dtype": "float32", "runs": 300},
                "latencies": [latency] * 300,
                "avg_latency": latency,
                "avg_throughput": 1 / latency,
                "phantom": {"profile": profile.get("what"), "time_scale": time_scale},
            }
        )
    )
    return paths


def make_truth(n_layers: int, idle_uw: float = 4.6e6, seed: int = 0) -> dict:
    """Idle, a between-layers level and one level per layer (idle + 0.3 to 3 W)."""
    rng = np.random.default_rng(seed + 1000)
    return {
        "idle_uW": idle_uw,
        "between_uW": idle_uw + 0.4e6,
        "layers_uW": idle_uw + rng.uniform(0.3e6, 3.0e6, n_layers),
    }


def truth_signal(paths: ResultPaths, truth: dict) -> tuple[np.ndarray, np.ndarray, dict]:
    """(edges ns, levels µW) of the true board power, and per layer its median runtime."""
    records = pd.read_csv(paths.layer_records)
    markers = pd.read_csv(paths.markers).set_index("event")["mono_ns"]
    records = records.sort_values("start_mono_ns")
    start = records["start_mono_ns"].to_numpy(np.int64)
    end = np.minimum(records["end_mono_ns"].to_numpy(np.int64), np.append(start[1:], np.inf))
    layers = records["layer"].to_numpy()
    levels_layer = truth["layers_uW"][layers]
    busy = np.bincount(layers, weights=end - start, minlength=len(truth["layers_uW"]))
    runs = records["run"].nunique()
    span = (end.max() - start.min()) / runs
    mean_inference = (
        float(busy @ truth["layers_uW"]) + truth["between_uW"] * (span * runs - busy.sum())
    ) / (span * runs)
    t_start, t_end = int(markers["timing_start"]), int(markers["timing_end"])
    idle, between = truth["idle_uW"], truth["between_uW"]
    far = 10**12
    edges = np.concatenate(
        ([t_start - far, t_start, t_end], np.column_stack([start, end]).ravel(), [end[-1] + far])
    )
    inside = np.column_stack([levels_layer, np.full(len(start), between)]).ravel()[:-1]
    levels = np.concatenate(([idle, mean_inference, idle], inside, [idle]))
    medians = records.groupby("layer")["latency_ms"].median()
    return edges.astype(np.float64), levels, {"median_ms": medians}


def rewrite_power(
    paths: ResultPaths,
    truth: dict,
    chip: Ina3221 | None = None,
    drift_ppm: float = 1500.0,
    noise_uw: float = 2e4,
    seed: int = 0,
) -> dict:
    """Rewrite the model folder's power files from ``truth`` through the sensor model."""
    chip = chip or Ina3221()
    rng = np.random.default_rng(seed + 2000)
    edges, levels, _ = truth_signal(paths, truth)
    markers = pd.read_csv(paths.markers).set_index("event")["mono_ns"]
    begin, finish = (
        int(markers["timing_start"]) - 200_000_000,
        int(markers["profiling_end"]) + 200_000_000,
    )
    period = chip.period_s * 1e9 * (1 + drift_ppm * 1e-6)
    window = period / (2 * chip.channels)
    phase = begin + rng.uniform(0, period)
    refresh = phase + np.arange(int((finish - begin) / period) + 1) * period
    mean = window_means(edges, levels, refresh - window, refresh)
    ma = chip.quantize_ma((mean + rng.normal(0, noise_uw, len(mean))) / BUS_MV)
    hz_period = 1e9 / (2 / chip.period_s)  # the logger's default: twice per nominal refresh
    n = int((finish - begin) / hz_period)
    due = begin + np.arange(n) * hz_period
    t0 = due + rng.exponential(30_000, n)  # wake-up lateness
    read = rng.uniform(80_000, 250_000, n)  # one sample reads every rail's files
    t_current = t0 + rng.uniform(0, 1, n) * read  # when VDD_IN's current file was read
    k = np.searchsorted(refresh, t_current, side="right") - 1
    ok = k >= 0
    stamp = ((t0 + read / 2)[ok]).astype(np.int64)
    board_ma = ma[k[ok]]
    board = BUS_MV * board_ma
    model_dir = paths.model_dir
    names = power_files(model_dir.name)
    frame = pd.DataFrame(
        {
            "mono_ns": stamp,
            "read_ns": read[ok].astype(np.int64),
            "timestamp": "",
            "board_uW": board,
            "VDD_IN_mV": BUS_MV,
            "VDD_IN_mA": board_ma,
            "VDD_IN_uW": board,
        }
    )
    frame.to_csv(model_dir / names["rails_csv"], index=False)
    (model_dir / names["raw_log"]).unlink(missing_ok=True)
    sensor = {
        "kind": "sysfs",
        "simulated": True,
        "board_input_rails": ["VDD_IN"],
        "board_input_rule": "phantom",
        "refresh_interval_s": chip.period_s,
        "rails": RAIL_DESCRIPTIONS,
    }
    phantom = {
        "drift_ppm": drift_ppm,
        "noise_uW": noise_uw,
        "phase_mono_ns": phase,
        "period_ns": period,
    }
    (model_dir / names["summary"]).write_text(
        json.dumps({"sensor": sensor, "simulated": True, "phantom": phantom}, indent=2) + "\n"
    )
    (model_dir.parent / IDLE_JSON).write_text(
        json.dumps({"timestamp": "phantom", "avg_idle_power": truth["idle_uW"]}) + "\n"
    )
    return phantom


def score(
    paths: ResultPaths, truth: dict, estimates: pd.DataFrame, min_ms: float = 0.2
) -> pd.DataFrame:
    """Per method: errors (%) over layers of at least ``min_ms`` median runtime, coverage."""
    _, _, known = truth_signal(paths, truth)
    names = json.loads(paths.layer_names.read_text())
    true = pd.Series(truth["layers_uW"], index=names)
    long = set(np.asarray(names)[known["median_ms"].index[known["median_ms"] >= min_ms]])
    rows = []
    for method, group in estimates.groupby("method", sort=False):
        table = group[group["layer_name"].isin(long)].set_index("layer_name")
        exact = true.loc[table.index]
        above = exact - truth["idle_uW"]
        err = 100 * (table["power_uW"] - exact).abs() / exact
        err_above = 100 * ((table["power_uW"] - truth["idle_uW"]) - above).abs() / above
        covered = (table["ci95_low_uW"] <= exact) & (exact <= table["ci95_high_uW"])
        rows.append(
            {
                "method": method,
                "layers": len(table),
                "median_err_pct": float(err.median()),
                "p90_err_pct": float(err.quantile(0.9)),
                "median_err_above_idle_pct": float(err_above.median()),
                "p90_err_above_idle_pct": float(err_above.quantile(0.9)),
                "max_err_above_idle_pct": float(err_above.max()),
                "coverage_pct": float(100 * covered.mean()),
            }
        )
    return pd.DataFrame(rows)
