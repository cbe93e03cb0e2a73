"""The sampling loop and the logger process, on a simulated sensor tree written by a real
simulator process (``power.simulated``); read failures come from an injected opener, the only
double (the sysfs boundary)."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from common.clock import Clock, parse_wall_string
from power.discovery import sysfs_sensor
from power.logger import log_power
from tests import sysfs_trees as trees
from tests.conftest import ROOT, lines_in, run_entry, wait_for

RAW_LINE = re.compile(r"^\d{8}-\d{2}:\d{2}:\d{2}\.\d{6},\d+\.\d,\d+\.\d$")


def test_logger_streams_every_rail_and_the_raw_format(sim_tree, tmp_path):
    sensor = sysfs_sensor(sim_tree)
    clock = Clock.now()
    summary = log_power(sensor, tmp_path / "out", "lenet", hz=200, clock=clock, duration_s=1.0)
    sensor.close()
    out = tmp_path / "out"
    raw = (out / "lenet_power_log.log").read_text().splitlines()
    assert raw and all(RAW_LINE.match(line) for line in raw)
    rails = pd.read_csv(out / "lenet_power_rails.csv")
    assert len(rails) == len(raw) == summary["samples"]
    assert 150 <= summary["samples"] <= 205
    assert rails["mono_ns"].is_monotonic_increasing
    assert (rails["board_uW"] == rails["VDD_IN_uW"]).all()
    # the wall string is derived from the monotonic stamp and one clock origin
    first = rails.iloc[0]
    assert first["timestamp"] == clock.wall_string(int(first["mono_ns"]))
    assert raw[0].split(",")[0] == first["timestamp"]
    parse_wall_string(first["timestamp"])
    assert summary["simulated"] is True and summary["errors"] == {}
    assert summary["distinct_updates"] > 50  # the simulator refreshes every 6.6 ms
    on_disk = json.loads((out / "lenet_power_summary.json").read_text())
    assert on_disk["samples"] == summary["samples"]


class _ScriptedFile:
    """A sysfs attribute (the sysfs boundary) whose n-th read (from 1) returns ``script(n)``
    where that is bytes, raises where it raises, and reads the real file where it is None."""

    def __init__(self, path: str, script) -> None:
        self.path, self.script, self.reads = path, script, 0
        self.fd = os.open(path, os.O_RDONLY)

    def read(self) -> bytes:
        self.reads += 1
        scripted = self.script(self.reads)
        return os.pread(self.fd, 64, 0) if scripted is None else scripted

    def close(self) -> None:
        os.close(self.fd)


def _sensor_with_scripted_current(tree, script):
    """The Orin Nano sensor with ``VDD_IN``'s current file scripted; returns it, the hwmon
    directory and the list of scripted files opened (discovery probes one first)."""
    trees.orin_nano_jp6(tree)
    hw = next((tree / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon").iterdir())
    target = os.path.realpath(hw / "curr1_input")
    opened: list[_ScriptedFile] = []
    from power.sensor import SysfsFile

    def opener(path):
        if os.path.realpath(path) != target:
            return SysfsFile(path)
        opened.append(_ScriptedFile(path, script))
        return opened[-1]

    return sysfs_sensor(tree, opener=opener), hw, opened


def _vanish_after_20(n: int) -> None:
    if n > 20:
        raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))  # the device was removed


def test_read_errors_are_counted_and_never_kill_the_logger(tmp_path):
    sensor, _, _ = _sensor_with_scripted_current(tmp_path / "tree", _vanish_after_20)
    summary = log_power(sensor, tmp_path / "out", "x", hz=500, duration_s=0.3)
    assert summary["samples"] == 20
    assert summary["errors"]["ENODEV"] >= 50
    lines = (tmp_path / "out/x_power_log.log").read_text().splitlines()
    assert len(lines) == 20


def test_enodata_during_the_run_skips_samples(tmp_path):
    trees.orin_nano_jp6(tmp_path / "tree")
    hw = next((tmp_path / "tree/sys/bus/i2c/drivers/ina3221/1-0040/hwmon").iterdir())
    sensor = sysfs_sensor(tmp_path / "tree")
    sensor.close()
    bad = trees.failing_opener({str(hw / "in2_input")}, errno.ENODATA)
    from power.sysfs_sensor import SysfsSensor

    failing = SysfsSensor(sensor.rails, sensor.board, 0.0066, opener=bad)
    summary = log_power(failing, tmp_path / "out", "x", hz=300, duration_s=0.2)
    assert summary["samples"] == 0 and summary["errors"]["ENODATA"] > 20


def _empty_or_garbled(n: int) -> bytes | None:
    """Every 7th read empty, every 11th (not 7th) garbled, as a misbehaving driver might."""
    return b"" if n % 7 == 0 else b"12x\n" if n % 11 == 0 else None


def test_empty_and_garbled_values_are_counted_and_only_those_samples_skipped(tmp_path):
    sensor, hw, opened = _sensor_with_scripted_current(tmp_path / "tree", _empty_or_garbled)
    summary = log_power(sensor, tmp_path / "out", "x", hz=500, duration_s=0.4)
    reads = opened[-1].reads  # the sensor's own file (discovery probed an earlier one)
    empty = reads // 7
    garbled = reads // 11 - reads // 77
    assert summary["errors"] == {"ENODATA": empty, "EPARSE": garbled}
    assert summary["samples"] == reads - empty - garbled > 100
    rails = pd.read_csv(tmp_path / "out/x_power_rails.csv")
    assert len(rails) == summary["samples"]
    assert (rails["VDD_IN_mA"] == int((hw / "curr1_input").read_text())).all()
    assert (rails["board_uW"] == rails["VDD_IN_mV"] * rails["VDD_IN_mA"]).all()
    raw = (tmp_path / "out/x_power_log.log").read_text().splitlines()
    assert len(raw) == len(rails) and all(RAW_LINE.match(line) for line in raw)


def test_batch_wall_strings_match_single_ones():
    clock = Clock.now()
    start = clock.mono_ns + 1_000_000_000 - clock.wall_ns % 1_000_000_000 - 3_000  # 3 µs before
    stamps = [start + k * 1_500 for k in range(5)]  # a second boundary
    batch = clock.wall_strings(np.array(stamps, dtype=np.int64))
    assert batch == [clock.wall_string(stamp) for stamp in stamps]
    assert batch[0][:17] != batch[-1][:17]


def _start_logger(out, sim_root, hz):
    return subprocess.Popen(
        [
            sys.executable,
            "measure_power.py",
            "--source",
            "sim",
            "--sysfs-root",
            str(sim_root),
            "--out",
            str(out),
            "--prefix",
            "m",
            "--hz",
            str(hz),
            "--ready",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )


def test_logger_killed_with_sigkill_leaves_valid_lines(sim_tree, tmp_path):
    proc = _start_logger(tmp_path, sim_tree, 200)
    assert proc.stdout.readline().strip() == "READY"
    raw_log = tmp_path / "m_power_log.log"
    wait_for(lambda: lines_in(raw_log) >= 300, 30, "300 logged samples")
    proc.send_signal(signal.SIGKILL)
    proc.wait(5)
    raw = raw_log.read_text()
    assert raw.endswith("\n")
    lines = raw.splitlines()
    assert all(RAW_LINE.match(line) for line in lines)
    rails = pd.read_csv(tmp_path / "m_power_rails.csv")
    assert len(rails) == len(lines)
    assert not (tmp_path / "m_power_summary.json").exists()


def test_logger_stops_cleanly_on_sigterm_and_writes_its_summary(sim_tree, tmp_path):
    proc = _start_logger(tmp_path, sim_tree, 100)
    assert proc.stdout.readline().strip() == "READY"
    raw_log = tmp_path / "m_power_log.log"
    written = wait_for(lambda: (n := lines_in(raw_log)) >= 40 and n, 30, "40 logged samples")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(5) == 0
    summary = json.loads((tmp_path / "m_power_summary.json").read_text())
    assert summary["samples"] >= written and summary["simulated"] is True


@pytest.mark.parametrize("args", [["--hz", "0"], ["--duration", "-1"], ["--source", "bogus"]])
def test_bad_flags_get_a_one_line_error(args):
    result = run_entry(["measure_power.py", *args])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "--help" in lines[0]


@pytest.mark.parametrize(
    "entry", ["measure_power.py", "measure_idling_power.py", "measure_inference_power.py"]
)
@pytest.mark.parametrize("rate", ["-1", "20000", "fast"])
def test_every_power_entry_point_rejects_a_bad_rate_in_one_line(entry, rate):
    result = run_entry([entry, "--hz", rate])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--hz" in lines[0] and "error:" in lines[0]


def test_each_sample_is_stamped_at_the_middle_of_its_read(tmp_path):
    """A sensor double whose read takes 2 ms: the stamp must sit inside the read."""
    from tests.test_idle import ScriptedSensor

    class SlowSensor(ScriptedSensor):
        def read(self):
            self.before = time.monotonic_ns()
            time.sleep(0.002)
            row = super().read()
            self.after = time.monotonic_ns()
            self.stamps.append((self.before, self.after))
            return row

    sensor = SlowSensor(lambda n: 4e6)
    sensor.stamps = []
    log_power(sensor, tmp_path, "slow", hz=100, duration_s=0.3)
    rails = pd.read_csv(tmp_path / "slow_power_rails.csv")
    assert len(rails) == len(sensor.stamps) > 10
    assert (rails["read_ns"] >= 2_000_000).all()
    for stamp, (before, after) in zip(rails["mono_ns"], sensor.stamps, strict=True):
        assert before <= stamp <= after
