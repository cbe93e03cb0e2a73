"""The sensor model, the refresh fit and the sensor-aware estimator, against known truths
(``analysis.phantom`` folders built from a real resnet18 layer profile)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import phantom
from analysis.estimates import ESTIMATE_COLUMNS
from analysis.load import LayerRecords
from analysis.report import analyse_model
from analysis.sensor_lsq import design_matrix
from power.sensor_model import refresh_fits, window_means

PROFILE = Path(__file__).parent / "fixtures/profiles/resnet18_torch_cpu_layers.json"


@pytest.mark.parametrize("drift_ppm", [2000.0, -2500.0, 300.0])
def test_refresh_fit_recovers_a_drifting_chip_read_in_step_with_its_nominal_rate(drift_ppm):
    rng = np.random.default_rng(1)
    period = 6.6e6 * (1 + drift_ppm * 1e-6)
    phase = rng.uniform(0, period)
    refresh = phase + np.arange(6000) * period  # 40 s
    t0 = np.arange(12000) * 3.3e6 + rng.exponential(30e3, 12000)  # twice per nominal refresh
    read = rng.uniform(80e3, 250e3, 12000)
    k = np.searchsorted(refresh, t0 + read * rng.uniform(0, 1, 12000), side="right") - 1
    values = np.where(k >= 0, k, -1).astype(float)  # every refresh brings a new value
    stamp = (t0 + read / 2).astype(np.int64)
    fits = refresh_fits(stamp, read, values, 6.6e6)
    best = fits[0]
    assert best.drift_ppm == pytest.approx(drift_ppm, abs=10)
    offset = (best.phase_ns - phase + period / 2) % period - period / 2
    assert abs(offset) < 50e3  # 50 µs
    assert best.bounds_met > 0.99


def test_design_matrix_holds_each_reading_windows_shares():
    records = LayerRecords(
        run=np.array([0, 0]),
        layer=np.array([0, 1]),
        latency_ms=np.array([0.001, 0.002]),
        start_ns=np.array([100, 200]),
        end_ns=np.array([200, 400]),
        names=["a", "b"],
        types=["", ""],
    )
    start = np.array([50.0, 150.0, 300.0, 500.0])
    end = np.array([150.0, 250.0, 500.0, 600.0])
    m = design_matrix(records, start, end).toarray()
    np.testing.assert_allclose(
        m, [[0.5, 0, 0.5], [0.5, 0.5, 0], [0, 0.5, 0.5], [0, 0, 1.0]], atol=1e-12
    )


def test_window_means_of_a_piecewise_constant_signal_are_exact():
    edges = np.array([0.0, 10.0, 20.0])
    levels = np.array([1.0, 3.0])
    got = window_means(
        edges, levels, np.array([0.0, 5.0, 15.0, -10.0]), np.array([10.0, 15.0, 30.0, 0.0])
    )
    np.testing.assert_allclose(got, [1.0, 2.0, 3.0, 1.0])


@pytest.fixture(scope="module")
def small_phantom(tmp_path_factory):
    """150 inferences of real resnet18 layer windows (×0.05), INA3221 physics, analysed."""
    folder = tmp_path_factory.mktemp("phantom")
    profile = phantom.load_profile(PROFILE)
    paths = phantom.write_records(folder, profile, 150, time_scale=0.05, seed=3)
    truth = phantom.make_truth(len(profile["names"]), seed=3)
    phantom.rewrite_power(paths, truth, seed=3)
    result = analyse_model(paths.model_dir, make_plots=False)
    return paths, truth, result


def test_phantom_sensor_lsq_is_accurate_and_its_intervals_cover_the_truth(small_phantom):
    paths, truth, result = small_phantom
    estimates = pd.read_csv(paths.layer_power_estimates)
    scores = phantom.score(paths, truth, estimates).set_index("method")
    lsq = scores.loc["sensor_lsq"]
    assert lsq["layers"] >= 20
    assert lsq["median_err_above_idle_pct"] < 5.0
    assert lsq["coverage_pct"] >= 80.0
    # the sensor-blind methods are far off on the same data, and their intervals do not cover
    assert scores.loc["folded", "median_err_above_idle_pct"] > 3 * lsq["median_err_above_idle_pct"]
    assert scores.loc["folded", "coverage_pct"] < 60.0
    fit = result["sensor_lsq"]["refresh_fit"]
    assert fit["drift_ppm"] == pytest.approx(1500, abs=50)
    assert result["sensor_lsq"]["model"]["kind"] == "ina3221"


def test_estimates_table_has_every_layer_for_every_method(small_phantom):
    paths, truth, result = small_phantom
    table = pd.read_csv(paths.layer_power_estimates)
    assert list(table.columns[: len(ESTIMATE_COLUMNS)]) == ESTIMATE_COLUMNS
    names = json.loads(paths.layer_names.read_text())
    for method in ("sensor_lsq", "folded", "window"):
        part = table[table["method"] == method]
        assert sorted(part["layer_name"]) == sorted(names)
    lsq = table[table["method"] == "sensor_lsq"]
    assert (lsq["ci95_low_uW"] <= lsq["power_uW"]).all()
    assert (lsq["power_uW"] <= lsq["ci95_high_uW"]).all()
    np.testing.assert_allclose(lsq["power_excl_idle_uW"], lsq["power_uW"] - truth["idle_uW"])
    assert (lsq["n_readings"] > 0).all()
    # closure: layers + between-layer time of a profiled inference vs the timing pass, whose
    # phantom power is that inference's mean: equal within the inference span's definition
    assert result["sensor_lsq"]["closure_vs_timing_pass"] == pytest.approx(1.0, abs=0.1)


def test_a_folder_without_a_sensor_description_is_solved_as_instant_readings(tmp_path):
    from analysis.synthetic import write_folder

    write_folder(tmp_path, inferences=200, layers=4, layer_ms=2.0, sample_hz=1000, downstream=False)
    result = analyse_model(tmp_path / "synth", make_plots=False)
    assert result["sensor_lsq"]["model"]["kind"] == "instant"
    table = pd.read_csv(tmp_path / "synth/synth_layer_power_estimates.csv")
    lsq = table[table["method"] == "sensor_lsq"]
    np.testing.assert_allclose(lsq["power_uW"], 5e6, rtol=1e-6)


@pytest.mark.parametrize("samples,model", [(None, "Ina3221"), (1, "Ina3221"), (4, "Instant")])
def test_a_chip_that_averages_is_not_given_the_conversion_window_model(samples, model):
    from power.sensor_model import for_sensor

    rails = [
        {"name": name, "chip": "1-0040", "driver": "ina3221", "samples": samples}
        for name in ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC")
    ]
    found, _ = for_sensor({"rails": rails, "board_input_rails": ["VDD_IN"]})
    assert type(found).__name__ == model
