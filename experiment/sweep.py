"""The sweep behind ``run_experiment.sh``, one supervising process: preflight → idle → cool-down
→ each model (measure, analyse) → summary table → upload.

Idle, the analysis and the upload run in this process; per model, the measurement starts the
only other processes the method needs (the power logger, the profiler and, without a real
sensor, the simulated one). Every setting comes from the run contract (``experiment.contract``):
a flag, its ``EVB_*`` variable, or ``--quick``'s presets. SIGTERM and SIGINT only set a flag;
the loop here and in the measurement act on it, so every end leaves a true ``status.json``.
One model failing never stops the sweep; a re-run skips models whose status is complete
(``--force`` redoes them); a lock keeps a second sweep off the same result folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
import shlex
import shutil
import socket
import sys
import time
from pathlib import Path

from common.clock import Clock
from common.layout import (
    COMPLETE,
    FAILED,
    IDLE_JSON,
    INTERRUPTED,
    RUN_METADATA,
    SWEEP_LOCK,
    LayoutError,
    ResultPaths,
    read_idle_uw,
    read_json,
    read_status,
    write_json,
)
from common.process import EXIT_INTERRUPTED, PROJECT, StopFlag
from common.settings import parser, resolve
from experiment.contract import QUICK, RUN_CHECKS, SWEEP_FLAGS, run_spec

MIN_FREE_GB = 1.0
EXIT_MODEL_FAILED, EXIT_PREFLIGHT, EXIT_UPLOAD = 1, 2, 3
PROG = "run_experiment.sh"
log = logging.getLogger("sweep")


def parse_args(argv: list[str] | None):
    p = parser(
        SWEEP_FLAGS,
        prog=PROG,
        description=(
            "Measure idle power, then per-layer runtime and board power of each model (two "
            "processes per model), analyse, and upload the result folder. Every flag has an "
            "environment variable, shown in brackets; flags win."
        ),
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small demo sweep: lenet and resnet18, 300 runs, adaptive idle, random "
        "weights (a few minutes on a 2-core CPU with the simulated sensor); flags and "
        "variables still win",
    )
    p.add_argument(
        "--force", action="store_true", help="redo models (and idle) that are complete already"
    )
    p.add_argument("--no-upload", action="store_true", help="never upload, even with credentials")
    quick = "--quick" in (sys.argv[1:] if argv is None else argv)
    args = resolve(p, SWEEP_FLAGS, argv, presets=QUICK if quick else None, checks=RUN_CHECKS)
    args.result_dir = Path(args.result_dir).resolve()
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    return args


def main(argv: list[str] | None = None) -> int:
    stop = StopFlag()  # first: a Ctrl-C while the flags are checked is an interruption too
    args = parse_args(argv)
    try:
        code = Sweep(args, stop).run()
    except (LayoutError, OSError) as exc:  # a result folder that cannot be written
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        code = EXIT_PREFLIGHT if isinstance(exc, _Refused) else EXIT_MODEL_FAILED
    if stop():
        log.warning(
            "sweep interrupted (%s); completed models are kept, re-run to resume", stop.signal
        )
        return EXIT_INTERRUPTED
    return code


class _Refused(OSError):
    """The sweep cannot start on this result folder (nothing was measured)."""


def acquire_lock(result_dir: Path):
    """An exclusive lock on the result folder's lock file; ``_Refused`` when it cannot be had."""
    try:
        result_dir.mkdir(parents=True, exist_ok=True)
        handle = open(result_dir / SWEEP_LOCK, "a+")
    except OSError as exc:
        raise _Refused(f"cannot use {result_dir} as the result folder: {exc.strerror}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise _Refused(
            f"another sweep (pid {holder}) is running on {result_dir}; "
            "wait for it or use another --result-dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def preflight(args) -> tuple[str, list[str]]:
    """Resolve the power source and check what the sweep needs; (source, problems)."""
    from power.discovery import detect_source, open_sensor, sysfs_root

    modules = ["numpy", "pandas", "scipy", "torch", "torchvision", "matplotlib"]
    if args.backend == "tensorrt":
        modules += ["tensorrt", "torch_tensorrt"]
    problems = [f"python package {m} is not installed" for m in modules if not _found(m)]
    source = args.power_source
    root = sysfs_root(args.sysfs_root)
    if source == "auto":
        source = detect_source(root)
    if source != "sim" or args.sysfs_root:
        try:
            open_sensor(source, root, args.rail, args.nvml_index).close()
        except Exception as exc:  # SensorNotFound and NVML errors
            problems.append(f"power sensor ({source}): {exc}")
    free_gb = shutil.disk_usage(args.result_dir).free / 1e9
    if free_gb < MIN_FREE_GB:
        problems.append(f"only {free_gb:.1f} GB free under {args.result_dir}")
    return source, problems


def _found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


class Sweep:
    """The supervising loop; ``run`` returns the exit code."""

    def __init__(self, args, stop: StopFlag) -> None:
        self.args, self.stop = args, stop
        self.result = Path(args.result_dir)
        self.rows: list[dict] = []

    def run(self) -> int:
        lock = acquire_lock(self.result)
        with contextlib.closing(lock):
            source, problems = preflight(self.args)
            for problem in problems:
                print(f"{PROG}: preflight: {problem}", file=sys.stderr)
            if problems:
                return EXIT_PREFLIGHT
            if self.stop():
                return EXIT_INTERRUPTED
            self.source = source
            meta = self._write_metadata()
            log.info(
                "sweep: %d models, power source %s, results in %s",
                len(self.args.models),
                "sim (SIMULATED: no real sensor)" if source == "sim" else source,
                self.result,
            )
            self._idle()
            self._cooldown(meta)
            started = time.monotonic()
            for index, model in enumerate(self.args.models):
                if self.stop():
                    break
                measured = sum(r["status"] != "skipped" for r in self.rows)
                log.info(progress(index, len(self.args.models), started, measured))
                self.rows.append(self._model(model))
            return self._finish(meta)

    def _write_metadata(self) -> dict:
        from experiment.metadata import run_metadata
        from power.discovery import sysfs_root

        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(self.args).items()}
        config["given"] = sorted(config["given"])
        config["power_source_resolved"] = self.source
        host_root = sysfs_root(self.args.sysfs_root if self.source != "sim" else None)
        meta = run_metadata(host_root, config, {"source": self.source}, Clock.now())
        earlier = _earlier_sweeps(self.result / RUN_METADATA)  # a resumed sweep keeps them
        first = earlier[0] if earlier else meta
        meta["run_id"] = first.get("run_id", first.get("created"))
        meta["earlier_sweeps"] = earlier
        from power.platform import is_jetson

        self.jetson = is_jetson(meta)
        if self.jetson and meta["clocks_locked"] is False:
            log.warning(
                "WARNING: clocks are not locked; run 'sudo jetson_clocks' on the host "
                "for comparable runs"
            )
        write_json(self.result / RUN_METADATA, meta)
        return meta

    def _idle(self) -> None:
        path = self.result / IDLE_JSON
        if path.exists() and not self.args.force:
            try:
                read_idle_uw(self.result)  # the analysis's own rule for a usable file
                log.info("idle: %s exists, kept (use --force to measure again)", IDLE_JSON)
                return
            except LayoutError as why:
                log.warning("idle: %s; measuring idle again", why)
        log.info("idle: measuring up to %.0f s", self.args.idle_duration)
        from power.idle import IdleInterrupted, idle_line, measure_idle_with

        try:
            result = measure_idle_with(self.args, self.source, self.result, self.stop)
            log.info("idle: %s", idle_line(result))
        except IdleInterrupted:
            return
        except (RuntimeError, OSError, LayoutError) as exc:
            log.warning(
                "idle: FAILED (%s); the per-model power is still logged, idle-corrected "
                "figures will be missing",
                exc,
            )

    def _cooldown(self, meta: dict) -> None:
        cooldown = self.args.cooldown
        if cooldown is None:
            cooldown = 120.0 if self.jetson else 0.0
        if cooldown > 0 and not self.stop():
            log.info("cool-down: %.0f s", cooldown)
            self.stop.wait(cooldown)

    def _model(self, model: str) -> dict:
        previous = read_status(self.result / model)
        if previous and previous.get("status") == COMPLETE and not self.args.force:
            log.info("%s: complete already, skipped (use --force to redo)", model)
            return {"model": model, "status": "skipped", "reason": "complete already"}
        from experiment.measurement import measure

        paths = ResultPaths(self.result, model)
        log.info("%s: measuring", model)
        try:
            paths.model_dir.mkdir(parents=True, exist_ok=True)
            write_json(paths.run_spec, run_spec(self.args, model, self.source))
            status = measure(paths.run_spec, self.stop, echo=sys.stdout)
        except (LayoutError, OSError) as exc:  # not even the status could be written
            return {"model": model, "status": FAILED, "reason": str(exc)}
        if status["status"] == COMPLETE and not self.stop():
            status["analysis"] = self._analyse(paths.model_dir)
        return status

    def _analyse(self, model_dir: Path) -> str:
        log.info("%s: analysing", model_dir.name)
        from analysis.load import AnalysisError
        from analysis.report import analyse_model

        try:
            analyse_model(model_dir)
        except (AnalysisError, LayoutError, OSError) as exc:
            log.warning("%s: analysis FAILED: %s", model_dir.name, exc)
            return f"failed ({exc})"
        except Exception as exc:  # a bug in the analysis must not end the sweep: one line
            log.debug("analysis traceback", exc_info=True)
            why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            log.warning("%s: analysis FAILED (%s; --verbose shows where)", model_dir.name, why)
            return f"failed ({why})"
        return "done"

    def _finish(self, meta: dict) -> int:
        from analysis.html_report import write_report
        from analysis.summary import write_summary

        summary_ok, report = True, None
        try:
            write_summary(self.result)
            report = write_report(self.result)
        except Exception as exc:  # the figures are in the model folders: say so, go on
            log.debug("summary traceback", exc_info=True)
            log.warning("summary: FAILED: %s: %s", type(exc).__name__, exc)
            summary_ok = False
        meta["models"] = {
            r["model"]: {"status": r["status"], "reason": r.get("reason")} for r in self.rows
        }
        meta["finished"] = Clock.now().stamp()
        write_json(self.result / RUN_METADATA, meta)
        print_table(self.rows)
        if self.stop():
            return EXIT_INTERRUPTED
        uploaded = upload(self.args, meta["run_id"])
        if report is not None:
            log.info("report: %s", report.resolve())  # the last line: where to look
        if any(r["status"] in (FAILED, INTERRUPTED) for r in self.rows) or not summary_ok:
            return EXIT_MODEL_FAILED
        return uploaded


def upload(args, run_stamp: str) -> int:
    """Publish when a target is configured; 0 when done or skipped, else EXIT_UPLOAD.

    Configured means DagsHub (``--owner``/``--name`` and ``DAGSHUB_USER_TOKEN``) or an explicit
    ``--dvc-remote`` and ``--git-url``. The default path inside the data repository is
    ``raw_data/<host>/<run>``, so devices and runs never share a pointer.
    """
    if args.no_upload:
        log.info("upload: skipped (--no-upload)")
        return 0
    from publish.dagshub_api import token_available

    explicit = bool(args.dvc_remote and args.git_url)
    if not explicit and not (args.owner and args.name and token_available()):
        log.info(
            "upload: skipped; to publish, set DAGSHUB_USER_TOKEN (or run 'dagshub login') and "
            "--owner/--name (EVB_DAGSHUB_OWNER, EVB_DAGSHUB_REPO), or --dvc-remote and --git-url"
        )
        return 0
    from publish.tools import PublishError
    from publish.upload import Settings, Target
    from publish.upload import upload as publish

    remote_path = args.remote_dir_path or f"raw_data/{socket.gethostname()}/{run_stamp}"
    log.info("upload: publishing the result folder as %s", remote_path)
    try:
        workspace = Path(args.workspace) if args.workspace else None
        target = Target(
            args.owner,
            args.name,
            args.branch,
            remote_path,
            args.dvc_remote,
            args.git_url,
            workspace,
        )
        settings = Settings(
            retries=args.retries, net_timeout_s=args.net_timeout, verbose=args.verbose
        )
        done = publish(args.result_dir, target, f"Add {remote_path}", settings)
    except (PublishError, LayoutError, OSError) as exc:
        retry = _retry_command(args, remote_path)
        log.error(
            "upload: FAILED (%s); the data is untouched in %s. Retry with:\n  %s",
            exc,
            args.result_dir,
            retry,
        )
        return EXIT_UPLOAD
    log.info("upload: uploaded and verified %s -> %s", args.result_dir, done["pointer"])
    return 0


def _retry_command(args, remote_path: str) -> str:
    """The ``data_version.py`` command that does the same upload by hand."""
    cmd = ["python", str(PROJECT / "data_version.py"), "--upload"]
    cmd += ["--local-dir-path", str(args.result_dir), "--remote-dir-path", remote_path]
    for flag, value in (
        ("--owner", args.owner),
        ("--name", args.name),
        ("--dvc-remote", args.dvc_remote),
        ("--git-url", args.git_url),
        ("--branch", args.branch),
        ("--retries", str(args.retries)),
        ("--net-timeout", str(args.net_timeout)),
        ("--workspace", args.workspace),
    ):
        cmd += [flag, value] if value else []
    return shlex.join(cmd)


def progress(done: int, total: int, started: float, measured: int) -> str:
    """'model 3 of 10, 12:04 elapsed, about 32:08 left' (from the models measured so far)."""
    elapsed = time.monotonic() - started

    def clock(s: float) -> str:
        return f"{int(s // 60)}:{int(s % 60):02d}"

    left = f", about {clock(elapsed / measured * (total - done))} left" if measured else ""
    return f"model {done + 1} of {total}, {clock(elapsed)} elapsed{left}"


def print_table(rows: list[dict]) -> None:
    if not rows:
        return
    width = max(len(r["model"]) for r in rows)
    print(f"\n{'model':<{width}}  status       reason", flush=True)
    for row in rows:
        print(
            f"{row['model']:<{width}}  {row['status']:<11}  {row.get('reason') or ''}", flush=True
        )


def _earlier_sweeps(meta_path: Path) -> list[dict]:
    """The metadata of earlier sweeps on this result folder, oldest first."""
    try:
        previous = read_json(meta_path)
    except LayoutError:
        return []
    earlier = previous.pop("earlier_sweeps", [])
    return [*(e for e in earlier if isinstance(e, dict)), previous]


if __name__ == "__main__":
    sys.exit(main())
