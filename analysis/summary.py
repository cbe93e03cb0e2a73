"""``summary.csv`` at the top of the result folder: one row per model folder."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from experiment.measurement import read_status

COLUMNS = [
    "model",
    "status",
    "backend",
    "dtype",
    "runs",
    "mean_latency_ms",
    "throughput_per_s",
    "mean_power_W",
    "peak_power_W",
    "energy_per_inference_mJ",
    "energy_per_inference_excl_idle_mJ",
    "counter_energy_per_inference_mJ",
    "layer_coverage",
    "reason",
]


def model_dirs(result_dir: Path) -> list[Path]:
    """Every directory directly under the result folder is a model folder (downstream rule)."""
    return sorted(p for p in result_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def write_summary(result_dir: Path) -> pd.DataFrame:
    rows = []
    for folder in model_dirs(result_dir):
        status = read_status(folder) or {}
        row = {
            "model": folder.name,
            "status": status.get("status", "unknown"),
            "reason": status.get("reason", ""),
        }
        analysis = folder / f"{folder.name}_analysis.json"
        if analysis.exists():
            data = json.loads(analysis.read_text())
            row.update({k: data.get(k) for k in COLUMNS if k in data and k not in row})
        rows.append(row)
    table = pd.DataFrame(rows, columns=COLUMNS)
    table.to_csv(result_dir / "summary.csv", index=False)
    return table
