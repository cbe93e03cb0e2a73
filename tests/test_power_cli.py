"""``measure_power.py --list`` and ``measure_idling_power.py`` as users run them, on a simulated
tree (a real simulator process) and on an empty root."""

from __future__ import annotations

import json

from tests.conftest import run_entry


def test_list_on_the_simulated_tree(sim_tree):
    result = run_entry(["measure_power.py", "--list", "--sysfs-root", str(sim_tree)])
    assert result.returncode == 0, result.stderr
    assert "SIMULATED" in result.stdout
    lines = result.stdout.splitlines()
    assert any(line.startswith("* VDD_IN") and "1-0040" in line for line in lines)
    assert any("VDD_SOC" in line for line in lines)
    assert "board-input power" in result.stdout


def test_list_without_a_sensor_fails_with_one_line(tmp_path):
    result = run_entry(
        ["measure_power.py", "--list", "--source", "ina3221", "--sysfs-root", str(tmp_path)]
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "no INA3221" in result.stderr and "--power-source sim" in result.stderr


def test_idle_writes_the_downstream_json(sim_tree, tmp_path):
    result = run_entry(
        [
            "measure_idling_power.py",
            "--sysfs-root",
            str(sim_tree),
            "--power-source",
            "sim",
            "--idle-duration",
            "3",
            "--result-dir",
            str(tmp_path / "raw"),
        ]
    )
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "raw/idling_power.json").read_text())
    assert set(data) >= {"timestamp", "avg_idle_power", "samples", "std_uW", "ci95_uW"}
    assert len(data["timestamp"]) == 15 and data["timestamp"][8] == "-"
    # sine profile: 4.582 W ± 1.5 W around its mean over whole periods
    assert 3.0e6 < data["avg_idle_power"] < 6.2e6
    assert data["simulated"] is True
    assert set(data["rails_mean_uW"]) == {"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"}
    assert (tmp_path / "raw/idle_power_log.log").exists()
