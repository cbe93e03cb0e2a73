#!/usr/bin/env python3
"""Window mapping: ours (vectorized) against the downstream method done per row.

Builds a synthetic result folder of 30 000 profiled inferences × 30 layers with a power log at
1 kHz. Each figure comes from a child process of its own (so peak memory does not mix):

- ours: load the raw files into arrays, then ``window_means``; and the suite's whole analysis
  of the folder (``analyse_model``, no plots) with its peak memory;
- the per-row reference with binary search (``bisect``), over all rows;
- the per-row reference that tests every sample (``scan``, the straightforward way), timed on
  the first ``--scan-rows`` rows and extrapolated to all rows (stated as such).

It also checks on a smaller folder that ours and the reference give the same values.
Run: python benchmarks/analysis_speed.py [--inferences 30000] [--layers 30]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# the synthetic run both folders share: 50 µs layers, 0.5 ms gaps, a 1 kHz power log, 1 W more
# while layer 3 runs, noise of 0.2 W standard deviation
FOLDER_SHAPE = {
    "layer_ms": 0.05,
    "gap_ms": 0.5,
    "sample_hz": 1000,
    "step_uw": 1e6,
    "step_layer": 3,
    "noise_uw": 2e5,
}


def child(mode: str, folder: str, scan_rows: int) -> None:
    """Time one mapping in this process; print a JSON line."""
    model = Path(folder) / "synth"
    latency = model / "torch_profiling/torch_layer_latency.json"
    log = model / "synth_power_log.log"
    result: dict = {"mode": mode}
    if mode == "ours":
        import pandas  # noqa: F401 - imported before the clock starts, as the reference's modules

        from analysis.mapping import load_downstream_files, window_means

        t0 = time.perf_counter()
        d = load_downstream_files(latency, log)
        result["load_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        mean, count = window_means(d["t_ns"], d["power"], d["start_ns"], d["end_ns"])
        result["map_s"] = time.perf_counter() - t0
        result["rows"], result["coverage"] = len(mean), float((count > 0).mean())
    elif mode == "suite":
        from analysis.report import analyse_model

        t0 = time.perf_counter()
        analysed = analyse_model(model, make_plots=False)
        result["map_s"] = time.perf_counter() - t0
        result["rows"], result["coverage"] = (
            analysed["layer_inferences"],
            analysed["layer_coverage"],
        )
    else:
        from analysis.reference import map_rows, read_layers, read_power_log

        t0 = time.perf_counter()
        times, powers = read_power_log(log)
        rows = read_layers(latency)
        result["load_s"] = time.perf_counter() - t0
        subset = rows if mode == "bisect" else rows[:scan_rows]
        t0 = time.perf_counter()
        mapped = map_rows(subset, times, powers, 4e6, how=mode)
        result["map_s"] = (time.perf_counter() - t0) * len(rows) / len(subset)
        result["rows"], result["timed_rows"] = len(rows), len(subset)
        result["coverage"] = sum(r["samples"] > 0 for r in mapped) / len(mapped)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def run_child(mode: str, folder: Path, scan_rows: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(folder), "--scan-rows", str(scan_rows)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def check_small(layers: int) -> None:
    import numpy as np
    import pandas as pd

    from analysis.mapping import map_downstream_files
    from analysis.reference import map_layers, read_power_log
    from analysis.synthetic import write_folder

    with tempfile.TemporaryDirectory() as small_dir:
        write_folder(
            Path(small_dir),
            inferences=500,
            layers=layers,
            **FOLDER_SHAPE,
        )
        model = Path(small_dir) / "synth"
        latency = model / "torch_profiling/torch_layer_latency.json"
        ours = map_downstream_files(latency, model / "synth_power_log.log", 4e6)
        ref = pd.DataFrame(map_layers(latency, *read_power_log(model / "synth_power_log.log"), 4e6))
        same = bool(
            (ours["samples"].to_numpy() == ref["samples"].to_numpy()).all()
            and np.allclose(
                ours["power"].to_numpy(float),
                ref["power"].to_numpy(float),
                rtol=1e-12,
                equal_nan=True,
            )
        )
    print(f"small folder (500 × {layers}): {len(ours)} rows, identical values: {same}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--inferences", type=int, default=30000)
    p.add_argument("--layers", type=int, default=30)
    p.add_argument("--scan-rows", type=int, default=300)
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(*args.child, args.scan_rows)
        return
    from analysis.synthetic import write_folder

    check_small(args.layers)
    with tempfile.TemporaryDirectory() as big_dir:
        t0 = time.perf_counter()
        write_folder(
            Path(big_dir),
            inferences=args.inferences,
            layers=args.layers,
            **FOLDER_SHAPE,
        )
        print(
            f"built {args.inferences} × {args.layers} folder with a 1 kHz power log in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        runs = {
            mode: run_child(mode, Path(big_dir), args.scan_rows)
            for mode in ("ours", "suite", "bisect", "scan")
        }
    ours = runs["ours"]
    for mode, r in runs.items():
        extra = f" (timed on {r['timed_rows']} rows, extrapolated)" if mode == "scan" else ""
        load = f", load {r['load_s']:.2f} s" if "load_s" in r else ""
        print(
            f"{mode:>7}: mapping {r['map_s']:10.3f} s{extra}{load}, peak RSS "
            f"{r['peak_rss_mb']:.0f} MiB, {r['rows']} rows, coverage {r['coverage']:.1%}"
        )
    print(
        f"speed ratio, mapping step: {runs['bisect']['map_s'] / ours['map_s']:.0f}× vs "
        f"per-row bisect, {runs['scan']['map_s'] / ours['map_s']:.0f}× vs per-row scan"
    )
    whole_ref = runs["bisect"]["map_s"] + runs["bisect"]["load_s"]
    whole_ours = ours["map_s"] + ours["load_s"]
    print(f"speed ratio, load + mapping: {whole_ref / whole_ours:.1f}× vs per-row bisect")
    print(
        f"suite's whole analysis of the folder (tables, folding, no plots): "
        f"{runs['suite']['map_s']:.1f} s, peak RSS {runs['suite']['peak_rss_mb']:.0f} MiB"
    )


if __name__ == "__main__":
    main()
