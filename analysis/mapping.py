"""Window mapping, the downstream pipeline's method, vectorized: the mean power of the samples
inside each layer window ``[end − latency, end]`` (bounds included), or none."""

from __future__ import annotations

import numpy as np

from common.clock import wall_strings_to_ns


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


def load_downstream_files(latency_json, power_log) -> dict:
    """The downstream raw files (``<model>_power_log.log`` and the layer-latency JSON) as arrays:
    sample times and power, and per row its cycle, layer name, latency and window (ns; the
    strings hold microseconds, and so does ``timedelta`` in the downstream method)."""
    import json

    import pandas as pd

    log = pd.read_csv(power_log, header=None, names=["timestamp", "mV", "mA"])
    names, cycles, ms, stamps = [], [], [], []
    for name, pairs in json.loads(open(latency_json).read()).items():
        names += [name] * len(pairs)
        cycles += range(len(pairs))
        ms += [p[0] for p in pairs]
        stamps += [p[1] for p in pairs]
    end = wall_strings_to_ns(stamps)
    ms_arr = np.asarray(ms, dtype=float)
    return {
        "t_ns": wall_strings_to_ns(log["timestamp"]),
        "power": (log["mV"] * log["mA"]).to_numpy(float),
        "cycle": cycles,
        "layer_name": names,
        "ms": ms_arr,
        "start_ns": end - np.round(ms_arr * 1000).astype(np.int64) * 1000,
        "end_ns": end,
    }


def map_downstream_files(latency_json, power_log, idle_uw: float | None):
    """Window mapping straight from the downstream raw files, vectorized: what the downstream
    pipeline computes, row for row."""
    import pandas as pd

    d = load_downstream_files(latency_json, power_log)
    mean, count = window_means(d["t_ns"], d["power"], d["start_ns"], d["end_ns"])
    return pd.DataFrame(
        {
            "cycle": d["cycle"],
            "layer_name": d["layer_name"],
            "power": mean,
            "power_excl_idle": mean - idle_uw if idle_uw is not None else np.nan,
            "layer_run_time": d["ms"],
            "samples": count,
        }
    )
