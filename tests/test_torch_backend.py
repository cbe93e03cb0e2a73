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
