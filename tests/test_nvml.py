"""The NVML sensor against the real nvidia-ml-py (``pynvml``) with only the C library replaced.

``FakeLibNvml`` stands for ``libnvidia-ml.so.1``: pynvml's own Python code runs (argument
marshalling, ``c_nvmlFieldValue_t``, ``_nvmlCheckReturn`` and its ``NVMLError`` subclasses); the
functions below receive the same ctypes arguments the C functions get and answer as NVML
documents them (``nvml.h``, nvidia-ml-py 13.615 ``pynvml.py``, checked 2026-11-27):

- every call returns an ``nvmlReturn_t``; 0 is success, 3 NOT_SUPPORTED, 9 DRIVER_NOT_LOADED;
- ``nvmlDeviceGetFieldValues(device, count, values)`` returns SUCCESS even where a field is not
  available: each ``nvmlFieldValue_t`` carries its own ``nvmlReturn``; ``NVML_FI_DEV_POWER_INSTANT``
  (186) is instantaneous power in mW as ``NVML_VALUE_TYPE_UNSIGNED_INT``, NOT_SUPPORTED before
  Hopper-era drivers;
- ``nvmlDeviceGetPowerUsage`` (mW, ``unsigned int``) is the averaged power (1 s window on
  recent GPUs), so here it lags the instant value;
- ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since driver load, ``unsigned long long``) is
  slow (~4 ms on an H100): the fake sleeps, releasing the GIL as the ctypes call does.

On an NVIDIA GPU ``benchmarks/gpu_check.sh`` runs the sensor for real.
"""

from __future__ import annotations

import ctypes
import threading
import time

import pytest

pynvml = pytest.importorskip("pynvml")

from power.logger import log_power  # noqa: E402
from power.sensor import SensorNotFound  # noqa: E402

SUCCESS, NOT_SUPPORTED, DRIVER_NOT_LOADED = 0, 3, 9


def _target(pointer_arg):
    """The ctypes object a ``byref(...)`` argument points at."""
    return pointer_arg._obj


class FakeLibNvml:
    """The C functions of libnvidia-ml that the sensor reaches through pynvml."""

    def __init__(self, instant=True, energy=True, driver=True, energy_delay_s=0.02):
        self.instant, self.energy, self.driver = instant, energy, driver
        self.energy_delay_s = energy_delay_s
        self.power_calls = self.field_calls = 0
        self.energy_threads: set[str] = set()
        self.power_threads: set[str] = set()
        self.mj = 5_000_000

    def instant_mw(self) -> int:
        return 100_000 + 1_000 * (self.field_calls // 5)

    def nvmlInitWithFlags(self, flags):
        return SUCCESS if self.driver else DRIVER_NOT_LOADED

    def nvmlShutdown(self):
        return SUCCESS

    def nvmlErrorString(self, result):
        return {NOT_SUPPORTED: b"Not Supported", DRIVER_NOT_LOADED: b"Driver Not Loaded"}.get(
            result, b"Unknown Error"
        )

    def nvmlDeviceGetHandleByIndex_v2(self, index, device):
        return SUCCESS if index.value == 0 else 2  # INVALID_ARGUMENT

    def nvmlDeviceGetName(self, device, name, length):
        name.value = b"NVIDIA H100 80GB HBM3"
        return SUCCESS

    def nvmlDeviceGetPowerUsage(self, device, milliwatts):
        self.power_calls += 1
        self.power_threads.add(threading.current_thread().name)
        _target(milliwatts).value = 90_000 + 1_000 * (self.power_calls // 20)  # lags, averaged
        return SUCCESS

    def nvmlDeviceGetFieldValues(self, device, count, values):
        fields = ctypes.cast(values._obj, ctypes.POINTER(pynvml.c_nvmlFieldValue_t))
        for i in range(count.value):
            field = fields[i]
            if field.fieldId == pynvml.NVML_FI_DEV_POWER_INSTANT and self.instant:
                self.field_calls += 1
                self.power_threads.add(threading.current_thread().name)
                field.nvmlReturn = SUCCESS
                field.valueType = pynvml.NVML_VALUE_TYPE_UNSIGNED_INT
                field.value.uiVal = self.instant_mw()
                field.timestamp = time.time_ns() // 1000
            else:
                field.nvmlReturn = NOT_SUPPORTED
        return SUCCESS

    def nvmlDeviceGetTotalEnergyConsumption(self, device, millijoules):
        if not self.energy:
            return NOT_SUPPORTED
        self.energy_threads.add(threading.current_thread().name)
        time.sleep(self.energy_delay_s)
        self.mj += 100
        _target(millijoules).value = self.mj
        return SUCCESS


@pytest.fixture
def fake_lib(monkeypatch):
    def install(**kw) -> FakeLibNvml:
        lib = FakeLibNvml(**kw)
        monkeypatch.setattr(pynvml, "nvmlLib", lib)
        monkeypatch.setattr(pynvml, "_nvmlGetFunctionPointer_cache", {})
        return lib

    return install


def test_instant_field_sampled_and_energy_read_off_the_schedule(fake_lib, tmp_path):
    from power.nvml import INSTANT, NvmlSensor

    lib = fake_lib()
    sensor = NvmlSensor(0)
    assert sensor.power_reading == INSTANT and sensor.has_energy
    assert sensor.describe()["gpu_name"] == "NVIDIA H100 80GB HBM3"
    lib.energy_threads.clear()  # the constructor's probe for the counter ran here
    try:
        summary = log_power(sensor, tmp_path, "gpu", hz=200, duration_s=0.6)
    finally:
        sensor.close()
    assert summary["sensor"]["power_reading"] == INSTANT
    assert summary["samples"] >= 60
    # the instant value changes every 5 field reads; the averaged function was never sampled
    assert abs(summary["distinct_updates"] - lib.field_calls / 5) <= 2
    assert lib.power_calls == 0
    # the slow energy counter ran in its own thread only, never in the sampling loop's
    assert lib.energy_threads == {"nvml-energy"}
    assert lib.power_threads == {"MainThread"}
    import pandas as pd

    rails = pd.read_csv(tmp_path / "gpu_power_rails.csv")
    assert (rails["board_uW"] == rails["GPU0_uW"]).all()
    assert rails["GPU0_uW"].min() >= 100e6
    energy = rails["GPU0_energy_mJ"].dropna()
    # each fresh counter value is carried by exactly one sample, in increasing order
    assert len(energy) >= 2 and energy.is_unique and energy.is_monotonic_increasing
    assert summary["read_us"]["p99"] is not None


def test_falls_back_to_averaged_power_where_the_field_is_not_supported(fake_lib, tmp_path):
    from power.nvml import AVERAGED, NvmlSensor

    lib = fake_lib(instant=False)
    sensor = NvmlSensor(0)
    try:
        summary = log_power(sensor, tmp_path, "gpu", hz=100, duration_s=0.3)
    finally:
        sensor.close()
    assert sensor.power_reading == AVERAGED
    assert summary["sensor"]["power_reading"] == AVERAGED
    assert lib.field_calls == 0 and lib.power_calls >= summary["samples"]
    assert summary["board_power_uW"]["max"] < 100e6  # the averaged function's values


def test_no_driver_is_sensor_not_found(fake_lib):
    fake_lib(driver=False)
    from power.nvml import NvmlSensor, nvml_available

    with pytest.raises(SensorNotFound, match=r"NVML did not initialise .*Driver Not Loaded"):
        NvmlSensor(0)
    assert nvml_available() is False


def test_gpu_without_energy_counter(fake_lib, tmp_path):
    fake_lib(energy=False)
    from power.nvml import NvmlSensor

    sensor = NvmlSensor(0)
    try:
        summary = log_power(sensor, tmp_path, "gpu", hz=100, duration_s=0.2)
    finally:
        sensor.close()
    assert sensor.has_energy is False
    assert summary["samples"] > 10 and summary["errors"] == {}
    import pandas as pd

    assert pd.read_csv(tmp_path / "gpu_power_rails.csv")["GPU0_energy_mJ"].isna().all()


def test_energy_per_inference_counts_the_wall_time_and_the_counter():
    """100 W for 1 s over 100 inferences of 9 ms event latency (1 ms host gap each): 1 J per
    inference by wall time and by the counter; the event-latency figure stays at 0.9 J."""
    import numpy as np

    from analysis.figures import timing_figures
    from analysis.load import PowerLog

    t = np.arange(0, 3_000_000_000, 25_000_000, dtype=np.int64)  # 40 Hz for 3 s
    energy = np.where(t % 100_000_000 == 0, 7_000.0 + t / 1e4, np.nan)  # 100 W in mJ, 10 Hz
    power = PowerLog(t, np.full(len(t), 100e6), {}, energy, 0)
    start = 1_012_000_000  # between two counter readings: interpolated
    out = timing_figures(power, (start, start + 1_000_000_000), [0.009] * 100, idle_uw=40e6)
    assert out["energy_per_inference_mJ"] == pytest.approx(1000.0)
    assert out["counter_energy_per_inference_mJ"] == pytest.approx(1000.0)
    assert out["energy_per_inference_event_latency_mJ"] == pytest.approx(900.0)
    assert out["energy_per_inference_excl_idle_mJ"] == pytest.approx(600.0)
    late = timing_figures(power, (2_950_000_000, 2_990_000_000), [0.009] * 4, None)
    assert "counter_energy_per_inference_mJ" not in late  # no counter reading after the pass
