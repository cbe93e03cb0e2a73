"""Find the power sensor of this machine and decide which rails make up board-input power.

Board-input rule per layout (``jetson-sysfs.md`` §0 and §1.2; module rails exclude the carrier):

==========================  ==============================================================
layout                      board input
==========================  ==============================================================
Orin Nano/NX, Xavier NX,    ``VDD_IN``
TX1, TX2, TX2 NX
Nano (JetPack 4)            ``POM_5V_IN`` (never plus ``POM_5V_GPU``/``POM_5V_CPU``)
Thor carrier (ina238)       ``VIN`` (never plus the module rails)
AGX Orin                    ``VDD_GPU_SOC + VDD_CPU_CV + VIN_SYS_5V0`` (never plus
                            ``VDDQ_VDD2_1V8AO``, which ``VIN_SYS_5V0`` feeds)
AGX Xavier                  sum of ``GPU CPU SOC CV VDDRQ SYS5V`` (no parent rail)
==========================  ==============================================================

``--rail NAME`` (or ``A+B``) overrides the rule.
"""

from __future__ import annotations

import os
from pathlib import Path

from power import hwmon, iio
from power.sensor import Opener, Rail, Sensor, SensorNotFound, open_readonly
from power.sensor_model import INA3221_DRIVERS, ina3221_period_s
from power.sysfs_sensor import BoardInput, SysfsSensor

SYSFS_ROOT_ENV = "EVB_SYSFS_ROOT"
SIMULATED_MARKER = "EDGE_VISION_BENCHMARK_SIMULATED"
SOURCES = ("auto", "ina3221", "nvml", "sim")

AGX_ORIN = ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"]
AGX_XAVIER = ["GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"]


def sysfs_root(explicit: str | None = None) -> Path:
    """The stand-in for ``/``: ``--sysfs-root``, else ``$EVB_SYSFS_ROOT``, else ``/``."""
    return Path(explicit or os.environ.get(SYSFS_ROOT_ENV) or "/")


def find_rails(root: Path, opener: Opener = open_readonly) -> tuple[list[Rail], list[str]]:
    """Every usable rail under ``root`` and the list of skipped channels with reasons."""
    rails: list[Rail] = []
    skipped: list[str] = []
    for hwmon_dir, driver, chip in hwmon.find_chips(root):
        rails += hwmon.rails_of_chip(hwmon_dir, driver, chip, opener, skipped)
    for iio_dir, chip in iio.find_devices(root):
        rails += iio.rails_of_device(iio_dir, chip, opener, skipped)
    seen: dict[str, int] = {}
    for rail in rails:  # the same label on two chips: qualify both by chip
        seen[rail.name] = seen.get(rail.name, 0) + 1
    for rail in rails:
        if seen[rail.name] > 1:
            rail.name = f"{rail.chip}:{rail.name}"
    return rails, skipped


def board_input(rails: list[Rail], override: str | None = None) -> BoardInput:
    """The rails whose sum is board-input power, by the documented rule or ``override``."""
    names = [rail.name for rail in rails]
    if override:
        wanted = [part.strip() for part in override.split("+") if part.strip()]
        missing = [name for name in wanted if name not in names]
        if missing:
            raise SensorNotFound(
                f"--rail {override}: no rail named {', '.join(missing)}; rails found: "
                f"{', '.join(names) or 'none'}"
            )
        return BoardInput(wanted, f"--rail {override}")
    by_driver = {rail.driver for rail in rails}
    if "ina238" in by_driver:
        vin = [rail.name for rail in rails if rail.driver == "ina238"]
        return BoardInput(vin[:1], "Thor: carrier input (ina238 VIN) only")
    if "VDD_IN" in names:
        return BoardInput(["VDD_IN"], "VDD_IN: module input (Orin Nano/NX, Xavier NX, TX1/TX2)")
    if "POM_5V_IN" in names:
        return BoardInput(["POM_5V_IN"], "POM_5V_IN: module input (Nano)")
    if all(name in names for name in AGX_ORIN):
        return BoardInput(
            list(AGX_ORIN), "AGX Orin: VDD_GPU_SOC + VDD_CPU_CV + VIN_SYS_5V0 (no input rail)"
        )
    if all(name in names for name in AGX_XAVIER):
        return BoardInput(list(AGX_XAVIER), "AGX Xavier: sum of all six rails (no parent rail)")
    raise SensorNotFound(
        f"no board-input rule for rails {', '.join(names)}; pass --rail NAME (or A+B) to choose"
    )


def sysfs_sensor(
    root: Path, rail: str | None = None, opener: Opener = open_readonly
) -> SysfsSensor:
    """The INA3221/INA238/legacy sensor under ``root``, or SensorNotFound saying what to do."""
    rails, skipped = find_rails(root, opener)
    if not rails:
        raise SensorNotFound(
            f"no INA3221/INA238 rail under {root / 'sys/bus/i2c/drivers'} or "
            f"{root / 'sys/class/hwmon'} (skipped: {'; '.join(skipped) or 'none'}); on a Jetson "
            "check that /sys is visible in the container, elsewhere use --power-source sim or nvml"
        )
    board = board_input(rails, rail)
    simulated = (root / SIMULATED_MARKER).exists()
    return SysfsSensor(
        rails,
        board,
        refresh_interval(rails, board.rails),
        simulated=simulated,
        opener=opener,
        skipped=skipped,
    )


def refresh_interval(rails: list[Rail], board: list[str]) -> float:
    """Seconds between new values of the board-input rails' chips (``update_interval``, ms,
    rounded by the driver: an INA3221's "7" is 3 × 2.2 ms = 6.6 ms, §3, recovered through its
    conversion times); 20 ms where no chip says."""
    values = []
    for rail in (r for r in rails if r.name in board and r.config.get("update_interval")):
        ms = rail.config["update_interval"]
        exact = None
        if rail.driver in INA3221_DRIVERS:
            exact = ina3221_period_s(ms, rail.config.get("channels_enabled") or 3)
        values.append(exact or ms / 1000.0)
    return min(values) if values else 0.02


def detect_source(root: Path | None = None) -> str:
    """What ``auto`` means here: ``ina3221`` where rails are found, else ``nvml``, else ``sim``."""
    rails, _ = find_rails(root or sysfs_root())
    if rails:
        return "ina3221"
    from power.nvml import nvml_available

    return "nvml" if nvml_available() else "sim"


def open_sensor(
    source: str = "auto",
    root: Path | None = None,
    rail: str | None = None,
    nvml_index: int = 0,
) -> Sensor:
    """Open the sensor for ``source`` (auto: INA3221 where found, else NVML).

    ``sim`` reads a simulated tree: point ``root`` (``--sysfs-root``) at the directory a
    running simulator writes (see ``power.simulated``).
    """
    root = root or sysfs_root()
    if source in ("ina3221", "sim"):
        return sysfs_sensor(root, rail)
    if source == "nvml":
        from power.nvml import NvmlSensor

        return NvmlSensor(nvml_index)
    try:
        return sysfs_sensor(root, rail)
    except SensorNotFound as sysfs_error:
        try:
            from power.nvml import NvmlSensor

            return NvmlSensor(nvml_index)
        except SensorNotFound as nvml_error:
            raise SensorNotFound(f"{sysfs_error}. NVML: {nvml_error}") from None
