"""The TensorRT backend against doubles of the ``tensorrt``/``torch_tensorrt`` boundary only
(``tests/doubles``, built from the upstream sources named in their docstrings and the real engine
output in ``tests/fixtures/tensorrt``), in the shapes of Torch-TensorRT 2.4, 2.8 and 2.13.
Everything above that boundary (export, our TensorRT runtime, passes, windows, writers) runs for
real. The model does not matter to the double (it serves the resnet18 engine), so lenet is used."""

from __future__ import annotations

import contextlib
import importlib
import itertools
import json
import os
import re
import sys

import pytest

from tests.conftest import ROOT, run_entry

FIXTURES = ROOT / "tests/fixtures/tensorrt"
DOUBLES = ROOT / "tests/doubles"
VERSIONS = ["2.4", "2.8", "2.13"]
STAMP = re.compile(r"^\d{8}-\d{2}:\d{2}:\d{2}\.\d{6}$")
FIXTURE_LAYERS = json.loads((FIXTURES / "resnet18_trt_engine_info.json").read_text())["Layers"]


def _use_double(monkeypatch, version: str):
    monkeypatch.syspath_prepend(str(DOUBLES))
    for name in [m for m in sys.modules if m.split(".")[0] in ("tensorrt", "torch_tensorrt")]:
        monkeypatch.delitem(sys.modules, name)
    for var in ("EVB_TRT_DOUBLE_ENGINE", "EVB_TRT_DOUBLE_LATENCY", "CI_BUILD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("EVB_TRT_DOUBLE_VERSION", version)
    monkeypatch.setenv("EVB_TRT_DOUBLE_SCALE", "4")  # layers long against Python's overhead
    return importlib.import_module("torch_tensorrt")


@pytest.fixture(params=VERSIONS)
def any_version(request, monkeypatch):
    return _use_double(monkeypatch, request.param)


@pytest.fixture
def v24(monkeypatch):
    return _use_double(monkeypatch, "2.4")


def _backend(monkeypatch, partitions=1, aux=0, engine_file=None):
    import torch

    from model.tensorrt_backend import TensorRTBackend
    from model.zoo import lenet

    monkeypatch.setenv("EVB_TRT_DOUBLE_PARTITIONS", str(partitions))
    backend = TensorRTBackend("float32", 3, 5, aux, engine_file)
    backend.prepare(lenet().eval(), torch.randn(1, 1, 32, 32))
    for _ in range(3):  # warm-up, as the passes do
        backend.infer()
    return backend


def _profile(backend, runs):
    """(segments, windows) per profiled run."""
    from model.windows import layer_windows

    out = []
    for _ in range(runs):
        segments = backend.profiled_infer(0)
        out.append((segments, layer_windows(segments)))
    return out


def test_each_version_compiles_and_profiles_every_partition(any_version, monkeypatch):
    version = any_version.VERSION
    backend = _backend(monkeypatch, partitions=2)
    call = any_version.dynamo.COMPILE_CALLS[-1]
    assert call["max_aux_streams"] == 0
    if version < (2, 8):
        assert call["debug"] is True and os.environ["CI_BUILD"] == "1"
    else:
        assert call["debugger"]["engine_builder_monitor"] is False
    assert backend.describe()["profiling_verbosity"] == "DETAILED"
    assert [name for name, _ in backend.partitions] == ["_run_on_acc_0", "_run_on_acc_1"]
    assert backend.engine_info() == {"Layers": FIXTURE_LAYERS}  # every partition, in order
    backend.attach_profilers()
    for segments, windows in _profile(backend, 3):
        assert len(segments) == 2
        assert [w[0] for w in windows] == [layer["Name"] for layer in FIXTURE_LAYERS]


def test_the_2_8_debugger_with_the_python_runtime_raises_the_real_error(monkeypatch):
    import torch

    from model.zoo import lenet

    torch_tensorrt = _use_double(monkeypatch, "2.8")
    example = torch.randn(1, 1, 32, 32)
    exported = torch.export.export(lenet().eval(), (example,))
    with pytest.raises(ValueError, match="Profiling with TREX can only be enabled"):
        with torch_tensorrt.dynamo.Debugger(save_engine_profile=True):
            torch_tensorrt.dynamo.compile(exported, [example], use_python_runtime=True)


def test_too_few_ops_for_min_block_size_leave_the_graph_to_pytorch(
    any_version, monkeypatch, caplog
):
    """The doubles' ``compile_module`` rule (``dynamo/_compiler.py`` at each tag): a graph with no
    op, or fewer than ``min_block_size``, comes back with no TensorRT partition and a warning;
    one module alone gets one partition with ``min_block_size=1``, however many are asked."""
    import torch
    from torch import nn

    monkeypatch.setenv("EVB_TRT_DOUBLE_PARTITIONS", "2")
    x = torch.randn(1, 4)

    def partitions(module, min_block_size):
        exported = torch.export.export(module, (x,))
        compiled = any_version.dynamo.compile(exported, [x], min_block_size=min_block_size)
        return [name for name, _ in compiled.named_children() if name.startswith("_run_on_acc")]

    assert partitions(nn.ReLU(), 5) == []
    assert "Skipping this subgraph, since min_block_size was detected to be 5" in caplog.text
    assert partitions(nn.ReLU(), 1) == ["_run_on_acc_0"]  # one op: one partition at most
    assert partitions(nn.Identity(), 1) == []  # no op at all
    assert [call["ops"] for call in any_version.dynamo.COMPILE_CALLS[-3:]] == [1, 1, 0]


def test_windows_end_where_the_layers_end_inside_the_stamped_span(any_version, monkeypatch):
    backend = _backend(monkeypatch)
    backend.attach_profilers()
    ((_, engine),) = backend.partitions
    late, early = [], []
    for _ in range(8):
        ((segment,), windows) = _profile(backend, 1)[0]
        start, end = segment.anchor_ns, segment.end_ns
        assert all(start <= w[2] <= w[3] <= end for w in windows)  # inside the stamped span
        assert windows[-1][3] == end  # the last one ends at the end stamp
        assert all(a[3] <= b[2] for a, b in itertools.pairwise(windows))
        assert segment.slack_ns == end - start - sum(round(w[1] * 1e6) for w in windows)
        assert {w[4] for w in windows} == {segment.slack_ns} and segment.slack_ns > 0
        true_end = engine.context.last_run[-1][1]  # when the double's last layer really ended
        late.append(windows[-1][3] - true_end)
        cumulative_end = start + sum(round(w[1] * 1e6) for w in windows)  # the old placement
        early.append(true_end - cumulative_end)
    # Our last window never ends before the layer did, and it ends closer to the true end than
    # the cumulative placement from the start stamp, which ends about a whole slack too early.
    assert all(d >= 0 for d in late)
    assert sum(d < e for d, e in zip(late, early, strict=True)) >= 6


def test_noop_layers_are_kept_at_zero_ms(v24, monkeypatch):
    backend = _backend(monkeypatch)
    backend.attach_profilers()
    noops = [layer["Name"] for layer in FIXTURE_LAYERS if layer["LayerType"] == "NoOp"]
    ((_, windows),) = _profile(backend, 1)
    assert [w[1] for w in windows if w[0] in noops] == [0.0, 0.0]


def test_a_lost_report_drops_the_run_and_is_counted(v24, monkeypatch, capfd):
    backend = _backend(monkeypatch, partitions=2)
    backend.attach_profilers()
    profiler = backend._profilers["_run_on_acc_1"]
    report, calls = profiler.report_layer_time, []

    def flaky(layer, ms):
        calls.append(layer)
        if len(calls) == 3:  # the third report of the second partition's first run
            raise RuntimeError("lost")
        report(layer, ms)

    profiler.report_layer_time = flaky
    results = _profile(backend, 3)
    assert "[ERROR] Exception caught in report_layer_time(): lost" in capfd.readouterr().err
    assert [len(windows) for _, windows in results] == [0, 26, 26]
    figures = backend.profiling_report()
    assert figures["dropped_runs"] == 1 and figures["kept_runs"] == 2
    assert figures["slack_ms"]["count"] == 4  # two partitions × two kept runs


def test_the_timing_pass_runs_with_no_profiler_attached(v24, monkeypatch, tmp_path):
    import tensorrt

    from common.clock import Clock
    from model.benchmark import BenchConfig, run_benchmark
    from model.zoo import lenet

    monkeypatch.setenv("EVB_TRT_DOUBLE_PARTITIONS", "2")
    from model.tensorrt_backend import TensorRTBackend

    cfg = BenchConfig("lenet", "float32", [1, 1, 32, 32], 2, 5, 3, 5, str(tmp_path), "tensorrt",
                      "random", 3)  # fmt: skip
    tensorrt.EXECUTIONS.clear()
    summary = run_benchmark(cfg, TensorRTBackend("float32", 3, 5), lenet, Clock.from_env())
    # per partition: warm-up and timing runs without a profiler, then the profiled runs with one
    assert tensorrt.EXECUTIONS == [False] * 2 * (2 + 5) + [True] * 2 * 3
    assert len(summary["latencies"]) == 5 and summary["profiling"]["kept_runs"] == 3


def test_aux_stream_layers_get_overlapping_windows(v24, monkeypatch):
    backend = _backend(monkeypatch, aux=-1)  # TensorRT's choice: the double uses stream 1
    assert backend.torch_tensorrt.dynamo.COMPILE_CALLS[-1]["max_aux_streams"] is None
    assert backend.describe()["partitions"][0]["aux_stream_layers"] == 3
    backend.attach_profilers()
    (((segment,), windows),) = _profile(backend, 1)
    main = [w for w in windows if w[5] == 0]
    aux = [w for w in windows if w[5] != 0]
    assert len(aux) == 3 and all("downsample" in w[0] for w in aux)
    assert all(a[3] <= b[2] for a, b in itertools.pairwise(main))  # main: in sequence
    for w in aux:  # each aux-stream window overlaps a main-stream one
        assert any(m[2] < w[3] and w[2] < m[3] for m in main)
    assert main[-1][3] == segment.end_ns


def test_aux_stream_layers_are_left_out_of_the_layer_sum(v24, monkeypatch, tmp_path):
    """They ran beside main-stream layers: adding them would count that time twice."""
    import pandas as pd

    from common.clock import Clock
    from model.benchmark import BenchConfig, run_benchmark
    from model.tensorrt_backend import TensorRTBackend
    from model.zoo import lenet

    cfg = BenchConfig("lenet", "float32", [1, 1, 32, 32], 2, 5, 3, 5, str(tmp_path), "tensorrt",
                      "random", 3, max_aux_streams=-1)  # fmt: skip
    backend = TensorRTBackend("float32", 3, 5, -1)
    summary = run_benchmark(cfg, backend, lenet, Clock.from_env())["profiling"]
    records = pd.read_csv(next(tmp_path.glob("lenet/*/*_layer_records.csv")))
    aux = set(records.loc[records["stream"] != 0, "layer"])
    assert summary["concurrent_layers_not_summed"] == len(aux) == 3
    main = records[~records["layer"].isin(aux)].groupby("layer")["latency_ms"].median()
    assert summary["sum_of_layer_medians_ms"] == pytest.approx(main.sum())


def test_cuda_graphs_are_refused(monkeypatch):
    from model.backend import BackendUnavailable

    torch_tensorrt = _use_double(monkeypatch, "2.8")
    torch_tensorrt.runtime.set_cudagraphs_mode(True)
    with pytest.raises(BackendUnavailable, match="CUDA graphs are on"):
        _backend(monkeypatch)


def test_an_engine_file_is_profiled_the_same_way(monkeypatch, tmp_path):
    from model.backend import BackendUnavailable

    engine = _engine_file(monkeypatch, tmp_path / "lenet.engine")
    backend = _backend(monkeypatch, engine_file=str(engine))
    assert backend.describe()["profiling_verbosity"] == "LAYER_NAMES_ONLY"  # built without
    backend.attach_profilers()
    ((_, windows),) = _profile(backend, 1)
    assert [w[0] for w in windows] == [layer["Name"] for layer in FIXTURE_LAYERS]
    (tmp_path / "bad.engine").write_bytes(b"not an engine")
    with pytest.raises(BackendUnavailable, match="could not deserialize"):
        _backend(monkeypatch, engine_file=str(tmp_path / "bad.engine"))


def test_an_input_of_another_dtype_than_the_engine_takes_is_refused(monkeypatch, tmp_path):
    """The engine reads the bytes at the bound address as its own input type: a float16 tensor
    bound to a float32 input would be misread, not converted."""
    import torch

    engine = _engine_file(monkeypatch, tmp_path / "lenet.engine")
    backend = _backend(monkeypatch, engine_file=str(engine))
    assert backend.input.dtype == torch.float32  # the engine file's own input type
    backend.infer()
    backend.input = backend.input.half()
    with pytest.raises(RuntimeError, match=r"takes \S+ as torch\.float32, got torch\.float16"):
        backend.infer()


def test_placement_when_the_layers_exceed_the_span():
    from model.windows import Segment, layer_windows

    segment = Segment(1000, [("a", 0.002, None), ("b", 0.002, None)], end_ns=4000)
    windows = layer_windows([segment])
    assert segment.slack_ns == -1000
    assert all(1000 <= w[2] <= w[3] <= 4000 for w in windows) and windows[-1][3] == 4000


def _engine_file(monkeypatch, path, detailed=False):
    """A serialized engine of the whole model, from the 2.8 double's
    ``convert_exported_program_to_serialized_trt_engine`` (DETAILED inside a Debugger)."""
    import torch

    from model.zoo import lenet

    torch_tensorrt = _use_double(monkeypatch, "2.8")
    example = torch.randn(1, 1, 32, 32)
    exported = torch.export.export(lenet().eval(), (example,))
    debugger = torch_tensorrt.dynamo.Debugger(save_engine_profile=True)
    with debugger if detailed else contextlib.nullcontext():
        path.write_bytes(
            torch_tensorrt.dynamo.convert_exported_program_to_serialized_trt_engine(
                exported, [example], enabled_precisions={torch.float32}, max_aux_streams=0
            )
        )
    return path


def test_cli_writes_the_downstream_layout_with_the_default_fixtures(monkeypatch, tmp_path):
    """Through ``--engine`` (no second ``torch.export`` in a fresh process: slow); the compile
    path runs in the tests above, and from the command line as in the README."""
    engine = _engine_file(monkeypatch, tmp_path / "lenet.engine", detailed=True)
    env = {"PYTHONPATH": f"{DOUBLES}{os.pathsep}{ROOT}"}
    env.update({k: "" for k in os.environ if k.startswith("EVB_TRT_DOUBLE_")})  # empty = unset
    args = ["-m", "model", "--model", "lenet", "--backend", "tensorrt", "--dtype", "float32"]
    args += ["--runs", "20", "--warmup", "2", "--engine", str(engine)]
    result = run_entry([*args, "--result-dir", str(tmp_path)], env=env)
    assert result.returncode == 0, result.stderr
    model = tmp_path / "lenet"
    summary = json.loads((model / "lenet_tensorrt.json").read_text())
    desktop = json.loads((FIXTURES / "resnet18_tensorrt_desktop.json").read_text())
    desktop = json.loads(desktop) if isinstance(desktop, str) else desktop  # stored as a string
    assert set(desktop) <= set(summary)
    assert set(desktop["config"]) - {"save_result"} <= set(summary["config"])
    assert summary["config"]["engine"] == str(engine)
    assert summary["backend"]["torch_tensorrt"] == "2.4.0"  # the default shape
    assert len(summary["latencies"]) == 20
    assert summary["avg_throughput"] == pytest.approx(1 / summary["avg_latency"])
    slack = summary["profiling"]["slack_ms"]
    assert slack["count"] == 20 and 0 < slack["min"] <= slack["median"] <= slack["max"]
    info = json.loads((model / "trt_profiling/trt_engine_info.json").read_text())
    assert info["Layers"] == FIXTURE_LAYERS
    latency = json.loads((model / "trt_profiling/trt_layer_latency.json").read_text())
    assert list(latency) == [layer["Name"] for layer in FIXTURE_LAYERS]  # NoOp layers too
    for pairs in latency.values():
        assert len(pairs) == 20
        assert all(isinstance(ms, float) and STAMP.match(stamp) for ms, stamp in pairs)
    header = (model / "trt_profiling/trt_layer_records.csv").read_text().splitlines()[0]
    assert header == "run,layer,latency_ms,start_mono_ns,end_mono_ns,slack_ns,stream"
    bad = run_entry([*args[:-1], "nope", "--result-dir", str(tmp_path / "x")], env=env)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
