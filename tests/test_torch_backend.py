"""The PyTorch backend for real on this machine's CPU: hooks, windows and the output schema
(the same schemas as the TensorRT layout, under backend names)."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from tests.conftest import run_entry

STAMP = re.compile(r"^\d{8}-\d{2}:\d{2}:\d{2}\.\d{6}$")


@pytest.mark.parametrize(
    "model,layers_at_least,conv_groups",
    [
        ("lenet", 12, None),
        ("resnet18", 50, None),
        pytest.param("mobilenet_v2", 100, 32, marks=pytest.mark.slow),  # depthwise groups
    ],
)
def test_profiles_a_model_on_the_cpu(tmp_path, model, layers_at_least, conv_groups):
    result = run_entry(
        [
            "-m",
            "model",
            "--model",
            model,
            "--backend",
            "torch",
            "--weights",
            "random",
            "--runs",
            "6",
            "--warmup",
            "2",
            "--profile-runs",
            "5",
            "--result-dir",
            str(tmp_path),
        ],
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    folder = tmp_path / model
    summary = json.loads((folder / f"{model}_torch.json").read_text())
    assert summary["config"]["backend"] == "torch" and summary["config"]["model"] == model
    assert len(summary["latencies"]) == 6 and all(x > 0 for x in summary["latencies"])
    assert summary["backend"]["dtype_asked"] == "float16"
    assert summary["backend"]["dtype_used"] == "float32"  # documented CPU fallback
    assert summary["backend"]["execution"] == "eager"  # CUDA graphs are CUDA's only
    windows = summary["profiling"]["median_sum_of_windows_per_timing_median"]
    assert windows > 0 and summary["profiling"]["concurrent_layers_not_summed"] == 0
    engine = json.loads((folder / "torch_profiling/torch_engine_info.json").read_text())
    layers = engine["Layers"]
    assert len(layers) >= layers_at_least
    for layer in layers:
        assert {"Name", "LayerType", "Inputs", "Outputs"} <= set(layer)
        assert all("Dimensions" in t for t in layer["Inputs"] + layer["Outputs"])
    convs = [layer for layer in layers if layer["LayerType"] == "CaskConvolution"]
    assert convs and all(
        {"Kernel", "Stride", "PrePadding", "PostPadding", "Dilation"} <= set(c) for c in convs
    )
    if conv_groups:  # depthwise convolutions keep their groups
        assert any(c["Groups"] == conv_groups for c in convs)
    latency = json.loads((folder / "torch_profiling/torch_layer_latency.json").read_text())
    assert list(latency) == [layer["Name"] for layer in layers]
    for pairs in latency.values():
        assert len(pairs) == 5 and all(ms > 0 and STAMP.match(ts) for ms, ts in pairs)
    records = pd.read_csv(folder / "torch_profiling/torch_layer_records.csv")
    markers = pd.read_csv(folder / f"{model}_markers.csv")
    starts = markers[markers.event == "inference_start"].set_index("run")["mono_ns"]
    for run, group in records.groupby("run"):
        assert (group.start_mono_ns >= starts[run]).all()
        assert group.start_mono_ns.is_monotonic_increasing
        assert (group.end_mono_ns > group.start_mono_ns).all()
    phases = list(markers[markers.run.isna()].event)
    assert phases == [
        "load_start",
        "load_end",
        "compile_start",
        "compile_end",
        "warmup_start",
        "warmup_end",
        "timing_start",
        "timing_end",
        "profiling_start",
        "profiling_end",
    ]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model", "resnet81"], "resnet18"),
        (["--model", "lenet", "--input-shape", "1", "0", "32", "32"], "4 positive integers"),
        (["--model", "lenet", "--runs", "0"], "--runs"),
        (["--model", "lenet", "--dtype", "int8"], "invalid choice"),
        (["--model", "lenet", "--optimization-level", "9"], "between 0 and 5"),
    ],
)
def test_bad_input_gets_one_line_before_any_model_loads(tmp_path, args, message):
    result = run_entry(["-m", "model", *args, "--result-dir", str(tmp_path)])
    assert result.returncode in (2, 3)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not any(tmp_path.iterdir())


def test_unavailable_imagenet_weights_name_torch_home(tmp_path):
    result = run_entry(
        [
            "-m",
            "model",
            "--model",
            "resnet18",
            "--backend",
            "torch",
            "--runs",
            "2",
            "--result-dir",
            str(tmp_path),
        ],
        env={
            "TORCH_HOME": str(tmp_path / "empty"),
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "HTTP_PROXY": "http://127.0.0.1:9",
        },
    )
    assert result.returncode == 3
    assert "TORCH_HOME" in result.stderr and "--weights random" in result.stderr
    assert "Traceback" not in result.stderr


# --- the CUDA path's bookkeeping, on the CPU: only the device boundary (CUPTI's kernel list,
# graph capture, CUDA timing) is replaced. Kernel names are as CUPTI reports them on torch 2.4
# (a graph replay first runs two FillFunctor kernels for its RNG state, pytorch PR 143777 made
# them conditional in 2.7) and torch.cuda._sleep's "spin_kernel".

FILL = "void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<long>>"
SPIN = "spin_kernel(long)"


class _Graph:
    def __init__(self, body):
        self.body = body

    def replay(self):
        self.body()


def _fake_cuda_backend(monkeypatch):
    import torch
    from torch import nn

    from model.torch_backend import TorchBackend

    monkeypatch.setattr(torch.cuda, "_sleep", lambda cycles: None)
    backend = TorchBackend("float32", "cpu")
    backend.prepare(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Identity()), torch.randn(1, 4))
    backend.capture = lambda body: (body(), _Graph(body))[1]  # one pass, as a capture records
    return backend


def _kernels(names):
    return [(1000 * i, 1000 * i + 600, name) for i, name in enumerate(names)]


def test_calibration_counts_kernels_per_layer_after_a_graph_prologue(monkeypatch):
    from model import torch_backend

    backend = _fake_cuda_backend(monkeypatch)
    marked = [FILL, FILL, SPIN, "gemm", "bias", SPIN, "relu", SPIN]
    traces = iter([_kernels(marked), _kernels([FILL, FILL, "gemm", "bias", "relu"])])
    monkeypatch.setattr(torch_backend, "trace", lambda torch, body: next(traces))
    layers, prologue = torch_backend.calibrate(backend, _Graph(lambda: None))
    assert prologue == 2
    assert layers == [("0:Linear", 2), ("1:ReLU", 1), ("2:Identity", 0)]

    other = iter([_kernels(marked), _kernels([FILL, "gemm", "bias", "relu"])])
    monkeypatch.setattr(torch_backend, "trace", lambda torch, body: next(other))
    with pytest.raises(RuntimeError, match="replays 4 kernels, the marked one 5"):
        torch_backend.calibrate(backend, _Graph(lambda: None))


def test_traced_batches_drop_the_prologue_and_a_batch_with_a_stray_kernel(monkeypatch):
    from model import torch_backend

    backend = _fake_cuda_backend(monkeypatch)
    backend.layer_kernels, backend.prologue = [("a", 2), ("b", 1)], 2
    monkeypatch.setattr(torch_backend, "RESUME_S", 0.0)
    monkeypatch.setattr(torch_backend._KernelTrace, "_start", lambda self: None)
    trace = torch_backend._KernelTrace(backend)

    class Stopped:
        def stop(self):
            pass

    inference = [FILL, FILL, "a1", "a2", "b1"]
    monkeypatch.setattr(torch_backend, "device_kernels", lambda p: _kernels(inference * 2))
    trace.profiler, trace.anchors, trace.runs = Stopped(), [10, 20], [0, 1]
    done = trace.collect(last=True)
    assert [run for run, _ in done] == [0, 1]
    first = done[0][1][0].layers  # starts at "a1", the first kernel after the prologue
    assert [(name, offset) for name, _, offset, _ in first] == [("a", 0), ("b", 1600)]
    assert done[1][1][0].layers[0][2] == 0  # each inference measured from its own first layer
    assert len(trace.pauses) == 1 and trace.pauses[0][0] <= trace.pauses[0][1]

    monkeypatch.setattr(torch_backend, "device_kernels", lambda p: _kernels([*inference, "x"]))
    trace.profiler, trace.anchors, trace.runs = Stopped(), [30], [2]
    assert trace.collect(last=True) == [] and trace.dropped_batches == 1


def test_an_isolated_cuda_layer_repeats_enough_calls_to_fill_its_replay(monkeypatch):
    from model import torch_backend

    backend = _fake_cuda_backend(monkeypatch)
    calls = []
    replay = torch_backend._Replay(backend, lambda: calls.append(1))
    backend.time_block = lambda body: 8 * 10e-6  # a graph of 8 calls: 10 µs each
    replay.prepare()
    assert replay.reps == 50  # 0.5 ms / 10 µs
    calls.clear()
    replay()
    assert len(calls) == 50
    backend.time_block = lambda body: 8 * 1e-3  # a long layer: one call per replay
    replay.prepare()
    assert replay.reps == 1


def test_readings_inside_a_pause_are_left_out():
    import numpy as np

    from analysis.load import intervals
    from analysis.sensor_lsq import outside

    markers = pd.DataFrame(
        {
            "event": ["trace_pause_start", "trace_pause_end"] * 2 + ["trace_pause_start"],
            "mono_ns": [100, 200, 500, 600, 900],  # the last pause never ended: left out
        }
    )
    pauses = intervals(markers, "trace_pause")
    assert pauses.tolist() == [[100, 200], [500, 600]]
    start = np.array([0, 90, 150, 250, 590, 700, 950])
    end = start + 20
    assert outside(start, end, pauses).tolist() == [True, False, False, True, False, True, True]
    assert outside(start, end, intervals(markers.iloc[:0], "trace_pause")).all()
