"""Phase folding (Lang & Rünger, Euro-Par 2013): map every power sample of the profiling pass to
its phase inside the inference it fell in (time since that inference's start marker), then
average each layer's median window over all inferences. A sensor that refreshes every few
milliseconds then still resolves layers of microseconds, given enough inferences; every figure
carries its sample count and a 95 % interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

Z95 = 1.96


def inference_bounds(records, markers: pd.DataFrame | None = None):
    """(runs, start ns, end ns) per profiled inference, sorted by run.

    The start is the profiler's ``inference_start`` marker where there is one (the host anchor
    taken after a synchronize), else the first layer's start; the end is the last layer's end.
    """
    order = np.argsort(records.run, kind="stable")
    runs, first = np.unique(records.run[order], return_index=True)
    starts = np.minimum.reduceat(records.start_ns[order], first)
    ends = np.maximum.reduceat(records.end_ns[order], first)
    if markers is not None and "inference_start" in set(markers["event"]):
        marks = markers[markers["event"] == "inference_start"]
        by_run = pd.Series(
            marks["mono_ns"].to_numpy(np.int64), index=marks["run"].astype(np.int64).to_numpy()
        )
        by_run = by_run[~by_run.index.duplicated()]
        known = np.isin(runs, by_run.index)
        starts[known] = np.minimum(starts[known], by_run.loc[runs[known]].to_numpy())
    return runs, starts, ends


def fold(
    t_ns: np.ndarray, starts_ns: np.ndarray, ends_ns: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(indices of samples that fall inside an inference, their phase in ns).

    Samples between inferences (host gaps) are left out.
    """
    k = np.searchsorted(starts_ns, t_ns, side="right") - 1
    inside = k >= 0
    inside[inside] &= t_ns[inside] <= ends_ns[k[inside]]
    index = np.nonzero(inside)[0]
    return index, t_ns[index] - starts_ns[k[index]]


def _mean_ci(values: np.ndarray) -> tuple[float, float]:
    if len(values) == 0:
        return np.nan, np.nan
    if len(values) == 1:
        return float(values[0]), np.nan
    return float(values.mean()), Z95 * float(values.std(ddof=1)) / np.sqrt(len(values))


def folded_layers(records, power, idle_uw: float | None, markers=None) -> pd.DataFrame:
    """Per layer: its median window on the phase axis, the folded mean power over it with the
    sample count and 95 % interval, per rail too, and energy = power × median runtime."""
    runs, starts, ends = inference_bounds(records, markers)
    anchor = starts[np.searchsorted(runs, records.run)]
    windows = pd.DataFrame(
        {
            "layer": records.layer,
            "a": records.start_ns - anchor,
            "b": records.end_ns - anchor,
            "ms": records.latency_ms,
        }
    )
    medians = windows.groupby("layer").median()
    index, phase = fold(power.t_ns, starts, ends)
    by_phase = np.argsort(phase, kind="stable")
    phase, index = phase[by_phase], index[by_phase]
    idle = idle_uw if idle_uw is not None else np.nan
    rows = []
    for layer, row in medians.iterrows():
        picked = index[
            np.searchsorted(phase, row["a"], "left") : np.searchsorted(phase, row["b"], "right")
        ]
        mean, ci = _mean_ci(power.board_uw[picked])
        out = {
            "layer_name": records.names[layer],
            "layer_type": records.types[layer],
            "window_start_us": row["a"] / 1e3,
            "window_end_us": row["b"] / 1e3,
            "median_runtime_ms": row["ms"],
            "samples": len(picked),
            "power_uW": mean,
            "ci95_uW": ci,
            "power_excl_idle_uW": mean - idle,
            "energy_uJ": mean * row["ms"] / 1e3,
            "energy_excl_idle_uJ": (mean - idle) * row["ms"] / 1e3,
        }
        for rail, values in power.rails.items():
            out[f"{rail}_uW"] = _mean_ci(values[picked])[0]
        rows.append(out)
    table = pd.DataFrame(rows)
    table.attrs.update(inferences=len(runs), folded_samples=len(index))
    return table


def folded_trace(records, power, markers=None, bins: int = 200):
    """(bin centres µs, mean board power µW, samples per bin) over one inference, for plots."""
    _, starts, ends = inference_bounds(records, markers)
    index, phase = fold(power.t_ns, starts, ends)
    span = float(np.median(ends - starts)) or 1.0
    edges = np.linspace(0.0, span, bins + 1)
    which = np.clip(np.digitize(phase, edges) - 1, 0, bins - 1)
    sums = np.bincount(which, weights=power.board_uw[index], minlength=bins)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / counts, np.nan)
    return (edges[:-1] + edges[1:]) / 2e3, means, counts
