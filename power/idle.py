"""Idle power: the mean board-input power over a quiet window, with its uncertainty.

Samples of a rail are autocorrelated (the sensor refreshes slower than we sample and power
wanders), so the 95 % confidence interval comes from batch means (``BATCH_S`` batches), not from
the sample standard deviation, with Student's t for the number of batches (with 10 batches the
normal 1.96 would be 13 % too narrow and adaptive idle would stop early). The adaptive mode
stops as soon as that interval is within the asked precision, after a minimum duration.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from pathlib import Path

import numpy as np

from common.clock import Clock
from common.layout import IDLE_JSON, IDLE_PREFIX, power_files, write_json
from power.logger import log_power
from power.sensor import Sensor

BATCH_S = 0.5
MIN_BATCHES = 10


class BatchMeans:
    """Running batch means of a power series, for a confidence interval of its mean."""

    def __init__(self, batch_s: float = BATCH_S) -> None:
        self.batch_ns = int(batch_s * 1e9)
        self.means: list[float] = []
        self._start: int | None = None
        self._sum = 0.0
        self._n = 0

    def add(self, mono_ns: int, value: float) -> None:
        if self._start is None:
            self._start = mono_ns
        if mono_ns - self._start >= self.batch_ns and self._n:
            self.means.append(self._sum / self._n)
            self._start, self._sum, self._n = mono_ns, 0.0, 0
        self._sum += value
        self._n += 1

    def ci95(self) -> tuple[float, float] | None:
        """(mean, half-width of the 95 % interval), once there are enough batches."""
        if len(self.means) < MIN_BATCHES:
            return None
        mean = statistics.fmean(self.means)
        n = len(self.means)
        return mean, t_quantile(0.975, n - 1) * statistics.stdev(self.means) / math.sqrt(n)


def t_quantile(p: float, df: int) -> float:
    """Student's t quantile, by the Cornish-Fisher expansion about the normal quantile
    (Abramowitz & Stegun 26.7.5); within 1e-3 of the exact value from 9 degrees of freedom."""
    z = statistics.NormalDist().inv_cdf(p)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


class IdleInterrupted(Exception):
    """A signal stopped the idle measurement; no ``idling_power.json`` was written."""


def idle_line(result: dict) -> str:
    """The idle result in one line, saying SIMULATED where the power is."""
    ci = f" ± {result['ci95_pct']:.2f} %" if result["ci95_pct"] is not None else ""
    sim = " (SIMULATED)" if result["simulated"] else ""
    return (
        f"idle power{sim}: {result['avg_idle_power'] / 1e6:.3f} W{ci} over "
        f"{result['duration_s']:.1f} s, {result['samples']} samples"
    )


def measure_idle_with(args, source: str, out_dir: Path, stop) -> dict:
    """``measure_idle`` with the sensor of the run's settings (``args``), started and closed
    here; ``stop()`` ends it early with ``IdleInterrupted``."""
    from power.discovery import open_sensor
    from power.simulated import sensor_root

    with contextlib.ExitStack() as stack:
        root = stack.enter_context(sensor_root(source, args.sysfs_root, args.sim_profile))
        sensor = open_sensor(source, root, args.rail, args.nvml_index)
        stack.callback(sensor.close)
        return measure_idle(
            sensor,
            out_dir,
            args.idle_duration,
            args.idle_precision,
            args.idle_min,
            args.drift_warn,
            args.hz,
            stop=stop,
        )


def measure_idle(
    sensor: Sensor,
    out_dir: Path,
    duration_s: float,
    until_precision_pct: float | None = None,
    min_s: float = 10.0,
    drift_warn_pct: float = 2.0,
    hz: float | None = None,
    clock: Clock | None = None,
    stop=lambda: False,
) -> dict:
    """Log idle power into ``out_dir`` and write ``idling_power.json``; return its content.

    Fixed mode logs ``duration_s``. Adaptive mode (``until_precision_pct``) stops once the 95 %
    interval's half-width is within that percentage of the mean, after ``min_s`` and at the
    latest after ``duration_s``.
    """
    clock = clock or Clock.from_env()
    batches = BatchMeans()
    powers: list[float] = []
    start = time.monotonic()

    precise = False  # checked once per written batch, not on the sampling schedule

    def on_samples(stamps: np.ndarray, board: np.ndarray) -> None:
        nonlocal precise
        values = board.tolist()
        for stamp, value in zip(stamps.tolist(), values, strict=True):
            batches.add(stamp, value)
        powers.extend(values)
        if until_precision_pct is not None and time.monotonic() - start >= min_s:
            ci = batches.ci95()
            precise = ci is not None and ci[1] <= until_precision_pct / 100.0 * abs(ci[0])

    summary = log_power(
        sensor,
        out_dir,
        IDLE_PREFIX,
        hz,
        clock,
        should_stop=lambda: precise or stop(),
        duration_s=duration_s,
        on_samples=on_samples,
    )
    if stop():
        raise IdleInterrupted(getattr(stop, "signal", None) or "stopped")
    if len(powers) < 2:
        raise RuntimeError(
            f"idle measurement got {len(powers)} samples (errors: {summary['errors']}); "
            "check the sensor with: python measure_power.py --list"
        )
    result = {
        "timestamp": clock.stamp(),
        **_statistics(powers, batches, drift_warn_pct),
        "board_input_rails": sensor.describe()["board_input_rails"],
        "board_input_rule": sensor.describe()["board_input_rule"],
        "duration_s": (summary["last_sample_mono_ns"] - summary["first_sample_mono_ns"]) / 1e9,
        "until_precision_pct": until_precision_pct,
        "rails_mean_uW": _rail_means(out_dir / power_files(IDLE_PREFIX)["rails_csv"]),
        "simulated": sensor.simulated,
        "power_log_summary": power_files(IDLE_PREFIX)["summary"],
    }
    write_json(out_dir / IDLE_JSON, result)
    return result


def _statistics(powers: list[float], batches: BatchMeans, drift_warn_pct: float) -> dict:
    """Mean, spread, 95 % interval and drift between the window's halves (µW, %)."""
    mean = statistics.fmean(powers)
    half = len(powers) // 2
    first, second = statistics.fmean(powers[:half]), statistics.fmean(powers[half:])
    drift_pct = 100.0 * (second - first) / mean if mean else 0.0
    ci = batches.ci95()
    n = len(batches.means)
    return {
        "avg_idle_power": mean,
        "unit": "microwatt",
        "samples": len(powers),
        "std_uW": statistics.stdev(powers),
        "ci95_uW": ci[1] if ci else None,
        "ci95_pct": 100.0 * ci[1] / mean if ci and mean else None,
        "ci_method": f"batch means, {BATCH_S} s batches, {n} batches, Student t ({n - 1} df)",
        "drift_pct": drift_pct,
        "drift_warning": abs(drift_pct) > drift_warn_pct,
    }


def _rail_means(rails_csv: Path) -> dict[str, float]:
    """Mean power of every rail (``*_uW`` columns) in a rails CSV."""
    import pandas as pd

    frame = pd.read_csv(rails_csv)
    return {
        col[: -len("_uW")]: float(frame[col].mean())
        for col in frame.columns
        if col.endswith("_uW") and col != "board_uW"
    }
