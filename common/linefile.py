"""Append-only text files that always end on a whole line.

Lines are collected in memory and written with one ``os.write`` per flush, so a process killed
at any moment leaves a file whose every line is complete, up to its last flush.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

FLUSH_S = 0.25


class LineWriter:
    """Buffers lines; ``maybe_flush`` writes them once ``flush_s`` has passed since the last."""

    def __init__(self, path: Path, header: str | None = None, flush_s: float = FLUSH_S) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.lines: list[str] = [header] if header else []
        self.flush_ns = int(flush_s * 1e9)
        self.last_flush = time.monotonic_ns()
        self.flush()  # the header is on disk at once: the file parses from the start

    def write(self, line: str) -> None:
        """Queue one line (with its newline)."""
        self.lines.append(line)

    def maybe_flush(self, now_ns: int | None = None) -> bool:
        """Flush when the interval has passed; True when it did."""
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        if now_ns - self.last_flush >= self.flush_ns:
            self.flush()
            self.last_flush = now_ns
            return True
        return False

    def flush(self) -> None:
        """Write every queued line now."""
        if self.lines:
            data = "".join(self.lines).encode()
            self.lines = []
            while data:
                data = data[os.write(self.fd, data) :]

    def close(self) -> None:
        self.flush()
        os.close(self.fd)
