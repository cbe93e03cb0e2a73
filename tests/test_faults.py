"""Faults as a user meets them, each ending with a one-line error, the documented exit code and a
true status: a full disk (a small tmpfs), a read-only result folder or a file in its place,
corrupt state from an earlier run, Ctrl-C on standalone commands, an absurd sensor value, an
input shape the model cannot take, and the legacy board that shows its IIO chip twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import sysfs_trees as trees
from tests.conftest import ROOT
from tests.mounts import tmpfs
from tests.test_measurement import marker_seen, processes_mentioning, wait_for

SMALL = ["--power-source", "sim", "--backend", "torch", "--weights", "random", "--warmup", "2"]


def env() -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EVB_")}
    return {**clean, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    cmd = ["bash", "run_experiment.sh"] if args[0] == "sweep" else [sys.executable, args[0]]
    return subprocess.run(
        [*cmd, *args[1:]],
        cwd=ROOT,
        env={**env(), "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def one_line_error(done, code: int, *needles: str) -> None:
    err = done.stderr.strip()
    assert done.returncode == code, (done.returncode, done.stdout, err)
    assert "Traceback" not in err + done.stdout, err
    last = err.splitlines()[-1]
    assert all(n in last for n in needles), last


def whole_lines(path: Path, fields: int | None = None) -> list[str]:
    text = path.read_text()
    assert text.endswith("\n"), f"{path.name} ends mid-line: {text[-80:]!r}"
    lines = text.splitlines()
    fields = fields or len(lines[0].split(","))
    bad = [line for line in lines if len(line.split(",")) != fields]
    assert not bad, f"{path.name}: {bad[:3]}"
    return lines


def test_a_full_disk_during_a_model_leaves_whole_lines_and_a_true_status(tmp_path):
    with tmpfs(tmp_path / "small", size="2m") as result:
        done = run(
            "measure_inference_power.py",
            "--model",
            "lenet",
            "--runs",
            "20",
            "--profile-runs",
            "20000",
            "--result-dir",
            str(result),
            *SMALL,
            timeout=300,
        )
        status = json.loads((result / "lenet/status.json").read_text())
        assert done.returncode in (1, 5), done.stderr
        assert status["status"] == "failed" and "No space left on device" in status["reason"]
        assert status["exit_code"] == done.returncode and "device_state_end" in status
        folder = result / "lenet"
        assert len(whole_lines(folder / "lenet_power_rails.csv")) > 10
        whole_lines(folder / "lenet_power_log.log", fields=3)
        # which writer meets the full disk first depends on the machine's speed: the logger
        # (exit 5) or the profiler (exit 1); whatever the profiler streamed ends whole too
        for streamed in (
            folder / "lenet_markers.csv",
            folder / "torch_profiling/torch_layer_records.csv",
        ):
            if streamed.exists() and streamed.stat().st_size:
                whole_lines(streamed)
        assert not list(folder.rglob("*.tmp")) and not (folder / ".status.reserve").exists()
        assert processes_mentioning(str(result)) == []


@pytest.mark.parametrize(
    "cmd,code,needle",
    [
        (("sweep", "--models", "lenet", *SMALL), 2, "cannot use"),
        (("measure_inference_power.py", "--model", "lenet", *SMALL), 2, "cannot write"),
        (("measure_idling_power.py", "--power-source", "sim", "--idle-duration", "1"), 2, ""),
        (("measure_power.py", "--source", "sim", "--duration", "1", "--out"), 1, "cannot write"),
        (("analyze.py",), 1, "cannot write"),
    ],
)
def test_a_read_only_result_folder_is_one_line(tmp_path, cmd, code, needle):
    with tmpfs(tmp_path / "ro", read_only=True) as folder:
        where = (
            [str(folder)] if cmd[-1] in ("--out", "analyze.py") else ["--result-dir", str(folder)]
        )
        one_line_error(run(*cmd, *where), code, needle, "Read-only file system")


def test_a_file_where_the_result_folder_should_be_is_one_line(tmp_path):
    (tmp_path / "raw").write_text("not a folder")
    done = run("sweep", "--result-dir", str(tmp_path / "raw"), "--models", "lenet", *SMALL)
    one_line_error(done, 2, "cannot use", "raw")


def test_corrupt_state_from_an_earlier_run_is_measured_again(tmp_path):
    from common.layout import LayoutError, read_idle_uw, read_status
    from experiment.sweep import _earlier_sweeps

    for garbage, said in [
        ('{"timestamp": "2026', "not valid JSON"),  # truncated
        ("", "not valid JSON"),
        ('{"avg_idle_power": null}', "no positive avg_idle_power"),
        ('{"avg_idle_power": true}', "no positive avg_idle_power"),
    ]:
        (tmp_path / "idling_power.json").write_text(garbage)
        with pytest.raises(LayoutError, match=said):  # the sweep's rule to measure idle again
            read_idle_uw(tmp_path)
    (tmp_path / "run_metadata.json").write_bytes(b"\xff\xfe\x00garbage")
    assert _earlier_sweeps(tmp_path / "run_metadata.json") == []
    (tmp_path / "run_metadata.json").write_text('{"created": "x", "earlier_sweeps": [3, "a"]}')
    assert _earlier_sweeps(tmp_path / "run_metadata.json") == [{"created": "x"}]
    for garbage in ('["complete"]', '{"status": 1}', "{"):
        (tmp_path / "status.json").write_text(garbage)
        assert read_status(tmp_path) is None  # not complete: the model is measured again


def test_garbled_inputs_to_analyze_are_one_line_per_model(tmp_path):
    from analysis.synthetic import write_folder

    for name in ("good", "json", "records"):
        write_folder(tmp_path, name, inferences=50)
    (tmp_path / "json/json_torch.json").write_bytes(b"\xff\xfe{")
    (tmp_path / "records/torch_profiling/torch_layer_records.csv").write_bytes(b"run,l\n1,\xff\n")
    (tmp_path / "idling_power.json").write_text('{"avg_idle_po')  # truncated by an earlier run
    done = run("analyze.py", str(tmp_path), "--no-plots")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    errors = done.stderr.strip().splitlines()
    assert [e.split(":")[1].strip() for e in errors] == ["good", "json", "records"], errors
    assert "idling_power.json is not valid JSON" in errors[0]  # said, not silently null
    (tmp_path / "idling_power.json").write_text('{"avg_idle_power": 1e6}')
    done = run("analyze.py", str(tmp_path), "--no-plots")
    errors = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(errors) == 2, done.stderr
    assert "json_torch.json is not valid JSON" in errors[0]
    assert "torch_layer_records.csv is garbled" in errors[1]


def test_ctrl_c_on_the_profiler_alone_is_one_line_and_130(tmp_path):
    proc = start(
        "-m",
        "model",
        "--model",
        "lenet",
        "--runs",
        "100000",
        "--warmup",
        "100000",
        "--backend",
        "torch",
        "--result-dir",
        str(tmp_path),
    )
    wait_for(
        lambda: marker_seen(tmp_path, "warmup_start") or proc.poll() is not None, 120, "warm-up"
    )
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == (
        "python -m model: interrupted; the files written so far are kept"
    )


def test_ctrl_c_on_the_idle_measurement_is_one_line_and_130(tmp_path):
    proc = start(
        "measure_idling_power.py",
        "--power-source",
        "sim",
        "--idle-duration",
        "60",
        "--result-dir",
        str(tmp_path),
    )
    rails = tmp_path / "idle_power_rails.csv"
    wait_for(lambda: rails.exists() or proc.poll() is not None, 60, "idle logging")
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "interrupted; no idling_power.json written" in err
    assert not (tmp_path / "idling_power.json").exists()
    whole_lines(rails)


def test_an_input_shape_the_model_cannot_take_is_one_line_and_exit_2(tmp_path):
    done = run(
        "-m",
        "model",
        "--model",
        "lenet",
        "--input-shape",
        "1",
        "1",
        "8",
        "8",
        "--runs",
        "2",
        "--warmup",
        "1",
        "--backend",
        "torch",
        "--result-dir",
        str(tmp_path),
    )
    one_line_error(done, 2, "--input-shape 1 1 8 8 does not fit lenet")


def test_an_absurd_sensor_value_is_counted_as_an_error_not_logged(tmp_path):
    from power.discovery import sysfs_sensor
    from power.logger import log_power

    trees.orin_nano_jp6(tmp_path / "root")
    sensor = sysfs_sensor(tmp_path / "root")
    hwmon = Path(sensor.rails[0].voltage_file)
    hwmon.write_text("99999999999999999999999\n")
    summary = log_power(sensor, tmp_path / "out", "x", hz=200, duration_s=0.2)
    sensor.close()
    assert summary["samples"] == 0 and summary["errors"]["ERANGE"] > 0
    assert whole_lines(tmp_path / "out/x_power_rails.csv") == [
        (tmp_path / "out/x_power_rails.csv").read_text().splitlines()[0]
    ]


def test_a_legacy_board_showing_its_iio_chip_twice_is_read_once(tmp_path):
    from power.discovery import find_rails

    expected = trees.nano_jp4(tmp_path)
    iio = next((tmp_path / "sys/bus/i2c/drivers/ina3221x").glob("*-*")).resolve()
    (iio / "iio_device").symlink_to("iio:device0")
    rails, _ = find_rails(tmp_path)
    assert [r.name for r in rails] == ["POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"]
    assert expected == 5008 * 392


def test_a_slow_rate_still_ends_at_the_duration(sim_tree, tmp_path):
    from power.discovery import open_sensor
    from power.logger import log_power

    sensor = open_sensor("sim", sim_tree, None)
    summary = log_power(sensor, tmp_path, "slow", hz=1, duration_s=0.3)
    sensor.close()
    assert summary["samples"] == 1  # one period is 1 s: the logger did not sleep through it
    assert summary["end_mono_ns"] - summary["start_mono_ns"] < 0.9e9


def test_a_bug_in_the_analysis_does_not_end_the_sweep(tmp_path, monkeypatch):
    import analysis.report
    from experiment.sweep import Sweep

    def broken(model_dir, make_plots=True):
        raise TypeError("cannot safely cast non-equivalent float64 to int64")

    monkeypatch.setattr(analysis.report, "analyse_model", broken)
    sweep = Sweep.__new__(Sweep)  # only the analysis step is tried here
    outcome = sweep._analyse(tmp_path / "lenet")
    assert outcome == "failed (TypeError: cannot safely cast non-equivalent float64 to int64)"


def test_an_unexpected_error_in_a_measurement_still_ends_in_a_true_status(tmp_path):
    """A hand-edited run_spec.json without a key: no traceback out of ``measure``, status
    ``failed`` naming the key, and the space kept for the last status given back."""
    from common.layout import RESERVE, RUN_SPEC, read_status, write_json
    from experiment.measurement import measure

    spec = tmp_path / "lenet" / RUN_SPEC
    spec.parent.mkdir()
    write_json(spec, {"result_dir": str(tmp_path), "model": "lenet"})
    status = measure(spec, stop=lambda: False)
    assert status["status"] == "failed" and "power_source" in status["reason"]
    assert read_status(tmp_path / "lenet")["status"] == "failed"
    assert not (tmp_path / "lenet" / RESERVE).exists()
