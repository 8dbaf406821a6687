"""Signature (gpgv) and digest verification.

Keyrings: the bundled ones in ``harness/data`` (coreos-installer's Fedora key bundle for FCOS,
the Flatcar image signing key for Flatcar) or a user ``--keyring FILE`` (armored or binary).
When a user keyring is given it is THE trust anchor for that run; it is never merged into the
bundled ones.  gpgv needs a binary keyring, so every keyring is imported into a throwaway
GNUPGHOME and exported (binary) into ``<cache>/keyrings/<sha256-of-input>.gpg`` once.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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


def load_keyring(source, cache_dir=None) -> Keyring:
    """Prepare ``source`` (.asc or binary keyring) for gpgv; cached by content hash."""
    src = Path(source)
    try:
        data = src.read_bytes()
    except OSError as exc:
        raise LivelabError(f"cannot read keyring {source}: {exc.strerror or exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    out_dir = (Path(cache_dir) / "keyrings" if cache_dir
               else Path(tempfile.gettempdir()) / f"livelab-keyrings-{os.getuid()}")
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
    tmp = gpg_path.with_name(f"{gpg_path.name}.tmp{os.getpid()}.{uuid.uuid4().hex}")
    tmp.write_bytes(exp.stdout)
    os.replace(tmp, gpg_path)
    tmp = meta_path.with_name(f"{meta_path.name}.tmp{os.getpid()}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps({"source": str(src), "fingerprints": list(fprs)}))
    os.replace(tmp, meta_path)
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


def keyring_for(os_id: str, keyring=None, cache_dir=None) -> Keyring:
    return load_keyring(keyring if keyring else BUNDLED_KEYRINGS[os_id], cache_dir)


class SignatureError(LivelabError):
    pass


def gpgv_verify(data_path, sig_path, keyring: Keyring, name: str | None = None) -> list[str]:
    """Check a detached signature with gpgv; return the primary fingerprints of good signers.

    Raises SignatureError (one line naming the file) on a bad signature, an unknown key or any
    other gpgv failure.
    """
    name = name or os.path.basename(str(data_path))
    with tempfile.TemporaryDirectory(prefix="livelab-gpgv-") as home:
        os.chmod(home, 0o700)
        proc = subprocess.run(
            [_need("gpgv"), "--homedir", home, "--status-fd", "1", "--keyring", os.path.abspath(keyring.path),
             str(sig_path), str(data_path)],
            capture_output=True, text=True)
    status = proc.stdout.splitlines()
    signers = []
    for line in status:
        f = line.split()
        if len(f) >= 3 and f[:2] == ["[GNUPG:]", "VALIDSIG"]:
            signers.append(f[-1] if len(f) >= 12 else f[2])
    if proc.returncode == 0 and signers:
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
        why = " ".join(proc.stderr.split())[-200:] or f"gpgv exit status {proc.returncode}"
    raise SignatureError(f"refusing {name}: signature check failed: {why}")


# ------------------------------------------------------------------ digests

def new_hashers(algos) -> dict[str, hashlib._Hash]:
    return {a: hashlib.new(a) for a in algos}


def hash_file(path, algos=("sha256",), hashers=None, limit: int | None = None) -> dict[str, hashlib._Hash]:
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
