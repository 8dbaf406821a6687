"""A hostile loopback mirror for the artifact tests: a signed FCOS release served over HTTP, and
per-path faults a real mirror or network shows.

``Mirror.rules[path]`` is a list of one-shot actions, ``Mirror.always[path]`` one action for every
request:

- ``"500"``: an Internal Server Error;
- ``"stall"``: 1000 bytes, then silence for 3 s;
- ``"drop"``: half the body, then the connection is closed mid-body;
- ``"truncate"``: a Content-Length larger than the body, which ends early;
- ``"wrong"``: the right length, wrong bytes (every 4096th byte flipped);
- ``"trickle"``: one byte every 100 ms;
- ``("redirect", URL)``: a 302 to URL (another port, another host name, another path);
- ``("body", BYTES)``: these bytes instead of the file (e.g. broken JSON).

``Mirror.delay`` slows every 64 KiB chunk.  Used by test_artifacts_fetch and test_artifacts_hostile.
"""
import contextlib
import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from harness.artifacts import fetch, resolve

VER = "99.20990101.3.0"
UP = "https://builds.coreos.fedoraproject.org/prod/streams/stable/builds"
FILES = {"kernel": (f"fedora-coreos-{VER}-live-kernel.x86_64", 200_000),
         "initramfs": (f"fedora-coreos-{VER}-live-initramfs.x86_64.img", 300_000),
         "rootfs": (f"fedora-coreos-{VER}-live-rootfs.x86_64.img", 2_000_000),
         "iso": (f"fedora-coreos-{VER}-live-iso.x86_64.iso", 100_000)}
REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------ throwaway signing key

@pytest.fixture(scope="module")
def signer():
    home = tempfile.mkdtemp(prefix="ll-gpg-", dir="/tmp")       # short: gpg-agent socket path limit
    gpg = ["gpg", "--homedir", home, "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""]
    subprocess.run([*gpg, "--quick-gen-key", "livelab test mirror <mirror@example.invalid>", "ed25519", "sign",
                    "never"], check=True, capture_output=True)
    pub = Path(home) / "mirror-key.asc"
    pub.write_bytes(subprocess.run([*gpg, "--armor", "--export"], check=True, capture_output=True).stdout)
    colons = subprocess.run([*gpg, "--with-colons", "--list-keys"], check=True, capture_output=True, text=True).stdout
    fpr = next(line.split(":")[9] for line in colons.splitlines() if line.startswith("fpr:"))

    def sign(path: Path):
        subprocess.run([*gpg, "--yes", "--detach-sign", "-o", str(path) + ".sig", str(path)], check=True,
                       capture_output=True)

    yield type("Signer", (), {"pub": pub, "fpr": fpr, "sign": staticmethod(sign)})
    subprocess.run(["gpgconf", "--homedir", home, "--kill", "gpg-agent"], capture_output=True)
    shutil.rmtree(home, ignore_errors=True)


# ------------------------------------------------------------ loopback mirror

class Mirror:
    def __init__(self, root: Path):
        self.root = root
        self.hits = Counter()          # path -> GET count
        self.ranges = []               # (path, Range header)
        self.rules = {}                # path -> list of one-shot actions: "drop", "500", "stall"
        self.always = {}               # path -> action for every request
        self.delay = 0.0               # seconds per 64 KiB chunk
        handler = self._handler()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def total_hits(self):
        return sum(self.hits.values())

    def _handler(self):
        mirror = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                mirror.hits[path] += 1
                rng = self.headers.get("Range")
                mirror.ranges.append((path, rng))
                queue = mirror.rules.get(path) or []
                action = queue.pop(0) if queue else mirror.always.get(path)
                if action == "500":
                    return self.send_error(500, "Internal Server Error")
                if isinstance(action, tuple) and action[0] == "redirect":
                    self.send_response(302)
                    self.send_header("Location", action[1])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                if isinstance(action, tuple) and action[0] == "body":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(action[1])))
                    self.end_headers()
                    self.wfile.write(action[1])
                    return None
                f = mirror.root / path.lstrip("/")
                if not f.is_file():
                    return self.send_error(404, "Not Found")
                data = f.read_bytes()
                start = 0
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if action == "wrong":
                    body = bytes(b ^ 0xFF if i % 4096 == 0 else b for i, b in enumerate(body))
                if action == "truncate":
                    self.wfile.write(body[:len(body) // 3])
                    self.wfile.flush()
                    self.close_connection = True
                    return None
                if action == "trickle":
                    with contextlib.suppress(OSError):
                        for i in range(len(body)):
                            self.wfile.write(body[i:i + 1])
                            self.wfile.flush()
                            time.sleep(0.1)
                    return None
                if action == "stall":
                    self.wfile.write(body[:1000])
                    self.wfile.flush()
                    time.sleep(3)
                    return
                if action == "drop":
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                for i in range(0, len(body), 65536):
                    self.wfile.write(body[i:i + 65536])
                    if mirror.delay:
                        time.sleep(mirror.delay)

        return H

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def fpath(kind):
    return f"/fcos/prod/streams/stable/builds/{VER}/x86_64/{FILES[kind][0]}"


@pytest.fixture(scope="module")
def mirror_template(signer, tmp_path_factory):
    root = tmp_path_factory.mktemp("mirror-template")
    d = root / f"fcos/prod/streams/stable/builds/{VER}/x86_64"
    d.mkdir(parents=True)
    pxe, iso = {}, {}
    for kind, (name, size) in FILES.items():
        data = os.urandom(size)
        (d / name).write_bytes(data)
        signer.sign(d / name)
        ent = {"location": f"{UP}/{VER}/x86_64/{name}", "signature": f"{UP}/{VER}/x86_64/{name}.sig",
               "sha256": hashlib.sha256(data).hexdigest()}
        (iso if kind == "iso" else pxe)[kind] = ent
    stream = {"stream": "stable", "metadata": {"last-modified": "2099-01-01T00:00:00Z"},
              "architectures": {"x86_64": {"artifacts": {"metal": {"release": VER, "formats": {
                  "pxe": pxe, "iso": {"disk": iso["iso"]}}}}}}}
    (root / "fcos/streams").mkdir(parents=True)
    (root / "fcos/streams/stable.json").write_text(json.dumps(stream))
    return root


@pytest.fixture
def fcos_mirror(tmp_path, mirror_template):
    root = tmp_path / "mirror"
    shutil.copytree(mirror_template, root)
    d = root / f"fcos/prod/streams/stable/builds/{VER}/x86_64"
    m = Mirror(root)
    m.cache = tmp_path / "cache"
    m.dir = d
    yield m
    m.close()


def fetch_from(m, signer, **kw):
    rel = resolve("fcos", "stable", mirror=m.url, cache_dir=m.cache)
    kw.setdefault("keyring", str(signer.pub))
    kw.setdefault("retries", 0)
    kw.setdefault("backoff", 0.01)
    return fetch(rel, cache_dir=m.cache, **kw)


