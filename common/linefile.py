"""Append-only text files that always end on a whole line.

Lines are collected in memory and written with one ``os.write`` per flush, so a process killed
at any moment leaves a file whose every line is complete, up to its last flush. A write that
fails part-way (a full disk) is cut back to the last whole line before the error is raised.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from common.layout import LayoutError

FLUSH_S = 0.25


class LineWriter:
    """Buffers lines; ``maybe_flush`` writes them once ``flush_s`` has passed since the last."""

    def __init__(self, path: Path, header: str | None = None, flush_s: float = FLUSH_S) -> None:
        self.path = path
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as exc:
            raise LayoutError(f"cannot write {path}: {exc.strerror}") from None
        self.size = 0  # bytes of whole lines on disk
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
        """Write every queued line now; on an error, cut the file back to its last whole line
        and raise ``LayoutError`` (one line)."""
        if self.lines:
            data = "".join(self.lines).encode()
            self.lines = []
            done = 0
            try:
                while done < len(data):
                    done += os.write(self.fd, data[done:])
            except OSError as exc:
                os.ftruncate(self.fd, self.size)
                os.lseek(self.fd, self.size, os.SEEK_SET)
                raise LayoutError(f"cannot write {self.path}: {exc.strerror}") from None
            self.size += done

    def close(self) -> None:
        try:
            self.flush()
        finally:
            os.close(self.fd)
