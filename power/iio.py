"""INA3221 rails through NVIDIA's legacy IIO driver ``ina3221x`` (JetPack 4 and older).

Files per channel N (numbered from 0): ``rail_name_N``, ``in_voltageN_input`` (mV),
``in_currentN_input`` (mA), ``in_powerN_input`` (mW). The device folder is ``iio:deviceK`` or,
on L4T R28, ``iio_device``. See ``jetson-sysfs.md`` §1 and §6.C.
"""

from __future__ import annotations

from pathlib import Path

from power.hwmon import SKIPPED_LABELS, probe, read_text
from power.sensor import Opener, Rail


def find_devices(root: Path) -> list[tuple[Path, str]]:
    """(IIO device dir, bus-address) of every ``ina3221x`` chip under ``root``."""
    found, seen = [], set()
    for dev in sorted((root / "sys/bus/i2c/drivers/ina3221x").glob("*-*")):
        for iio in sorted([*dev.glob("iio:device*"), *dev.glob("iio_device")]):
            real = iio.resolve()  # an ``iio_device`` link to ``iio:deviceK`` is the same chip
            if real not in seen:
                seen.add(real)
                found.append((iio, dev.name))
    return found


def rails_of_device(iio: Path, chip: str, opener: Opener, skipped: list[str]) -> list[Rail]:
    """The usable rails of one legacy chip; skipped channels are appended to ``skipped``."""
    rails = []
    for ch in (0, 1, 2):
        label = read_text(iio / f"rail_name_{ch}")
        if label is None:
            continue
        if label in SKIPPED_LABELS:
            skipped.append(f"{chip} channel {ch}: label {label!r}")
            continue
        vfile, cfile = str(iio / f"in_voltage{ch}_input"), str(iio / f"in_current{ch}_input")
        why = probe([vfile, cfile], opener)
        if why:
            skipped.append(f"{chip} channel {ch} ({label}): {why}")
            continue
        config = {"iio_dir": str(iio), "power_file_mW": str(iio / f"in_power{ch}_input")}
        rails.append(Rail(label, chip, "ina3221x", ch, vfile, cfile, config=config))
    return rails
