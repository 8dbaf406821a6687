"""Verify: digests and OpenPGP signatures (gpgv), on a whole file or while the bytes arrive.

``StreamVerifier`` is what a download uses: each chunk goes to one thread per digest (hashlib
releases the GIL) and down a pipe into ``gpgv <sig> -``, so hashing and the signature check run
beside the transfer and a fetch ends when its download ends.  ``gpgv_verify`` checks a file
already on disk (a cached file whose record no longer matches).

Keyrings: the bundled ones in ``harness/data`` (coreos-installer's Fedora key bundle for FCOS,
the Flatcar image signing key for Flatcar) or a user ``--keyring FILE`` (armored or binary).
When a user keyring is given it is THE trust anchor for that run; it is never merged into the
bundled ones.  gpgv needs a binary keyring, so every keyring is imported into a throwaway
GNUPGHOME and exported (binary) into ``<cache>/keyrings/<sha256-of-input>.gpg`` once.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..errors import LivelabError

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
BUNDLED_KEYRINGS = {
    "fcos": DATA_DIR / "fcos-signing-keys.asc",
    "flatcar": DATA_DIR / "Flatcar_Image_Signing_Key.asc",
}
HASH_ALGOS = ("sha256", "sha512")
CHUNK = 1 << 20


@dataclass(frozen=True)
class Keyring:
    source: str              # the file the user / bundle named
    path: str                # binary keyring gpgv reads
    fingerprints: tuple      # primary-key fingerprints in it

    @property
    def label(self) -> str:
        return os.path.basename(self.source)


def _need(tool: str) -> str:
    exe = shutil.which(tool)
    if not exe:
        raise LivelabError(f"{tool} not found: install GnuPG (gnupg2 / gpgv) to verify signatures")
    return exe


def _gpg(args: Sequence[str], home: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([_need("gpg"), "--homedir", home, "--batch", "--no-tty", *args],
                          capture_output=True, **kw)


def load_keyring(source: str | Path, cache_dir: str | Path) -> Keyring:
    """Prepare ``source`` (.asc or binary keyring) for gpgv, kept in ``<cache_dir>/keyrings`` by content hash."""
    src = Path(source)
    try:
        data = src.read_bytes()
    except OSError as exc:
        raise LivelabError(f"cannot read keyring {source}: {exc.strerror or exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    out_dir = Path(cache_dir) / "keyrings"
    out_dir.mkdir(parents=True, exist_ok=True)
    gpg_path, meta_path = out_dir / f"{digest}.gpg", out_dir / f"{digest}.json"
    if gpg_path.exists() and meta_path.exists():
        try:
            fprs = tuple(json.loads(meta_path.read_text())["fingerprints"])
            if fprs:
                return Keyring(str(src), str(gpg_path), fprs)
        except (ValueError, KeyError):
            pass
    with tempfile.TemporaryDirectory(prefix="livelab-gnupg-") as home:
        os.chmod(home, 0o700)
        imp = _gpg(["--quiet", "--import", str(src)], home)
        exp = _gpg(["--export"], home)
        lst = _gpg(["--with-colons", "--list-keys"], home, text=True)
    fprs = _primary_fingerprints(lst.stdout if lst.returncode == 0 else "")
    if not exp.stdout or not fprs:
        err = " ".join(imp.stderr.decode(errors="replace").split())[:200]
        raise LivelabError(f"keyring {source} holds no usable OpenPGP public key ({err or 'empty'})")
    atomic_write(gpg_path, exp.stdout)
    atomic_write(meta_path, json.dumps({"source": str(src), "fingerprints": list(fprs)}))
    return Keyring(str(src), str(gpg_path), fprs)


def _primary_fingerprints(colons: str) -> tuple:
    fprs, want = [], False
    for line in colons.splitlines():
        f = line.split(":")
        if f[0] == "pub":
            want = True
        elif f[0] == "fpr" and want:
            fprs.append(f[9])
            want = False
        elif f[0] in ("sub", "uid"):
            want = False
    return tuple(fprs)


def keyring_for(os_id: str, keyring: str | Path | None, cache_dir: str | Path) -> Keyring:
    return load_keyring(keyring if keyring else BUNDLED_KEYRINGS[os_id], cache_dir)


class SignatureError(LivelabError):
    pass


def _gpgv_command(home: str, keyring: Keyring, sig_path: str | Path, data: str) -> list[str]:
    return [_need("gpgv"), "--homedir", home, "--status-fd", "1", "--keyring", os.path.abspath(keyring.path),
            str(sig_path), data]


def _gpgv_outcome(returncode: int, status_text: str, stderr: str, keyring: Keyring, name: str) -> list[str]:
    """The primary fingerprints of good signers from gpgv's status lines, or SignatureError saying why not."""
    status = status_text.splitlines()
    signers = []
    for line in status:
        f = line.split()
        if len(f) >= 3 and f[:2] == ["[GNUPG:]", "VALIDSIG"]:
            signers.append(f[-1] if len(f) >= 12 else f[2])
    if returncode == 0 and signers:
        return signers
    kinds = {line.split()[1] for line in status if len(line.split()) > 1}
    if "BADSIG" in kinds:
        why = "BAD signature (file modified or signature for another file)"
    elif "NO_PUBKEY" in kinds:
        keyid = next((line.split()[2] for line in status if " NO_PUBKEY " in line), "?")
        why = f"signed by key {keyid}, which is not in keyring {keyring.label}"
    elif "NODATA" in kinds or "BADARMOR" in kinds:
        why = "signature file is not an OpenPGP signature"
    elif "EXPKEYSIG" in kinds or "REVKEYSIG" in kinds:
        why = "signing key expired or revoked"
    else:
        why = " ".join(stderr.split())[-200:] or f"gpgv exit status {returncode}"
    raise SignatureError(f"refusing {name}: signature check failed: {why}")


def gpgv_verify(data_path: str | Path, sig_path: str | Path, keyring: Keyring, name: str | None = None) -> list[str]:
    """Check a detached signature of a file on disk; the primary fingerprints of good signers.

    Raises SignatureError (one line naming the file) on a bad signature, an unknown key or any
    other gpgv failure.
    """
    name = name or os.path.basename(str(data_path))
    with tempfile.TemporaryDirectory(prefix="livelab-gpgv-") as home:
        os.chmod(home, 0o700)
        proc = subprocess.run(_gpgv_command(home, keyring, sig_path, str(data_path)), capture_output=True, text=True)
    return _gpgv_outcome(proc.returncode, proc.stdout, proc.stderr, keyring, name)


class _Fanout:
    """Hand every chunk to each sink in a thread of its own (bounded queues: memory stays small).

    A sink that fails stops taking chunks; its error is kept and ``close`` re-raises the first one.
    """

    DEPTH = 8

    def __init__(self, sinks: Iterable[Callable[[bytes], Any]]):
        self._queues: list[queue.Queue] = []
        self._threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []
        for sink in sinks:
            q: queue.Queue = queue.Queue(maxsize=self.DEPTH)
            t = threading.Thread(target=self._run, args=(sink, q), daemon=True)
            t.start()
            self._queues.append(q)
            self._threads.append(t)

    def _run(self, sink: Callable[[bytes], Any], q: queue.Queue) -> None:
        failed = False
        while True:
            chunk = q.get()
            if chunk is None:
                return
            if failed:
                continue            # keep draining so the feeder never blocks
            try:
                sink(chunk)
            except BaseException as exc:
                self.errors.append(exc)
                failed = True

    def feed(self, chunk: bytes) -> None:
        for q in self._queues:
            q.put(chunk)

    def close(self) -> None:
        for q in self._queues:
            q.put(None)
        for t in self._threads:
            t.join()


def _pipe_writer(fd: int) -> Callable[[bytes], None]:
    def write(chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view):]
    return write


class StreamVerifier:
    """Digests (``algos``) and, with a keyring, the detached signature ``sig_path``, computed from
    the chunks given to ``feed`` while they arrive.  ``finish`` returns the digests, then
    ``signers`` the signature's verdict."""

    PIPE_SIZE = 1 << 20

    def __init__(self, algos: Iterable[str], name: str, sig_path: str | Path | None = None,
                 keyring: Keyring | None = None):
        self.name = name
        self.keyring = keyring
        self.hashers = new_hashers(algos)
        self._gpgv: subprocess.Popen | None = None
        self._home: tempfile.TemporaryDirectory | None = None
        sinks: list[Callable[[bytes], Any]] = [h.update for h in self.hashers.values()]
        if keyring is not None:
            if sig_path is None:
                raise SignatureError(f"refusing {name}: no signature to check it against")
            self._home = tempfile.TemporaryDirectory(prefix="livelab-gpgv-")
            os.chmod(self._home.name, 0o700)
            self._gpgv = subprocess.Popen(_gpgv_command(self._home.name, keyring, sig_path, "-"),
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            stdin = self._gpgv.stdin
            assert stdin is not None
            with contextlib.suppress(OSError):      # fewer wake-ups per MiB; the default still works
                fcntl.fcntl(stdin.fileno(), fcntl.F_SETPIPE_SZ, self.PIPE_SIZE)
            sinks.append(_pipe_writer(stdin.fileno()))
        self._fanout = _Fanout(sinks)
        self._closed = False
        self._verdict: tuple[int, str, str] = (-1, "", "gpgv did not run")

    def feed(self, chunk: bytes) -> None:
        if chunk:
            self._fanout.feed(chunk)

    def feed_file(self, path: str | Path, limit: int | None = None) -> None:
        """Feed (the first ``limit`` bytes of) a file: the part of a resumed download already on disk."""
        left = limit
        with open(path, "rb") as fp:
            while left is None or left > 0:
                b = fp.read(CHUNK if left is None else min(CHUNK, left))
                if not b:
                    break
                self.feed(b)
                if left is not None:
                    left -= len(b)

    def _close(self) -> tuple[int, str, str]:
        self._closed = True
        self._fanout.close()
        if self._gpgv is None:
            return 0, "", ""
        proc = self._gpgv
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        with contextlib.suppress(OSError):
            proc.stdin.close()
        out, err = proc.stdout.read(), proc.stderr.read()      # a few status lines: no pipe fills up
        proc.wait()
        if self._home is not None:
            self._home.cleanup()
        return self._gpgv.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    def finish(self) -> dict[str, str]:
        """{algo: hex} of everything fed; the signature verdict waits in ``signers``."""
        rc, out, err = self._close()
        self._verdict = (rc, out, err)
        hash_errors = [e for e in self._fanout.errors if not isinstance(e, OSError)]
        if hash_errors:
            raise hash_errors[0]
        return {a: h.hexdigest() for a, h in self.hashers.items()}

    def signers(self) -> list[str]:
        """The primary fingerprints of good signers (none without a keyring); SignatureError if not good."""
        if self.keyring is None:
            return []
        return _gpgv_outcome(*self._verdict, self.keyring, self.name)

    def abort(self) -> None:
        """Stop without a verdict (the download failed)."""
        if self._closed:
            return
        if self._gpgv is not None:
            with contextlib.suppress(OSError):
                self._gpgv.kill()
        self._close()


# ------------------------------------------------------------------ digests

def new_hashers(algos: Iterable[str]) -> dict[str, Any]:
    return {a: hashlib.new(a) for a in algos}


def hash_file(path: str | Path, algos: Iterable[str] = ("sha256",), hashers: dict[str, Any] | None = None,
              limit: int | None = None) -> dict[str, Any]:
    """Feed (the first ``limit`` bytes of) ``path`` into hashers (new ones unless given)."""
    hashers = hashers if hashers is not None else new_hashers(algos)
    left = limit
    with open(path, "rb") as fp:
        while left is None or left > 0:
            b = fp.read(CHUNK if left is None else min(CHUNK, left))
            if not b:
                break
            for h in hashers.values():
                h.update(b)
            if left is not None:
                left -= len(b)
    return hashers


def check_digests(name: str, expected: dict[str, str], got: dict[str, str], source: str = "") -> None:
    for algo, want in expected.items():
        have = got.get(algo)
        if have is not None and have.lower() != want.lower():
            src = f" from {source}" if source else ""
            raise LivelabError(f"refusing {name}: {algo} mismatch (expected {algo}:{want.lower()}{src}, "
                               f"got {algo}:{have})")


_DIGEST_HEADER = re.compile(r"^#\s*(\w+)\s+HASH\s*$", re.I)


def parse_digests(text: str, filename: str | None = None, source: str = "DIGESTS") -> dict[str, str]:
    """Parse a Flatcar ``.DIGESTS`` file (``# SHA512 HASH`` blocks of ``<hex>  <name>``).

    Returns {algo: hex} for ``filename`` (or for the single file listed).  Only sha512 is used
    by callers, but md5/sha1 are returned too.  Malformed content raises LivelabError.
    """
    out: dict[str, str] = {}
    algo = None
    lengths = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        m = _DIGEST_HEADER.match(line)
        if m:
            algo = m.group(1).lower()
            continue
        if line.startswith("#"):
            continue
        if algo is None:
            raise LivelabError(f"malformed {source}: line {lineno} has a digest before any '# <ALGO> HASH' header")
        parts = line.split(None, 1)
        if len(parts) != 2:
            raise LivelabError(f"malformed {source}: line {lineno}: expected '<hex>  <file name>'")
        hexd, name = parts[0].lower(), parts[1].lstrip("*").strip()
        if not re.fullmatch(r"[0-9a-f]+", hexd) or (algo in lengths and len(hexd) != lengths[algo]):
            raise LivelabError(f"malformed {source}: line {lineno}: bad {algo} digest")
        if filename is not None and name != filename:
            continue
        if algo in out and out[algo] != hexd:
            raise LivelabError(f"malformed {source}: two different {algo} digests for {name}")
        out[algo] = hexd
    if "sha512" not in out:
        what = f" for {filename}" if filename else ""
        raise LivelabError(f"malformed {source}: no '# SHA512 HASH' entry{what}")
    return out
