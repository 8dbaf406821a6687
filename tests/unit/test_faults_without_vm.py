"""Fault tests without a VM: malformed inputs give one line and start nothing, a download killed
mid-stream leaves no corrupt cache entry and resumes, a full cache disk is one clear line,
leased ports never collide.

Every CLI case runs the real ``livelab`` in a subprocess with ``LIVELAB_QEMU`` pointing at a
sentinel that records any invocation (and starts nothing): "no VM started" is read from it.
"""
import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness import runtime

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from bench.mirror import NAMES, SignedMirror, Signer  # noqa: E402

# the one progress line `livelab check` prints before it prepares a boot
CHECK_PROGRESS = re.compile(r"^livelab: \S+: \d+ MiB, \d+ vCPUs, accel ")


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def signer():
    s = Signer()
    yield s
    s.close()


@pytest.fixture
def mirror(tmp_path, signer):
    m = SignedMirror(tmp_path / "mirror", {"kernel": 64 << 10, "initramfs": 64 << 10, "rootfs": 4 << 20},
                     signer=signer)
    yield m
    m.close()


def livelab(args, sentinel, tmp_path, env=None, timeout=120):
    qemu, log = sentinel
    e = {k: v for k, v in os.environ.items() if k != "LIVELAB_ACCEL_CHOICE"}
    e.update({"LIVELAB_QEMU": str(qemu), "LIVELAB_STATE_DIR": str(tmp_path / "state")})
    e.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=tmp_path, env=e,
                          capture_output=True, text=True, timeout=timeout)
    calls = log.read_text() if log.exists() else ""
    return proc, calls


def assert_one_line_error(proc, *, match=None, progress_ok=False):
    lines = proc.stderr.splitlines()
    if progress_ok:
        lines = [line for line in lines if not CHECK_PROGRESS.match(line)]
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("livelab: error: "), proc.stderr
    if match:
        assert re.search(match, lines[0]), lines[0]
    return lines[0]


def standin_args(m: SignedMirror, cache: Path):
    return ["--mirror", m.url, "--keyring", m.keyring, "--cache-dir", str(cache)]


# ------------------------------------------------------------------ malformed inputs

def test_bad_butane_is_one_line_and_starts_no_vm(mirror, sentinel, tmp_path):
    bad = tmp_path / "bad.bu"
    bad.write_text("variant: fcos\nversion: 1.4.0\npasswd: [oops\n")
    proc, calls = livelab(["check", "fcos", "--via", "pxe-rootfs-url", "--accel", "tcg", "--butane", str(bad),
                           *standin_args(mirror, tmp_path / "cache")], sentinel, tmp_path)
    assert_one_line_error(proc, match="Butane", progress_ok=True)
    assert calls == ""


def test_butane_for_the_root_disk_is_one_line_and_starts_no_vm(mirror, sentinel, tmp_path):
    """An unknown key is only a warning now (as in butane); a boot_device config, which would leave a
    diskless live boot's Ignition waiting for /dev/disk/by-partlabel/root, is refused before boot."""
    bad = tmp_path / "bad.bu"
    bad.write_text("variant: fcos\nversion: 1.4.0\nboot_device:\n  luks:\n    tpm2: true\n")
    proc, calls = livelab(["check", "fcos", "--via", "pxe-rootfs-url", "--accel", "tcg", "--butane", str(bad),
                           *standin_args(mirror, tmp_path / "cache")], sentinel, tmp_path)
    assert_one_line_error(proc, match=r"the live config changes the root disk \(LUKS volume root\)", progress_ok=True)
    assert calls == ""


def test_ignition_not_json_is_one_line(sentinel, tmp_path):
    bad = tmp_path / "bad.ign"
    bad.write_text("{not json")
    iso = tmp_path / "in.iso"
    iso.write_bytes(b"\0" * 65536)
    proc, calls = livelab(["iso", "customize", "--live-ignition", str(bad), "-o", str(tmp_path / "out.iso"),
                           str(iso)], sentinel, tmp_path)
    assert_one_line_error(proc, match="JSON")
    assert not (tmp_path / "out.iso").exists() and calls == ""


@pytest.mark.parametrize("content", ['{"stream": ', "[]", '{"architectures": []}',
                                     '{"architectures": {"x86_64": 5}}',
                                     '{"architectures": {"x86_64": {"artifacts": [1]}}}'])
def test_malformed_stream_json_is_one_line(sentinel, tmp_path, content):
    bad = tmp_path / "stream.json"
    bad.write_text(content)
    proc, calls = livelab(["artifacts", "resolve", "fcos", "--stream", "stable", "--metadata", str(bad),
                           "--cache-dir", str(tmp_path / "cache")], sentinel, tmp_path)
    assert_one_line_error(proc, match=re.escape(str(bad)))
    assert calls == ""


@pytest.mark.parametrize("content", ["garbage\n", "FLATCAR_VERSION=\n", "FLATCAR_BUILD=1\n", ""])
def test_malformed_flatcar_version_txt_is_one_line(sentinel, tmp_path, content):
    bad = tmp_path / "version.txt"
    bad.write_text(content)
    proc, calls = livelab(["artifacts", "resolve", "flatcar", "--channel", "stable", "--metadata", str(bad),
                           "--cache-dir", str(tmp_path / "cache")], sentinel, tmp_path)
    assert_one_line_error(proc)
    assert calls == ""


def _final_files(cache: Path):
    return [p for p in cache.rglob(NAMES["kernel"] + "*")
            if p.suffix not in (".livelab-part", ".livelab-lock", ".sig")]


def test_signature_by_an_untrusted_key_is_one_line(mirror, sentinel, tmp_path):
    other = Signer()
    try:
        cache = tmp_path / "cache"
        proc, calls = livelab(["artifacts", "fetch", "fcos", "--kinds", "kernel", "--no-progress", "--mirror",
                               mirror.url, "--keyring", str(other.pub), "--cache-dir", str(cache)], sentinel, tmp_path)
    finally:
        other.close()
    assert_one_line_error(proc, match=r"(?i)signature|signed|key")
    assert _final_files(cache) == [] and calls == ""


def test_corrupt_signature_is_one_line(mirror, sentinel, tmp_path):
    sig = Path(str(mirror.paths["kernel"]) + ".sig")
    sig.write_bytes(b"-----BEGIN PGP SIGNATURE-----\n\nbm90IGEgc2lnbmF0dXJl\n-----END PGP SIGNATURE-----\n")
    cache = tmp_path / "cache"
    proc, calls = livelab(["artifacts", "fetch", "fcos", "--kinds", "kernel", "--no-progress",
                           *standin_args(mirror, cache)], sentinel, tmp_path)
    assert_one_line_error(proc, match=r"(?i)signature")
    assert _final_files(cache) == [] and calls == ""


@pytest.mark.skipif(not shutil.which("xorriso"), reason="xorriso not installed")
def test_iso_without_embed_areas_is_one_line(sentinel, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello.txt").write_text("not a live ISO\n")
    iso = tmp_path / "plain.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-o", str(iso), str(src)], check=True, capture_output=True)
    before = iso.read_bytes()
    ign = tmp_path / "ok.ign"
    ign.write_text('{"ignition": {"version": "3.3.0"}}')
    for out in (["-o", str(tmp_path / "out.iso")], []):          # new ISO, and in place
        proc, calls = livelab(["iso", "customize", "--live-ignition", str(ign), *out, str(iso)], sentinel, tmp_path)
        assert_one_line_error(proc, match="embed area")
        assert calls == ""
    assert not (tmp_path / "out.iso").exists()
    assert iso.read_bytes() == before


@pytest.mark.parametrize("args,match", [
    (["artifacts", "resolve", "fcos", "--stream", "bogus"], "unknown fcos stream 'bogus'"),
    (["artifacts", "resolve", "flatcar", "--channel", "bogus"], "unknown flatcar channel 'bogus'"),
    (["check", "fcos", "--stream", "bogus", "--via", "pxe", "--accel", "tcg"], "unknown fcos stream 'bogus'"),
    (["check", "flatcar", "--channel", "bogus", "--via", "pxe", "--accel", "tcg"], "unknown flatcar channel"),
    (["check", "flatcar", "--stream", "stable", "--via", "pxe", "--accel", "tcg"], "--channel"),
])
def test_unknown_stream_or_channel_is_one_line(mirror, sentinel, tmp_path, args, match):
    proc, calls = livelab([*args, *standin_args(mirror, tmp_path / "cache")], sentinel, tmp_path)
    assert_one_line_error(proc, match=re.escape(match), progress_ok=True)
    assert calls == "" and mirror.server.requests == []


def test_memory_below_minimum_is_one_line_before_any_download(mirror, sentinel, tmp_path):
    proc, calls = livelab(["check", "fcos", "--via", "pxe", "--memory", "1024", "--accel", "tcg",
                           *standin_args(mirror, tmp_path / "cache")], sentinel, tmp_path)
    assert_one_line_error(proc, match=r"1024 MiB is below the minimum of \d+ MiB")
    assert calls == "" and mirror.server.requests == []


def test_missing_qemu_fails_before_any_download_accel_auto(mirror, sentinel, tmp_path):
    proc, _calls = livelab(["check", "fcos", "--via", "pxe-rootfs-url", *standin_args(mirror, tmp_path / "cache")],
                           sentinel, tmp_path, env={"LIVELAB_QEMU": "qemu-system-nope"})
    assert_one_line_error(proc, match="QEMU binary 'qemu-system-nope' not found", progress_ok=True)
    assert mirror.server.requests == [], "downloaded before noticing that QEMU is missing"


def test_missing_qemu_fails_before_any_download_accel_tcg(mirror, sentinel, tmp_path):
    proc, _calls = livelab(["check", "fcos", "--via", "pxe-rootfs-url", "--accel", "tcg",
                            *standin_args(mirror, tmp_path / "cache")],
                           sentinel, tmp_path, env={"LIVELAB_QEMU": "qemu-system-nope"})
    assert_one_line_error(proc, match="QEMU binary 'qemu-system-nope' not found", progress_ok=True)
    assert mirror.server.requests == [], "downloaded before noticing that QEMU is missing"


# ------------------------------------------------------------------ a full cache disk (a real small filesystem)

@pytest.fixture
def tiny_fs(tmp_path):
    """A 1 MiB tmpfs (needs root: mounting is the point, not monkeypatching)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a 1 MiB tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_cache_disk_is_one_line_and_leaves_no_final_file(mirror, sentinel, tmp_path, tiny_fs):
    proc, calls = livelab(["artifacts", "fetch", "fcos", "--kinds", "rootfs", "--no-progress",
                           *standin_args(mirror, tiny_fs)], sentinel, tmp_path)
    assert_one_line_error(proc, match="No space left on device")
    final = [p for p in tiny_fs.rglob(NAMES["rootfs"] + "*")
             if p.suffix not in (".livelab-part", ".livelab-lock", ".sig")]
    assert final == [], final
    assert calls == ""


# ------------------------------------------------------------------ a download killed mid-stream

CHILD = textwrap.dedent("""
    import sys
    from harness.artifacts import fetch, resolve
    url, keyring, cache = sys.argv[1:4]
    rel = resolve("fcos", "stable", mirror=url, cache_dir=cache)
    fetch(rel, kinds=["rootfs"], keyring=keyring, cache_dir=cache, progress=False, retries=0)
    print("DONE")
""")


def _kill_mid_download(m: SignedMirror, cache: Path, kill_at: int) -> int:
    """Start a child fetching rootfs from the slowed mirror; SIGKILL it once its .part has
    ``kill_at`` bytes; return the .part size."""
    part = cache / m.artifact_path("rootfs").lstrip("/")
    part = part.with_name(part.name + ".livelab-part")
    m.server.delay = 0.004               # per 64 KiB: ~16 MiB/s
    child = subprocess.Popen([sys.executable, "-c", CHILD, m.url, m.keyring, str(cache)], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (part.exists() and part.stat().st_size >= kill_at):
            assert child.poll() is None, f"child ended before the kill: {child.communicate()}"
            assert time.monotonic() < deadline, "the download never got going"
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    m.server.delay = 0.0
    return part.stat().st_size


@pytest.mark.parametrize("trials", [1, pytest.param(20, marks=pytest.mark.slow)])
def test_download_killed_mid_stream_resumes_and_verifies(tmp_path, signer, trials):
    from harness.artifacts import fetch, resolve
    from harness.artifacts import store as astore
    size = 8 << 20
    m = SignedMirror(tmp_path / "mirror", {"rootfs": size}, signer=signer)
    want = hashlib.sha256(m.paths["rootfs"].read_bytes()).hexdigest()
    rnd = random.Random(4242)
    path = m.artifact_path("rootfs")
    try:
        for trial in range(trials):
            cache = tmp_path / f"cache-{trial}"
            kill_at = rnd.randrange(1 << 20, size - (2 << 20))
            have = _kill_mid_download(m, cache, kill_at)
            assert 0 < have < size, have
            # no corrupt entry: no final file, no record; only the .part (beside .sig / .lock)
            final = cache / path.lstrip("/")
            assert not final.exists(), f"trial {trial}: a final file after a kill at {have} bytes"
            assert not astore.record_path(final).exists()
            assert final.with_name(final.name + ".livelab-part").exists()
            assert [g["files"] for g in astore.Store(cache).scan()] in ([], [[]])
            # the next run resumes with a Range request and verifies
            m.server.reset()
            rel = resolve("fcos", "stable", mirror=m.url, cache_dir=cache)
            got = fetch(rel, kinds=["rootfs"], keyring=m.keyring, cache_dir=cache, progress=False, retries=0)
            ranges = [r["range"] for r in m.server.requests if r["path"] == path and r["method"] == "GET"]
            assert ranges and ranges[0] == f"bytes={have}-", f"trial {trial}: no resume from {have}: {ranges}"
            assert m.server.bytes_sent < size + (64 << 10), "the resume downloaded the file again"
            la = got["rootfs"]
            assert la.downloaded and la.digests["sha256"] == want and la.verified_with and not la.insecure
            assert hashlib.sha256(Path(la.path).read_bytes()).hexdigest() == want
            assert not final.with_name(final.name + ".livelab-part").exists()
            shutil.rmtree(cache)
    finally:
        m.close()


# ------------------------------------------------------------------ ports

@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("LIVELAB_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def test_a_taken_port_is_never_leased(state):
    """Ports somebody listens on (here: 30 listeners of ours) are never handed out."""
    listeners = []
    try:
        for _ in range(30):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            listeners.append(s)
        taken = {s.getsockname()[1] for s in listeners}
        for _ in range(300):
            lease = runtime.lease_port()
            assert lease.port not in taken
            lease.release()
    finally:
        for s in listeners:
            s.close()


LEASER = textwrap.dedent("""
    import json, sys, time
    from harness import runtime
    leases = [runtime.lease_port() for _ in range(int(sys.argv[1]))]
    print(json.dumps([l.port for l in leases]), flush=True)
    sys.stdin.read()          # hold them until the parent is done
""")


def test_two_processes_never_hold_the_same_port(state):
    """Leases held at once by two processes (two xdist workers, two VMs) are all distinct, and a
    port whose lease another process holds is not handed out even once it is free to bind."""
    env = dict(os.environ, LIVELAB_STATE_DIR=str(state))
    procs = [subprocess.Popen([sys.executable, "-c", LEASER, "150"], cwd=REPO, env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        held = [json.loads(p.stdout.readline()) for p in procs]
        ports = held[0] + held[1]
        assert len(ports) == len(set(ports)) == 300
        # the ports are held only as leases (nothing listens on them): ours must still avoid them
        mine = [runtime.lease_port() for _ in range(200)]
        assert not {lease.port for lease in mine} & set(ports)
        for lease in mine:
            lease.release()
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(10)


def test_full_cache_for_metadata_names_the_path_every_time_and_leaves_no_temp(mirror, sentinel, tmp_path, tiny_fs):
    """A cache with no room for the stream JSON: each run names the file it could not write, and no
    0-byte temp file is left behind (a livelab temp name is cleaned by the next run anyway)."""
    from harness.artifacts.store import Store
    cache = Store.for_writing(tiny_fs / "cache").root           # an existing, marked cache
    fd = os.open(tiny_fs / "filler", os.O_WRONLY | os.O_CREAT)
    with contextlib.suppress(OSError):
        while True:
            os.write(fd, b"\0" * 4096)
    os.close(fd)
    for _ in range(2):
        proc, calls = livelab(["artifacts", "resolve", "fcos", *standin_args(mirror, cache)], sentinel, tmp_path)
        assert_one_line_error(proc, match=r"cannot write .*/cache/fcos/streams/stable\.json: No space left on device")
        assert [p for p in tiny_fs.rglob("*") if "livelab-tmp" in p.name] == []
        assert calls == ""
