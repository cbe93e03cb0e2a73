#!/usr/bin/env python3
"""Per-layer power against a known truth: the phantom (``analysis.phantom``) scored per method.

For each size (profiled inferences) and seed: a result folder of resnet18 layer records drawn
from a real profile (``tests/fixtures/profiles/resnet18_torch_cpu_layers.json``: 119 whole
inferences of PyTorch on the CPU, shrunk by ``--time-scale``), power files rewritten from a
known per-layer power through the INA3221 model (6.6 ms refresh, 1.1 ms conversion window,
1 500 ppm drift, 8 mA steps, 20 mW conversion noise, a logger reading twice per refresh), then
``analyse_model`` in a child process (wall time and peak memory), then the scores: median and
p90 error of per-layer power and of power above idle over layers of at least ``--min-ms``,
interval coverage, closure, and per method the inferences it needs for ±5 % on every such layer
(the largest error scaled by 1/√n from the largest size, where the error falls with n).

Run: python benchmarks/power_phantom.py [--sizes 300,1500,30000] [--seeds 3] [--time-scale 0.05]
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
PROFILE = ROOT / "tests/fixtures/profiles/resnet18_torch_cpu_layers.json"


def child(folder: str) -> None:
    """Analyse one phantom folder in this process; print wall time and peak RSS."""
    import pandas  # noqa: F401 - imported before the clock starts

    from analysis.report import analyse_model

    t0 = time.perf_counter()
    result = analyse_model(Path(folder), make_plots=False)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall_s": wall, "peak_MiB": peak, "sensor_lsq": result["sensor_lsq"]}))


def one(size: int, seed: int, scale: float, min_ms: float, tmp: Path) -> dict:
    import pandas as pd

    from analysis import phantom

    profile = phantom.load_profile(PROFILE)
    folder = tmp / f"n{size}_s{seed}"
    paths = phantom.write_records(folder, profile, size, time_scale=scale, seed=seed)
    truth = phantom.make_truth(len(profile["names"]), seed=seed)
    phantom.rewrite_power(paths, truth, seed=seed)
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(paths.model_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    run = json.loads(out.stdout.strip().splitlines()[-1])
    scores = phantom.score(paths, truth, pd.read_csv(paths.layer_power_estimates), min_ms)
    return {"size": size, "seed": seed, "run": run, "scores": scores}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="300,1500,30000")
    p.add_argument("--seeds", type=int, default=3, help="seeds for each size below 30 000")
    p.add_argument("--time-scale", type=float, default=0.05)
    p.add_argument("--min-ms", type=float, default=0.2)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child)
        return
    import pandas as pd

    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"phantom: resnet18 records from {PROFILE.name} x {args.time_scale}, INA3221 physics; "
        f"scores over layers >= {args.min_ms} ms"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            for seed in range(args.seeds if size < 30000 else 1):
                r = one(size, seed, args.time_scale, args.min_ms, Path(tmp))
                lsq = r["run"]["sensor_lsq"]
                fit = lsq.get("refresh_fit", {})
                print(
                    f"\n{size} inferences, seed {seed}: analysis {r['run']['wall_s']:.1f} s, "
                    f"peak {r['run']['peak_MiB']:.0f} MiB; {lsq['readings']} readings, "
                    f"fitted drift {fit.get('drift_ppm', float('nan')):.0f} ppm (true 1500), "
                    f"phase interval {fit.get('phase_interval_ms', float('nan')):.3f} ms, "
                    f"closure {lsq.get('closure_vs_timing_pass', float('nan')):.4f}"
                )
                print(r["scores"].round(3).to_string(index=False))
                for _, s in r["scores"].iterrows():
                    rows.append({"size": size, "seed": seed, **s.to_dict()})
            shutil_free(Path(tmp))
    table = pd.DataFrame(rows)
    print("\nby size (median over seeds):")
    summary = table.groupby(["method", "size"], sort=False).median(numeric_only=True)
    print(summary.drop(columns=["seed"]).round(3).to_string())
    print(f"\ninferences for +-5 % (above idle) on every layer >= {args.min_ms} ms:")
    for method, part in table.groupby("method", sort=False):
        worst = part.groupby("size")["max_err_above_idle_pct"].median()
        ok = worst[worst <= 5.0]
        if len(ok):
            print(f"  {method}: reached at {ok.index.min()} (largest error {ok.iloc[0]:.2f} %)")
        elif len(worst) > 1 and worst.iloc[-1] < 0.7 * worst.iloc[0]:
            need = worst.index[-1] * (worst.iloc[-1] / 5.0) ** 2
            print(f"  {method}: about {need:,.0f} (1/sqrt(n) from {worst.iloc[-1]:.1f} %)")
        else:
            print(
                f"  {method}: not reached; the largest error stays at {worst.iloc[-1]:.0f} % "
                f"at {worst.index[-1]} (it does not fall with n: bias)"
            )


def shutil_free(folder: Path) -> None:
    """Remove the folders of a size before the next (the 30 000 one is large)."""
    import shutil

    for sub in folder.iterdir():
        shutil.rmtree(sub, ignore_errors=True)


if __name__ == "__main__":
    main()
