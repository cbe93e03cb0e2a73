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


def map_downstream_files(latency_json, power_log, idle_uw: float | None):
    """Window mapping straight from the downstream raw files (``<model>_power_log.log`` and the
    layer-latency JSON), vectorized: what the downstream pipeline computes, row for row."""
    import json

    import pandas as pd

    fmt = "%Y%m%d-%H:%M:%S.%f"
    log = pd.read_csv(power_log, header=None, names=["timestamp", "mV", "mA"])
    t = pd.to_datetime(log["timestamp"], format=fmt).to_numpy().astype(np.int64)
    power = (log["mV"] * log["mA"]).to_numpy(float)
    layers = json.loads(open(latency_json).read())
    names, cycles, ms, stamps = [], [], [], []
    for name, pairs in layers.items():
        names += [name] * len(pairs)
        cycles += range(len(pairs))
        ms += [p[0] for p in pairs]
        stamps += [p[1] for p in pairs]
    end = pd.to_datetime(pd.Series(stamps), format=fmt).to_numpy().astype(np.int64)
    ms_arr = np.asarray(ms, dtype=float)
    start = end - np.round(ms_arr * 1000).astype(np.int64) * 1000  # timedelta keeps µs
    mean, count = window_means(t, power, start, end)
    return pd.DataFrame(
        {
            "cycle": cycles,
            "layer_name": names,
            "power": mean,
            "power_excl_idle": mean - idle_uw if idle_uw is not None else np.nan,
            "layer_run_time": ms_arr,
            "samples": count,
        }
    )
