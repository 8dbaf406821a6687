"""The harness's loopback services for guests: an HTTP server on 127.0.0.1 and QEMU's TFTP dir.

Guests reach the HTTP server only through QEMU's ``guestfwd`` (``http://10.0.2.100/``); the
server binds 127.0.0.1 and serves only what the harness published (verified cached artifacts,
rendered configs, boot scripts).  It supports ``HEAD`` and ``Range`` (FCOS's rootfs fetch probes
with ``curl --head``) and records every request for the run's artifacts.
"""
from __future__ import annotations

import os
import re
import shutil
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

GUEST_HTTP_IP = "10.0.2.100"
GUEST_HTTP_PORT = 80


def guest_url(path: str) -> str:
    """The URL a guest uses for a path published on the harness's HTTP server."""
    return f"http://{GUEST_HTTP_IP}/{path.lstrip('/')}"


def relay_command(port: int) -> str:
    """The ``guestfwd=...-cmd:`` program: one relay per guest connection to 127.0.0.1:port.

    (The ``tcp:`` target form of guestfwd connects once at start-up and so serves only the
    first guest connection.)"""
    if shutil.which("socat"):
        return f"socat - TCP:127.0.0.1:{port}"
    return f"nc 127.0.0.1 {port}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "livelab"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: object):  # requests are recorded, not printed
        pass

    def _target(self) -> Path | bytes | None:
        path = unquote(urlsplit(self.path).path).lstrip("/")
        return self.server.lookup(path)

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def _serve(self, head: bool):
        target = self._target()
        self.server.record(self.command, self.path)
        if target is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        if isinstance(target, bytes):
            size, f = len(target), None
        else:
            try:
                f = open(target, "rb")  # noqa: SIM115 -- closed in the finally below, after streaming
            except OSError:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            size = os.fstat(f.fileno()).st_size
        try:
            start, end = 0, size - 1
            status = HTTPStatus.OK
            rng = self.headers.get("Range")
            if rng:
                m = re.match(r"bytes=(\d*)-(\d*)$", rng.strip())
                if not m or (not m.group(1) and not m.group(2)):
                    self.send_error(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                    return
                if m.group(1):
                    start = int(m.group(1))
                    end = int(m.group(2)) if m.group(2) else size - 1
                else:
                    start = max(0, size - int(m.group(2)))
                end = min(end, size - 1)
                if start >= size or start > end:
                    self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = HTTPStatus.PARTIAL_CONTENT
            length = end - start + 1 if size else 0
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            if status == HTTPStatus.PARTIAL_CONTENT:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if head or not length:
                return
            if f is None:
                assert isinstance(target, bytes)   # only a file path is opened
                self.wfile.write(target[start:end + 1])
            else:
                try:
                    offset, left = start, length
                    while left > 0:
                        sent = os.sendfile(self.connection.fileno(), f.fileno(), offset, min(left, 1 << 24))
                        if sent == 0:
                            break
                        offset += sent
                        left -= sent
                except (BrokenPipeError, ConnectionResetError):
                    pass
        finally:
            if f is not None:
                f.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: HttpServer):
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def lookup(self, path: str):
        return self.owner.lookup(path)

    def record(self, method: str, path: str):
        with self.owner.lock:
            self.owner.requests.append((method, path))


class HttpServer:
    """A loopback HTTP server publishing files and bytes under chosen paths.

    ``publish("config.ign", b"...")``, ``publish("artifacts/x.img", Path(...))``,
    ``publish_dir("mirror", Path(...))`` (everything below a directory).
    """

    def __init__(self):
        self.routes: dict[str, Path | bytes] = {}
        self.dirs: dict[str, Path] = {}
        self.requests: list = []
        self.lock = threading.Lock()
        self._server = _Server(self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"livelab-http-{self.port}",
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def publish(self, path: str, content: Path | bytes | str) -> str:
        if isinstance(content, str):
            content = content.encode()
        self.routes[path.lstrip("/")] = content
        return guest_url(path)

    def publish_dir(self, prefix: str, directory: Path) -> None:
        self.dirs[prefix.strip("/")] = Path(directory).resolve()

    def lookup(self, path: str) -> Path | bytes | None:
        if path in self.routes:
            return self.routes[path]
        for prefix, directory in self.dirs.items():
            if path == prefix or path.startswith(prefix + "/") or prefix == "":
                rel = path[len(prefix):].lstrip("/") if prefix else path
                candidate = (directory / rel).resolve()
                if candidate.is_file() and (candidate == directory or directory in candidate.parents):
                    return candidate
        return None

    def requested(self, substring: str) -> int:
        with self.lock:
            return sum(1 for _, p in self.requests if substring in p)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
