"""``summary.csv`` at the top of the result folder: one row per model folder, rounded to what the
measurement supports, units in the column names; and ``readable``, the same rounding for any
table of ours (not for the downstream files, whose values stay as the downstream method has
them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from common.layout import (
    DATASET_TABLE,
    SUMMARY_CSV,
    LayoutError,
    ResultPaths,
    model_dirs,
    read_json,
    read_status,
    replacing,
)

COLUMNS = [
    "model",
    "status",
    "backend",
    "dtype",
    "dtype_used",
    "runs",
    "mean_latency_ms",
    "throughput_per_s",
    "mean_power_W",
    "peak_power_W",
    "idle_power_W",
    "energy_per_inference_mJ",
    "energy_per_inference_excl_idle_mJ",
    "counter_energy_per_inference_mJ",
    "layer_coverage_pct",
    "reason",
]

# decimals by unit suffix: ms to 0.1 µs, W to 1 mW, mJ to 1 µJ (µW to 1 mW, µJ to 1 µJ)
DECIMALS = {"_ms": 4, "_s": 4, "_W": 3, "_mJ": 3, "_uW": -3, "_uJ": 0, "_us": 1, "_pct": 1}
DECIMALS_OTHER = {"throughput_per_s": 2, "runs": 0, "samples": 0, "distinct_updates": 0}  # counts


def decimals(column: str) -> int | None:
    """How many decimals a column keeps, from its unit suffix; None: not a measured quantity."""
    if column in DECIMALS_OTHER:
        return DECIMALS_OTHER[column]
    for suffix in sorted(DECIMALS, key=len, reverse=True):
        if column.endswith(suffix):
            return DECIMALS[suffix]
    return None


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """A copy rounded by unit; whole-number columns as integers, empty where unknown. Interval
    half-widths and upper bounds (``ci95_*``) are rounded up and lower bounds (``ci95_low*``)
    down, so that rounding never narrows an interval."""
    out = table.copy()
    for column in out.columns:
        places = decimals(str(column))
        if places is None or not pd.api.types.is_numeric_dtype(out[column]):
            continue
        how = np.floor if str(column).startswith("ci95_low") else np.ceil
        how = how if str(column).startswith("ci95") else np.round
        values = _to_places(out[column].astype(float), places, how)
        out[column] = values.astype("Int64") if places <= 0 else values
    return out


def _to_places(values: pd.Series, places: int, how) -> pd.Series:
    """``how`` (floor, ceil, round) at ``places`` decimals; negative places round to tens,
    hundreds, ... and stay whole numbers (a step of 1000 is multiplied, never divided by 1e-3)."""
    if places >= 0:
        return (how(values * 10**places) / 10**places).round(places)
    step = 10**-places
    return how(values / step) * step


def _dtype_reason(data: dict) -> str:
    used, asked = data.get("dtype_used"), data.get("dtype")
    if not used or not asked or used == asked:
        return ""
    return f"{asked} asked; the {data.get('device') or 'device'} ran {used}"


def summary_row(folder: Path) -> dict:
    """One model's row: status, reason, and the figures of its ``<model>_analysis.json``."""
    status = read_status(folder) or {}
    row = {
        "model": folder.name,
        "status": status.get("status", "unknown"),
        "reason": status.get("reason", ""),
    }
    analysis = ResultPaths(folder.parent, folder.name).analysis
    if analysis.exists():
        try:
            data = read_json(analysis)
        except LayoutError as exc:  # garbled by an earlier run: say so in the row
            row["reason"] = f"{row['reason']} (analysis unreadable: {exc})".strip()
            data = {}
        row.update({k: data.get(k) for k in COLUMNS if k in data and k not in row})
        if data.get("layer_coverage") is not None:
            row["layer_coverage_pct"] = 100 * data["layer_coverage"]
        why = _dtype_reason(data)
        row["reason"] = "; ".join(r for r in (row["reason"], why) if r)
    return row


def summary_table(result_dir: Path) -> pd.DataFrame:
    """One rounded row per model folder."""
    rows = [summary_row(f) for f in model_dirs(result_dir)]
    return readable(pd.DataFrame(rows, columns=COLUMNS))


def write_summary(result_dir: Path) -> pd.DataFrame:
    table = summary_table(result_dir)
    with replacing(result_dir / SUMMARY_CSV) as tmp:
        table.to_csv(tmp, index=False)
    return table


DATASET_COLUMNS = [
    "device",
    "run",
    "model",
    "status",
    "backend",
    "dtype_used",
    "mean_latency_ms",
    "mean_power_W",
    "energy_per_inference_mJ",
    "energy_per_inference_excl_idle_mJ",
    "reason",
]


def write_dataset_table(root: Path) -> pd.DataFrame:
    """``runs.csv`` of a dataset laid out as ``root/<device>/<run>/<model>``: one row per model
    of every run of every device."""
    frames = []
    for device in model_dirs(root):
        for run in model_dirs(device):
            table = summary_table(run)
            table.insert(0, "run", run.name)
            table.insert(0, "device", device.name)
            frames.append(table)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    table = table.reindex(columns=DATASET_COLUMNS)
    with replacing(root / DATASET_TABLE) as tmp:
        table.to_csv(tmp, index=False)
    return table
