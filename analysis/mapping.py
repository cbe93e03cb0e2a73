"""Window mapping, the downstream pipeline's method, vectorized: the mean power of the samples
inside each layer window ``[end − latency, end]`` (bounds included), or none."""

from __future__ import annotations

import numpy as np


def window_means(
    t_ns: np.ndarray, power: np.ndarray, start_ns: np.ndarray, end_ns: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(mean power, sample count) per window; NaN where a window holds no sample.

    ``t_ns`` must be sorted. Prefix sums plus two binary searches: O((n + m) log n) and no
    Python loop over rows.
    """
    prefix = np.concatenate(([0.0], np.cumsum(power, dtype=np.float64)))
    lo = np.searchsorted(t_ns, start_ns, side="left")
    hi = np.searchsorted(t_ns, end_ns, side="right")
    count = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, (prefix[hi] - prefix[lo]) / count, np.nan)
    return mean, count


def layer_power_table(records, power, idle_uw: float | None):
    """The downstream ``<model>_layer_power.csv`` table (plus a ``samples`` column)."""
    import pandas as pd

    mean, count = window_means(
        power.t_ns,
        power.board_uw,
        records.end_ns - np.round(records.latency_ms * 1e6).astype(np.int64),
        records.end_ns,
    )
    names = np.asarray(records.names, dtype=object)
    types = np.asarray(records.types, dtype=object)
    return pd.DataFrame(
        {
            "cycle": records.run,
            "layer_name": names[records.layer],
            "layer_type": types[records.layer],
            "layer_power_including_idle_power_micro_watt": mean,
            "layer_power_excluding_idle_power_micro_watt": mean - idle_uw
            if idle_uw is not None
            else np.full(len(mean), np.nan),
            "layer_run_time": records.latency_ms,
            "samples": count,
        }
    )
