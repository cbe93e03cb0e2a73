"""Board power of a discrete NVIDIA GPU through NVML (nvidia-ml-py).

``nvmlDeviceGetPowerUsage`` (mW) changes about 20 times a second; the energy counter
``nvmlDeviceGetTotalEnergyConsumption`` (mJ) about 10 times a second and costs ~4 ms a call
(``method.md``), so it is read once every ``ENERGY_EVERY`` samples and left empty otherwise.
NVML power is not supported on Jetson.
"""

from __future__ import annotations

from power.sensor import Sensor, SensorNotFound

REFRESH_S = 0.05
ENERGY_EVERY = 10


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


class NvmlSensor(Sensor):
    """One GPU's power (µW) and, where the GPU has one, its energy counter (mJ)."""

    kind = "nvml"
    board_columns = (0,)
    key_columns = (0,)  # the energy column is read only every ENERGY_EVERY samples

    def __init__(self, index: int = 0) -> None:
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
            nv.nvmlDeviceGetPowerUsage(self._handle)
        except nv.NVMLError as exc:
            nv.nvmlShutdown()
            raise SensorNotFound(f"NVML GPU {index} reports no power ({exc})") from None
        try:
            nv.nvmlDeviceGetTotalEnergyConsumption(self._handle)
            self.has_energy = True
        except nv.NVMLError:
            self.has_energy = False
        self.index = index
        self._reads = 0
        self._last_energy = float("nan")

    @property
    def columns(self) -> list[str]:
        return [f"GPU{self.index}_uW", f"GPU{self.index}_energy_mJ"]

    def read(self) -> list[float]:
        nv = self._nv
        try:
            power_uw = nv.nvmlDeviceGetPowerUsage(self._handle) * 1000.0
            energy = float("nan")
            if self.has_energy and self._reads % ENERGY_EVERY == 0:
                energy = float(nv.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except nv.NVMLError as exc:
            raise OSError(0, f"NVML: {exc}") from None
        self._reads += 1
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
            "energy_counter": self.has_energy,
            "energy_read_every_n_samples": ENERGY_EVERY,
            "refresh_interval_s": REFRESH_S,
        }

    def close(self) -> None:
        try:
            self._nv.nvmlShutdown()
        except self._nv.NVMLError:
            pass
