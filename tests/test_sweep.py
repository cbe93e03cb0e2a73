"""The sweep (``run_experiment.sh``) end to end on this machine with real processes: the
simulated sensor, the power logger and the PyTorch CPU profiler; interruption, resume, a killed
model, bad input, the lock, and the Docker image's recipe."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, wait_for
from tests.test_measurement import child_pid, marker_seen, processes_mentioning

FAST = [  # a sweep small enough for a test: simulated power, random weights, no cool-down
    "--runs",
    "20",
    "--warmup",
    "2",
    "--idle-duration",
    "2",
    "--cooldown",
    "0",
    "--weights",
    "random",
    "--backend",
    "torch",
    "--power-source",
    "sim",
]


def sweep(result: Path, *args: str, wait: bool = True):
    cmd = ["bash", str(ROOT / "run_experiment.sh"), "--result-dir", str(result)]
    cmd += [*FAST, "--no-upload", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVB_")}
    env["PYTHON"] = sys.executable
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if not wait:
        return proc
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, out


def status(result: Path, model: str) -> dict:
    return json.loads((result / model / "status.json").read_text())


@pytest.mark.slow  # one model, three sweeps
def test_sigint_then_sigterm_during_a_model_is_interrupted_and_a_rerun_completes(tmp_path):
    """What a terminal's Ctrl-C plus a SIGTERM 20 ms later do: exit 130, the model's status
    says interrupted, no process is left; a re-run resumes and completes."""
    result = tmp_path / "raw"
    proc = sweep(result, "--models", "lenet", wait=False)
    wait_for(
        lambda: marker_seen(result, "load_start") or proc.poll() is not None, 300, "lenet to load"
    )
    assert proc.poll() is None, proc.stdout.read()
    proc.send_signal(signal.SIGINT)
    time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "Traceback" not in out
    lenet = status(result, "lenet")
    assert lenet["status"] == "interrupted" and lenet["reason"] == "interrupted by SIGINT"
    assert lenet["exit_code"] == 130
    assert processes_mentioning(str(result)) == []

    code, out = sweep(result, "--models", "lenet")
    assert code == 0, out
    assert re.search(r"lenet\s+complete", out)
    # a complete result folder
    meta = json.loads((result / "run_metadata.json").read_text())
    assert meta["config"]["models"] == ["lenet"]
    assert meta["models"]["lenet"]["status"] == "complete"
    assert len(meta["earlier_sweeps"]) == 1  # the interrupted sweep's record is kept
    assert meta["run_id"] == meta["earlier_sweeps"][0]["created"]
    assert {"host", "versions", "suite", "device_state", "unavailable"} <= set(meta)
    idle = json.loads((result / "idling_power.json").read_text())
    assert idle["avg_idle_power"] > 0
    summary = pd.read_csv(result / "summary.csv")
    assert list(summary["model"]) == ["lenet"]
    assert (summary["status"] == "complete").all()
    folder = result / "lenet"
    spec = json.loads((folder / "run_spec.json").read_text())
    assert spec["runs"] == 20 and spec["model"] == "lenet"
    assert (folder / "lenet_torch.json").exists()
    assert (folder / "lenet_power_log.log").exists()
    layer_power = pd.read_csv(folder / "lenet_layer_power.csv")
    assert list(layer_power.columns[:6]) == [
        "cycle",
        "layer_name",
        "layer_type",
        "layer_power_including_idle_power_micro_watt",
        "layer_power_excluding_idle_power_micro_watt",
        "layer_run_time",
    ]
    for plot in ("power_timeline", "folded_power", "top_layers"):
        assert (folder / f"lenet_{plot}.png").stat().st_size > 1000
    # only model folders at the top (downstream rule), and no temporary file anywhere
    assert sorted(p.name for p in result.iterdir() if p.is_dir()) == ["lenet"]
    assert not [p for p in result.rglob("*.tmp")]

    code, out = sweep(result, "--models", "lenet")
    assert code == 0, out
    assert "lenet: complete already, skipped" in out and "idling_power.json exists, kept" in out


@pytest.mark.slow  # two models end to end
def test_a_killed_model_does_not_stop_the_sweep(tmp_path):
    result = tmp_path / "raw"
    proc = sweep(result, "--models", "lenet,squeezenet1_1", wait=False)
    wait_for(
        lambda: marker_seen(result, "load_start") or proc.poll() is not None, 120, "lenet to load"
    )
    assert proc.poll() is None, proc.stdout.read()
    os.kill(wait_for(lambda: child_pid(result, "-m model"), 10, "the profiler"), signal.SIGKILL)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, out
    table = out[re.search(r"^model\s+status\s+reason$", out, re.M).start() :]
    assert re.search(r"lenet\s+failed\s+profiler exited with signal SIGKILL", table), table
    assert re.search(r"squeezenet1_1\s+complete", table), table
    assert processes_mentioning(str(result)) == []
    assert "power source sim (SIMULATED" in out and "idle power (SIMULATED)" in out


@pytest.mark.parametrize(
    "args,said",
    [
        (["--runs", "-5"], "--runs"),
        (["--input-shape", "1", "3", "32", "32"], "--input-shape 1 3 32 32 does not fit lenet"),
    ],
)
def test_bad_flag_value_is_one_line_and_starts_nothing(tmp_path, args, said):
    result = tmp_path / "raw"
    code, out = sweep(result, "--models", "resnet18,lenet", *args)
    assert code == 2
    assert len(out.strip().splitlines()) == 1 and said in out
    assert not result.exists()


def test_a_second_sweep_on_the_same_folder_is_refused(tmp_path):
    from experiment.sweep import acquire_lock

    result = tmp_path / "raw"
    lock = acquire_lock(result)
    try:
        code, out = sweep(result, "--models", "lenet")
    finally:
        lock.close()
    assert code == 2 and "another sweep" in out
    assert not (result / "lenet").exists()


def test_dockerfile_copies_and_runs_what_exists():
    text = (ROOT / "Dockerfile.jetson").read_text()
    assert text.count("FROM nvcr.io/nvidia/pytorch:24.06-py3-igpu") == 1
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        for source in line.rstrip("\\").split()[:-1]:
            assert (ROOT / source).exists(), source
    cmd = json.loads(re.search(r"^CMD (.+)$", text, re.M).group(1))
    script = ROOT / Path(cmd[0]).name
    assert script.exists() and os.access(script, os.X_OK)
    assert re.search(r"^USER (?!root)\w+", text, re.M)
    assert not re.search(r"TOKEN\s*=", text)  # no credential baked in
    for requirement in (ROOT / "requirements-jetson.txt").read_text().splitlines():
        name = requirement.split("#")[0].strip()
        assert not name or not name.lower().startswith(("torch", "tensorrt"))
