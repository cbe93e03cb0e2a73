"""Whole-model figures from the timing pass: board power, energy per inference (from the mean
power × latency, and from the NVML energy counter where the sensor has one)."""

from __future__ import annotations

import numpy as np


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
    mean_latency = float(np.mean(latencies_s))
    mean = float(board.mean())
    out = {
        "timing_samples": int(hi - lo),
        "mean_power_W": mean / 1e6,
        "peak_power_W": float(board.max()) / 1e6,
        "energy_per_inference_mJ": mean * mean_latency / 1e3,
        "energy_per_inference_excl_idle_mJ": (mean - idle_uw) * mean_latency / 1e3
        if idle_uw is not None
        else None,
    }
    if power.energy_mj is not None:
        energy = power.energy_mj[lo:hi]
        valid = np.nonzero(~np.isnan(energy))[0]
        if len(valid) >= 2:
            span_s = (power.t_ns[lo + valid[-1]] - power.t_ns[lo + valid[0]]) / 1e9
            joules = (energy[valid[-1]] - energy[valid[0]]) / 1e3
            per_s = joules / span_s if span_s > 0 else np.nan
            out["counter_mean_power_W"] = per_s
            out["counter_energy_per_inference_mJ"] = per_s * mean_latency * 1e3
    return out
