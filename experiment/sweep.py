"""The sweep behind ``run_experiment.sh``: preflight → idle → cool-down → each model
(measure, analyse) → summary table → upload.

Every setting is a flag with an environment-variable equivalent (``EVB_<FLAG>``); flags win.
One model failing never stops the sweep; a re-run skips models whose folder is complete
(``--force`` redoes them); a lock keeps a second sweep off the same result folder.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from common.cli import OneLineParser
from common.layout import IDLE_JSON, RUN_METADATA, SWEEP_LOCK, read_status, write_json
from power.process import PARENT_PID_ENV

PROJECT = Path(__file__).resolve().parents[1]
QUICK = {
    "models": "lenet,resnet18",
    "runs": 300,
    "profile_runs": 300,
    "warmup": 20,
    "idle_duration": 20.0,
    "idle_precision": 1.0,
    "idle_min": 5.0,
    "cooldown": 0.0,
    "weights": "random",
}
MIN_FREE_GB = 1.0
EXIT_MODEL_FAILED, EXIT_PREFLIGHT, EXIT_UPLOAD = 1, 2, 3

# (flag, environment variable, type, default, help)
SETTINGS = [
    (
        "--models",
        "EVB_MODELS",
        str,
        "alexnet,resnet18,mobilenet_v2,vgg16,lenet",
        "comma-separated model names",
    ),
    ("--result-dir", "EVB_RESULT_DIR", str, "raw_data", "result folder"),
    ("--runs", "EVB_RUNS", int, 30000, "timed inferences per model"),
    ("--profile-runs", "EVB_PROFILE_RUNS", int, None, "profiled inferences (default: --runs)"),
    ("--warmup", "EVB_WARMUP", int, 50, "warm-up inferences per model"),
    ("--dtype", "EVB_DTYPE", str, "float16", "precision: float16, bfloat16 or float32"),
    ("--weights", "EVB_WEIGHTS", str, "imagenet", "imagenet or random"),
    ("--backend", "EVB_BACKEND", str, "auto", "auto, tensorrt or torch"),
    ("--power-source", "EVB_POWER_SOURCE", str, "auto", "auto, ina3221, nvml or sim"),
    ("--rail", "EVB_RAIL", str, None, "board-input rail override (NAME or A+B)"),
    ("--sysfs-root", "EVB_SYSFS_ROOT", str, None, "directory that stands for / (tests)"),
    (
        "--isolation-updates",
        "EVB_ISOLATION_UPDATES",
        int,
        20,
        "isolation: sensor updates per layer",
    ),
    ("--isolation-settle", "EVB_ISOLATION_SETTLE", float, 2.0, "isolation: settle seconds"),
    ("--idle-duration", "EVB_IDLE_DURATION", float, 120.0, "seconds of idle (max if adaptive)"),
    (
        "--idle-precision",
        "EVB_IDLE_PRECISION",
        float,
        None,
        "adaptive idle: stop at this 95%% CI half-width, in %%",
    ),
    ("--idle-min", "EVB_IDLE_MIN", float, 10.0, "adaptive idle: minimum seconds"),
    (
        "--cooldown",
        "EVB_COOLDOWN",
        float,
        None,
        "seconds to wait after idle (default 120 on a Jetson, else 0)",
    ),
    ("--timeout", "EVB_MODEL_TIMEOUT", float, 7200.0, "watchdog per model, seconds"),
    ("--owner", "EVB_DAGSHUB_OWNER", str, None, "DagsHub repository owner (upload)"),
    ("--name", "EVB_DAGSHUB_REPO", str, None, "DagsHub repository name (upload)"),
    (
        "--remote-dir-path",
        "EVB_REMOTE_DIR_PATH",
        str,
        None,
        "path inside the data repository (default raw_data/<host>/<run>)",
    ),
    ("--dvc-remote", "EVB_DVC_REMOTE", str, None, "DVC remote URL instead of DagsHub's"),
    ("--git-url", "EVB_GIT_URL", str, None, "git URL for the pointers instead of DagsHub's"),
]


def _env_default(env: str, kind, default):
    raw = os.environ.get(env)
    if raw in (None, ""):
        return default
    try:
        return kind(raw)
    except ValueError:
        print(
            f"run_experiment.sh: error: {env}={raw!r} is not a valid {kind.__name__}",
            file=sys.stderr,
        )
        sys.exit(EXIT_PREFLIGHT)


def parse_args(argv: list[str] | None):
    p = OneLineParser(
        prog="run_experiment.sh",
        description=(
            "Measure idle power, then per-layer runtime and board power of each model (two "
            "processes per model), analyse, and upload the result folder. Every flag has an "
            "environment variable, shown in brackets; flags win."
        ),
    )
    for flag, env, kind, default, text in SETTINGS:
        p.add_argument(
            flag, type=kind, default=_env_default(env, kind, default), help=f"{text} [{env}]"
        )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small demo sweep: lenet and resnet18, 300 runs, adaptive idle, random "
        "weights (a few minutes on a 2-core CPU with the simulated sensor)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="redo models (and idle) whose results are already complete",
    )
    p.add_argument("--no-upload", action="store_true", help="never upload, even with credentials")
    p.add_argument(
        "--isolation", action="store_true", help="also run each layer alone (isolation power)"
    )
    args = p.parse_args(argv)
    if args.quick:
        given = set(argv if argv is not None else sys.argv[1:])
        for key, value in QUICK.items():
            if f"--{key.replace('_', '-')}" not in given:
                setattr(args, key, value)
    args.result_dir = Path(args.result_dir).resolve()
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not args.models:
        p.error("--models is empty")
    if args.runs <= 0 or args.warmup < 0 or args.idle_duration <= 0:
        p.error("--runs and --idle-duration must be positive, --warmup not negative")
    if args.dtype not in ("float16", "bfloat16", "float32"):
        p.error(f"--dtype {args.dtype!r}: choose float16, bfloat16 or float32")
    if args.backend not in ("auto", "tensorrt", "torch"):
        p.error(f"--backend {args.backend!r}: choose auto, tensorrt or torch")
    if args.power_source not in ("auto", "ina3221", "nvml", "sim"):
        p.error(f"--power-source {args.power_source!r}: choose auto, ina3221, nvml or sim")
    if args.weights not in ("imagenet", "random"):
        p.error(f"--weights {args.weights!r}: choose imagenet or random")
    return args


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def acquire_lock(result_dir: Path):
    """An exclusive lock on ``<result_dir>/.sweep.lock``, or None if a sweep holds it."""
    result_dir.mkdir(parents=True, exist_ok=True)
    handle = open(result_dir / SWEEP_LOCK, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        print(
            f"run_experiment.sh: another sweep (pid {holder}) is running on {result_dir}; "
            "wait for it or use another --result-dir",
            file=sys.stderr,
        )
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def preflight(args) -> tuple[str, list[str]]:
    """Resolve the power source and check what the sweep needs; (source, problems)."""
    from power.discovery import detect_source, open_sensor, sysfs_root

    modules = ["numpy", "pandas", "torch", "torchvision", "matplotlib"]
    if args.backend == "tensorrt":
        modules += ["tensorrt", "torch_tensorrt"]
    check = (
        "import importlib, sys\nfor m in sys.argv[1:]:\n    try:\n"
        "        importlib.import_module(m)\n    except Exception:\n        print(m)"
    )
    missing = subprocess.run(
        [sys.executable, "-c", check, *modules], capture_output=True, text=True, check=False
    ).stdout.split()
    problems = [f"python package {m} does not import" for m in missing]
    source = args.power_source
    root = sysfs_root(args.sysfs_root)
    if source == "auto":
        source = detect_source(root)
    if source != "sim" or args.sysfs_root:
        try:
            open_sensor(source, root, args.rail).close()
        except Exception as exc:  # SensorNotFound and NVML errors
            problems.append(f"power sensor ({source}): {exc}")
    free_gb = shutil.disk_usage(args.result_dir).free / 1e9
    if free_gb < MIN_FREE_GB:
        problems.append(f"only {free_gb:.1f} GB free under {args.result_dir}")
    return source, problems


def run_step(cmd: list[str], what: str) -> int:
    """Run one entry point as a child process (output passes through).

    The child gets SIGTERM if the sweep dies; a SIGTERM or Ctrl-C of the sweep is passed on, so
    the child marks its model failed ("interrupted") before the sweep stops.
    """
    path = os.pathsep.join(p for p in (str(PROJECT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, PARENT_PID_ENV: str(os.getpid())}
    log(what)
    child = subprocess.Popen(cmd, cwd=PROJECT, env=env, stdin=subprocess.DEVNULL)
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
        raise


def measure_idle(args, source: str) -> None:
    result = Path(args.result_dir)
    if (result / IDLE_JSON).exists() and not args.force:
        log("idle: idling_power.json exists, kept (use --force to measure again)")
        return
    cmd = [
        sys.executable,
        "measure_idling_power.py",
        "--result-dir",
        str(result),
        "--idle-duration",
        str(args.idle_duration),
        "--power-source",
        source,
    ]
    if args.idle_precision:
        cmd += ["--until-precision", str(args.idle_precision), "--min-duration", str(args.idle_min)]
    for flag, value in (("--rail", args.rail), ("--sysfs-root", args.sysfs_root)):
        if value:
            cmd += [flag, value]
    if run_step(cmd, f"idle: measuring up to {args.idle_duration:.0f} s") != 0:
        log(
            "idle: FAILED; the per-model power is still logged, idle-corrected figures will "
            "be missing"
        )


def measure_model(args, source: str, model: str) -> dict:
    result = Path(args.result_dir)
    cmd = [
        sys.executable,
        "measure_inference_power.py",
        "--model",
        model,
        "--result-dir",
        str(result),
        "--runs",
        str(args.runs),
        "--warmup",
        str(args.warmup),
        "--dtype",
        args.dtype,
        "--weights",
        args.weights,
        "--backend",
        args.backend,
        "--power-source",
        source,
        "--timeout",
        str(args.timeout),
    ]
    for flag, value in (
        ("--profile-runs", args.profile_runs),
        ("--rail", args.rail),
        ("--sysfs-root", args.sysfs_root),
    ):
        if value:
            cmd += [flag, str(value)]
    if args.isolation:
        cmd += ["--isolation", "--isolation-updates", str(args.isolation_updates)]
        cmd += ["--isolation-settle", str(args.isolation_settle)]
    code = run_step(cmd, f"{model}: measuring")
    status = read_status(result / model)
    if status is None:
        reason = (
            "the measurement rejected its flags"
            if code == 2
            else f"measurement ended with exit code {code} and no status"
        )
        return {"model": model, "status": "failed", "reason": reason}
    if status["status"] not in ("complete", "failed"):  # the measurement itself died
        status.update(status="failed", reason=f"measurement ended with exit code {code}")
    if status["status"] == "complete":
        analysed = run_step(
            [sys.executable, "analyze.py", str(result), "--model", model], f"{model}: analysing"
        )
        status["analysis"] = "done" if analysed == 0 else f"failed (exit {analysed})"
    return status


def upload(args, run_stamp: str) -> int:
    """Publish through data_version.py when a target is configured; 0 when done or skipped.

    Configured means DagsHub (``--owner``/``--name`` and ``DAGSHUB_USER_TOKEN``) or an explicit
    ``--dvc-remote`` and ``--git-url``. The default path inside the data repository is
    ``raw_data/<host>/<run>``, so devices and runs never share a pointer.
    """
    if args.no_upload:
        log("upload: skipped (--no-upload)")
        return 0
    from publish.dagshub_api import token_available

    explicit = bool(args.dvc_remote and args.git_url)
    if not explicit and not (args.owner and args.name and token_available()):
        log(
            "upload: skipped; to publish, set DAGSHUB_USER_TOKEN (or run 'dagshub login') and "
            "--owner/--name (EVB_DAGSHUB_OWNER, EVB_DAGSHUB_REPO), or --dvc-remote and --git-url"
        )
        return 0
    remote_path = args.remote_dir_path or f"raw_data/{socket.gethostname()}/{run_stamp}"
    cmd = [
        sys.executable,
        "data_version.py",
        "--upload",
        "--local-dir-path",
        str(args.result_dir),
        "--remote-dir-path",
        remote_path,
    ]
    for flag, value in (
        ("--owner", args.owner),
        ("--name", args.name),
        ("--dvc-remote", args.dvc_remote),
        ("--git-url", args.git_url),
    ):
        if value:
            cmd += [flag, value]
    if run_step(cmd, f"upload: publishing the result folder as {remote_path}") == 0:
        return 0
    retry = shlex.join(["python", str(PROJECT / "data_version.py"), *cmd[2:]])
    log(f"upload: FAILED; the data is untouched in {args.result_dir}. Retry with:\n  {retry}")
    return EXIT_UPLOAD


def progress(done: int, total: int, started: float, measured: int) -> str:
    """'model 3 of 10, 12:04 elapsed, about 32:08 left' (from the models measured so far)."""
    elapsed = time.monotonic() - started

    def clock(s: float) -> str:
        return f"{int(s // 60)}:{int(s % 60):02d}"

    left = f", about {clock(elapsed / measured * (total - done))} left" if measured else ""
    return f"model {done + 1} of {total}, {clock(elapsed)} elapsed{left}"


def print_table(rows: list[dict]) -> None:
    width = max(len(r["model"]) for r in rows)
    print(f"\n{'model':<{width}}  status    reason")
    for row in rows:
        print(f"{row['model']:<{width}}  {row['status']:<8}  {row.get('reason') or ''}")


def _earlier_sweeps(meta_path: Path) -> list[dict]:
    """The metadata of earlier sweeps on this result folder, oldest first."""
    try:
        previous = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return []
    earlier = previous.pop("earlier_sweeps", [])
    return [*earlier, previous]


def _interrupt(signum, _frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return sweep(args)
    except KeyboardInterrupt:
        log("sweep interrupted; completed models are kept, re-run to resume")
        return 130


def sweep(args) -> int:
    """The sweep itself (``main`` adds signal handling)."""
    result = Path(args.result_dir)
    lock = acquire_lock(result)
    if lock is None:
        return EXIT_PREFLIGHT
    from experiment.metadata import is_jetson, run_metadata
    from power.clock import Clock
    from power.discovery import sysfs_root

    source, problems = preflight(args)
    for problem in problems:
        print(f"run_experiment.sh: preflight: {problem}", file=sys.stderr)
    if problems:
        return EXIT_PREFLIGHT
    config = {k: (v if not isinstance(v, Path) else str(v)) for k, v in vars(args).items()}
    config["power_source_resolved"] = source
    host_root = sysfs_root(args.sysfs_root if source != "sim" else None)
    meta = run_metadata(host_root, config, {"source": source}, Clock.now())
    meta_path = result / RUN_METADATA
    earlier = _earlier_sweeps(meta_path)  # a resumed sweep keeps what the first ones recorded
    meta["run_id"] = earlier[0].get("run_id", earlier[0]["created"]) if earlier else meta["created"]
    meta["earlier_sweeps"] = earlier
    if is_jetson(meta) and meta["clocks_locked"] is False:
        log(
            "WARNING: clocks are not locked; run 'sudo jetson_clocks' on the host for "
            "comparable runs"
        )
    write_json(meta_path, meta)
    log(f"sweep: {len(args.models)} models, power source {source}, results in {result}")

    measure_idle(args, source)
    cooldown = args.cooldown if args.cooldown is not None else (120.0 if is_jetson(meta) else 0)
    if cooldown > 0:
        log(f"cool-down: {cooldown:.0f} s")
        time.sleep(cooldown)

    rows, started = [], time.monotonic()
    for index, model in enumerate(args.models):
        log(progress(index, len(args.models), started, sum(r["status"] != "skipped" for r in rows)))
        previous = read_status(result / model)
        if previous and previous.get("status") == "complete" and not args.force:
            log(f"{model}: complete already, skipped (use --force to redo)")
            rows.append({"model": model, "status": "skipped", "reason": "complete already"})
            continue
        rows.append(measure_model(args, source, model))
    summary = run_step(
        [sys.executable, "analyze.py", str(result), "--summary-only"],
        "summary: writing summary.csv",
    )
    meta["models"] = {r["model"]: {"status": r["status"], "reason": r.get("reason")} for r in rows}
    meta["finished"] = Clock.now().stamp()
    write_json(meta_path, meta)
    print_table(rows)
    failed = [r for r in rows if r["status"] == "failed"]
    uploaded = upload(args, meta["run_id"])
    from analysis.html_report import REPORT

    if (result / REPORT).exists():
        log(f"report: {(result / REPORT).resolve()}")
    if failed:
        return EXIT_MODEL_FAILED
    return uploaded or (0 if summary == 0 else EXIT_MODEL_FAILED)


if __name__ == "__main__":
    sys.exit(main())
