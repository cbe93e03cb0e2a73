"""The NVML sensor through a double of the ``pynvml`` functions only (the NVML boundary); the
sampling loop above it runs for real. On an NVIDIA GPU, ``benchmarks/gpu_check.sh`` runs it for
real."""

from __future__ import annotations

import sys
import types

import pytest

from power.logger import log_power
from power.sensor import SensorNotFound


class FakeNvml(types.ModuleType):
    """pynvml's functions as the sensor calls them; power steps every 5 reads (20 Hz-ish)."""

    class NVMLError(Exception):
        pass

    def __init__(self, energy: bool = True, fail_init: bool = False) -> None:
        super().__init__("pynvml")
        self.energy, self.fail_init, self.reads, self.energy_calls = energy, fail_init, 0, 0

    def nvmlInit(self):
        if self.fail_init:
            raise self.NVMLError("Driver Not Loaded")

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetHandleByIndex(self, index):
        return ("gpu", index)

    def nvmlDeviceGetName(self, handle):
        return b"Fake H200"

    def nvmlDeviceGetPowerUsage(self, handle):
        self.reads += 1
        return 100_000 + 1_000 * (self.reads // 5)  # mW

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.energy:
            raise self.NVMLError("Not Supported")
        self.energy_calls += 1
        return 5_000_000 + self.energy_calls


@pytest.fixture
def nvml(monkeypatch):
    fake = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


def test_nvml_power_energy_and_distinct_updates(nvml, tmp_path):
    from power.nvml import ENERGY_EVERY, NvmlSensor

    sensor = NvmlSensor(0)
    assert sensor.describe()["gpu_name"] == "Fake H200" and sensor.has_energy
    summary = log_power(sensor, tmp_path, "gpu", hz=200, duration_s=0.5)
    assert summary["samples"] >= 80
    # the power changes every 5 reads (the first read is discovery's); energy every 10th sample
    assert abs(summary["distinct_updates"] - (summary["samples"] + 1) / 5) <= 2
    assert nvml.energy_calls == pytest.approx(summary["samples"] / ENERGY_EVERY, abs=2)
    assert summary["board_power_uW"]["min"] >= 100e6
    assert not (tmp_path / "gpu_power_log.log").exists()  # NVML gives no voltage/current
    import pandas as pd

    rails = pd.read_csv(tmp_path / "gpu_power_rails.csv")
    assert (rails["board_uW"] == rails["GPU0_uW"]).all()
    assert rails["GPU0_energy_mJ"].notna().sum() == nvml.energy_calls - 1


def test_no_driver_is_sensor_not_found(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(fail_init=True))
    from power.nvml import NvmlSensor, nvml_available

    with pytest.raises(SensorNotFound, match="NVML did not initialise"):
        NvmlSensor(0)
    assert nvml_available() is False


def test_gpu_without_energy_counter(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(energy=False))
    from power.nvml import NvmlSensor

    sensor = NvmlSensor(0)
    assert sensor.has_energy is False
    summary = log_power(sensor, tmp_path, "gpu", hz=100, duration_s=0.2)
    assert summary["samples"] > 10 and summary["errors"] == {}
