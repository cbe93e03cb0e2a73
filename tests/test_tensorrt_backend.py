"""The TensorRT backend against a double of the ``tensorrt``/``torch_tensorrt`` boundary only
(``tests/doubles``), built from the real engine output in ``tests/fixtures/tensorrt``: its
layer names, types and inspector JSON, and a profiler called in a burst after each partition.
Everything above that boundary (export, passes, window reconstruction, writers) runs for real."""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import time

import pytest

from tests.conftest import ROOT, run_entry

FIXTURES = ROOT / "tests/fixtures/tensorrt"
DOUBLES = ROOT / "tests/doubles"
STAMP = re.compile(r"^\d{8}-\d{2}:\d{2}:\d{2}\.\d{6}$")


@pytest.fixture
def trt_double(monkeypatch):
    """Import the doubles as ``tensorrt`` and ``torch_tensorrt`` for this test."""
    monkeypatch.syspath_prepend(str(DOUBLES))
    for name in [m for m in sys.modules if m.split(".")[0] in ("tensorrt", "torch_tensorrt")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setenv("EVB_TRT_DOUBLE_ENGINE", str(FIXTURES / "resnet18_trt_engine_info.json"))
    monkeypatch.setenv(
        "EVB_TRT_DOUBLE_LATENCY", str(FIXTURES / "resnet18_trt_layer_latency_desktop.json")
    )
    monkeypatch.delenv("CI_BUILD", raising=False)
    importlib.import_module("torch_tensorrt")
    yield sys.modules["torch_tensorrt"]


def _backend(partitions, monkeypatch):
    import torch

    from model.tensorrt_backend import TensorRTBackend
    from model.zoo import lenet

    monkeypatch.setenv("EVB_TRT_DOUBLE_PARTITIONS", str(partitions))
    monkeypatch.setenv("EVB_TRT_DOUBLE_SCALE", "4")  # layers long against Python's overhead
    backend = TensorRTBackend("float32", 3, 5)
    backend.prepare(lenet().eval(), torch.randn(1, 1, 32, 32))
    for _ in range(10):  # warm-up, as the passes do
        backend.infer()
    return backend


@pytest.mark.parametrize("partitions", [1, 2, 3])
def test_windows_lie_inside_their_inference_where_callback_stamps_do_not(
    trt_double, monkeypatch, partitions
):
    from model.windows import layer_windows

    backend = _backend(partitions, monkeypatch)
    assert [name for name, _ in backend.partitions] == [
        f"_run_on_acc_{i}" for i in range(partitions)
    ]
    backend.attach_profilers()
    callback_stamps: dict[str, list[int]] = {}  # the seed's way: host time inside the callback
    for name, profiler in backend._profilers.items():
        report = profiler.report_layer_time

        def stamped(layer, ms, report=report, name=name):
            callback_stamps.setdefault(name, []).append(time.monotonic_ns())
            report(layer, ms)

        profiler.report_layer_time = stamped
    reported = [
        layer["Name"]
        for layer in json.loads((FIXTURES / "resnet18_trt_engine_info.json").read_text())["Layers"]
        if layer["LayerType"] != "NoOp"
    ]
    for _ in range(5):
        callback_stamps.clear()
        backend.synchronize()
        start = time.monotonic_ns()
        segments = backend.profiled_infer(start)
        end = time.monotonic_ns()
        windows = layer_windows(segments)
        assert [w[0] for w in windows] == reported
        starts, ends = [w[2] for w in windows], [w[3] for w in windows]
        assert start <= starts[0] and ends[-1] <= end  # inside the inference
        assert all(s < e for s, e in zip(starts, ends, strict=True))  # ordered
        assert all(e <= s for e, s in zip(ends, starts[1:], strict=False))  # no overlap
        layer_sum = sum(w[1] for w in windows) * 1e6
        assert 0.7 * (end - start) <= layer_sum <= end - start  # ≈ the profiled latency
        # The callback stamps of a partition come in one burst after its last layer ended:
        # stamping layers with them would put every window at the partition's end.
        first = 0
        for (name, _), segment in zip(backend.partitions, segments, strict=True):
            part = windows[first : first + len(segment.layers)]
            first += len(segment.layers)
            stamps = callback_stamps[name]
            part_sum = sum(w[1] for w in part) * 1e6
            assert max(stamps) - min(stamps) < 0.3 * part_sum
            assert min(stamps) >= part[-1][3] - 50_000
            assert part[0][3] < min(stamps) - 0.5 * part_sum


def test_engine_info_of_every_partition_in_execution_order(trt_double, monkeypatch):
    backend = _backend(3, monkeypatch)
    fixture = json.loads((FIXTURES / "resnet18_trt_engine_info.json").read_text())
    assert backend.engine_info() == {"Layers": fixture["Layers"]}
    assert [p["layers"] for p in backend.describe()["partitions"]] == [9, 9, 8]


def test_compile_asks_for_detailed_profiling_without_the_progress_monitor(trt_double, monkeypatch):
    import torch

    backend = _backend(1, monkeypatch)
    call = trt_double.dynamo.COMPILE_CALLS[-1]
    assert call["debug"] is True and call["CI_BUILD"] == "1"
    assert call["use_python_runtime"] is True
    assert call["enabled_precisions"] == {torch.float32}
    assert call["optimization_level"] == 3 and call["min_block_size"] == 5
    assert not any(m.profiling_enabled for _, m in backend.partitions)


def test_timing_pass_runs_without_profilers(trt_double, monkeypatch):
    backend = _backend(2, monkeypatch)
    backend.timed_infer()
    assert all(m.context.profiler is None for _, m in backend.partitions)


def test_cli_writes_the_downstream_layout(tmp_path):
    env = {
        "PYTHONPATH": f"{DOUBLES}{os.pathsep}{ROOT}",
        "EVB_TRT_DOUBLE_ENGINE": str(FIXTURES / "resnet18_trt_engine_info.json"),
        "EVB_TRT_DOUBLE_LATENCY": str(FIXTURES / "resnet18_trt_layer_latency_desktop.json"),
        "EVB_TRT_DOUBLE_PARTITIONS": "2",
    }
    result = run_entry(
        [
            "-m",
            "model",
            "--model",
            "lenet",
            "--backend",
            "tensorrt",
            "--dtype",
            "float32",
            "--runs",
            "30",
            "--warmup",
            "3",
            "--result-dir",
            str(tmp_path),
        ],
        env=env,
    )
    assert result.returncode == 0, result.stderr
    model = tmp_path / "lenet"
    summary = json.loads((model / "lenet_tensorrt.json").read_text())
    desktop = json.loads((FIXTURES / "resnet18_tensorrt_desktop.json").read_text())
    desktop = json.loads(desktop) if isinstance(desktop, str) else desktop  # stored as a string
    assert set(desktop) <= set(summary)
    assert set(desktop["config"]) - {"save_result"} <= set(summary["config"])
    assert len(summary["latencies"]) == 30
    assert summary["avg_throughput"] == pytest.approx(1 / summary["avg_latency"])
    engine = json.loads((model / "trt_profiling/trt_engine_info.json").read_text())
    assert (
        engine["Layers"]
        == json.loads((FIXTURES / "resnet18_trt_engine_info.json").read_text())["Layers"]
    )
    latency = json.loads((model / "trt_profiling/trt_layer_latency.json").read_text())
    profiled = [layer["Name"] for layer in engine["Layers"] if layer["LayerType"] != "NoOp"]
    assert list(latency) == profiled  # every profiled layer, in execution order
    for pairs in latency.values():
        assert len(pairs) == 30
        for ms, stamp in pairs:
            assert isinstance(ms, float) and STAMP.match(stamp)
    profile = json.loads((model / "trt_profiling/trt_profile.json").read_text())
    assert profile[0] == {"count": 30}
    assert {"name", "timeMs", "averageMs", "medianMs", "percentage"} <= set(profile[1])
    assert sum(p["percentage"] for p in profile[1:]) == pytest.approx(100.0)
