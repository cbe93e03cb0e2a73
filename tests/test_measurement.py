"""Two-process measurement and its fault handling, with real processes: the simulated sensor
(its own process writing a sysfs-shaped tree), the power logger and the PyTorch CPU profiler.
Faults are real SIGKILLs at chosen phases, found from the profiler's own marker file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, wait_for


def processes_mentioning(text: str) -> list[int]:
    """PIDs of live processes whose command line contains ``text``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split(") ")[1][0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


def start_measurement(result: Path, runs: int, warmup: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "measure_inference_power.py",
            "--model",
            "lenet",
            "--runs",
            str(runs),
            "--warmup",
            str(warmup),
            "--power-source",
            "sim",
            "--weights",
            "random",
            "--backend",
            "torch",
            "--result-dir",
            str(result),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def marker_seen(result: Path, event: str) -> bool:
    path = result / "lenet/lenet_markers.csv"
    return path.exists() and f"\n{event}," in path.read_text()


def child_pid(result: Path, needle: str) -> int | None:
    pids = [
        p
        for p in processes_mentioning(str(result))
        if needle in (Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode())
    ]
    return pids[0] if pids else None


@pytest.mark.parametrize(
    "victim,event",
    [
        # the default run kills each process once, in the pass whose data matters most
        ("profiler", "profiling_start"),
        ("logger", "profiling_start"),
        pytest.param("profiler", "load_start", marks=pytest.mark.slow),  # model loads, compiles
        pytest.param("profiler", "warmup_start", marks=pytest.mark.slow),
        pytest.param("profiler", "timing_start", marks=pytest.mark.slow),
        pytest.param("logger", "warmup_start", marks=pytest.mark.slow),
    ],
)
def test_a_killed_process_fails_the_model_and_leaves_nothing_behind(tmp_path, victim, event):
    result = tmp_path / "raw"
    proc = start_measurement(result, runs=4000, warmup=3000)
    try:
        wait_for(lambda: marker_seen(result, event), 60, event)
        needle = "-m model" if victim == "profiler" else "measure_power.py"
        pid = wait_for(lambda: child_pid(result, needle), 10, victim)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        code = proc.wait(timeout=20)
        took = time.monotonic() - killed_at
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == (1 if victim == "profiler" else 5)
    assert took < 2.0 + 3.0  # other process stopped within 2 s; status and device state after
    status = json.loads((result / "lenet/status.json").read_text())
    assert status["status"] == "failed"
    assert (
        ("SIGKILL" in status["reason"])
        if victim == "profiler"
        else ("power logger died" in status["reason"])
    )
    time.sleep(0.2)
    assert processes_mentioning(str(result)) == []  # no process left behind
    rails = pd.read_csv(result / "lenet/lenet_power_rails.csv")
    assert len(rails) > 0 and rails["mono_ns"].is_monotonic_increasing
    raw = (result / "lenet/lenet_power_log.log").read_text()
    assert raw.endswith("\n") and all(len(line.split(",")) == 3 for line in raw.splitlines())
    markers = pd.read_csv(result / "lenet/lenet_markers.csv")
    assert event in set(markers["event"])
    records = result / "lenet/torch_profiling/torch_layer_records.csv"
    if records.exists():
        assert pd.read_csv(records).notna().all().all()


def test_watchdog_ends_a_hung_run(tmp_path):
    result = tmp_path / "raw"
    started = time.monotonic()
    code = subprocess.run(
        [
            sys.executable,
            "measure_inference_power.py",
            "--model",
            "lenet",
            "--runs",
            "100000",
            "--warmup",
            "100000",
            "--power-source",
            "sim",
            "--backend",
            "torch",
            "--timeout",
            "15",
            "--result-dir",
            str(result),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=60,
        check=False,
    ).returncode
    assert code == 6
    assert time.monotonic() - started < 15 + 10
    status = json.loads((result / "lenet/status.json").read_text())
    assert status["status"] == "failed" and "watchdog" in status["reason"]
    assert processes_mentioning(str(result)) == []
