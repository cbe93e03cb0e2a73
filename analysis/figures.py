"""Whole-model figures from the timing pass: board power and energy per inference.

Energy per inference is the energy over the timing pass divided by its number of inferences, so
the host gaps between inferences (at full power) are counted: from the mean logged power × the
pass's wall time, and from the NVML energy counter where the sensor has one. The older figure,
mean power × mean CUDA-event latency, stays beside them under its own name
(``energy_per_inference_event_latency_mJ``); it leaves the host gap out.
"""

from __future__ import annotations

import numpy as np


def _counter_joules(power, start_ns: int, end_ns: int) -> float | None:
    """Energy between two instants from the energy counter, interpolated linearly between its
    readings; None where the readings do not bracket both instants."""
    if power.energy_mj is None:
        return None
    valid = ~np.isnan(power.energy_mj)
    t, mj = power.t_ns[valid], power.energy_mj[valid]
    if len(t) < 2 or t[0] > start_ns or t[-1] < end_ns:
        return None
    return float(np.interp(end_ns, t, mj) - np.interp(start_ns, t, mj)) / 1e3


def timing_figures(
    power, timing: tuple[int, int] | None, latencies_s: list[float], idle_uw: float | None
) -> dict:
    """Mean and peak power over the timing pass and the energy per inference."""
    if timing is None:
        return {}
    lo, hi = np.searchsorted(power.t_ns, timing[0]), np.searchsorted(power.t_ns, timing[1], "right")
    if hi <= lo:
        return {"timing_samples": 0}
    board = power.board_uw[lo:hi]
    runs = len(latencies_s)
    wall_s = (timing[1] - timing[0]) / 1e9
    mean_latency = float(np.mean(latencies_s))
    mean = float(board.mean())
    out = {
        "timing_samples": int(hi - lo),
        "timing_wall_s": wall_s,
        "wall_time_per_inference_ms": 1e3 * wall_s / runs,
        "mean_power_W": mean / 1e6,
        "peak_power_W": float(board.max()) / 1e6,
        "energy_per_inference_mJ": mean * wall_s / runs / 1e3,
        "energy_per_inference_excl_idle_mJ": (mean - idle_uw) * wall_s / runs / 1e3
        if idle_uw is not None
        else None,
        "energy_per_inference_event_latency_mJ": mean * mean_latency / 1e3,
    }
    joules = _counter_joules(power, *timing)
    if joules is not None:
        out["counter_mean_power_W"] = joules / wall_s
        out["counter_energy_per_inference_mJ"] = 1e3 * joules / runs
    return out
