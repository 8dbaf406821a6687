"""Verify: digests and OpenPGP signatures (gpgv), on a whole file or while the bytes arrive.

``StreamVerifier`` is what a download uses: one thread per digest (hashlib releases the GIL) and
one feeding ``gpgv <sig> -`` through a pipe read the file behind the writer, from the page cache,
so hashing and the signature check run beside the transfer, never slow it down, and a fetch ends
about when its download and gpgv's own pass end.  ``gpgv_verify`` checks a file
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
from ..safeload import shown

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
    """A signature that is not good.  ``untrusted``: made by a key the keyring does not hold (the
    bytes may well be right; another keyring would accept them)."""

    def __init__(self, message: str, untrusted: bool = False):
        super().__init__(message)
        self.untrusted = untrusted


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
    raise SignatureError(f"refusing {name}: signature check failed: {why}", untrusted="NO_PUBKEY" in kinds)


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


class _Follower(threading.Thread):
    """Reads a growing file behind its writer, up to the ``written`` mark, and hands each piece to ``sink``.

    The bytes come back from the page cache, so the download never waits for a slow reader (gpgv),
    and nothing is held in memory.  A sink that fails stops reading; its error is kept.
    """

    def __init__(self, path: Path, written: _WrittenMark, sink: Callable[[bytes], Any], name: str):
        super().__init__(name=name, daemon=True)
        self.path, self.written, self.sink = path, written, sink
        self.error: BaseException | None = None

    def run(self) -> None:
        pos = 0
        try:
            with open(self.path, "rb") as fp:
                while True:
                    end = self.written.wait_past(pos)
                    if end <= pos:
                        return                  # finished, everything read
                    fp.seek(pos)
                    while pos < end:
                        data = fp.read(min(CHUNK, end - pos))
                        if not data:
                            raise LivelabError(f"{self.path} shrank while it was being verified")
                        self.sink(data)
                        pos += len(data)
        except BaseException as exc:
            self.error = exc


class _WrittenMark:
    """How far a file has been written; readers wait on it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.written = 0
        self.done = False

    def advance(self, written: int) -> None:
        with self._cond:
            self.written = written
            self._cond.notify_all()

    def finish(self) -> None:
        with self._cond:
            self.done = True
            self._cond.notify_all()

    def wait_past(self, pos: int) -> int:
        """The written mark once it is past ``pos``, or at the end whatever it is."""
        with self._cond:
            self._cond.wait_for(lambda: self.written > pos or self.done)
            return self.written


def _pipe_writer(fd: int) -> Callable[[bytes], None]:
    def write(chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view):]
    return write


class StreamVerifier:
    """Digests (``algos``) and, with a keyring, the detached signature ``sig_path`` of ``path``,
    computed while the file is written: the writer calls ``written(n)`` as the file grows, each
    digest and gpgv read it behind the writer, in threads of their own.  ``finish`` returns the
    digests once everything is read, then ``signers`` gives the signature's verdict."""

    PIPE_SIZE = 1 << 20

    def __init__(self, path: str | Path, algos: Iterable[str], name: str, sig_path: str | Path | None = None,
                 keyring: Keyring | None = None):
        self.path, self.name, self.keyring = Path(path), name, keyring
        self.hashers = new_hashers(algos)
        self._written = _WrittenMark()
        self._gpgv: subprocess.Popen | None = None
        self._home: tempfile.TemporaryDirectory | None = None
        sinks: list[tuple[str, Callable[[bytes], Any]]] = [(a, h.update) for a, h in self.hashers.items()]
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
            sinks.append(("gpgv", _pipe_writer(stdin.fileno())))
        self._readers = [_Follower(self.path, self._written, sink, f"verify-{what}") for what, sink in sinks]
        for r in self._readers:
            r.start()
        self._closed = False
        self._verdict: tuple[int, str, str] = (-1, "", "gpgv did not run")

    def written(self, size: int) -> None:
        """The file now holds ``size`` bytes (all of them final)."""
        self._written.advance(size)

    def _close(self) -> tuple[int, str, str]:
        self._closed = True
        self._written.finish()
        for r in self._readers:
            r.join()
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
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    def finish(self) -> dict[str, str]:
        """{algo: hex} of the whole file; the signature verdict waits in ``signers``."""
        self._verdict = self._close()
        errors = [r.error for r in self._readers if r.error is not None and not isinstance(r.error, OSError)]
        if errors:
            raise errors[0]
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


def file_digests(path: str | Path, algos: Iterable[str]) -> dict[str, str]:
    """{algo: hex} of the whole file ``path`` (a cached file whose record no longer matches)."""
    hashers = new_hashers(algos)
    with open(path, "rb") as fp:
        while chunk := fp.read(CHUNK):
            for h in hashers.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashers.items()}


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
            raise LivelabError(f"malformed {source}: line {lineno}: expected a hex digest, spaces and a file name")
        hexd, name = parts[0].lower(), parts[1].lstrip("*").strip()
        if not re.fullmatch(r"[0-9a-f]+", hexd) or (algo in lengths and len(hexd) != lengths[algo]):
            raise LivelabError(f"malformed {source}: line {lineno}: bad {algo} digest")
        if filename is not None and name != filename:
            continue
        if algo in out and out[algo] != hexd:
            raise LivelabError(f"malformed {source}: two different {algo} digests for {shown(name)}")
        out[algo] = hexd
    if "sha512" not in out:
        what = f" for {shown(filename)}" if filename else ""
        raise LivelabError(f"malformed {source}: no '# SHA512 HASH' entry{what}")
    return out
