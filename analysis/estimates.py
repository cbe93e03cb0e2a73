"""One table of per-layer power estimates: one row per layer and method.

Methods: ``sensor_lsq`` (the default, ``analysis.sensor_lsq``), ``folded`` (phase folding) and
``window`` (the downstream window mapping, averaged over the layer-inferences that held a
sample). Columns: ``ESTIMATE_COLUMNS``, then ``ill_conditioned`` (``sensor_lsq`` only).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

DEFAULT_METHOD = "sensor_lsq"
ESTIMATE_COLUMNS = [
    "layer_name",
    "method",
    "power_uW",
    "ci95_low_uW",
    "ci95_high_uW",
    "power_excl_idle_uW",
    "energy_uJ",
    "n_readings",
]


def folded_rows(folded: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "layer_name": folded["layer_name"],
            "method": "folded",
            "power_uW": folded["power_uW"],
            "ci95_low_uW": folded["power_uW"] - folded["ci95_uW"],
            "ci95_high_uW": folded["power_uW"] + folded["ci95_uW"],
            "power_excl_idle_uW": folded["power_excl_idle_uW"],
            "energy_uJ": folded["energy_uJ"],
            "n_readings": folded["samples"],
        }
    )


def window_rows(mapped: pd.DataFrame, names: list[str], idle_uw: float | None) -> pd.DataFrame:
    """Per layer: mean of the window means of its layer-inferences that held a sample, with a
    Student-t interval over them; energy = that power × mean runtime."""
    power = mapped["layer_power_including_idle_power_micro_watt"]
    groups = mapped.assign(p=power).groupby("layer_name", sort=False)
    stats = groups.agg(
        mean=("p", "mean"),
        sd=("p", "std"),
        n=("p", "count"),
        samples=("samples", "sum"),
        ms=("layer_run_time", "mean"),
    ).reindex(names)
    with np.errstate(invalid="ignore"):
        half = (
            student_t.ppf(0.975, np.maximum(stats["n"] - 1, 1)) * stats["sd"] / np.sqrt(stats["n"])
        )
    half = half.where(stats["n"] > 1)
    return pd.DataFrame(
        {
            "layer_name": names,
            "method": "window",
            "power_uW": stats["mean"].to_numpy(),
            "ci95_low_uW": (stats["mean"] - half).to_numpy(),
            "ci95_high_uW": (stats["mean"] + half).to_numpy(),
            "power_excl_idle_uW": (stats["mean"] - idle_uw).to_numpy()
            if idle_uw is not None
            else np.nan,
            "energy_uJ": (stats["mean"] * stats["ms"] / 1e3).to_numpy(),
            "n_readings": stats["samples"].fillna(0).astype(int).to_numpy(),
        }
    )


def estimates_table(
    lsq: pd.DataFrame, folded: pd.DataFrame, mapped: pd.DataFrame, names, idle_uw
) -> pd.DataFrame:
    parts = [
        lsq.assign(method=DEFAULT_METHOD),
        folded_rows(folded),
        window_rows(mapped, names, idle_uw),
    ]
    table = pd.concat(parts, ignore_index=True)
    extra = [c for c in table.columns if c not in ESTIMATE_COLUMNS]
    return table[ESTIMATE_COLUMNS + extra]
