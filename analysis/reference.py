"""The downstream pipeline's window mapping, written plainly from ``data-formats.md``: per row,
in Python, over ``datetime`` objects parsed from the raw files. Kept only as the yardstick for
tests and ``benchmarks/analysis_speed.py``; ``analysis.mapping`` is what the suite uses.

Two per-row variants: ``scan`` tests every power sample against the window (what a
straightforward implementation does), ``bisect`` finds the window's samples by binary search.
"""

from __future__ import annotations

import bisect
import json
from datetime import datetime, timedelta
from pathlib import Path

FORMAT = "%Y%m%d-%H:%M:%S.%f"


def read_power_log(path: Path) -> tuple[list[datetime], list[float]]:
    """(timestamps, µW) from ``<model>_power_log.log`` (``timestamp,mV,mA``)."""
    times, powers = [], []
    with open(path) as f:
        for line in f:
            stamp, mv, ma = line.strip().split(",")
            times.append(datetime.strptime(stamp, FORMAT))
            powers.append(float(mv) * float(ma))
    return times, powers


def read_layers(latency_json: Path) -> list[tuple[int, str, float, datetime]]:
    """(cycle, layer name, latency ms, end) per row of the layer-latency JSON."""
    rows = []
    for name, pairs in json.loads(latency_json.read_text()).items():
        for cycle, (ms, stamp) in enumerate(pairs):
            rows.append((cycle, name, ms, datetime.strptime(stamp, FORMAT)))
    return rows


def map_rows(
    rows, times: list[datetime], powers: list[float], idle_uw: float | None, how: str = "bisect"
) -> list[dict]:
    """One dict per row: mean power inside ``[end − latency, end]`` or None, and the count."""
    out = []
    for cycle, name, ms, end in rows:
        start = end - timedelta(milliseconds=ms)
        if how == "bisect":
            inside = powers[bisect.bisect_left(times, start) : bisect.bisect_right(times, end)]
        else:
            inside = [p for t, p in zip(times, powers, strict=True) if start <= t <= end]
        mean = sum(inside) / len(inside) if inside else None
        out.append(
            {
                "cycle": cycle,
                "layer_name": name,
                "power": mean,
                "power_excl_idle": None if mean is None or idle_uw is None else mean - idle_uw,
                "layer_run_time": ms,
                "samples": len(inside),
            }
        )
    return out


def map_layers(
    latency_json: Path, times: list[datetime], powers: list[float], idle_uw: float | None
) -> list[dict]:
    """The whole downstream mapping from the raw files (bisect variant)."""
    return map_rows(read_layers(latency_json), times, powers, idle_uw)
