"""A throwaway signed FCOS mirror on loopback, for the download benchmarks (and the fault tests).

``SignedMirror(root, sizes)`` writes an FCOS stream (``fcos/streams/stable.json``) whose artifacts
are random files of the given sizes, each signed with a throwaway ed25519 key (``mirror.pub`` is
the keyring to trust), and serves the tree from ``CountingServer``: a loopback HTTP server using
``sendfile`` that counts the body bytes it sent and records every request (path, Range header,
transfer seconds).  ``delay`` slows every 64 KiB chunk (a slow mirror for kill-mid-download tests).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

VERSION = "99.20990101.3.0"
UPSTREAM = "https://builds.coreos.fedoraproject.org/prod/streams/stable/builds"
NAMES = {"kernel": f"fedora-coreos-{VERSION}-live-kernel.x86_64",
         "initramfs": f"fedora-coreos-{VERSION}-live-initramfs.x86_64.img",
         "rootfs": f"fedora-coreos-{VERSION}-live-rootfs.x86_64.img"}


class Signer:
    """A throwaway gpg key in a short temp home (gpg-agent's socket path is limited)."""

    def __init__(self):
        self.home = tempfile.mkdtemp(prefix="ll-gpg-", dir="/tmp")
        self.gpg = ["gpg", "--homedir", self.home, "--batch", "--no-tty", "--pinentry-mode", "loopback",
                    "--passphrase", ""]
        subprocess.run([*self.gpg, "--quick-gen-key", "livelab bench mirror <bench@example.invalid>", "ed25519",
                        "sign", "never"], check=True, capture_output=True)
        self.pub = Path(self.home) / "mirror-key.asc"
        self.pub.write_bytes(subprocess.run([*self.gpg, "--armor", "--export"], check=True,
                                            capture_output=True).stdout)

    def sign(self, path: Path) -> None:
        subprocess.run([*self.gpg, "--yes", "--detach-sign", "-o", f"{path}.sig", str(path)], check=True,
                       capture_output=True)

    def close(self) -> None:
        subprocess.run(["gpgconf", "--homedir", self.home, "--kill", "gpg-agent"], capture_output=True)
        shutil.rmtree(self.home, ignore_errors=True)


def write_random(path: Path, size: int) -> str:
    """Write ``size`` random bytes; return their sha256."""
    h = hashlib.sha256()
    chunk = os.urandom(1 << 20)          # one random MiB, varied per block: cheap and incompressible enough
    with open(path, "wb") as f:
        left, i = size, 0
        while left > 0:
            block = (i.to_bytes(8, "little") + chunk)[: min(left, 1 << 20)]
            f.write(block)
            h.update(block)
            left -= len(block)
            i += 1
    return h.hexdigest()


class CountingServer:
    """Loopback HTTP (GET/HEAD, Range) over a directory, counting what it sends."""

    def __init__(self, root: Path, delay: float = 0.0):
        self.root = Path(root)
        self.delay = delay
        self.lock = threading.Lock()
        self.bytes_sent = 0
        self.requests: list[dict] = []
        owner = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_HEAD(self):
                self._serve(head=True)

            def do_GET(self):
                self._serve(head=False)

            def _serve(self, head):
                path = self.path.split("?")[0]
                rng = self.headers.get("Range")
                rec = {"path": path, "range": rng, "method": self.command, "sent": 0, "seconds": 0.0}
                with owner.lock:
                    owner.requests.append(rec)
                f = owner.root / path.lstrip("/")
                if not f.is_file() or ".." in path:
                    self.send_error(HTTPStatus.NOT_FOUND)
                    return
                size = f.stat().st_size
                start = 0
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0] or 0)
                    if start >= size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(size - start))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if head:
                    return
                t0 = time.monotonic()
                sent = 0
                try:
                    with open(f, "rb") as fh:
                        offset, left = start, size - start
                        step = 65536 if owner.delay else 1 << 24
                        while left > 0:
                            n = os.sendfile(self.connection.fileno(), fh.fileno(), offset, min(left, step))
                            if n == 0:
                                break
                            offset += n
                            left -= n
                            sent += n
                            with owner.lock:
                                owner.bytes_sent += n
                            if owner.delay:
                                time.sleep(owner.delay)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                rec["sent"] = sent
                rec["seconds"] = time.monotonic() - t0

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def reset(self) -> None:
        with self.lock:
            self.bytes_sent = 0
            self.requests = []

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SignedMirror:
    """``fcos/streams/stable.json`` + signed artifacts of ``sizes`` ({kind: bytes}) under ``root``."""

    def __init__(self, root: Path, sizes: dict[str, int], signer: Signer | None = None, delay: float = 0.0):
        self.root = Path(root)
        self.own_signer = signer is None
        self.signer = signer or Signer()
        self.dir = self.root / f"fcos/prod/streams/stable/builds/{VERSION}/x86_64"
        self.dir.mkdir(parents=True, exist_ok=True)
        pxe = {}
        self.paths = {}
        for kind in ("kernel", "initramfs", "rootfs"):
            name = NAMES[kind]
            path = self.dir / name
            digest = write_random(path, sizes.get(kind, 4096))
            self.signer.sign(path)
            self.paths[kind] = path
            pxe[kind] = {"location": f"{UPSTREAM}/{VERSION}/x86_64/{name}",
                         "signature": f"{UPSTREAM}/{VERSION}/x86_64/{name}.sig", "sha256": digest}
        stream = {"stream": "stable", "metadata": {"last-modified": "2099-01-01T00:00:00Z"},
                  "architectures": {"x86_64": {"artifacts": {"metal": {"release": VERSION,
                                                                       "formats": {"pxe": pxe}}}}}}
        (self.root / "fcos/streams").mkdir(parents=True, exist_ok=True)
        (self.root / "fcos/streams/stable.json").write_text(json.dumps(stream))
        self.server = CountingServer(self.root, delay=delay)
        self.url = self.server.url
        self.keyring = str(self.signer.pub)

    def artifact_path(self, kind: str) -> str:
        """The server path of an artifact (as requested by clients)."""
        return "/" + str(self.paths[kind].relative_to(self.root))

    def close(self) -> None:
        self.server.close()
        if self.own_signer:
            self.signer.close()
