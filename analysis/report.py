"""Analyse one model folder and write its tables, figures and plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis import plots
from analysis.estimates import DEFAULT_METHOD, estimates_table
from analysis.figures import timing_figures
from analysis.folding import folded_layers, folded_trace
from analysis.load import (
    AnalysisError,
    check_overlap,
    intervals,
    load_idle,
    load_markers,
    load_power,
    load_records,
    phase,
    read_result_json,
)
from analysis.mapping import layer_power_table
from analysis.sensor_lsq import sensor_lsq
from analysis.summary import readable
from common.layout import ResultPaths, replacing, write_json
from model.output import PAUSE


def analyse_model(model_dir: Path, make_plots: bool = True) -> dict:
    """Write ``<model>_layer_power.csv``, ``<model>_layer_power_folded.csv``,
    ``<model>_layer_power_estimates.csv``, ``<model>_analysis.json`` and the plots; return the
    analysis summary."""
    paths = ResultPaths.find(model_dir)
    if paths is None:
        raise AnalysisError(
            f"{model_dir.name}: no profiler output (<model>_<backend>.json or "
            "layer records); nothing to analyse"
        )
    model = model_dir.name
    power = load_power(model_dir)
    records = load_records(paths)
    markers = load_markers(paths)
    idle = load_idle(model_dir.parent)
    profiling = phase(markers, "profiling") or (
        int(records.start_ns.min()),
        int(records.end_ns.max()),
    )
    check_overlap(power, *profiling, "profiling pass")

    mapped = layer_power_table(records, power, idle)
    with replacing(paths.layer_power) as tmp:
        mapped.to_csv(tmp, index=False)  # downstream: unrounded
    covered = float((mapped["samples"] > 0).mean())

    folded = folded_layers(records, power, idle, markers)
    with replacing(paths.layer_power_folded) as tmp:
        readable(folded).to_csv(tmp, index=False)

    lsq, lsq_info = sensor_lsq(records, power, idle, profiling, intervals(markers, PAUSE))
    estimates = estimates_table(lsq, folded, mapped, records.names, idle)
    with replacing(paths.layer_power_estimates) as tmp:
        readable(estimates).to_csv(tmp, index=False)

    summary = {}
    if paths.summary_json.exists():
        summary = read_result_json(paths.summary_json)
    figures = timing_figures(
        power, phase(markers, "timing"), summary.get("latencies") or [1.0], idle
    )
    result = {
        "model": model,
        "backend": summary.get("config", {}).get("backend"),
        "dtype": summary.get("config", {}).get("dtype"),
        "dtype_used": summary.get("backend", {}).get("dtype_used")
        or summary.get("config", {}).get("dtype"),
        "device": summary.get("backend", {}).get("device"),
        "runs": summary.get("config", {}).get("runs"),
        "profile_runs": len(np.unique(records.run)),
        "mean_latency_ms": 1e3 * summary["avg_latency"] if "avg_latency" in summary else None,
        "throughput_per_s": summary.get("avg_throughput"),
        "idle_power_W": idle / 1e6 if idle is not None else None,
        "layer_inferences": len(mapped),
        "layer_coverage": covered,
        "layer_inferences_without_sample": 1.0 - covered,
        "folded_samples": folded.attrs["folded_samples"],
        "layers_without_folded_sample": int((folded["samples"] == 0).sum()),
        "power_samples": len(power.t_ns),
        "power_lines_dropped": power.dropped_lines,
        **figures,
        "per_layer_method": DEFAULT_METHOD,
        "sensor_lsq": lsq_info,
    }
    if figures.get("energy_per_inference_mJ"):
        # closure: the profiled inference's layers + between-layer time vs the timing pass
        result["sensor_lsq"]["closure_vs_timing_pass"] = lsq_info["energy_per_inference_uJ"] / (
            1e3 * figures["energy_per_inference_mJ"]
        )
    write_json(paths.analysis, result)
    if make_plots:
        phases = {name: phase(markers, name) for name, _ in plots.PHASES}
        plots.power_timeline(paths.plots["power_timeline"], power, phases, f"{model}: board power")
        centres, means, counts = folded_trace(records, power, markers)
        plots.folded_power(
            paths.plots["folded_power"],
            centres,
            means,
            counts,
            folded,
            f"{model}: power folded over {result['profile_runs']} inferences",
        )
        plots.top_layers(
            paths.plots["top_layers"],
            folded[["layer_name", "median_runtime_ms"]].merge(lsq[["layer_name", "energy_uJ"]]),
            f"{model}: top layers",
            method=DEFAULT_METHOD,
        )
    return result
