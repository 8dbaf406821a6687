"""Upstream Ignition for the stand-in: source, pin, build and the binary cache.

``images/build.py`` builds Ignition v2.23.0 (``ignition`` and ``ignition-validate``, stripped) from
its source tree and puts upstream's dracut module (``dracut/30ignition`` of the same tree) into the
initramfs.  Standard library only, like build.py.

Where the source comes from:
  * a local archive when one is given (``build.py --ignition-source FILE`` or
    ``$LIVELAB_IGNITION_SOURCE``); the Makefile and CI point at ``../shared/deps/`` when it exists;
  * otherwise the tag's source archive from the upstream project (``DEFAULT_URL``; override with
    ``--ignition-url`` or ``$LIVELAB_IGNITION_URL``).
Either way the unpacked tree is checked against ``TREE_SHA256``: a hash of the files (paths, the
executable bit, contents, link targets), not of the archive bytes, which differ from tool to tool.

The built binaries and the dracut module are cached in the user's cache directory
(``$XDG_CACHE_HOME/livelab/ignition`` or ``~/.cache/livelab/ignition``; ``$LIVELAB_IGNITION_CACHE``
overrides), keyed by ``pin_key()``: a clone's rebuild reuses them without the source.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable, Optional

import platformdirs

VERSION = "2.23.0"
TAG = f"v{VERSION}"
COMMIT = "2bcc596cc8f6a109e289513dca9ea04eea4b02a1"
# tree_hash() of the unpacked v2.23.0 tree (git archive of the tag, Go modules vendored in-tree)
TREE_SHA256 = "7db536348904468b0c9c70c7e2d36bed64650dbf27c8df7f11101ce5fea06006"
DEFAULT_URL = f"https://github.com/coreos/ignition/archive/refs/tags/{TAG}.tar.gz"
SOURCE_ENV = "LIVELAB_IGNITION_SOURCE"
URL_ENV = "LIVELAB_IGNITION_URL"
CACHE_ENV = "LIVELAB_IGNITION_CACHE"
GO_MIN = (1, 23)
GO_CANDIDATES = ["/usr/lib/go-1.23/bin/go", "/usr/lib/go-1.24/bin/go", "go"]
PKG = "github.com/coreos/ignition/v2"
LDFLAGS = f"-s -w -X {PKG}/internal/version.Raw={TAG}"
# (output name, package, extra go build flags) -- as upstream's ./build, without its `git describe`
# and `go clean -cache`, and without its `-buildmode=pie` for `ignition` (a speed choice, see
# images/README.md: a PIE's 210,000 relocations cost each of Ignition's stages about 0.3 s under TCG)
TARGETS = [("ignition", f"{PKG}/internal", []),
           ("ignition-validate", f"{PKG}/validate", [])]
BINARIES = [t[0] for t in TARGETS]
DRACUT_MODULE = "dracut/30ignition"


# told the build's progress: note(text, milestone=False)
Note = Optional[Callable[..., None]]


class IgnitionBuildError(Exception):
    """A one-line failure (build.py turns it into a BuildError)."""


# --------------------------------------------------------------------------- pin

def pin() -> dict:
    return {"version": VERSION, "commit": COMMIT, "tree_sha256": TREE_SHA256, "ldflags": LDFLAGS,
            "targets": [[n, p, f] for n, p, f in TARGETS]}


def pin_key() -> str:
    return hashlib.sha256(json.dumps(pin(), sort_keys=True).encode()).hexdigest()[:16]


def cache_root() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    # the user cache directory livelab's artifacts use too (harness/artifacts/store.py)
    return Path(platformdirs.user_cache_dir("livelab")) / "ignition"


def cache_dir(root: Path | None = None) -> Path:
    return (root or cache_root()) / f"{TAG}-{pin_key()}"


def cached(root: Path | None = None) -> Path | None:
    """The cache entry of this pin when complete, else None."""
    d = cache_dir(root)
    ok = (d / "build-info.json").is_file() and all((d / b).is_file() for b in BINARIES) \
        and (d / "30ignition" / "module-setup.sh").is_file()
    return d if ok else None


# --------------------------------------------------------------------------- the tree hash

def tree_hash(root: Path) -> str:
    """sha256 over the files under ``root`` (sorted relative paths; per entry: its kind, the
    executable bit of a file, the sha256 of its contents or a link's target).  Directories
    count only through what they hold."""
    h = hashlib.sha256()
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = Path(dirpath) / name
            entries.append((p.relative_to(root).as_posix(), p))
    for rel, p in sorted(entries):
        st = p.lstat()
        if p.is_symlink():
            line = f"L {rel}\0{os.readlink(p)}"
        else:
            fh = hashlib.sha256()
            with open(p, "rb") as f:
                for block in iter(lambda f=f: f.read(1 << 20), b""):
                    fh.update(block)
            line = f"{'X' if st.st_mode & 0o111 else 'F'} {rel}\0{fh.hexdigest()}"
        h.update(line.encode() + b"\n")
    return h.hexdigest()


# --------------------------------------------------------------------------- source

def source_from_env(source: str | Path | None = None, url: str | None = None) -> tuple[Path | None, str]:
    """(local archive or None, download URL): arguments first, then the environment."""
    src = source or os.environ.get(SOURCE_ENV) or None
    return (Path(src) if src else None), (url or os.environ.get(URL_ENV) or DEFAULT_URL)


def download(url: str, dest: Path, timeout: float = 120.0) -> Path:
    """``url`` to the file ``dest`` (http, https, file)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as f:
            shutil.copyfileobj(resp, f, 1 << 20)
    except (OSError, ValueError) as exc:
        raise IgnitionBuildError(f"cannot download the Ignition {TAG} source from {url}: {exc}; "
                                 f"give a local archive with --ignition-source FILE or ${SOURCE_ENV}") from None
    return dest


def unpack(archive: Path, dest: Path) -> Path:
    """Unpack a source archive (tar, any compression) under ``dest``; the tree's root: the one
    top-level directory of the archive (or ``dest`` itself when there is none)."""
    try:
        with tarfile.open(archive) as tf:
            if hasattr(tarfile, "data_filter"):
                tf.extractall(dest, filter="data")
            else:  # pragma: no cover - Python < 3.11.4
                tf.extractall(dest)
    except (OSError, tarfile.TarError) as exc:
        raise IgnitionBuildError(f"cannot unpack the Ignition source {archive}: {exc}") from None
    top = [p for p in dest.iterdir() if p.name != "pax_global_header"]
    return top[0] if len(top) == 1 and top[0].is_dir() else dest


def obtain_source(work: Path, source: str | Path | None = None, url: str | None = None,
                  expect: str | None = None) -> tuple[Path, str]:
    """The unpacked, hash-checked source tree under ``work`` and where it came from."""
    local, url = source_from_env(source, url)
    work.mkdir(parents=True, exist_ok=True)
    if local is not None:
        if not local.is_file():
            raise IgnitionBuildError(f"Ignition source archive {local} not found")
        archive, origin = local, str(local)
    else:
        archive, origin = download(url, work / f"ignition-{TAG}.tar.gz"), url
    tree = unpack(archive, work / "src")
    got = tree_hash(tree)
    want = expect or TREE_SHA256
    if got != want:
        raise IgnitionBuildError(f"the Ignition source from {origin} is not {TAG} as pinned: its files hash to "
                                 f"{got}, the pin (images/ignition_src.py TREE_SHA256) is {want}")
    return tree, origin


# --------------------------------------------------------------------------- build

def find_go() -> tuple[str, str]:
    """(go binary, its version) of the first Go >= 1.23, else a one-line error naming the package."""
    seen = []
    for cand in [os.environ.get("LIVELAB_GO") or "", *GO_CANDIDATES]:
        path = shutil.which(cand) if cand else None
        if not path:
            continue
        try:
            out = subprocess.run([path, "version"], capture_output=True, text=True, timeout=60,
                                 env=dict(os.environ, GOTOOLCHAIN="local")).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        m = re.search(r"go(\d+)\.(\d+)(?:\.(\d+))?", out)
        if m:
            seen.append(f"{path} ({m.group(0)})")
            if (int(m.group(1)), int(m.group(2))) >= GO_MIN:
                return path, m.group(0)
    have = "; found " + ", ".join(seen) if seen else ""
    raise IgnitionBuildError(f"building Ignition {TAG} needs Go >= {GO_MIN[0]}.{GO_MIN[1]}{have}; on Debian 12: "
                             "apt-get install -t bookworm-backports golang-1.23-go (scripts/setup-host.sh)")


def check_blkid() -> None:
    if not Path("/usr/include/blkid/blkid.h").is_file():
        raise IgnitionBuildError(f"building Ignition {TAG} needs libblkid's headers (cgo): "
                                 "apt-get install libblkid-dev")


def go_env(go: str, gocache: Path, gopath: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    env.update(PATH=f"{Path(go).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
               GOFLAGS="-mod=vendor", GOPROXY="off", GOTOOLCHAIN="local", GO111MODULE="on",
               CGO_ENABLED="1", GOCACHE=str(gocache), GOPATH=str(gopath), GOTELEMETRY="off")
    return env


def _go_build(cmd: list[str], tree: Path, env: dict, name: str, note: Note) -> tuple[int, bytes]:
    """Run one ``go build -v`` (it names each package as it compiles it): (exit status, output);
    ``note`` hears how many packages are done."""
    proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    lines = []
    for raw in proc.stdout:
        lines.append(raw)
        if raw.strip() and note is not None:
            note(f"go build {name}: {len(lines)} packages compiled ({raw.decode(errors='replace').strip()})")
    return proc.wait(), b"".join(lines)


def build_binaries(tree: Path, out: Path, log: Path | None = None, note: Note = None) -> dict:
    """``go build`` the targets from ``tree`` into ``out`` (offline, vendored, cgo, stripped) with a
    private, throw-away GOCACHE; returns notes for build-info.  ``note(text, milestone=False)``
    hears the progress (each target, each package compiled)."""
    go, gover = find_go()
    check_blkid()
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="go-", dir=out.parent))
    env = go_env(go, scratch / "cache", scratch / "path")
    t0 = time.monotonic()
    try:
        for name, pkg, flags in TARGETS:
            cmd = [go, "build", "-v", *flags, "-trimpath", "-ldflags", LDFLAGS, "-o", str(out / name), pkg]
            if note is not None:
                note(f"go build {name} ({pkg})", True)
            rc, output = _go_build(cmd, tree, env, name, note)
            if log is not None:
                with open(log, "ab") as f:
                    f.write(b"$ " + " ".join(cmd).encode() + b"\n" + output + b"\n")
            if rc != 0:
                tail = output.decode(errors="replace").strip().splitlines()[-10:]
                raise IgnitionBuildError(f"go build {name} (Ignition {TAG}) failed (exit {rc}): " + " | ".join(tail))
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(scratch)], check=False)
        shutil.rmtree(scratch, ignore_errors=True)
    return {"go": gover, "go_binary": go, "build_seconds": round(time.monotonic() - t0, 1)}


def ensure(source: str | Path | None = None, url: str | None = None, root: Path | None = None,
           log: Path | None = None, builder=build_binaries, note: Note = None) -> tuple[Path, dict]:
    """The cache entry of this pin (built first when missing) and its build-info (with
    ``cache_hit``).  ``builder(tree, out, log)`` is the build step (tests replace it); given
    ``note(text, milestone=False)``, the steps are told to it (and it is passed to the builder)."""
    def step(text: str) -> None:
        if note is not None:
            note(text, True)
    t0 = time.monotonic()
    hit = cached(root)
    if hit:
        info = json.loads((hit / "build-info.json").read_text())
        info.update(cache_hit=True, seconds=round(time.monotonic() - t0, 3))
        return hit, info
    dest = cache_dir(root)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        local, where = source_from_env(source, url)
        step(f"source: {local or where} (unpack, check the tree hash)")
        tree, origin = obtain_source(tmp / "work", source, url)
        entry = tmp / "entry"
        step(f"building from {origin}")
        notes = builder(tree, entry, log, note=note) if note is not None else builder(tree, entry, log)
        shutil.copytree(tree / DRACUT_MODULE, entry / "30ignition", symlinks=True)
        missing = [b for b in BINARIES if not (entry / b).is_file()]
        if missing:
            raise IgnitionBuildError(f"the Ignition build made no {', '.join(missing)}")
        info = {**pin(), "source": origin, **notes,
                "sizes": {b: (entry / b).stat().st_size for b in BINARIES},
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (entry / "build-info.json").write_text(json.dumps(info, indent=2) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.rename(entry, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    info.update(cache_hit=False, seconds=round(time.monotonic() - t0, 1))
    return dest, info
