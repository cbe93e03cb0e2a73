"""One model measured by two OS processes: the power logger first, then the profiler.

Both children read the model's ``run_spec.json``. The logger must report real samples before
the profiler starts; when the profiler ends, the logger records a short tail and stops. If
either child dies, the other is stopped within ``STOP_GRACE_S``; a watchdog ends a run that
hangs; SIGTERM or SIGINT only set a flag that the loop here acts on. Every end writes a true
``status.json`` (``complete``, ``failed`` or ``interrupted``, with the reason); what was written
so far stays. The children die with this process (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from common.clock import CLOCK_ORIGIN_ENV, Clock
from common.layout import (
    COMPLETE,
    FAILED,
    INTERRUPTED,
    RUNNING,
    LayoutError,
    ResultPaths,
    read_json,
    read_status,  # noqa: F401 (the sweep's and the tests' entry to the status)
    release_space,
    remove_stale_temporaries,
    reserve_space,
    write_status,
)
from common.process import (
    EXIT_INTERRUPTED,
    exit_text,
    start_child,
    stop_child,
)
from experiment.contract import parse_cpus
from power.platform import device_state
from power.simulated import sensor_root

READY_TIMEOUT_S = 30.0
# exit codes of measure_inference_power.py (and the model's status "exit_code")
EXIT_OK, EXIT_FAILED, EXIT_BAD_ARGS, EXIT_MODEL, EXIT_BACKEND = 0, 1, 2, 3, 4
EXIT_POWER, EXIT_TIMEOUT = 5, 6
PROFILER_REASONS = {
    2: "the profiler rejected a flag value",
    3: "model or weights unavailable",
    4: "backend unavailable",
}

log = logging.getLogger(__name__)


def default_cpus() -> tuple[set[int] | None, set[int] | None]:
    """Logger on the last allowed core, profiler on the others; None with one core."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None, None
    return {allowed[-1]}, set(allowed[:-1])


class _End(Exception):
    """How the run ended, raised by the loop itself (never from a signal handler)."""

    def __init__(self, code: int, reason: str, status: str = FAILED) -> None:
        super().__init__(reason)
        self.code, self.reason, self.status = code, reason, status


def measure(spec_path: Path, stop, echo=sys.stderr) -> dict:
    """Measure the model of ``spec_path`` (its ``run_spec.json``); return the status written to
    ``<model>/status.json``. ``stop`` is the process's ``StopFlag``."""
    spec = read_json(spec_path)
    paths = ResultPaths(spec["result_dir"], spec["model"])
    started = time.time()
    status = {"model": spec["model"], "status": RUNNING, "started_unix": started}
    status.update(pid=os.getpid(), run_spec=paths.run_spec.name)
    write_status(paths.model_dir, status)
    reserve_space(paths.model_dir)
    try:
        run = _Measurement(spec, Path(spec_path), paths, stop, echo)
        status["device_state_start"] = device_state(run.host_root)
        status.update(run.execute())
        status.update(
            {
                "profiler_exit": run.profiler.returncode if run.profiler else None,
                "logger_exit": run.logger.returncode if run.logger else None,
                "device_state_end": device_state(run.host_root),
                "clock_origin": {"mono_ns": run.clock.mono_ns, "wall_ns": run.clock.wall_ns},
            }
        )
    except Exception as exc:  # a hand-edited run_spec.json, a bug: the status still ends true
        log.debug("traceback", exc_info=True)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        status.update(status=FAILED, exit_code=EXIT_FAILED, reason=f"{type(exc).__name__}: {first}")
    status.update(ended_unix=time.time(), duration_s=time.time() - started)
    remove_stale_temporaries(paths.model_dir)  # of a child stopped mid-write; none is alive
    write_status(paths.model_dir, status)
    release_space(paths.model_dir)
    return status


class _Measurement:
    """The two children of one model and the loop that watches them."""

    def __init__(self, spec: dict, spec_path: Path, paths: ResultPaths, stop, echo) -> None:
        from power.discovery import sysfs_root

        self.spec, self.spec_path, self.paths, self.stop, self.echo = (
            spec,
            spec_path,
            paths,
            stop,
            echo,
        )
        self.source = spec["power_source"]
        self.host_root = sysfs_root(spec["sysfs_root"] if self.source != "sim" else None)
        self.clock = Clock.now()
        self.env = {CLOCK_ORIGIN_ENV: self.clock.env_value()}
        logger_cpus, profiler_cpus = default_cpus()
        self.logger_cpus = parse_cpus(spec["logger_cpus"]) if spec["logger_cpus"] else logger_cpus
        self.profiler_cpus = (
            parse_cpus(spec["profiler_cpus"]) if spec["profiler_cpus"] else profiler_cpus
        )
        self.logger = self.profiler = None

    def execute(self) -> dict:
        """Run both children; the outcome (status, exit_code, reason). Never raises."""
        with ExitStack() as stack:
            try:
                self._check_stop()
                root = stack.enter_context(
                    sensor_root(self.source, self.spec["sysfs_root"], self.spec["sim_profile"])
                )
                self._start_logger(root, stack)
                self._run_profiler()
                self._finish_logger()
                return {"status": COMPLETE, "exit_code": EXIT_OK, "reason": ""}
            except _End as end:
                return {"status": end.status, "exit_code": end.code, "reason": end.reason}
            except (LayoutError, OSError, RuntimeError) as exc:  # a full disk, a sensor gone
                return {"status": FAILED, "exit_code": EXIT_FAILED, "reason": str(exc)}
            finally:
                stop_child(self.profiler)
                stop_child(self.logger)

    def _check_stop(self) -> None:
        if self.stop():
            raise _End(EXIT_INTERRUPTED, f"interrupted by {self.stop.signal}", INTERRUPTED)

    def _start_logger(self, root: Path, stack: ExitStack) -> None:
        cmd = ["python", "measure_power.py", "--spec", str(self.spec_path)]
        cmd += ["--out", str(self.paths.model_dir), "--prefix", self.paths.model]
        cmd += ["--power-source", self.source, "--sysfs-root", str(root)]
        cmd += ["--ready", "--exit-with-parent"]
        self.logger = start_child(cmd, self.logger_cpus, self.env, stdout=-1, stderr=-1, text=True)
        self.logger_err = _Tee(self.logger.stderr, self.paths.logger_log, None)
        if not self._wait_ready():
            self._check_stop()
            stop_child(self.logger)
            raise _End(EXIT_POWER, f"power logger did not start ({self.logger_err.tail()})")

    def _wait_ready(self) -> bool:
        """True once the logger printed READY (its first samples are on disk)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        out = self.logger.stdout
        while time.monotonic() < deadline and self.logger.poll() is None and not self.stop():
            if select.select([out], [], [], 0.1)[0]:
                line = out.readline()
                if line.strip() == "READY":
                    return True
                if not line:
                    return False
        return False

    def _run_profiler(self) -> None:
        cmd = ["python", "-m", "model", "--spec", str(self.spec_path)]
        self.profiler = start_child(
            cmd, self.profiler_cpus, self.env, stdout=-1, stderr=-2, text=True
        )
        tee = _Tee(self.profiler.stdout, self.paths.profiler_log, self.echo)
        deadline = time.monotonic() + self.spec["timeout"]
        while self.profiler.poll() is None:
            self._check_stop()
            if self.logger.poll() is not None:
                code = exit_text(self.logger.returncode)
                why = f"power logger died ({code}) while profiling"
                raise _End(EXIT_POWER, f"{why}: {self.logger_err.tail()}")
            if time.monotonic() > deadline:
                raise _End(EXIT_TIMEOUT, f"watchdog: no result after {self.spec['timeout']:.0f} s")
            time.sleep(0.05)
        tee.join(5)
        code = self.profiler.returncode
        if code != 0:
            why = PROFILER_REASONS.get(code, f"profiler exited with {exit_text(code)}")
            raise _End(code if code in PROFILER_REASONS else EXIT_FAILED, f"{why}: {tee.tail()}")

    def _finish_logger(self) -> None:
        self.stop.wait(self.spec["tail"])
        self._check_stop()
        if self.logger.poll() is not None:
            code = exit_text(self.logger.returncode)
            raise _End(EXIT_POWER, f"power logger died ({code}): {self.logger_err.tail()}")
        if stop_child(self.logger, 5.0) != 0:
            code = exit_text(self.logger.returncode)
            raise _End(EXIT_POWER, f"power logger ended with {code}: {self.logger_err.tail()}")


class _Tee:
    """Copies a child's output, as it comes, to a log in the model folder and to ``echo``, and
    keeps its last line in memory: on a full disk the log may stay short, the reason may not."""

    def __init__(self, stream, path: Path, echo) -> None:
        self.stream, self.path, self.echo = stream, path, echo
        self.last = ""
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            log = open(self.path, "a", buffering=1)
        except OSError:  # a full disk or a read-only folder: keep the line and the echo
            log = open(os.devnull, "w")
        with log:
            for line in iter(self.stream.readline, ""):
                text = line.replace("\r", "\n").strip()
                if text and "it/s]" not in text:  # a progress bar is no reason
                    self.last = text.splitlines()[-1][:300]
                with contextlib.suppress(OSError):  # a full disk: the status says why
                    log.write(line)
                if self.echo is not None:
                    self.echo.write(line)
                    self.echo.flush()

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)

    def tail(self) -> str:
        self.join(1.0)  # the child has ended: let its last line arrive
        return self.last
