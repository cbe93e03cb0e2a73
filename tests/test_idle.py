"""Idle statistics: batch-means interval, adaptive stop, drift warning. Sensor double: a
``Sensor`` subclass returning a scripted power (stands for the sysfs boundary)."""

from __future__ import annotations

import random

import pytest

from power.idle import BatchMeans, measure_idle
from power.sensor import Sensor


class ScriptedSensor(Sensor):
    """Board power from a function of the read count, as one rail."""

    board_columns = (2,)
    voltage_current_columns = (0, 1)

    def __init__(self, power) -> None:
        self.power, self.n = power, 0

    @property
    def columns(self):
        return ["X_mV", "X_mA", "X_uW"]

    def read(self):
        self.n += 1
        uw = self.power(self.n)
        return [5000.0, uw / 5000.0, uw]

    def describe(self):
        return {"kind": "scripted", "board_input_rails": ["X"], "board_input_rule": "test"}

    def refresh_interval_s(self):
        return 0.002


def test_batch_means_interval_covers_the_true_mean():
    rng = random.Random(1)
    bm = BatchMeans(batch_s=0.1)
    for i in range(4000):
        bm.add(i * 1_000_000, 5e6 + rng.gauss(0, 1e5))
    mean, half = bm.ci95()
    assert abs(mean - 5e6) < half * 1.5
    assert 0 < half < 2e4


def test_adaptive_idle_stops_early_when_precise(tmp_path):
    rng = random.Random(2)
    sensor = ScriptedSensor(lambda n: 4e6 + rng.gauss(0, 2e4))
    result = measure_idle(sensor, tmp_path, duration_s=30, until_precision_pct=0.5, min_s=6, hz=500)
    assert result["duration_s"] < 8
    assert result["ci95_pct"] <= 0.5
    assert result["avg_idle_power"] == pytest.approx(4e6, rel=0.005)
    assert result["drift_warning"] is False


def test_drift_is_flagged(tmp_path):
    sensor = ScriptedSensor(lambda n: 4e6 + 400 * n)  # climbs steadily
    result = measure_idle(sensor, tmp_path, duration_s=1.5, hz=500)
    assert result["drift_warning"] is True and result["drift_pct"] > 2


def test_no_samples_is_a_clear_error(tmp_path):
    class Broken(ScriptedSensor):
        def read(self):
            raise OSError(5, "Input/output error")

    with pytest.raises(RuntimeError, match=r"measure_power\.py --list"):
        measure_idle(Broken(lambda n: 0), tmp_path, duration_s=0.2, hz=100)


def test_the_interval_uses_student_t_and_covers_the_mean_as_often_as_it_claims():
    from power.idle import MIN_BATCHES, t_quantile

    for df, exact in ((9, 2.262157), (19, 2.093024), (29, 2.045230), (99, 1.984217)):
        assert t_quantile(0.975, df) == pytest.approx(exact, abs=1e-3)
    rng = random.Random(3)
    trials, covered = 4000, 0
    for _ in range(trials):  # the fewest batches an interval is given for
        bm = BatchMeans(batch_s=1e-9)
        bm.means = [rng.gauss(0.0, 1.0) for _ in range(MIN_BATCHES)]
        mean, half = bm.ci95()
        covered += abs(mean) <= half
    assert 0.94 <= covered / trials <= 0.96  # z = 1.96 would cover about 92 %
