"""The command-line flags that choose and read the power sensor, shared by the entry points."""

from __future__ import annotations

import argparse

from power.discovery import SOURCES, detect_source, sysfs_root

MAX_HZ = 10_000


def sampling_rate(text: str) -> float:
    """An ``--hz`` value: a number of samples per second in (0, MAX_HZ]."""
    try:
        hz = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < hz <= MAX_HZ:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_HZ}")
    return hz


def add_sensor_arguments(parser: argparse.ArgumentParser, source_flag: str = "--power-source"):
    """Add the sensor flags (read back as ``power_source``, ``rail``, ``hz``, ``sysfs_root``)."""
    parser.add_argument(
        source_flag,
        dest="power_source",
        choices=SOURCES,
        default="auto",
        help="power source: auto = INA3221 where found, else NVML, else the simulated sensor",
    )
    parser.add_argument(
        "--rail",
        default=None,
        help="board-input rail to log instead of the layout's rule (NAME or A+B+C)",
    )
    parser.add_argument(
        "--hz",
        type=sampling_rate,
        default=None,
        help="sampling rate; default: twice per sensor refresh interval",
    )
    parser.add_argument(
        "--sysfs-root",
        default=None,
        help="directory that stands for / when looking for sensors (default: $EVB_SYSFS_ROOT or /)",
    )


def resolved_source(args: argparse.Namespace) -> str:
    """``args.power_source``, with ``auto`` replaced by what this machine has."""
    if args.power_source != "auto":
        return args.power_source
    return detect_source(sysfs_root(args.sysfs_root))
