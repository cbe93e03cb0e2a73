"""The real TensorRT path, where TensorRT is installed (a Jetson, a GPU box with TensorRT):
``python -m model --backend tensorrt`` end to end. Elsewhere these tests are skipped, saying
why. On a Jetson, inside the container: ``python -m pytest -m tensorrt``."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.conftest import run_entry


def _why_not() -> str | None:
    for module in ("tensorrt", "torch_tensorrt"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed here"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU here"
    return None


pytestmark = [
    pytest.mark.tensorrt,
    pytest.mark.skipif(_why_not() is not None, reason=str(_why_not())),
]


def test_real_engine_profiles_every_layer_with_windows_inside_inferences(tmp_path):
    import pandas as pd

    result = run_entry(
        [
            "-m",
            "model",
            "--model",
            "resnet18",
            "--backend",
            "tensorrt",
            "--weights",
            "random",
            "--runs",
            "200",
            "--profile-runs",
            "50",
            "--result-dir",
            str(tmp_path),
        ],
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "resnet18"
    engine = json.loads((folder / "trt_profiling/trt_engine_info.json").read_text())
    convs = [layer for layer in engine["Layers"] if layer.get("LayerType") == "CaskConvolution"]
    assert convs and all("Kernel" in c for c in convs)  # detailed profiling verbosity
    latency = json.loads((folder / "trt_profiling/trt_layer_latency.json").read_text())
    assert latency and all(len(pairs) == 50 for pairs in latency.values())
    records = pd.read_csv(folder / "trt_profiling/trt_layer_records.csv")
    markers = pd.read_csv(folder / "resnet18_markers.csv")
    summary = json.loads((folder / "resnet18_tensorrt.json").read_text())
    profiling = summary["profiling"]
    print("slack per partition and run, ms:", profiling["slack_ms"])
    print("dropped runs:", profiling["dropped_runs"], "kept:", profiling["kept_runs"])
    assert profiling["kept_runs"] + profiling["dropped_runs"] == 50
    assert profiling["dropped_runs"] == 0  # TensorRT reported every layer once in every run
    assert len(summary["backend"]["partitions"]) == 1  # resnet18 converts whole: one span a run
    assert (records.slack_ns >= 0).mean() > 0.99  # Σ layer times fits the host-stamped span
    starts = markers[markers.event == "inference_start"].set_index("run")["mono_ns"]
    for run, group in records.groupby("run"):
        assert len(group) == len(engine["Layers"])  # every layer, NoOp ones too
        assert (group.start_mono_ns >= starts[run]).all()
        main = group[group.stream == 0]
        assert (main.start_mono_ns.diff().dropna() >= 0).all()
        # end-aligned: the stamped span is Σ main-stream layer times + slack, ending at the
        # last window's end, and every window lies in it
        span_end = group.end_mono_ns.max()
        span = round(main.latency_ms.mul(1e6).round().sum()) + group.slack_ns.iloc[0]
        assert (group.start_mono_ns >= span_end - span).all()
        assert main.end_mono_ns.iloc[-1] == span_end


def test_real_isolation_compiles_each_leaf_call_alone(tmp_path):
    """``--isolation`` on real Torch-TensorRT (simulated power: only the compile and run path is
    under test): one row per lenet leaf call, in call order; convolutions and GEMMs, which
    TensorRT surely builds alone, measured without error."""
    import pandas as pd

    args = ["--model", "lenet", "--backend", "tensorrt", "--power-source", "sim"]
    args += ["--runs", "50", "--warmup", "5", "--isolation", "--isolation-updates", "5"]
    args += ["--isolation-settle", "0.5", "--result-dir", str(tmp_path)]
    done = run_entry(["measure_inference_power.py", *args], timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(tmp_path / "lenet" / "lenet_layer_isolation.csv")
    print(table[["layer_name", "runs", "median_runtime_ms", "error"]].to_string())
    assert table["layer_name"].tolist() == [
        "0:Conv2d", "1:ReLU", "2:MaxPool2d", "3:Conv2d", "4:ReLU", "5:MaxPool2d",
        "6:Flatten", "7:Linear", "8:ReLU", "9:Linear", "10:ReLU", "11:Linear",
    ]  # fmt: skip
    heavy = table[table["layer_name"].str.contains("Conv2d|Linear")]
    assert heavy["error"].isna().all() and (heavy["runs"] > 0).all()
