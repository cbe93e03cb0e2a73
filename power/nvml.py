"""Board power of a discrete NVIDIA GPU through NVML (nvidia-ml-py); the only module that calls
NVML.

Power: the instantaneous field ``NVML_FI_DEV_POWER_INSTANT`` (mW, read with
``nvmlDeviceGetFieldValues``) where the driver offers it; else ``nvmlDeviceGetPowerUsage``,
which on recent GPUs is a one-second average (on an H100 it took 630 ms to reach 90 % of a load
step, the instant field 119 ms). ``describe()`` records which one is used.

Energy: the counter ``nvmlDeviceGetTotalEnergyConsumption`` (mJ) costs ~4 ms of CPU a call, so
it is never read on the sampling schedule: a thread of its own reads it every ``ENERGY_S`` and the
next sample carries the fresh value (empty otherwise), so its stamp is at most one sample period
late. NVML is thread-safe; ctypes releases the GIL during the call. NVML power is not supported
on Jetson.
"""

from __future__ import annotations

import threading

from power.sensor import Sensor, SensorNotFound

REFRESH_S = 0.05
ENERGY_S = 0.1  # the counter changes about 10 times a second
FIELD_POWER_INSTANT = 186  # nvml.h NVML_FI_DEV_POWER_INSTANT (older nvidia-ml-py lack the name)
INSTANT, AVERAGED = (
    "instant field (NVML_FI_DEV_POWER_INSTANT)",
    "averaged (nvmlDeviceGetPowerUsage)",
)


def _pynvml():
    try:
        import pynvml
    except ImportError as exc:  # pragma: no cover - nvidia-ml-py is a dependency
        raise SensorNotFound("nvidia-ml-py is not installed (pip install nvidia-ml-py)") from exc
    return pynvml


def nvml_available() -> bool:
    """True where NVML initialises and reports power for GPU 0."""
    try:
        sensor = NvmlSensor(0)
    except SensorNotFound:
        return False
    sensor.close()
    return True


def _field_number(nv, field) -> float:
    """A ``c_nvmlFieldValue_t``'s value, read from the union member its ``valueType`` names."""
    member = {
        nv.NVML_VALUE_TYPE_DOUBLE: "dVal",
        nv.NVML_VALUE_TYPE_UNSIGNED_INT: "uiVal",
        nv.NVML_VALUE_TYPE_UNSIGNED_LONG: "ulVal",
        nv.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: "ullVal",
        nv.NVML_VALUE_TYPE_SIGNED_LONG_LONG: "sllVal",
        nv.NVML_VALUE_TYPE_SIGNED_INT: "siVal",
        getattr(nv, "NVML_VALUE_TYPE_UNSIGNED_SHORT", 6): "usVal",
    }.get(field.valueType)
    if member is None:
        raise ValueError(f"NVML field {field.fieldId}: unknown value type {field.valueType}")
    return float(getattr(field.value, member))


class _EnergyReader(threading.Thread):
    """Reads the energy counter every ``ENERGY_S`` off the sampling schedule."""

    def __init__(self, nv, handle) -> None:
        super().__init__(name="nvml-energy", daemon=True)
        self.nv, self.handle = nv, handle
        self.stop = threading.Event()
        self.fresh: float | None = None  # a value no sample has carried yet
        self.errors = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.fresh = float(self.nv.nvmlDeviceGetTotalEnergyConsumption(self.handle))
            except self.nv.NVMLError:
                self.errors += 1
            self.stop.wait(ENERGY_S)

    def take(self) -> float:
        value, self.fresh = self.fresh, None
        return float("nan") if value is None else value


class NvmlSensor(Sensor):
    """One GPU's power (µW) and, where the GPU has one, its energy counter (mJ).

    ``averaged=True`` reads the averaged power even where the instant field exists (to compare).
    """

    kind = "nvml"
    board_columns = (0,)
    key_columns = (0,)  # the energy column is filled only when the counter thread read it

    def __init__(self, index: int = 0, averaged: bool = False) -> None:
        nv = self._nv = _pynvml()
        try:
            nv.nvmlInit()
        except nv.NVMLError as exc:
            raise SensorNotFound(
                f"NVML did not initialise ({exc}); no NVIDIA driver here"
            ) from None
        try:
            self._handle = nv.nvmlDeviceGetHandleByIndex(index)
            self._name = nv.nvmlDeviceGetName(self._handle)
            self._field = getattr(nv, "NVML_FI_DEV_POWER_INSTANT", FIELD_POWER_INSTANT)
            instant = not averaged and self._instant_works()
            self.power_reading = INSTANT if instant else AVERAGED
            self._read_power_mw()
        except nv.NVMLError as exc:
            nv.nvmlShutdown()
            raise SensorNotFound(f"NVML GPU {index} reports no power ({exc})") from None
        try:
            nv.nvmlDeviceGetTotalEnergyConsumption(self._handle)
            self.has_energy = True
        except nv.NVMLError:
            self.has_energy = False
        self.index = index
        self._energy: _EnergyReader | None = None

    def _instant_works(self) -> bool:
        """The driver fills the instant-power field (the call succeeds but each field carries
        its own ``nvmlReturn``: NOT_SUPPORTED or INVALID_ARGUMENT on older GPUs or drivers)."""
        nv = self._nv
        try:
            field = nv.nvmlDeviceGetFieldValues(self._handle, [self._field])[0]
        except (nv.NVMLError, AttributeError):  # AttributeError: nvidia-ml-py too old
            return False
        return field.nvmlReturn == nv.NVML_SUCCESS

    def _read_power_mw(self) -> float:
        nv = self._nv
        if self.power_reading == AVERAGED:
            return float(nv.nvmlDeviceGetPowerUsage(self._handle))
        field = nv.nvmlDeviceGetFieldValues(self._handle, [self._field])[0]
        if field.nvmlReturn != nv.NVML_SUCCESS:
            raise nv.NVMLError(field.nvmlReturn)
        return _field_number(nv, field)

    def power_w(self) -> float:
        """One power reading in W (no energy counter), for checks outside the logger."""
        return self._read_power_mw() / 1e3

    @property
    def columns(self) -> list[str]:
        return [f"GPU{self.index}_uW", f"GPU{self.index}_energy_mJ"]

    def read(self) -> list[float]:
        if self.has_energy and self._energy is None:
            self._energy = _EnergyReader(self._nv, self._handle)
            self._energy.start()
        try:
            power_uw = self._read_power_mw() * 1000.0
        except self._nv.NVMLError as exc:
            raise OSError(0, f"NVML: {exc}") from None
        energy = self._energy.take() if self._energy is not None else float("nan")
        return [power_uw, energy]

    def refresh_interval_s(self) -> float:
        return REFRESH_S

    def describe(self) -> dict:
        name = self._name.decode() if isinstance(self._name, bytes) else str(self._name)
        return {
            "kind": self.kind,
            "simulated": False,
            "gpu_index": self.index,
            "gpu_name": name,
            "board_input_rails": [f"GPU{self.index}"],
            "board_input_rule": "NVML board power of one discrete GPU",
            "power_reading": self.power_reading,
            "energy_counter": self.has_energy,
            "energy_read": f"own thread every {ENERGY_S} s; next sample carries it"
            if self.has_energy
            else None,
            "energy_read_errors": self._energy.errors if self._energy is not None else 0,
            "refresh_interval_s": REFRESH_S,
        }

    def close(self) -> None:
        if self._energy is not None:
            self._energy.stop.set()
            self._energy.join(1.0)
        try:
            self._nv.nvmlShutdown()
        except self._nv.NVMLError:
            pass
