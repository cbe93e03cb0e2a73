"""Builders of sysfs-shaped fixture trees, one per layout of ``jetson-sysfs.md`` §6.

Each builder writes regular files and relative symlinks under a root that stands for ``/`` and
returns the board-input power (µW) the layout must yield. Files that on a real board "exist but
fail with ENODATA" are written and listed in ``ENODATA_FILES`` of the tree, for an injectable
opener to fail (regular files cannot fail like sysfs does).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

BUS1 = "devices/platform/bus@0/c240000.i2c/i2c-1"


def write(root: Path, rel: str, content: str | bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)


def link(root: Path, rel: str, target: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


def hwmon_chip(
    root: Path,
    chip: str,
    index: int,
    files: dict[str, str],
    driver: str = "ina3221",
    device_base: str = BUS1,
) -> str:
    """One hwmon chip with the §6.A symlink scheme; returns the hwmon dir relative to root."""
    dev = f"sys/{device_base}/{chip}"
    hw = f"{dev}/hwmon/hwmon{index}"
    write(root, f"{dev}/name", f"{driver}\n")
    write(root, f"{hw}/name", f"{driver}\n")
    for name, content in files.items():
        write(root, f"{hw}/{name}", content)
    link(root, f"sys/bus/i2c/devices/{chip}", f"../../../{device_base}/{chip}")
    link(root, f"sys/bus/i2c/drivers/{driver}/{chip}", f"../../../../{device_base}/{chip}")
    link(root, f"sys/class/hwmon/hwmon{index}", f"../../{device_base}/{chip}/hwmon/hwmon{index}")
    link(root, f"{hw}/device", f"../../../{chip}")
    return hw


def distractor(root: Path, index: int, name: str) -> None:
    write(root, f"sys/devices/platform/{name}/hwmon/hwmon{index}/name", f"{name}\n")
    link(root, f"sys/class/hwmon/hwmon{index}", f"../../devices/platform/{name}/hwmon/hwmon{index}")


def orin_nano_jp6(
    root: Path, index: int = 1, distractors: bool = False, loaded: bool = False
) -> int:
    """§6.A Orin Nano/NX, JetPack 6. Board input VDD_IN = 5160 mV × 888 mA."""
    v1, c1 = ("5040", "5600") if loaded else ("5160", "888")
    files = {
        "in1_label": "VDD_IN\n",
        "in2_label": "VDD_CPU_GPU_CV\n",
        "in3_label": "VDD_SOC\n",
        "in7_label": "sum of shunt voltages\n",
        "in1_input": f"{v1}\n",
        "in2_input": "5152\n",
        "in3_input": "5152\n",
        "curr1_input": f"{c1}\n",
        "curr2_input": "104\n",
        "curr3_input": "280\n",
        "in4_input": "4440\n",
        "in5_input": "520\n",
        "in6_input": "1400\n",
        "in7_input": "6360\n",
        "curr4_input": "1272\n",
        "samples": "1\n",
        "update_interval": "7\n",
        "curr1_crit": "7784\n",
        "curr1_max": "7784\n",
    }
    for ch in (1, 2, 3):
        files[f"in{ch}_enable"] = "1\n"
        files[f"shunt{ch}_resistor"] = "5000\n"
    hwmon_chip(root, "1-0040", index, files)
    if distractors:
        free = [i for i in range(6) if i != index]
        for i, name in zip(free[:3], ("pwmfan", "pwm_tach", "soctherm_oc"), strict=True):
            distractor(root, i, name)
    return int(v1) * int(c1)


def agx_orin(root: Path, jetpack: int, index0: int = 1) -> int:
    """§6.B AGX Orin, two chips, JetPack 5 ("NC" labels) or 6 (hidden labels, ENODATA)."""
    chip0 = {
        "in1_label": "VDD_GPU_SOC\n",
        "in2_label": "VDD_CPU_CV\n",
        "in3_label": "VIN_SYS_5V0\n",
        "in7_label": "sum of shunt voltages\n",
        "in1_input": "19200\n",
        "in2_input": "19200\n",
        "in3_input": "5000\n",
        "curr1_input": "260\n",
        "curr2_input": "180\n",
        "curr3_input": "1100\n",
        "in4_input": "520\n",
        "in5_input": "360\n",
        "in6_input": "2200\n",
        "samples": "1\n",
        "update_interval": "7\n",
    }
    for ch in (1, 2, 3):
        chip0[f"shunt{ch}_resistor"] = "2000\n"
    hwmon_chip(root, "1-0040", index0, chip0)
    chip1 = {
        "in2_label": "VDDQ_VDD2_1V8AO\n",
        "in2_input": "5000\n",
        "curr2_input": "120\n",
        "in1_input": "0\n",
        "in3_input": "0\n",
        "curr1_input": "0\n",
        "curr3_input": "0\n",
    }
    if jetpack == 5:
        chip1.update({"in1_label": "NC\n", "in3_label": "NC\n", "update_interval": "7\n"})
    else:
        chip1.update({"in1_enable": "0\n", "in3_enable": "0\n", "update_interval": "2\n"})
    hwmon_chip(root, "1-0041", 2 if index0 != 2 else 4, chip1)
    return 19200 * 260 + 19200 * 180 + 5000 * 1100


def agx_orin_enodata_files(root: Path) -> set[str]:
    """The JP6 AGX Orin 0x41 files that fail with ENODATA on a real board."""
    base = root / "sys" / BUS1 / "1-0041" / "hwmon"
    hw = next(base.iterdir())
    return {str(hw / f) for f in ("in1_input", "in3_input", "curr1_input", "curr3_input")}


def nano_jp4(root: Path, folder: str = "iio:device0") -> int:
    """§6.C Jetson Nano, legacy ina3221x. Board input POM_5V_IN = 5008 mV × 392 mA."""
    dev = f"sys/{BUS1.replace('i2c-1', 'i2c-6')}/6-0040"
    iio = f"{dev}/{folder}"
    write(root, f"{dev}/name", "ina3221x\n")
    values = [
        ("POM_5V_IN", 5008, 392, 1963),
        ("POM_5V_GPU", 4992, 0, 0),
        ("POM_5V_CPU", 4992, 80, 399),
    ]
    for ch, (label, mv, ma, mw) in enumerate(values):
        write(root, f"{iio}/rail_name_{ch}", f"{label}\n")
        write(root, f"{iio}/in_voltage{ch}_input", f"{mv}\n")
        write(root, f"{iio}/in_current{ch}_input", f"{ma}\n")
        write(root, f"{iio}/in_power{ch}_input", f"{mw}\n")
        write(root, f"{iio}/crit_power_limit_{ch}", "20000 mw\n")
    write(root, f"{iio}/name", "ina3221x\n")
    write(root, f"{iio}/running_mode", "1\n")
    link(
        root,
        "sys/bus/i2c/drivers/ina3221x/6-0040",
        f"../../../../{BUS1.replace('i2c-1', 'i2c-6')}/6-0040",
    )
    return 5008 * 392


def thor(root: Path) -> int:
    """§6.D Thor: module ina3221 plus the carrier's ina238 ``VIN`` (22.9632 W, µW file)."""
    files = {
        "in1_label": "VDD_GPU\n",
        "in2_label": "VDD_CPU_SOC_MSS\n",
        "in3_label": "VIN_SYS_5V0\n",
        "in1_input": "19200\n",
        "in2_input": "19200\n",
        "in3_input": "5000\n",
        "curr1_input": "400\n",
        "curr2_input": "300\n",
        "curr3_input": "900\n",
        "update_interval": "7\n",
    }
    hwmon_chip(root, "1-0040", 1, files)
    hwmon_chip(
        root,
        "2-0044",
        5,
        {"in1_input": "19968\n", "curr1_input": "1150\n", "power1_input": "22963200\n"},
        driver="ina238",
    )
    return 22963200


class FailingFile:
    """Stands for a sysfs attribute whose every read fails with ``code`` (e.g. ENODATA)."""

    def __init__(self, path: str, code: int) -> None:
        self.path, self.code = path, code

    def read(self) -> bytes:
        raise OSError(self.code, os.strerror(self.code))

    def close(self) -> None:
        pass


def failing_opener(fail: set[str], code: int = errno.ENODATA):
    """An opener (the hardware boundary) whose files in ``fail`` fail every read with ``code``."""
    from power.sensor import SysfsFile

    failing = {os.path.realpath(path) for path in fail}

    def opener(path: str):
        return FailingFile(path, code) if os.path.realpath(path) in failing else SysfsFile(path)

    return opener
