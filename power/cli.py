"""The power settings of the run contract: which sensor and rail, how fast, and idle."""

from __future__ import annotations

import argparse

from common.settings import Setting, not_negative, positive
from power.discovery import SOURCES, detect_source, sysfs_root

MIN_HZ, MAX_HZ = 1, 10_000


def sampling_rate(text: str) -> float:
    """An ``--hz`` value: samples per second in [MIN_HZ, MAX_HZ] (below 1 Hz the logger could
    not stop or write on time)."""
    try:
        hz = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not MIN_HZ <= hz <= MAX_HZ:
        raise argparse.ArgumentTypeError(f"must be between {MIN_HZ} and {MAX_HZ}")
    return hz


SENSOR_SETTINGS = [
    Setting(
        "power_source",
        "auto",
        "power source: auto = INA3221 where found, else NVML, else the simulated sensor",
        choices=SOURCES,
        aliases=("--source",),
    ),
    Setting("rail", None, "board-input rail instead of the layout's rule (NAME or A+B+C)"),
    Setting(
        "hz", None, "sampling rate; default: twice per sensor refresh interval", type=sampling_rate
    ),
    Setting("sysfs_root", None, "directory that stands for / when looking for sensors", path=True),
    Setting("nvml_index", 0, "GPU index for --power-source nvml", type=int, check=not_negative),
    Setting(
        "sim_profile",
        "cpu",
        "power profile of the simulated sensor (when one is started)",
        choices=("cpu", "sine", "constant"),
    ),
]

IDLE_SETTINGS = [
    Setting(
        "idle_duration", 120.0, "seconds of idle (the most, if adaptive)", float, check=positive
    ),
    Setting(
        "idle_precision",
        None,
        "adaptive idle: stop once the 95% interval of the mean is within PCT %",
        float,
        check=positive,
        aliases=("--until-precision",),
        metavar="PCT",
    ),
    Setting(
        "idle_min",
        10.0,
        "adaptive idle: never stop before this many seconds",
        float,
        check=not_negative,
        aliases=("--min-duration",),
    ),
    Setting(
        "drift_warn",
        2.0,
        "warn when the two halves of the idle window differ by more than PCT %",
        float,
        check=positive,
        metavar="PCT",
    ),
]


def resolved_source(args: argparse.Namespace) -> str:
    """``args.power_source``, with ``auto`` replaced by what this machine has."""
    if args.power_source != "auto":
        return args.power_source
    return detect_source(sysfs_root(args.sysfs_root))
