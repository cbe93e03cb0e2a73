"""Analysis on synthetic result folders with known answers (``analysis.synthetic``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.load import AnalysisError
from analysis.mapping import map_downstream_files, window_means
from analysis.reference import map_layers, read_power_log
from analysis.report import analyse_model
from analysis.synthetic import write_folder
from tests.conftest import run_entry


def test_folding_recovers_a_power_step_that_window_mapping_mostly_misses(tmp_path):
    truth = write_folder(
        tmp_path,
        inferences=4000,
        layers=10,
        layer_ms=0.1,
        gap_ms=2.0,
        sample_hz=300,
        base_uw=5e6,
        step_uw=2e6,
        step_layer=4,
        noise_uw=1e5,
        downstream=False,
    )
    result = analyse_model(tmp_path / "synth", make_plots=False)
    folded = pd.read_csv(tmp_path / "synth/synth_layer_power_folded.csv").set_index("layer_name")
    # the step layer: 7 W within 0.15 W; every other layer: 5 W within 0.15 W
    assert folded.loc["layer4", "power_uW"] == pytest.approx(7e6, abs=1.5e5)
    others = folded.drop(index="layer4")["power_uW"]
    assert np.allclose(others, 5e6, atol=1.5e5)
    assert (folded["samples"] >= 20).all()
    assert (folded["ci95_uW"] < 1.5e5).all()
    # window mapping: most layer-inferences hold no sample at all
    assert result["layer_coverage"] < 0.1
    mapped = pd.read_csv(tmp_path / "synth/synth_layer_power.csv")
    assert mapped["layer_power_including_idle_power_micro_watt"].isna().mean() > 0.9
    assert truth["samples"] == result["power_samples"]


def test_window_means_counts_bounds_and_empty_windows():
    t = np.array([10, 20, 30, 40], dtype=np.int64)
    p = np.array([1.0, 2.0, 3.0, 4.0])
    mean, count = window_means(t, p, np.array([10, 21, 0, 40]), np.array([20, 29, 5, 50]))
    assert count.tolist() == [2, 0, 0, 1]
    assert mean[0] == 1.5 and np.isnan(mean[1]) and np.isnan(mean[2]) and mean[3] == 4.0


def test_window_mapping_equals_the_per_row_reference_on_random_data(tmp_path):
    write_folder(
        tmp_path,
        inferences=300,
        layers=7,
        layer_ms=1.7,
        gap_ms=3.0,
        sample_hz=1000,
        step_uw=1e6,
        step_layer=2,
        noise_uw=3e5,
        seed=7,
    )
    folder = tmp_path / "synth"
    latency = folder / "torch_profiling/torch_layer_latency.json"
    ours = map_downstream_files(latency, folder / "synth_power_log.log", 4e6)
    times, powers = read_power_log(folder / "synth_power_log.log")
    reference = pd.DataFrame(map_layers(latency, times, powers, 4e6))
    assert len(ours) == len(reference) == 300 * 7
    assert (ours["samples"].to_numpy() == reference["samples"].to_numpy()).all()
    assert (ours["samples"] > 0).mean() > 0.5  # windows of 1.7 ms at 1 kHz mostly hold samples
    np.testing.assert_allclose(
        ours["power"].to_numpy(float),
        reference["power"].to_numpy(float),
        rtol=1e-12,
        equal_nan=True,
    )
    # The suite's own table works on monotonic nanoseconds, the raw files on microseconds: the
    # two differ only where a sample lies within 1 µs of a window bound.
    analyse_model(folder, make_plots=False)
    table = pd.read_csv(folder / "synth_layer_power.csv").sort_values(["layer_name", "cycle"])
    mine = table["layer_power_including_idle_power_micro_watt"].to_numpy(float)
    theirs = ours.sort_values(["layer_name", "cycle"])["power"].to_numpy(float)
    same = np.isclose(mine, theirs, rtol=1e-9, equal_nan=True)
    assert same.mean() > 0.99


def test_downstream_columns_and_idle(tmp_path):
    write_folder(tmp_path, inferences=50, layers=3, layer_ms=5, sample_hz=1000)
    (tmp_path / "idling_power.json").write_text(json.dumps({"avg_idle_power": 4e6}))
    analyse_model(tmp_path / "synth", make_plots=True)
    table = pd.read_csv(tmp_path / "synth/synth_layer_power.csv")
    assert list(table.columns) == [
        "cycle",
        "layer_name",
        "layer_type",
        "layer_power_including_idle_power_micro_watt",
        "layer_power_excluding_idle_power_micro_watt",
        "layer_run_time",
        "samples",
    ]
    covered = table.dropna()
    assert np.allclose(covered.iloc[:, 3] - covered.iloc[:, 4], 4e6)
    assert set(table["layer_type"]) == {"CaskConvolution", "Reformat"}
    for plot in ("power_timeline", "folded_power", "top_layers"):
        assert (tmp_path / f"synth/synth_{plot}.png").stat().st_size > 1000


def test_truncated_log_is_read_up_to_its_last_whole_line(tmp_path):
    write_folder(tmp_path, inferences=100, layers=3, layer_ms=1, sample_hz=1000, downstream=False)
    rails = tmp_path / "synth/synth_power_rails.csv"
    rails.write_bytes(rails.read_bytes()[:-25])  # cut in the middle of the last line
    result = analyse_model(tmp_path / "synth", make_plots=False)
    assert result["power_lines_dropped"] == 1


@pytest.mark.parametrize(
    "damage,message",
    [
        ("empty", "holds no valid sample"),
        ("missing", "is missing or empty"),
        ("shifted", "does not overlap"),
        ("no_records", "did not reach its profiling pass"),
    ],
)
def test_broken_folders_give_a_clear_message(tmp_path, damage, message):
    write_folder(tmp_path, inferences=100, layers=3, layer_ms=1, sample_hz=1000, downstream=False)
    folder = tmp_path / "synth"
    rails = folder / "synth_power_rails.csv"
    if damage == "empty":
        rails.write_text(rails.read_text().splitlines()[0] + "\n")
    elif damage == "missing":
        rails.unlink()
    elif damage == "shifted":  # a power log from another run (an hour later)
        frame = pd.read_csv(rails)
        frame["mono_ns"] += 3600 * 10**9
        frame.to_csv(rails, index=False)
    else:
        (folder / "torch_profiling/torch_layer_records.csv").unlink()
    with pytest.raises(AnalysisError, match=message):
        analyse_model(folder, make_plots=False)
    result = run_entry(["analyze.py", str(tmp_path), "--no-plots"])
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "summary.csv").exists()


def test_downstream_timestamps_parse_to_nanoseconds_on_every_pandas():
    """pandas 3 parses ``%f`` at microsecond resolution; the unit must not follow the version."""
    import calendar

    from common.clock import wall_strings_to_ns

    got = wall_strings_to_ns(["20240102-03:04:05.123456", "20240102-03:04:05.123457"])
    second = calendar.timegm((2024, 1, 2, 3, 4, 5, 0, 0, 0))
    assert got.dtype == np.int64
    assert got.tolist() == [second * 10**9 + 123_456_000, second * 10**9 + 123_457_000]
