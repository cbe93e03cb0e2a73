"""Running ``dvc`` and ``git`` non-interactively, with bounded time and the token redacted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


class PublishError(RuntimeError):
    """An upload or download that cannot go on; the message says why and what to do."""


class Runner:
    """Runs dvc and git in one workspace with a fixed environment; hides secrets in output."""

    def __init__(
        self,
        env: dict[str, str],
        secrets: list[str],
        deadline: float | None = None,
        verbose: bool = False,
    ) -> None:
        self.env = {
            **os.environ,
            **env,
            "GIT_TERMINAL_PROMPT": "0",
            "DVC_NO_ANALYTICS": "1",
            "GIT_ASKPASS": "true",
            "SSH_ASKPASS": "true",
        }
        self.secrets = [s for s in secrets if s]
        self.deadline = deadline
        self.verbose = verbose

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def run(
        self, args: list[str], cwd: Path, timeout: float = 300.0, check: bool = True
    ) -> subprocess.CompletedProcess:
        """Run a command (``dvc ...`` through this interpreter); stdin closed; output captured."""
        import time

        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise PublishError("overall deadline reached (--timeout); re-run to resume")
            timeout = min(timeout, left)
        cmd = [sys.executable, "-m", "dvc", *args[1:]] if args[0] == "dvc" else args
        try:
            done = subprocess.run(
                cmd,
                cwd=cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise PublishError(
                f"'{' '.join(args[:2])}' took longer than {timeout:.0f} s; "
                "check the network and re-run to resume"
            ) from None
        done.stdout, done.stderr = self.redact(done.stdout), self.redact(done.stderr)
        if self.verbose:
            sys.stderr.write(done.stdout + done.stderr)
        if check and done.returncode != 0:
            raise PublishError(f"'{' '.join(args[:2])}' failed: {last_error(done)}")
        return done


def last_error(done: subprocess.CompletedProcess) -> str:
    """The most telling line of a failed command's output."""
    lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("ERROR", "error", "fatal"))]
    return (errors or lines or [f"exit code {done.returncode}"])[-1][:300]
