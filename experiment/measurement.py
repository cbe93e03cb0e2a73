"""One model measured by two OS processes: the power logger first, then the profiler.

The logger starts first and must report real samples before the profiler starts. When the
profiler ends, the logger records a short tail and stops. If either process dies, the other is
stopped within ``STOP_GRACE_S`` and the model folder is marked failed in ``status.json``, with
the reason; what was written so far stays. A watchdog ends a run that hangs. Both children get
SIGTERM if this process dies (``PR_SET_PDEATHSIG``), so none is left behind.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from common.layout import read_status, write_status  # noqa: F401 (read_status: re-export)
from power.clock import CLOCK_ORIGIN_ENV, Clock
from power.process import PARENT_PID_ENV
from power.simulated import sensor_root

PROJECT = Path(__file__).resolve().parents[1]
STOP_GRACE_S = 2.0

# exit codes of measure_inference_power.py (and the model's status "exit_code")
EXIT_OK, EXIT_FAILED, EXIT_BAD_ARGS, EXIT_MODEL, EXIT_BACKEND = 0, 1, 2, 3, 4
EXIT_POWER, EXIT_TIMEOUT, EXIT_INTERRUPTED = 5, 6, 130
PROFILER_REASONS = {
    2: "the profiler rejected a flag value",
    3: "model or weights unavailable",
    4: "backend unavailable",
}


@dataclass
class MeasureConfig:
    """What one measurement needs; ``profiler_args`` go to ``python -m model`` unchanged."""

    model: str
    result_dir: Path
    profiler_args: list[str]
    power_source: str = "sim"
    sysfs_root: str | None = None
    rail: str | None = None
    hz: float | None = None
    timeout_s: float = 3600.0
    tail_s: float = 1.0
    ready_timeout_s: float = 30.0
    logger_cpus: set[int] | None = None
    profiler_cpus: set[int] | None = None
    sim_profile: str = "cpu"
    extra_status: dict = field(default_factory=dict)


def default_cpus() -> tuple[set[int] | None, set[int] | None]:
    """Logger on the last allowed core, profiler on the others; None with one core."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None, None
    return {allowed[-1]}, set(allowed[:-1])


def _stop(proc: subprocess.Popen | None, grace_s: float = STOP_GRACE_S) -> int | None:
    """SIGTERM, then SIGKILL after ``grace_s``; returns the exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _wait_ready(proc: subprocess.Popen, timeout_s: float) -> bool:
    """True once the logger printed READY (its first samples are on disk)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline()
            if line.strip() == "READY":
                return True
            if not line:
                return False
    return False


def _tee(stream, path: Path, echo) -> threading.Thread:
    """Copy a child's output to a file in the model folder and to ``echo`` as it comes."""

    def run() -> None:
        with open(path, "a", buffering=1) as log:
            for line in iter(stream.readline, ""):
                log.write(line)
                if echo is not None:
                    echo.write(line)
                    echo.flush()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


class Interrupted(Exception):
    """SIGTERM or SIGINT reached the measurement."""


def measure(cfg: MeasureConfig, echo=sys.stderr) -> dict:
    """Measure one model; returns the status written to ``<model>/status.json``."""
    from experiment.metadata import device_state
    from power.discovery import sysfs_root

    model_dir = cfg.result_dir / cfg.model
    model_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    status: dict = {
        "model": cfg.model,
        "status": "running",
        "started_unix": started,
        "pid": os.getpid(),
        **cfg.extra_status,
    }
    guard = _SignalGuard()
    previous = {s: signal.signal(s, guard.handler) for s in (signal.SIGTERM, signal.SIGINT)}
    clock = Clock.now()
    env = {
        **os.environ,
        CLOCK_ORIGIN_ENV: clock.env_value(),
        "PYTHONUNBUFFERED": "1",
        PARENT_PID_ENV: str(os.getpid()),
        "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT), os.environ.get("PYTHONPATH")) if p),
    }
    logger = profiler = None
    outcome = {"status": "failed", "exit_code": EXIT_FAILED, "reason": "unknown"}

    host_root = sysfs_root(cfg.sysfs_root if cfg.power_source != "sim" else None)
    with ExitStack() as stack:
        try:
            write_status(model_dir, status)
            status["device_state_start"] = device_state(host_root)
            root = stack.enter_context(
                sensor_root(cfg.power_source, cfg.sysfs_root, cfg.sim_profile)
            )
            logger_cmd = [
                sys.executable,
                str(PROJECT / "measure_power.py"),
                "--out",
                str(model_dir),
                "--prefix",
                cfg.model,
                "--source",
                cfg.power_source,
                "--ready",
                "--exit-with-parent",
            ]
            for flag, value in (("--sysfs-root", root), ("--rail", cfg.rail), ("--hz", cfg.hz)):
                if value is not None:
                    logger_cmd += [flag, str(value)]
            logger_err = open(model_dir / f"{cfg.model}_logger.log", "a")
            stack.callback(logger_err.close)
            with guard.held():  # a SIGTERM now must not lose the child's handle
                logger = subprocess.Popen(
                    logger_cmd,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=logger_err,
                    stdin=subprocess.DEVNULL,
                    text=True,
                )
            if cfg.logger_cpus:
                os.sched_setaffinity(logger.pid, cfg.logger_cpus)
            if not _wait_ready(logger, cfg.ready_timeout_s):
                _stop(logger)
                tail = _last_line(model_dir / f"{cfg.model}_logger.log")
                raise _Fail(EXIT_POWER, f"power logger did not start ({tail})")
            profiler_cmd = [
                sys.executable,
                "-m",
                "model",
                "--model",
                cfg.model,
                "--result-dir",
                str(cfg.result_dir),
                *cfg.profiler_args,
            ]
            with guard.held():
                profiler = subprocess.Popen(
                    profiler_cmd,
                    env=env,
                    cwd=PROJECT,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    text=True,
                )
            if cfg.profiler_cpus:
                os.sched_setaffinity(profiler.pid, cfg.profiler_cpus)
            tee = _tee(profiler.stdout, model_dir / f"{cfg.model}_profiler.log", echo)
            deadline = time.monotonic() + cfg.timeout_s
            while profiler.poll() is None:
                if logger.poll() is not None:
                    _stop(profiler)
                    raise _Fail(
                        EXIT_POWER, f"power logger died (exit {logger.returncode}) while profiling"
                    )
                if time.monotonic() > deadline:
                    _stop(profiler)
                    raise _Fail(EXIT_TIMEOUT, f"watchdog: no result after {cfg.timeout_s:.0f} s")
                time.sleep(0.05)
            tee.join(5)
            if profiler.returncode != 0:
                _stop(logger)
                code = profiler.returncode
                why = PROFILER_REASONS.get(code, f"profiler exited with {_exit_text(code)}")
                tail = _last_line(model_dir / f"{cfg.model}_profiler.log")
                raise _Fail(
                    code if code in PROFILER_REASONS else EXIT_FAILED,
                    f"{why}: {tail}" if tail else why,
                )
            time.sleep(cfg.tail_s)
            if logger.poll() is not None:
                raise _Fail(EXIT_POWER, f"power logger died (exit {logger.returncode})")
            if _stop(logger, 5.0) != 0:
                raise _Fail(EXIT_POWER, f"power logger ended with {_exit_text(logger.returncode)}")
            outcome = {"status": "complete", "exit_code": EXIT_OK, "reason": ""}
        except _Fail as fail:
            outcome = {"status": "failed", "exit_code": fail.code, "reason": fail.reason}
        except Interrupted as exc:
            outcome = {
                "status": "failed",
                "exit_code": EXIT_INTERRUPTED,
                "reason": f"interrupted by {exc}",
            }
        finally:
            for proc in (profiler, logger):
                _stop(proc)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    status.update(outcome)
    status.update(
        {
            "ended_unix": time.time(),
            "duration_s": time.time() - started,
            "profiler_exit": profiler.returncode if profiler else None,
            "logger_exit": logger.returncode if logger else None,
            "device_state_end": device_state(host_root),
            "clock_origin": {"mono_ns": clock.mono_ns, "wall_ns": clock.wall_ns},
        }
    )
    write_status(model_dir, status)
    return status


class _SignalGuard:
    """Turns SIGTERM/SIGINT into ``Interrupted``, deferred while a child is being started so
    that its handle is never lost (blocking the signals instead would be inherited by the
    child)."""

    def __init__(self) -> None:
        self.critical = False
        self.pending: str | None = None

    def handler(self, signum, _frame) -> None:
        name = signal.Signals(signum).name
        if self.critical:
            self.pending = name
        else:
            raise Interrupted(name)

    @contextmanager
    def held(self):
        self.critical = True
        try:
            yield
        finally:
            self.critical = False
        if self.pending:
            raise Interrupted(self.pending)


class _Fail(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"


def _last_line(path: Path) -> str:
    """The last non-empty line of a log (progress bars stripped), for a one-line reason."""
    try:
        lines = path.read_text(errors="replace").replace("\r", "\n").splitlines()
    except OSError:
        return ""
    lines = [line.strip() for line in lines if line.strip() and "it/s]" not in line]
    return lines[-1][:300] if lines else ""
