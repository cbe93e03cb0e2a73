"""Isolation power (``model.isolation``) with real processes: the simulated INA3221 (its own
process), the power logger and, end to end, the PyTorch CPU profiler on lenet."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest

from model.isolation import COLUMNS, IsolationError, Layer, PowerTail, isolate_layers
from tests.conftest import run_entry


def host_timer(body) -> float:
    t0 = time.perf_counter()
    body()
    return time.perf_counter() - t0


@pytest.fixture
def logged(sim_tree, tmp_path):
    """The simulated sensor logged into tmp_path/m/m_power_rails.csv by a real logger thread."""
    from common.layout import power_files
    from power.discovery import sysfs_sensor
    from power.logger import log_power

    out = tmp_path / "m"
    sensor = sysfs_sensor(sim_tree)
    stop = threading.Event()
    ready = threading.Event()
    thread = threading.Thread(
        target=log_power,
        args=(sensor, out, "m"),
        kwargs={"should_stop": stop.is_set, "on_ready": ready.set},
    )
    thread.start()
    assert ready.wait(20)
    try:
        yield out / power_files("m")["rails_csv"]
    finally:
        stop.set()
        thread.join(10)
        sensor.close()


def busy():
    return sum(range(2000))


def test_settle_then_enough_updates_and_a_failing_layer_recorded(logged, tmp_path):
    def broken():
        raise RuntimeError("CUDA error: an illegal memory access\nwas encountered")

    layers = [Layer("a:Conv2d", "CaskConvolution", busy), Layer("b:ReLU", "ReLU", broken)]
    layers.append(Layer("c:Linear", "CaskGemmConvolution", busy))
    marks: list[tuple[str, int, int | None]] = []
    out = tmp_path / "m_layer_isolation.csv"
    settle, updates = 0.15, 4
    rows = isolate_layers(
        layers,
        PowerTail(logged),
        out,
        host_timer,
        updates,
        settle,
        idle_uw=4_000_000.0,
        mark=lambda *m: marks.append(m),
    )
    table = pd.read_csv(out)
    assert list(table.columns) == COLUMNS
    assert table["layer_name"].tolist() == ["a:Conv2d", "b:ReLU", "c:Linear"]
    failed = table.set_index("layer_name").loc["b:ReLU"]
    assert failed["error"].startswith("RuntimeError: CUDA error") and "\n" not in failed["error"]
    assert pd.isna(failed["mean_power_W"])
    ok = table[table["error"].isna()]
    assert len(ok) == 2 and (ok["runs"] > 0).all() and len(rows) == 3

    # the rule, checked on the logger's file and the markers, not on the module's own counts
    power = pd.read_csv(logged)
    at = {(event, layer): t for event, t, layer in marks}
    for i, row in ok.iterrows():
        start, end = at["isolation_measure_start", i], at["isolation_measure_end", i]
        assert start - at["isolation_start", i] >= settle * 1e9
        before = power[power["mono_ns"] < start]["board_uW"].iloc[-1:]
        inside = power[(power["mono_ns"] >= start) & (power["mono_ns"] <= end)]["board_uW"]
        values = pd.concat([before, inside]).to_numpy()
        assert (values[1:] != values[:-1]).sum() >= updates
        assert row["distinct_updates"] >= updates and row["samples"] == len(inside)
        assert row["mean_power_W"] == pytest.approx(inside.mean() / 1e6)
        assert row["ci95_low_W"] < row["mean_power_W"] < row["ci95_high_W"]
        assert row["mean_power_excl_idle_W"] == pytest.approx(row["mean_power_W"] - 4.0)
        energy = row["mean_power_W"] * (end - start) / 1e9 / row["runs"] * 1e3
        assert row["energy_per_run_mJ"] == pytest.approx(energy, rel=1e-6)
        assert row["energy_source"] == "mean power x window"


class ThreeCalls:
    """A run that calls its layer three times (a CUDA graph of ``reps`` calls)."""

    reps = 3

    def __init__(self) -> None:
        self.invocations = 0

    def __call__(self) -> None:
        self.invocations += 1
        for _ in range(self.reps):
            busy()


def test_a_run_of_several_calls_counts_each_call(logged, tmp_path):
    run = ThreeCalls()
    out = tmp_path / "m_layer_isolation.csv"
    rows = isolate_layers(
        [Layer("a:BN", "BatchNorm2d", run)], PowerTail(logged), out, host_timer, 3, 0
    )
    # no settle time: one unrecorded chunk of one invocation, then only recorded ones
    assert rows[0]["runs"] == 3 * (run.invocations - 1)


def test_a_layer_whose_release_fails_is_recorded_and_the_next_one_runs(logged, tmp_path):
    def release():
        raise RuntimeError("engine still in use")

    layers = [Layer("a:Conv2d", "CaskConvolution", busy, release=release)]
    layers.append(Layer("b:ReLU", "ReLU", busy))
    out = tmp_path / "m_layer_isolation.csv"
    rows = isolate_layers(layers, PowerTail(logged), out, host_timer, 2, 0)
    assert rows[0]["error"] == "release: RuntimeError: engine still in use"
    assert rows[0]["runs"] > 0 and rows[1]["runs"] > 0 and not rows[1].get("error")
    assert pd.read_csv(out)["layer_name"].tolist() == ["a:Conv2d", "b:ReLU"]


def test_a_power_log_that_stops_growing_ends_isolation(tmp_path, monkeypatch):
    from model import isolation

    monkeypatch.setattr(isolation, "STALL_S", 0.2)
    log = tmp_path / "m_power_rails.csv"
    log.write_text("mono_ns,read_ns,timestamp,board_uW,VDD_IN_uW\n1,1,x,5,5\n")
    with pytest.raises(IsolationError, match="stopped growing"):
        isolate_layers(
            [Layer("a", "A", busy)], PowerTail(log), tmp_path / "t.csv", host_timer, 3, 0
        )


def test_lenet_isolation_end_to_end(tmp_path):
    """``--isolation`` through the two-process measurement: one row per lenet layer call, in
    the engine-info order, each measured after settling with enough sensor updates."""
    import json

    result = tmp_path / "r"
    args = ["--model", "lenet", "--power-source", "sim", "--backend", "torch"]
    args += ["--runs", "10", "--profile-runs", "5", "--warmup", "1", "--result-dir", str(result)]
    args += ["--isolation", "--isolation-updates", "3", "--isolation-settle", "0.05"]
    done = run_entry(["measure_inference_power.py", *args], timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    model_dir = result / "lenet"
    table = pd.read_csv(model_dir / "lenet_layer_isolation.csv")
    info = json.loads((model_dir / "torch_profiling/torch_engine_info.json").read_text())
    assert table["layer_name"].tolist() == [layer["Name"] for layer in info["Layers"]]
    assert table["layer_type"].tolist() == [layer["LayerType"] for layer in info["Layers"]]
    assert table["error"].isna().all()
    assert (table["distinct_updates"] >= 3).all() and (table["runs"] > 0).all()
    assert (table["median_runtime_ms"] > 0).all() and (table["mean_power_W"] > 1).all()
    markers = pd.read_csv(model_dir / "lenet_markers.csv")
    assert (markers["event"] == "isolation_measure_end").sum() == len(table)
    summary = json.loads((model_dir / "lenet_torch.json").read_text())
    assert summary["isolation"] == {
        "layers": len(table),
        "failed": [],
        "file": "lenet_layer_isolation.csv",
    }


def test_isolation_without_a_power_logger_is_a_one_line_error(tmp_path):
    done = run_entry(
        ["-m", "model", "--model", "lenet", "--isolation", "--result-dir", str(tmp_path)]
    )
    assert done.returncode == 2
    assert "measure_inference_power.py --isolation" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) <= 2


def test_traced_kernels_cut_into_layers_that_tile_the_inference():
    """The CUDA path's cut (``model.torch_backend.cut_layers``): a layer's time is its window,
    from the previous layer's end to its last kernel's end (its launch gap included), so the
    layers tile the device span; its kernels' own device time is kept beside it; a layer
    without kernels gets an empty window."""
    from model.torch_backend import cut_layers
    from model.windows import Segment, layer_windows

    kernels = [(100, 150, "a1"), (160, 200, "a2"), (260, 300, "b1"), (310, 400, "d1")]
    layers = [("a", 2), ("b", 1), ("c", 0), ("d", 1)]
    cut = cut_layers(kernels, layers)
    assert cut == [
        ("a", 100 / 1e6, 0, 90 / 1e6),
        ("b", 100 / 1e6, 100, 40 / 1e6),
        ("c", 0.0, 200, 0.0),
        ("d", 100 / 1e6, 200, 90 / 1e6),
    ]
    assert sum(ms for _, ms, *_ in cut) * 1e6 == pytest.approx(400 - 100)
    overlapping = cut_layers([(0, 50, "x1"), (40, 70, "x2")], [("x", 2)])  # union, not sum
    assert overlapping == [("x", 70 / 1e6, 0, 70 / 1e6)]
    windows = layer_windows([Segment(1_000, cut)])  # the busy time rides as a record column
    assert [(w[2], w[3], w[4]) for w in windows] == [
        (1_000, 1_100, 90 / 1e6),
        (1_100, 1_200, 40 / 1e6),
        (1_200, 1_200, 0.0),
        (1_200, 1_300, 90 / 1e6),
    ]


def test_isolation_with_an_engine_file_is_a_one_line_flag_error(tmp_path, monkeypatch, capsys):
    """An engine file has no torch model to split: a flag error (exit 2) in ``python -m model``
    and in the sweep, before anything is measured; ``--backend tensorrt`` alone is accepted."""
    from experiment import sweep
    from tests.conftest import ROOT

    engine = tmp_path / "lenet.engine"
    engine.write_bytes(b"any bytes: the flag rule comes first")
    model_dir = tmp_path / "lenet"
    model_dir.mkdir()
    (model_dir / "lenet_power_rails.csv").write_text("mono_ns,read_ns,timestamp,board_uW\n")
    env = {"PYTHONPATH": f"{ROOT / 'tests' / 'doubles'}:{ROOT}"}
    for backend in ("tensorrt", "auto"):
        args = ["-m", "model", "--model", "lenet", "--backend", backend, "--isolation"]
        args += ["--engine", str(engine), "--result-dir", str(tmp_path)]
        done = run_entry(args, env=env)
        assert done.returncode == 2, done.stderr[-1000:]
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "--engine FILE has no model" in lines[0], done.stderr
        assert "drop --engine" in lines[0] and "Traceback" not in done.stderr
    assert not (model_dir / "lenet_markers.csv").exists()

    with pytest.raises(SystemExit) as end:
        sweep.parse_args(["--models", "lenet", "--engine", str(engine), "--isolation"])
    err = capsys.readouterr().err
    assert end.value.code == 2 and len(err.strip().splitlines()) == 1 and "has no model" in err
    assert sweep.parse_args(["--models", "lenet", "--backend", "tensorrt", "--isolation"]).isolation


def test_leaf_calls_are_captured_in_call_order_before_they_run():
    """``capture_leaf_calls``: the PyTorch backend's names (a module called twice gets ``#2``),
    each input copied before an in-place module changes it, as ordinary tensors (export takes
    no inference tensors)."""
    import torch
    from torch import nn

    from model.isolation import capture_leaf_calls

    torch.manual_seed(0)
    relu = nn.ReLU(inplace=True)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), relu, nn.Conv2d(2, 2, 1), relu).eval()
    x = torch.randn(1, 1, 8, 8)
    calls = capture_leaf_calls(model, x)
    assert [name for name, _, _ in calls] == ["0:Conv2d", "1:ReLU", "2:Conv2d", "1:ReLU#2"]
    assert [module for _, module, _ in calls] == [model[0], relu, model[2], relu]
    with torch.no_grad():
        before_relu = model[0](x)
    (captured,) = calls[1][2]
    assert torch.equal(captured, before_relu) and (captured < 0).any()  # not clamped in place
    assert not any(t.is_inference() for _, _, args in calls for t in args)


LENET_CALLS = ["0:Conv2d", "1:ReLU", "2:MaxPool2d", "3:Conv2d", "4:ReLU", "5:MaxPool2d"]
LENET_CALLS += ["6:Flatten", "7:Linear", "8:ReLU", "9:Linear", "10:ReLU", "11:Linear"]
LENET_TYPES = ["CaskConvolution", "ReLU", "CaskPooling"] * 2
LENET_TYPES += ["Flatten", "CaskGemmConvolution", "ReLU", "CaskGemmConvolution", "ReLU"]
LENET_TYPES += ["CaskGemmConvolution"]


@pytest.mark.parametrize("version", ["2.4", "2.8", "2.13"])
def test_tensorrt_units_compile_alone_and_a_failing_one_is_recorded(
    version, logged, tmp_path, monkeypatch
):
    """Through the ``tensorrt``/``torch_tensorrt`` doubles: every leaf call of lenet (+ an
    Identity) is compiled alone, on its captured input with ``min_block_size`` 1, inside its
    own row; a unit whose build fails and one that leaves nothing to TensorRT get their errors
    and the others are measured through our runtime."""
    import torch
    from torch import nn

    from model.tensorrt_backend import TensorRTBackend
    from model.zoo import lenet
    from tests.test_tensorrt_backend import _use_double

    torch_tensorrt = _use_double(monkeypatch, version)
    import tensorrt

    model = lenet().append(nn.Identity()).eval()  # no op: Torch-TensorRT leaves it to PyTorch
    backend = TensorRTBackend("float32", 3, 5)
    backend.prepare(model, torch.randn(1, 1, 32, 32))
    calls = torch_tensorrt.dynamo.COMPILE_CALLS
    whole = len(calls)
    real_compile = torch_tensorrt.dynamo.compile

    def builder_fails_on_the_second_conv(exported, inputs=None, **kwargs):
        if tuple(inputs[0].shape) == (1, 6, 14, 14):
            raise AssertionError()  # v2.4.0 _TRTInterpreter.run: `assert serialized_engine`
        return real_compile(exported, inputs, **kwargs)

    monkeypatch.setattr(torch_tensorrt.dynamo, "compile", builder_fails_on_the_second_conv)
    layers = backend.isolated_layers()
    assert len(calls) == whole  # nothing compiled yet: each unit compiles in its own row
    assert [layer.name for layer in layers] == [*LENET_CALLS, "12:Identity"]
    tensorrt.EXECUTIONS.clear()
    out = tmp_path / "m_layer_isolation.csv"
    isolate_layers(layers, PowerTail(logged), out, backend.time_block, 3, 0.05)

    table = pd.read_csv(out)
    assert list(table.columns) == COLUMNS
    assert table["layer_name"].tolist() == [*LENET_CALLS, "12:Identity"]
    assert table["layer_type"].tolist() == [*LENET_TYPES, "Identity"]
    errors = table.set_index("layer_name")["error"]
    assert errors["3:Conv2d"].startswith(
        "BackendUnavailable: Torch-TensorRT could not compile layer 3:Conv2d: AssertionError"
    )
    assert "no TensorRT partition" in errors["12:Identity"]
    ok = table[table["error"].isna()]
    assert len(ok) == 11 and (ok["runs"] > 0).all() and (ok["distinct_updates"] >= 3).all()
    assert (ok["median_runtime_ms"] > 0).all() and ok["mean_power_W"].notna().all()
    assert table.loc[table["error"].notna(), "runs"].isna().all()
    assert (ok["prepare_s"] > 0).all()  # each unit's compile, timed in its own row

    units = calls[whole:]  # the failed build never reached the double
    shapes = [(1, 1, 32, 32), (1, 6, 28, 28), (1, 6, 28, 28), (1, 16, 10, 10), (1, 16, 10, 10)]
    shapes += [(1, 16, 5, 5), (1, 400), (1, 120), (1, 120), (1, 84), (1, 84), (1, 10)]
    assert [call["inputs"] for call in units] == [[shape] for shape in shapes]
    assert all(call["min_block_size"] == 1 for call in units)
    assert [call["ops"] for call in units][-1] == 0 and min(c["ops"] for c in units[:-1]) >= 1
    for call in units:  # the whole model's settings otherwise
        assert call["optimization_level"] == 3 and call["max_aux_streams"] == 0
    # every run went through our runtime (the double's engine), none with a profiler attached
    assert len(tensorrt.EXECUTIONS) >= ok["runs"].sum() and not any(tensorrt.EXECUTIONS)


def test_tensorrt_isolation_end_to_end(tmp_path):
    """``--isolation --backend tensorrt`` through the two-process measurement and the doubles
    (Torch-TensorRT 2.8, float16 as on a Jetson): one row per lenet leaf call, each measured."""
    import json

    from tests.conftest import ROOT

    result = tmp_path / "r"
    args = ["--model", "lenet", "--power-source", "sim", "--backend", "tensorrt"]
    args += ["--runs", "10", "--profile-runs", "5", "--warmup", "1", "--result-dir", str(result)]
    args += ["--isolation", "--isolation-updates", "3", "--isolation-settle", "0.05"]
    env = {"PYTHONPATH": f"{ROOT / 'tests' / 'doubles'}:{ROOT}", "EVB_TRT_DOUBLE_VERSION": "2.8"}
    done = run_entry(["measure_inference_power.py", *args], timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    model_dir = result / "lenet"
    table = pd.read_csv(model_dir / "lenet_layer_isolation.csv")
    assert list(table.columns) == COLUMNS
    assert table["layer_name"].tolist() == LENET_CALLS
    assert table["layer_type"].tolist() == LENET_TYPES
    assert table["error"].isna().all()
    assert (table["distinct_updates"] >= 3).all() and (table["runs"] > 0).all()
    assert (table["median_runtime_ms"] > 0).all() and (table["mean_power_W"] > 1).all()
    assert (table["ci95_low_W"] <= table["mean_power_W"]).all()
    assert (table["mean_power_W"] <= table["ci95_high_W"]).all()
    assert (table["energy_per_run_mJ"] > 0).all()
    assert (table["energy_source"] == "mean power x window").all()
    markers = pd.read_csv(model_dir / "lenet_markers.csv")
    assert (markers["event"] == "isolation_measure_end").sum() == len(table)
    summary = json.loads((model_dir / "lenet_tensorrt.json").read_text())
    assert summary["backend"]["torch_tensorrt"] == "2.8.0"
    assert summary["isolation"] == {
        "layers": len(table),
        "failed": [],
        "file": "lenet_layer_isolation.csv",
    }


def test_an_inplace_module_is_compiled_alone_out_of_place(monkeypatch):
    """torchvision's ReLU(inplace=True) would export as a mutation of the unit's only input
    (aten.relu_); the unit is a copy with ``inplace`` off, and the model keeps its module."""
    import torch
    from torch import nn

    from model.tensorrt_backend import TensorRTBackend
    from tests.test_tensorrt_backend import _use_double

    _use_double(monkeypatch, "2.8")
    relu = nn.ReLU(inplace=True)
    backend = TensorRTBackend("float32", 3, 1)  # min_block_size 1: the two ops compile
    backend.prepare(nn.Sequential(nn.Conv2d(1, 2, 3), relu).eval(), torch.randn(1, 1, 8, 8))
    built = []
    backend._build = lambda unit, args, min_block, what: (built.append(unit), (None, None))[1]
    for layer in backend.isolated_layers():
        layer.prepare()
    assert [type(u).__name__ for u in built] == ["Conv2d", "ReLU"]
    assert built[1].inplace is False and built[1] is not relu and relu.inplace is True
