"""The GPU checks of issue 13 in one run on an NVIDIA machine; prints every figure, writes the
result folders and ``gpu_energy_summary.json`` under OUT.

1. NVML instant vs averaged power on a load step (time to 90 % of the step, update rate);
2. resnet50 fp16 batch 1, PyTorch/CUDA, NVML logged: energy per inference (mean power × wall
   time / inferences) against the NVML energy counter over the same timing pass; the logger's
   read p99 and gaps with the counter thread on; Σ layer medians / unprofiled median;
3. resnet18 the same, plus ``--isolation``: isolation vs folded per-layer power side by side,
   naming the layers whose difference exceeds the sum of their 95 % half-intervals.

Usage: python3 benchmarks/gpu_energy.py OUT [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str], log: Path) -> int:
    """Run a project entry point, its output into ``log`` (and its last lines printed)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    t0 = time.time()
    with open(log, "w") as out:
        code = subprocess.call(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    tail = [x for x in log.read_text().replace("\r", "\n").splitlines() if "it/s" not in x]
    print(f"$ {' '.join(cmd[1:])}\n  -> exit {code} in {time.time() - t0:.0f} s")
    for line in tail[-3:]:
        print("  |", line)
    return code


def load_step(seconds_before: float = 1.5, seconds_load: float = 4.0) -> dict:
    """Sample the instant and the averaged NVML power at ~500 Hz across a matmul load step."""
    import numpy as np
    import torch

    from power.nvml import NvmlSensor

    inst, avg = NvmlSensor(0), NvmlSensor(0, averaged=True)
    rows: list[tuple[float, float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            rows.append((time.monotonic(), inst.power_w(), avg.power_w()))
            time.sleep(0.002)

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
    thread = threading.Thread(target=sample)
    thread.start()
    time.sleep(seconds_before)
    step = time.monotonic()
    while time.monotonic() - step < seconds_load:
        for _ in range(10):
            a = (a @ a).clamp_(-1, 1)
        torch.cuda.synchronize()
    stop.set()
    thread.join()
    t, p_inst, p_avg = (np.array(x) for x in zip(*rows, strict=True))
    t = t - step
    out = {"reading": inst.power_reading}
    for name, p in (("instant", p_inst), ("averaged", p_avg)):
        base = float(np.median(p[(t > -1.0) & (t < 0)]))
        top = float(np.median(p[t > seconds_load - 1.0]))
        reached = t[(t >= 0) & (p >= base + 0.9 * (top - base))]
        loaded = p[(t >= 0)]
        out[name] = {
            "before_W": base,
            "loaded_W": top,
            "t90_ms": 1e3 * float(reached[0]) if len(reached) else None,
            "updates_per_s": float((loaded[1:] != loaded[:-1]).sum()) / seconds_load,
        }
    inst.close()
    avg.close()
    return out


def model_figures(result: Path, model: str) -> dict:
    d = result / model
    summary = json.loads((d / f"{model}_torch.json").read_text())
    power = json.loads((d / f"{model}_power_summary.json").read_text())
    analysis = json.loads((d / f"{model}_analysis.json").read_text())
    prof = summary["profiling"]
    e_wall = analysis.get("energy_per_inference_mJ")
    e_counter = analysis.get("counter_energy_per_inference_mJ")
    return {
        "gpu": summary["backend"].get("gpu_name"),
        "torch": summary["backend"].get("torch"),
        "dtype": summary["backend"].get("dtype_used"),
        "timing_median_ms": summary["timing"]["median_latency_ms"],
        "wall_time_per_inference_ms": analysis.get("wall_time_per_inference_ms"),
        "sum_of_layer_medians_ms": prof.get("sum_of_layer_medians_ms"),
        "sum_layers_per_unprofiled": prof.get("sum_of_layer_medians_per_timing_median"),
        "median_sum_of_windows_per_unprofiled": prof.get("median_sum_of_windows_per_timing_median"),
        "execution": summary["backend"].get("execution"),
        "layer_times": {k: prof.get(k) for k in ("layer_times", "kernels_per_inference")},
        "dropped_batches": prof.get("dropped_batches"),
        "energy_per_inference_mJ": e_wall,
        "counter_energy_per_inference_mJ": e_counter,
        "wall_over_counter": e_wall / e_counter if e_wall and e_counter else None,
        "energy_per_inference_event_latency_mJ": analysis.get(
            "energy_per_inference_event_latency_mJ"
        ),
        "mean_power_W": analysis.get("mean_power_W"),
        "counter_mean_power_W": analysis.get("counter_mean_power_W"),
        "logger": {
            "power_reading": power["sensor"].get("power_reading"),
            "achieved_hz": power["achieved_hz"],
            "read_us": power["read_us"],
            "gaps_over_two_periods": power["gaps_over_two_periods"],
            "longest_gap_ms": power["longest_gap_ms"],
            "errors": power["errors"],
            "distinct_updates": power["distinct_updates"],
            "samples": power["samples"],
        },
    }


def compare(result: Path, model: str) -> dict:
    """Isolation vs folded per-layer power, side by side."""
    import pandas as pd

    d = result / model
    iso = pd.read_csv(d / f"{model}_layer_isolation.csv")
    fold = pd.read_csv(d / f"{model}_layer_power_folded.csv")
    both = iso.merge(fold, on="layer_name", how="left")
    both["iso_W"] = both["mean_power_W"]
    both["iso_half_W"] = (both["ci95_high_W"] - both["ci95_low_W"]) / 2
    both["fold_W"] = both["power_uW"] / 1e6
    both["fold_half_W"] = both["ci95_uW"] / 1e6
    both["diff_W"] = both["iso_W"] - both["fold_W"]
    both["disagree"] = both["diff_W"].abs() > both["iso_half_W"] + both["fold_half_W"]
    cols = ["layer_name", "median_runtime_ms_x", "iso_W", "iso_half_W", "distinct_updates"]
    cols += ["fold_W", "fold_half_W", "samples_y", "diff_W", "disagree", "error"]
    table = both[[c for c in cols if c in both]]
    table.to_csv(d / f"{model}_isolation_vs_folded.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(table.round(3).to_string(index=False))
    return {
        "layers": len(table),
        "failed": iso["error"].notna().sum().item(),
        "disagree": table.loc[table["disagree"], "layer_name"].tolist(),
        "median_abs_diff_W": float(table["diff_W"].abs().median()),
        "table": f"{model}/{model}_isolation_vs_folded.csv",
    }


def main() -> None:
    out = Path(sys.argv[1]).resolve()
    quick = "--quick" in sys.argv
    out.mkdir(parents=True, exist_ok=True)
    result = out / "runs"
    py = sys.executable
    figures: dict = {}
    print(subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip())
    figures["load_step"] = load_step()
    print(json.dumps(figures["load_step"], indent=1))
    base = ["--backend", "torch", "--weights", "random", "--dtype", "float16"]
    base += ["--power-source", "nvml", "--result-dir", str(result)]
    # the default timing pass (30 000 inferences): with CUDA graphs it lasts 15-40 s, long
    # against the sensor's response (~0.2 s to 90 % on the instant field); a shorter profiling
    # pass (each traced batch of 200 costs ~2 s of trace collection and resumption)
    flags = ["--runs", "3000", "--profile-runs", "1000"] if quick else ["--profile-runs", "3000"]
    plans = {model: flags for model in ("resnet50", "resnet18")}
    iso = ["--isolation", "--isolation-updates", "6" if quick else "12"]
    iso += ["--isolation-settle", "0.3" if quick else "0.5"]
    for model, flags in plans.items():
        cmd = [py, "measure_inference_power.py", "--model", model, "--warmup", "200", *base, *flags]
        if model == "resnet18":
            cmd += iso
        if run(cmd, out / f"{model}_measure.log") != 0:
            continue
        run([py, "analyze.py", str(result), "--model", model, "--no-plots"], out / "analyze.log")
        try:
            figures[model] = model_figures(result, model)
            print(json.dumps(figures[model], indent=1))
            if model == "resnet18":
                figures["resnet18_isolation_vs_folded"] = compare(result, model)
                print(json.dumps(figures["resnet18_isolation_vs_folded"], indent=1))
        except (OSError, KeyError, ValueError) as exc:
            print(f"{model}: figures failed: {type(exc).__name__}: {exc}")
    (out / "gpu_energy_summary.json").write_text(json.dumps(figures, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
