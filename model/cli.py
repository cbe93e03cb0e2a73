"""``python -m model``: profile one model's layers (TensorRT or PyTorch backend).

It runs alone or as the second OS process of ``measure_inference_power.py``. Exit codes:
0 done; 2 bad flag value; 3 the model or its weights cannot be had; 4 the backend cannot run
here; 1 anything else (the traceback is printed).
"""

from __future__ import annotations

import importlib.util
import os
import sys

from common.cli import OneLineParser
from model.backend import BACKENDS, DTYPES, BackendUnavailable
from model.zoo import WEIGHTS, ModelError
from power.process import PARENT_PID_ENV, exit_with_parent

EXIT_BAD_ARGS, EXIT_MODEL, EXIT_BACKEND = 2, 3, 4


def add_model_arguments(p: OneLineParser) -> None:
    """The profiler's flags (the seed's names), shared with ``measure_inference_power.py``."""
    p.add_argument(
        "--model",
        required=True,
        help="torchvision classification model name (resnet18, mobilenet_v2, ...) or lenet",
    )
    p.add_argument("--dtype", choices=DTYPES, default="float16", help="inference precision")
    p.add_argument(
        "--input-shape",
        type=int,
        nargs=4,
        metavar=("N", "C", "H", "W"),
        default=None,
        help="input shape; default 1 3 224 224 (lenet: 1 1 32 32)",
    )
    p.add_argument("--warmup", type=int, default=50, help="warm-up inferences before timing")
    p.add_argument("--runs", type=int, default=30000, help="timed inferences (no profiler)")
    p.add_argument(
        "--profile-runs",
        type=int,
        default=None,
        help="profiled inferences (profilers attached); default: as many as --runs",
    )
    p.add_argument(
        "--isolation",
        action="store_true",
        help="after the passes, run each layer alone in a loop with the power logged "
        "(writes <model>_layer_isolation.csv)",
    )
    p.add_argument(
        "--isolation-updates",
        type=int,
        default=20,
        help="isolation: distinct sensor updates to collect per layer after settling",
    )
    p.add_argument(
        "--isolation-settle",
        type=float,
        default=2.0,
        help="isolation: seconds each layer runs before its power counts",
    )
    p.add_argument(
        "--optimization-level", type=int, default=3, help="TensorRT builder optimization level, 0-5"
    )
    p.add_argument(
        "--min-block-size",
        type=int,
        default=5,
        help="Torch-TensorRT: fewest ops in a TensorRT partition",
    )
    p.add_argument(
        "--max-aux-streams",
        type=int,
        default=0,
        help="TensorRT builder: auxiliary streams for parallel layers; -1 = TensorRT's choice",
    )
    p.add_argument(
        "--engine",
        default=None,
        metavar="FILE",
        help="profile this serialized TensorRT engine (e.g. from trtexec) instead of compiling",
    )
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="auto = tensorrt where torch_tensorrt imports and a GPU exists, else torch",
    )
    p.add_argument(
        "--weights",
        choices=WEIGHTS,
        default="imagenet",
        help="imagenet (torchvision's pretrained weights) or random; lenet is random",
    )


def model_flags(args) -> list[str]:
    """The flags of ``add_model_arguments`` again, for a ``python -m model`` child."""
    out = [
        "--dtype",
        args.dtype,
        "--warmup",
        str(args.warmup),
        "--runs",
        str(args.runs),
        "--optimization-level",
        str(args.optimization_level),
        "--min-block-size",
        str(args.min_block_size),
        "--max-aux-streams",
        str(args.max_aux_streams),
        "--backend",
        args.backend,
        "--weights",
        args.weights,
    ]
    if args.profile_runs is not None:
        out += ["--profile-runs", str(args.profile_runs)]
    if args.isolation:
        out += ["--isolation", "--isolation-updates", str(args.isolation_updates)]
        out += ["--isolation-settle", str(args.isolation_settle)]
    if args.input_shape:
        out += ["--input-shape", *map(str, args.input_shape)]
    if args.engine:
        out += ["--engine", args.engine]
    return out


def build_parser() -> OneLineParser:
    p = OneLineParser(
        prog="python -m model",
        description=(
            "Profile the per-layer runtime of one CNN: warm-up, an unprofiled timing pass, then a "
            "profiled pass whose layer windows are rebuilt on the power logger's clock."
        ),
    )
    add_model_arguments(p)
    p.add_argument("--result-dir", default="raw_data", help="result folder; writes <dir>/<model>/")
    return p


def validate(args, parser: OneLineParser) -> None:
    """Check every value before anything heavy is loaded."""
    if args.input_shape is not None and min(args.input_shape) <= 0:
        parser.error("--input-shape takes 4 positive integers (N C H W)")
    if args.runs <= 0 or args.warmup < 0:
        parser.error("--runs must be positive and --warmup not negative")
    if args.profile_runs is not None and args.profile_runs <= 0:
        parser.error("--profile-runs must be positive")
    if not 0 <= args.optimization_level <= 5:
        parser.error("--optimization-level must be between 0 and 5")
    if args.min_block_size < 1:
        parser.error("--min-block-size must be at least 1")
    if args.max_aux_streams < -1:
        parser.error("--max-aux-streams must be -1 (TensorRT's choice) or at least 0")
    if args.engine and not os.path.isfile(args.engine):
        parser.error(f"--engine {args.engine}: no such file")
    if args.engine and args.backend == "torch":
        parser.error("--engine needs --backend tensorrt")
    if args.isolation_updates < 2 or args.isolation_settle < 0:
        parser.error("--isolation-updates must be at least 2 and --isolation-settle not negative")


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
    parser = build_parser()
    args = parser.parse_args(argv)
    validate(args, parser)
    if args.isolation:
        from model.isolation import power_log_path

        if not power_log_path(args.result_dir, args.model).exists():
            parser.error(
                "--isolation needs the power logger's file; run it through "
                "measure_inference_power.py --isolation (or run_experiment.sh --isolation)"
            )
    if os.environ.get(PARENT_PID_ENV):  # started by measure_inference_power.py
        exit_with_parent()
    from model.zoo import check_model_name, default_input_shape, load_model

    try:
        check_model_name(args.model)
    except ModelError as exc:
        print(f"python -m model: {exc}", file=sys.stderr)
        return EXIT_MODEL
    from model.benchmark import BenchConfig, run_benchmark
    from power.clock import Clock

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
    try:
        backend = make_backend(args.backend, args.dtype, cfg)
        cfg.backend = backend.name
        if args.isolation and not backend.supports_isolation:
            raise BackendUnavailable(
                f"--isolation is not implemented for the {backend.name} backend yet; "
                "use --backend torch"
            )
        summary = run_benchmark(
            cfg, backend, lambda: load_model(args.model, cfg.weights), Clock.from_env()
        )
    except ModelError as exc:
        print(f"python -m model: {exc}", file=sys.stderr)
        return EXIT_MODEL
    except BackendUnavailable as exc:
        print(f"python -m model: {exc}", file=sys.stderr)
        return EXIT_BACKEND
    prof = summary["profiling"]
    print(
        f"{args.model} [{backend.name}, {summary['backend'].get('device', 'cuda')}]: "
        f"timing {summary['timing']['mean_latency_ms']:.3f} ms/inference, profiled "
        f"{prof['mean_wall_latency_ms']:.3f} ms, {prof['layers']} layers, peak RSS "
        f"{summary['peak_rss_mb']:.0f} MiB -> {cfg.result_dir}/{args.model}"
    )
    return 0
