"""What this machine is and what state it is in: CPU and GPU frequencies, governors, thermal
zones, device tree, nvpmodel and L4T release (``jetson-sysfs.md`` §4). Everything is read from
files under the sysfs root; what cannot be read (a host file inside a container) is listed under
``unavailable``, never fatal."""

from __future__ import annotations

import re
import time
from pathlib import Path

GPU_DEVFREQ = re.compile(r"(gpu|ga10b|gv11b|gp10b|gb10b)", re.IGNORECASE)


class Reader:
    """Reads small files under a root and remembers which ones it could not read."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.unavailable: list[str] = []

    def text(self, rel: str) -> str | None:
        try:
            raw = (self.root / rel).read_bytes()
        except OSError:
            self.unavailable.append("/" + rel)
            return None
        return raw.replace(b"\x00", b"\n").decode(errors="replace").strip()

    def number(self, rel: str) -> int | None:
        value = self.text(rel)
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None


def _cpus(reader: Reader) -> dict:
    cpus = {}
    for cpu in sorted(
        (reader.root / "sys/devices/system/cpu").glob("cpu[0-9]*"), key=lambda p: int(p.name[3:])
    ):
        rel = f"sys/devices/system/cpu/{cpu.name}"
        online = reader.number(f"{rel}/online") if (cpu / "online").exists() else 1
        freq = f"{rel}/cpufreq"
        if not (cpu / "cpufreq").exists():
            cpus[cpu.name] = {"online": online}
            continue
        cpus[cpu.name] = {
            "online": online,
            "cur_khz": reader.number(f"{freq}/scaling_cur_freq"),
            "min_khz": reader.number(f"{freq}/scaling_min_freq"),
            "max_khz": reader.number(f"{freq}/scaling_max_freq"),
            "governor": reader.text(f"{freq}/scaling_governor"),
        }
    return cpus


def _gpus(reader: Reader) -> dict:
    gpus = {}
    for dev in sorted((reader.root / "sys/class/devfreq").glob("*")):
        if not GPU_DEVFREQ.search(dev.name):
            continue
        rel = f"sys/class/devfreq/{dev.name}"
        gpus[dev.name] = {
            "cur_hz": reader.number(f"{rel}/cur_freq"),
            "min_hz": reader.number(f"{rel}/min_freq"),
            "max_hz": reader.number(f"{rel}/max_freq"),
            "governor": reader.text(f"{rel}/governor"),
        }
    return gpus


def _temperatures(reader: Reader) -> dict:
    temps = {}
    for zone in sorted((reader.root / "sys/class/thermal").glob("thermal_zone*")):
        rel = f"sys/class/thermal/{zone.name}"
        name = reader.text(f"{rel}/type") or zone.name
        milli = reader.number(f"{rel}/temp")
        temps[name] = milli / 1000.0 if milli is not None and milli > -200_000 else None
    return temps


def device_state(root: Path) -> dict:
    """Frequencies and temperatures now (taken at the start and end of each model)."""
    reader = Reader(root)
    return {
        "mono_ns": time.monotonic_ns(),
        "cpus": _cpus(reader),
        "gpus": _gpus(reader),
        "temperatures_c": _temperatures(reader),
    }


def clocks_locked(state: dict) -> bool | None:
    """jtop's rule: min == max for every online CPU and GPU; None where nothing says."""
    freqs = [c for c in state["cpus"].values() if c.get("online") and "min_khz" in c]
    freqs += list(state["gpus"].values())
    pairs = [(f.get("min_khz", f.get("min_hz")), f.get("max_khz", f.get("max_hz"))) for f in freqs]
    pairs = [(lo, hi) for lo, hi in pairs if lo is not None and hi is not None]
    return all(lo == hi for lo, hi in pairs) if pairs else None


def _nvpmodel(reader: Reader) -> dict:
    status = reader.text("var/lib/nvpmodel/status")
    mode = None
    if status and status.startswith("pmode:"):
        mode = int(status.split(":", 1)[1] or 0)
    names = {}
    conf = reader.text("etc/nvpmodel.conf") or ""
    for match in re.finditer(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=([^\s>]+)", conf):
        names[int(match.group(1))] = match.group(2)
    return {"mode_id": mode, "mode_name": names.get(mode) if mode is not None else None}


def machine_facts(root: Path) -> dict:
    """Device tree, L4T release, power mode, clocks and their lock, and what could not be read."""
    reader = Reader(root)
    state = device_state(root)
    l4t = reader.text("etc/nv_tegra_release")
    release = None
    if l4t:
        match = re.search(r"R(\d+) \(release\), REVISION: ([\d.]+)", l4t)
        release = f"{match.group(1)}.{match.group(2)}" if match else None
    return {
        "device_model": reader.text("proc/device-tree/model"),
        "device_compatible": reader.text("proc/device-tree/compatible"),
        "l4t_release": release,
        "nv_tegra_release": l4t.splitlines()[0] if l4t else None,
        "nvpmodel": _nvpmodel(reader),
        "clocks_locked": clocks_locked(state),
        "device_state": state,
        "unavailable": sorted(set(reader.unavailable)),
    }


def is_jetson(facts: dict) -> bool:
    """A Jetson: an L4T release file or a Jetson device-tree model."""
    model = facts.get("device_model") or ""
    return bool(facts.get("l4t_release")) or ("Jetson" in model and "Simulated" not in model)
