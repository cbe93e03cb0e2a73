"""INA3221 and INA238 rails through the hwmon driver (JetPack 5, 6 and 7).

Chips are found by driver and bus-address (``sys/bus/i2c/drivers/<driver>/<bus>-<addr>/hwmon/
hwmon*``) or by the hwmon ``name`` file, never by a fixed hwmon index, which moves between boots.
Files: ``in{N}_label``, ``in{N}_input`` (mV), ``curr{N}_input`` (mA); ina238 adds
``power1_input`` (µW). See ``jetson-sysfs.md`` §1 and §6.
"""

from __future__ import annotations

import os
from pathlib import Path

from power.sensor import Opener, Rail, read_int

SKIPPED_LABELS = {"NC", "sum of shunt voltages"}
DRIVERS = ("ina3221", "ina238")


def read_text(path: Path) -> str | None:
    """A small text file's stripped content, or None where it cannot be read."""
    try:
        return path.read_bytes().replace(b"\x00", b"").decode(errors="replace").strip()
    except OSError:
        return None


def _chip_of(hwmon_dir: Path) -> str:
    """The I2C bus-address (``1-0040``) that a hwmon directory belongs to."""
    device = hwmon_dir / "device"
    if device.exists():
        return Path(os.path.realpath(device)).name
    return hwmon_dir.parent.parent.name


def find_chips(root: Path) -> list[tuple[Path, str, str]]:
    """(hwmon dir, driver, bus-address) of every INA3221/INA238 hwmon device under ``root``."""
    found: dict[str, tuple[Path, str, str]] = {}
    for driver in DRIVERS:
        for dev in sorted((root / "sys/bus/i2c/drivers" / driver).glob("*-*")):
            for hwmon in sorted(dev.glob("hwmon/hwmon*")):
                found.setdefault(os.path.realpath(hwmon), (hwmon, driver, dev.name))
    for hwmon in sorted((root / "sys/class/hwmon").glob("hwmon*")):
        name = read_text(hwmon / "name")
        if name in DRIVERS:
            found.setdefault(os.path.realpath(hwmon), (hwmon, name, _chip_of(hwmon)))
    return sorted(found.values(), key=lambda item: (item[2], item[1]))


def probe(paths: list[str], opener: Opener) -> str | None:
    """None when every file reads as an integer, else why not (e.g. ``ENODATA``)."""
    for path in paths:
        try:
            file = opener(path)
        except OSError as exc:
            return f"{os.path.basename(path)}: {exc.strerror or exc}"
        try:
            read_int(file)
        except OSError as exc:
            return f"{os.path.basename(path)}: {exc.strerror or exc}"
        except ValueError:
            return f"{os.path.basename(path)}: not an integer"
        finally:
            file.close()
    return None


def _chip_config(hwmon: Path) -> dict:
    config: dict = {"hwmon_dir": str(hwmon)}
    for key in ("samples", "update_interval"):
        value = read_text(hwmon / key)
        config[key] = int(value) if value and value.lstrip("-").isdigit() else None
    enabled = [read_text(hwmon / f"in{ch}_enable") for ch in (1, 2, 3)]  # INA3221 only
    known = any(v is not None for v in enabled)  # a channel converts unless it reads "0"
    config["channels_enabled"] = 3 - enabled.count("0") if known else None
    return config


def rails_of_chip(
    hwmon: Path, driver: str, chip: str, opener: Opener, skipped: list[str]
) -> list[Rail]:
    """The usable rails of one chip; what is skipped, and why, is appended to ``skipped``."""
    chip_config = _chip_config(hwmon)
    rails = []
    if driver == "ina238":
        label = read_text(hwmon / "in1_label") or "VIN"
        files = [str(hwmon / f) for f in ("in1_input", "curr1_input", "power1_input")]
        why = probe(files, opener)
        if why:
            skipped.append(f"{chip} {label}: {why}")
            return []
        return [Rail(label, chip, driver, 1, *files, config=chip_config)]
    for ch in (1, 2, 3):
        label = read_text(hwmon / f"in{ch}_label")
        vfile, cfile = str(hwmon / f"in{ch}_input"), str(hwmon / f"curr{ch}_input")
        if label in SKIPPED_LABELS:
            skipped.append(f"{chip} channel {ch}: label {label!r}")
            continue
        if not os.path.exists(vfile) and label is None:
            continue
        why = probe([vfile, cfile], opener)
        if why:
            skipped.append(f"{chip} channel {ch} ({label or 'no label'}): {why}")
            continue
        shunt = read_text(hwmon / f"shunt{ch}_resistor")
        config = dict(chip_config, shunt_resistor_uohm=int(shunt) if shunt else None)
        rails.append(Rail(label or f"{chip}_ch{ch}", chip, driver, ch, vfile, cfile, config=config))
    return rails
