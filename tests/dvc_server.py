"""A DVC HTTP remote on 127.0.0.1 that behaves as ``dvc-dagshub.md`` §3 specifies (the stand-in
for DagsHub's ``<repo>.dvc`` endpoint): basic auth, GET/HEAD/POST/PUT, 404 for missing objects,
Range reads, chunked uploads, atomic writes, content-addressed keep-first; with switches for
failing the first N uploads, wrong credentials, corrupting an object and never answering."""

from __future__ import annotations

import base64
import os
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class DvcRemote:
    """Starts the server in a thread; ``url`` is its remote URL; ``log`` holds (method, path)."""

    def __init__(self, root: Path, user: str, password: str, prefix: str = "/owner/repo.dvc"):
        self.root, self.user, self.password, self.prefix = root, user, password, prefix
        self.fail_uploads = 0
        self.blackhole = False
        self.held = 0  # requests the blackhole has left unanswered
        self.api = None  # a handler of /api/ paths (tests/dagshub_api.py), or None
        self.log: list[tuple[str, str, int]] = []
        self._stop = threading.Event()
        remote = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _path(self) -> Path | None:
                path = self.path.split("?")[0]
                if not path.startswith(remote.prefix):
                    return None
                rel = path[len(remote.prefix) :].lstrip("/")
                if ".." in rel.split("/"):
                    return None
                return remote.root / rel

            def _reply(self, code: int, body: bytes = b"", headers: dict | None = None):
                remote.log.append((self.command, self.path, code))
                self.send_response(code)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().strip().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def _authorised(self) -> bool:
                expected = base64.b64encode(f"{remote.user}:{remote.password}".encode()).decode()
                if self.headers.get("Authorization") == f"Basic {expected}":
                    return True
                if self.command in ("POST", "PUT"):
                    self._body()
                self._reply(401, b"unauthorised", {"WWW-Authenticate": 'Basic realm="dvc"'})
                return False

            def _hold(self) -> bool:
                if remote.blackhole:
                    remote.held += 1
                    remote._stop.wait(120)
                    return True
                return False

            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):
                if remote.api is not None and self.path.startswith("/api/"):
                    code, body = remote.api.answer(self.command, self.path, self.headers)
                    self._reply(code, body, {"Content-Type": "application/json"})
                    return
                if self._hold() or not self._authorised():
                    return
                path = self._path()
                if path is None or not path.is_file():
                    self._reply(404, b"not found")
                    return
                data = path.read_bytes()
                ranged = self.headers.get("Range", "")
                if ranged.startswith("bytes="):
                    lo, _, hi = ranged[6:].partition("-")
                    lo, hi = int(lo or 0), int(hi) if hi else len(data) - 1
                    part = data[lo : hi + 1]
                    self._reply(206, part, {"Content-Range": f"bytes {lo}-{hi}/{len(data)}"})
                    return
                self._reply(200, data)

            def do_POST(self):
                if self._hold() or not self._authorised():
                    return
                body = self._body()
                path = self._path()
                if path is None:
                    self._reply(404)
                    return
                if remote.fail_uploads > 0:
                    remote.fail_uploads -= 1
                    self._reply(500, b"injected failure")
                    return
                if not path.exists():  # content-addressed: keep the first copy
                    path.parent.mkdir(parents=True, exist_ok=True)
                    fd, tmp = tempfile.mkstemp(dir=path.parent)
                    with os.fdopen(fd, "wb") as f:
                        f.write(body)
                    os.replace(tmp, path)
                self._reply(200, b"ok")

            do_PUT = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"{self.host}{self.prefix}"

    def uploads(self) -> int:
        return sum(1 for method, _, _ in self.log if method in ("POST", "PUT"))

    def objects(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*") if p.is_file())

    def corrupt(self, path: Path) -> None:
        data = bytearray(path.read_bytes())
        data[0] ^= 0xFF
        path.write_bytes(bytes(data))

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        time.sleep(0.05)
