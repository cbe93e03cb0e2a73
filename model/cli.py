"""``python -m model``: profile one model's layers (TensorRT or PyTorch backend).

It runs alone or as the second OS process of ``measure_inference_power.py``. Exit codes:
0 done; 2 bad flag value; 3 the model or its weights cannot be had; 4 the backend cannot run
here; 1 anything else (one line; ``--verbose`` adds the traceback); 130 interrupted.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys

from common.clock import Clock
from common.layout import LayoutError
from common.process import EXIT_INTERRUPTED, PARENT_PID_ENV, exit_with_parent
from common.settings import RESULT_DIR, Setting, between, not_negative, parser, positive, resolve
from model.backend import BACKENDS, DTYPES, BackendUnavailable
from model.zoo import WEIGHTS, ModelError

EXIT_FAILED, EXIT_BAD_ARGS, EXIT_MODEL, EXIT_BACKEND = 1, 2, 3, 4
log = logging.getLogger("model")


def _shape(value) -> str | None:
    return None if value is None or min(value) > 0 else "takes 4 positive integers (N C H W)"


MODEL_SETTINGS = [  # the profiler's settings (the seed's names), part of the run contract
    Setting(
        "model",
        None,
        "torchvision classification model name (resnet18, mobilenet_v2, ...) or lenet",
    ),
    Setting("dtype", "float16", "inference precision", choices=DTYPES),
    Setting(
        "input_shape",
        None,
        "input shape; default 1 3 224 224 (lenet: 1 1 32 32)",
        type=int,
        nargs=4,
        metavar=("N", "C", "H", "W"),
        check=_shape,
    ),
    Setting("warmup", 50, "warm-up inferences before timing", type=int, check=not_negative),
    Setting("runs", 30000, "timed inferences (no profiler)", type=int, check=positive),
    Setting(
        "profile_runs",
        None,
        "profiled inferences (profilers attached); default: as many as --runs",
        type=int,
        check=positive,
    ),
    Setting(
        "isolation",
        False,
        "after the passes, run each layer alone in a loop with the power logged "
        "(writes <model>_layer_isolation.csv)",
        type=bool,
    ),
    Setting(
        "isolation_updates",
        20,
        "isolation: distinct sensor updates to collect per layer after settling",
        type=int,
        check=lambda v: None if v >= 2 else "must be at least 2",
    ),
    Setting(
        "isolation_settle",
        2.0,
        "isolation: seconds each layer runs before its power counts",
        type=float,
        check=not_negative,
    ),
    Setting(
        "optimization_level",
        3,
        "TensorRT builder optimization level",
        type=int,
        check=between(0, 5),
    ),
    Setting(
        "min_block_size",
        5,
        "Torch-TensorRT: fewest ops in a TensorRT partition",
        type=int,
        check=between(1, 10**6),
    ),
    Setting(
        "max_aux_streams",
        0,
        "TensorRT builder: auxiliary streams for parallel layers; -1 = TensorRT's choice",
        type=int,
        check=lambda v: None if v >= -1 else "must be -1 (TensorRT's choice) or at least 0",
    ),
    Setting(
        "engine",
        None,
        "profile this serialized TensorRT engine (e.g. from trtexec) instead of compiling",
        metavar="FILE",
        check=lambda v: None if v is None or os.path.isfile(v) else "no such file",
        path=True,
    ),
    Setting(
        "backend",
        "auto",
        "auto = tensorrt where torch_tensorrt imports and a GPU exists, else torch",
        choices=BACKENDS,
    ),
    Setting(
        "weights",
        "imagenet",
        "imagenet (torchvision's pretrained weights) or random; lenet is random",
        choices=WEIGHTS,
    ),
    RESULT_DIR,
]


def shape_fits(models: list[str], shape) -> str | None:
    """The first model of ``models`` that an input of ``shape`` does not fit, as an error."""
    from model.zoo import ModelError, check_input_shape, check_model_name

    for name in models if shape else []:
        try:
            check_model_name(name)
            check_input_shape(name, shape)
        except ModelError as exc:
            return str(exc)
    return None


# rules that join several of the settings above: each returns an error message or None
MODEL_CHECKS = [
    lambda a: "--engine needs --backend tensorrt" if a.engine and a.backend == "torch" else None,
    lambda a: (
        "--isolation compiles each layer of the torch model alone, and an --engine FILE has no "
        "model: drop --engine (the model is then compiled from --model) or drop --isolation"
        if a.isolation and a.engine
        else None
    ),
]


def build_parser():
    return parser(
        MODEL_SETTINGS,
        prog="python -m model",
        description=(
            "Profile the per-layer runtime of one CNN: warm-up, an unprofiled timing pass, then a "
            "profiled pass whose layer windows are rebuilt on the power logger's clock."
        ),
    )


def parse_args(argv: list[str] | None):
    p = build_parser()
    args = resolve(p, MODEL_SETTINGS, argv, checks=MODEL_CHECKS)
    if not args.model:
        p.error("--model is required")
    if problem := shape_fits([args.model], args.input_shape):
        p.error(problem)
    if args.isolation:
        from model.isolation import power_log_path

        if not power_log_path(args.result_dir, args.model).exists():
            p.error(
                "--isolation needs the power logger's file; run it through "
                "measure_inference_power.py --isolation (or run_experiment.sh --isolation)"
            )
    return args


def tensorrt_available() -> bool:
    """torch_tensorrt and tensorrt import and a CUDA GPU is there."""
    if not (importlib.util.find_spec("tensorrt") and importlib.util.find_spec("torch_tensorrt")):
        return False
    import torch

    return torch.cuda.is_available()


def make_backend(name: str, dtype: str, cfg):
    """The backend object for ``--backend`` (auto resolved here)."""
    if name == "auto":
        name = "tensorrt" if tensorrt_available() or cfg.engine else "torch"
    if name == "tensorrt":
        from model.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(
            dtype, cfg.optimization_level, cfg.min_block_size, cfg.max_aux_streams, cfg.engine
        )
    from model.torch_backend import TorchBackend

    return TorchBackend(dtype)


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        args = parse_args(argv)
        if os.environ.get(PARENT_PID_ENV):  # started by measure_inference_power.py
            exit_with_parent()
        return _profile(args)
    except KeyboardInterrupt:
        print("python -m model: interrupted; the files written so far are kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ModelError as exc:
        print(f"python -m model: {exc}", file=sys.stderr)
        return EXIT_MODEL
    except LayoutError as exc:  # a full disk, a read-only folder
        print(f"python -m model: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except BackendUnavailable as exc:
        print(f"python -m model: {exc}", file=sys.stderr)
        return EXIT_BACKEND
    except Exception as exc:  # one line; the traceback with --verbose
        log.debug("traceback", exc_info=True)
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        if args and args.input_shape and isinstance(exc, RuntimeError) and "size" in first.lower():
            shape = " ".join(map(str, args.input_shape))
            print(
                f"python -m model: --input-shape {shape} does not fit {args.model}: {first}",
                file=sys.stderr,
            )
            return EXIT_BAD_ARGS
        print(
            f"python -m model: failed: {type(exc).__name__}: {first} (--verbose shows where)",
            file=sys.stderr,
        )
        return EXIT_FAILED


def _profile(args) -> int:
    from model.benchmark import BenchConfig, run_benchmark
    from model.zoo import check_model_name, default_input_shape, load_model

    check_model_name(args.model)
    shape = list(args.input_shape or default_input_shape(args.model))
    cfg = BenchConfig(
        args.model,
        args.dtype,
        shape,
        args.warmup,
        args.runs,
        args.optimization_level,
        args.min_block_size,
        args.result_dir,
        args.backend,
        "random" if args.model == "lenet" else args.weights,
        args.profile_runs or args.runs,
        args.max_aux_streams,
        args.engine,
        args.isolation,
        args.isolation_updates,
        args.isolation_settle,
    )
    backend = make_backend(args.backend, args.dtype, cfg)
    cfg.backend = backend.name
    if args.isolation and not backend.supports_isolation:
        raise BackendUnavailable(
            f"--isolation is not available for the {backend.name} backend with these settings "
            "(an --engine file has no model to take layers from): drop --engine or --isolation"
        )
    summary = run_benchmark(
        cfg, backend, lambda: load_model(args.model, cfg.weights), Clock.from_env()
    )
    prof = summary["profiling"]
    print(
        f"{args.model} [{backend.name}, {summary['backend'].get('device', 'cuda')}]: "
        f"timing {summary['timing']['mean_latency_ms']:.3f} ms/inference, profiled "
        f"{prof['mean_wall_latency_ms']:.3f} ms, {prof['layers']} layers, peak RSS "
        f"{summary['peak_rss_mb']:.0f} MiB -> {cfg.result_dir}/{args.model}"
    )
    return 0
