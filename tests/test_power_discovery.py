"""Rail discovery and the board-input rule on every layout of ``jetson-sysfs.md`` §6.

The sysfs trees are fixture files built by ``tests/sysfs_trees.py``; reads that fail on a real
board (ENODATA) go through an injected opener, the only double here (the hardware boundary).
"""

from __future__ import annotations

import errno

import pytest

from power.discovery import board_input, find_rails, refresh_interval, sysfs_sensor
from power.sensor import SensorNotFound
from tests import sysfs_trees as trees


def board_power(root, opener=None, rail=None):
    kwargs = {"opener": opener} if opener else {}
    sensor = sysfs_sensor(root, rail, **kwargs)
    try:
        return sensor, sensor.board_power_uw(sensor.read())
    finally:
        sensor.close()


@pytest.mark.parametrize("index,distractors", [(1, False), (3, True), (0, True)])
def test_orin_nano_jp6_finds_vdd_in_whatever_the_hwmon_index(tmp_path, index, distractors):
    expected = trees.orin_nano_jp6(tmp_path, index=index, distractors=distractors)
    sensor, power = board_power(tmp_path)
    assert [r.name for r in sensor.rails] == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]
    assert sensor.board.rails == ["VDD_IN"]
    assert power == expected == 5160 * 888
    rail = sensor.rails[0]
    assert rail.chip == "1-0040" and rail.channel == 1
    assert rail.config["shunt_resistor_uohm"] == 5000
    assert rail.config["update_interval"] == 7 and rail.config["samples"] == 1
    assert sensor.refresh_interval_s() == pytest.approx(0.0066)


def test_orin_nano_loaded_snapshot(tmp_path):
    expected = trees.orin_nano_jp6(tmp_path, loaded=True)
    assert board_power(tmp_path)[1] == expected == 5040 * 5600


@pytest.mark.parametrize("index0", [1, 3])
def test_agx_orin_jp5_sums_three_rails_and_skips_nc(tmp_path, index0):
    expected = trees.agx_orin(tmp_path, jetpack=5, index0=index0)
    rails, skipped = find_rails(tmp_path)
    names = [r.name for r in rails]
    assert names == ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"]
    assert sum("'NC'" in note for note in skipped) == 2
    sensor, power = board_power(tmp_path)
    assert power == expected == 13_948_000
    assert sensor.board.rails == ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"]
    # never VIN_SYS_5V0 alone, never all four rails
    assert power != 5000 * 1100
    assert power != expected + 5000 * 120


def test_agx_orin_jp6_skips_enodata_channels(tmp_path):
    expected = trees.agx_orin(tmp_path, jetpack=6)
    opener = trees.failing_opener(trees.agx_orin_enodata_files(tmp_path))
    rails, skipped = find_rails(tmp_path, opener)
    assert [r.name for r in rails] == [
        "VDD_GPU_SOC",
        "VDD_CPU_CV",
        "VIN_SYS_5V0",
        "VDDQ_VDD2_1V8AO",
    ]
    assert any("No data available" in note for note in skipped), skipped
    sensor, power = board_power(tmp_path, opener)
    assert power == expected
    # the board rails are on 0x40 (6.6 ms), not on 0x41 with its single channel (2.2 ms)
    assert sensor.refresh_interval_s() == pytest.approx(0.0066)
    second = next(r for r in rails if r.chip.endswith("0041"))
    assert second.config["channels_enabled"] == 1 and second.config["update_interval"] == 2
    assert refresh_interval([second], [second.name]) == pytest.approx(0.0022)


@pytest.mark.parametrize(
    "shown,channels,period_ms",
    [
        (7, 3, 6.6),  # the driver default: 1.1 ms conversions
        (4, 3, 3.528),  # 588 µs
        (2, 3, 1.992),  # 332 µs: 1 % from "2", outside the fit's search
        (2, 1, 2.2),
        (13, 3, 12.696),
        (1, 3, None),  # 140 µs and 204 µs both show "1": only the rounded value is known
        (5, 3, None),  # no conversion time gives it
    ],
)
def test_the_ina3221_period_behind_its_rounded_update_interval(shown, channels, period_ms):
    from power.sensor_model import ina3221_period_s

    got = ina3221_period_s(shown, channels)
    assert got == (None if period_ms is None else pytest.approx(period_ms / 1e3))


@pytest.mark.parametrize("folder", ["iio:device0", "iio_device"])
def test_nano_legacy_iio_uses_pom_5v_in_only(tmp_path, folder):
    expected = trees.nano_jp4(tmp_path, folder)
    sensor, power = board_power(tmp_path)
    assert [r.name for r in sensor.rails] == ["POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"]
    assert sensor.rails[0].channel == 0 and sensor.rails[0].driver == "ina3221x"
    assert power == expected == 5008 * 392


def test_thor_uses_the_ina238_vin_power_file(tmp_path):
    expected = trees.thor(tmp_path)
    sensor, power = board_power(tmp_path)
    assert sensor.board.rails == ["VIN"]
    assert power == expected == 22_963_200


def test_rail_override_and_sum(tmp_path):
    trees.orin_nano_jp6(tmp_path)
    assert board_power(tmp_path, rail="VDD_SOC")[1] == 5152 * 280
    assert board_power(tmp_path, rail="VDD_SOC+VDD_CPU_GPU_CV")[1] == 5152 * 280 + 5152 * 104
    with pytest.raises(SensorNotFound, match="no rail named NOPE"):
        board_power(tmp_path, rail="NOPE")


def test_summed_board_input_keeps_voltage_times_current(tmp_path):
    trees.agx_orin(tmp_path, jetpack=5)
    sensor = sysfs_sensor(tmp_path)
    row = sensor.read()
    mv, ma = sensor.board_voltage_current(row)
    assert mv * ma == pytest.approx(sensor.board_power_uw(row))
    sensor.close()


def test_no_sensor_says_what_was_looked_for(tmp_path):
    with pytest.raises(SensorNotFound) as exc:
        sysfs_sensor(tmp_path)
    message = str(exc.value)
    assert "sys/bus/i2c/drivers" in message and "--power-source sim" in message


def test_unknown_layout_asks_for_rail(tmp_path):
    trees.hwmon_chip(
        tmp_path, "1-0040", 1, {"in1_label": "FOO\n", "in1_input": "5000\n", "curr1_input": "100\n"}
    )
    rails, _ = find_rails(tmp_path)
    with pytest.raises(SensorNotFound, match="--rail"):
        board_input(rails)


def test_unreadable_file_skips_the_channel(tmp_path):
    trees.orin_nano_jp6(tmp_path)
    hw = next((tmp_path / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon").iterdir())
    opener = trees.failing_opener({str(hw / "curr3_input")}, errno.EIO)
    rails, skipped = find_rails(tmp_path, opener)
    assert "VDD_SOC" not in [r.name for r in rails]
    assert any("VDD_SOC" in note and "Input/output error" in note for note in skipped)
