"""``run_metadata.json``: what decides whether two runs are comparable: the machine and its
state (``power.platform``), versions of the suite (``publish.suite``) and of its packages, and the
run's settings."""

from __future__ import annotations

import getpass
import importlib.metadata
import os
import platform
import socket
from pathlib import Path

from common.clock import Clock
from power.platform import machine_facts
from publish.suite import suite_version

PACKAGES = (
    "torch",
    "torchvision",
    "torch_tensorrt",
    "tensorrt",
    "numpy",
    "pandas",
    "dvc",
    "nvidia-ml-py",
)


def _versions() -> dict:
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def run_metadata(root: Path, config: dict, sensor: dict | None, clock: Clock) -> dict:
    """Everything ``run_metadata.json`` holds."""
    facts = machine_facts(root)
    return {
        "created": clock.stamp(),
        "host": socket.gethostname(),
        "user": getpass.getuser(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        **{k: v for k, v in facts.items() if k != "unavailable"},
        "sensor": sensor,
        "versions": _versions(),
        "suite": suite_version(),
        "container_image": os.environ.get("EVB_CONTAINER_IMAGE"),
        "in_container": Path("/.dockerenv").exists() or bool(os.environ.get("EVB_CONTAINER_IMAGE")),
        "sysfs_root": str(root),
        "config": config,
        "unavailable": facts["unavailable"],
    }
