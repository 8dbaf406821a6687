"""Downloads against a loopback HTTP mirror: signatures, resume, locking, errors, offline, warm cache."""
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hostile_mirror import FILES, REPO, VER, Mirror, fetch_from, fpath

from harness import poll
from harness.artifacts import fetch, resolve
from harness.artifacts import pipeline as afetch
from harness.artifacts import verify as averify
from harness.cli import main
from harness.errors import LivelabError


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(afetch.Fetcher, "backoff", 0.01)


# ------------------------------------------------------------ tests

def test_fetch_verified_then_warm_rerun_costs_nothing(fcos_mirror, signer, monkeypatch):
    m = fcos_mirror
    files = fetch_from(m, signer)
    assert set(files) == {"kernel", "initramfs", "rootfs", "iso"}
    for kind, la in files.items():
        data = (m.dir / FILES[kind][0]).read_bytes()
        assert Path(la.path).read_bytes() == data
        assert la.digests["sha256"] == hashlib.sha256(data).hexdigest()
        assert la.verified_with == [signer.fpr] and not la.insecure and la.downloaded
        assert la.path.startswith(str(m.cache / "fcos/prod/streams/stable/builds" / VER / "x86_64"))
        assert not Path(la.path + ".livelab-part").exists()
    assert m.hits[fpath("rootfs")] == 1 and m.hits[fpath("rootfs") + ".sig"] == 1
    # the stand-in build key is trusted via --keyring only: the bundled keyring is untouched
    assert signer.fpr not in averify.keyring_for("fcos", None, m.cache).fingerprints

    rel = resolve("fcos", "stable", mirror=m.url, cache_dir=m.cache)
    m.hits.clear()
    monkeypatch.setattr(averify, "file_digests", lambda *a, **k: pytest.fail("re-hashed a warm file"))
    monkeypatch.setattr(averify, "gpgv_verify", lambda *a, **k: pytest.fail("re-ran gpgv on a warm file"))
    t0 = time.monotonic()
    again = fetch(rel, keyring=str(signer.pub), cache_dir=m.cache, retries=0)
    assert time.monotonic() - t0 < 1.0
    assert m.total_hits() == 0
    assert all(not la.downloaded and la.verified_with == [signer.fpr] for la in again.values())
    assert {k: v.path for k, v in again.items()} == {k: v.path for k, v in files.items()}


def test_changed_cache_file_is_reverified(fcos_mirror, signer):
    m = fcos_mirror
    files = fetch_from(m, signer, kinds=["kernel"])
    p = Path(files["kernel"].path)
    data = bytearray(p.read_bytes())
    data[10] ^= 0xFF
    p.write_bytes(bytes(data))                 # size same, mtime changed: record no longer trusted
    m.hits.clear()
    again = fetch_from(m, signer, kinds=["kernel"])["kernel"]
    assert again.downloaded and Path(again.path).read_bytes() == (m.dir / FILES["kernel"][0]).read_bytes()
    assert m.hits[fpath("kernel")] == 1


def test_tampered_file_refused(fcos_mirror, signer):
    m = fcos_mirror
    f = m.dir / FILES["kernel"][0]
    f.write_bytes(f.read_bytes()[:-1] + b"X")
    with pytest.raises(LivelabError, match=rf"refusing {FILES['kernel'][0]}: sha256 mismatch") as ei:
        fetch_from(m, signer, kinds=["kernel"])
    assert "\n" not in str(ei.value)
    final = m.cache / fpath("kernel").lstrip("/")
    assert not final.exists() and not Path(str(final) + ".livelab-part").exists()


def test_bad_signature_refused(fcos_mirror, signer):
    m = fcos_mirror
    shutil.copy(m.dir / (FILES["initramfs"][0] + ".sig"), m.dir / (FILES["kernel"][0] + ".sig"))
    with pytest.raises(LivelabError, match=rf"refusing {FILES['kernel'][0]}: signature check failed: BAD signature"):
        fetch_from(m, signer, kinds=["kernel"])
    assert not (m.cache / fpath("kernel").lstrip("/")).exists()


def test_missing_signature_refused_and_insecure(fcos_mirror, signer):
    m = fcos_mirror
    (m.dir / (FILES["kernel"][0] + ".sig")).unlink()
    with pytest.raises(LivelabError,
                       match=rf"refusing {FILES['kernel'][0]}: signature missing at {m.url}/.*\.sig \(HTTP 404\)"):
        fetch_from(m, signer, kinds=["kernel"])
    assert m.hits[fpath("kernel")] == 0          # refused before downloading the file
    la = fetch_from(m, signer, kinds=["kernel"], insecure=True)["kernel"]
    assert la.insecure and la.verified_with == []


def test_signature_by_unknown_key_refused(fcos_mirror, signer):
    with pytest.raises(LivelabError, match=r"signed by key \w+, which is not in keyring fcos-signing-keys.asc"):
        fetch_from(fcos_mirror, signer, kinds=["kernel"], keyring=None)


def test_interrupted_download_resumes_with_range(fcos_mirror, signer, monkeypatch):
    m = fcos_mirror
    size = FILES["rootfs"][1]
    m.rules[fpath("rootfs")] = ["drop"]
    with pytest.raises(LivelabError, match=r"connection (closed after \d+ of 2000000 bytes|broken)") as ei:
        fetch_from(m, signer, kinds=["rootfs"])
    assert m.url in str(ei.value) and "\n" not in str(ei.value)
    part = m.cache / (fpath("rootfs").lstrip("/") + ".livelab-part")
    have = part.stat().st_size
    assert 0 < have < size
    # the resumed file is verified in one pass: the part's prefix, then the rest while it streams
    calls = []
    real = averify.StreamVerifier.written
    monkeypatch.setattr(averify.StreamVerifier, "written", lambda self, n: calls.append(n) or real(self, n))
    la = fetch_from(m, signer, kinds=["rootfs"])["rootfs"]
    assert calls[0] == have and calls[-1] == size       # verified from byte 0: the prefix, then the new bytes
    assert Path(la.path).read_bytes() == (m.dir / FILES["rootfs"][0]).read_bytes()
    assert (fpath("rootfs"), f"bytes={have}-") in m.ranges
    assert not part.exists()


def test_drop_then_retry_resumes_within_one_fetch(fcos_mirror, signer):
    m = fcos_mirror
    m.rules[fpath("rootfs")] = ["drop"]
    la = fetch_from(m, signer, kinds=["rootfs"], retries=2)["rootfs"]
    assert m.hits[fpath("rootfs")] == 2
    assert [r for p, r in m.ranges if p == fpath("rootfs")][1].startswith("bytes=")
    assert la.digests["sha256"] == hashlib.sha256((m.dir / FILES["rootfs"][0]).read_bytes()).hexdigest()


def test_parallel_threads_download_once(fcos_mirror, signer):
    m = fcos_mirror
    m.delay = 0.01
    rel = resolve("fcos", "stable", mirror=m.url, cache_dir=m.cache)
    out, errs = [], []

    def worker():
        try:
            out.append(fetch(rel, kinds=["rootfs"], keyring=str(signer.pub), cache_dir=m.cache, retries=0)["rootfs"])
        except Exception as exc:        # pragma: no cover - reported below
            errs.append(exc)

    ts = [threading.Thread(target=worker) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errs
    assert m.hits[fpath("rootfs")] == 1
    assert len({o.path for o in out}) == 1 and sum(o.downloaded for o in out) == 1


def test_parallel_processes_download_once(fcos_mirror, signer):
    m = fcos_mirror
    m.delay = 0.02
    code = ("import sys; from harness.artifacts import resolve, fetch; "
            "rel = resolve('fcos', 'stable', mirror=sys.argv[1], cache_dir=sys.argv[2]); "
            "print(fetch(rel, kinds=['rootfs'], keyring=sys.argv[3], cache_dir=sys.argv[2])['rootfs'].downloaded)")
    procs = [subprocess.Popen([sys.executable, "-c", code, m.url, str(m.cache), str(signer.pub)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert sorted(o[0].strip() for o in outs) == ["False", "True"]
    assert m.hits[fpath("rootfs")] == 1


def test_http_404_one_line(fcos_mirror, signer):
    m = fcos_mirror
    (m.dir / FILES["iso"][0]).unlink()
    with pytest.raises(LivelabError) as ei:
        fetch_from(m, signer, kinds=["iso"])
    assert str(ei.value) == f"{m.url}{fpath('iso')}: HTTP 404 Not Found"


def test_http_500_retried_then_reported(fcos_mirror, signer):
    m = fcos_mirror
    m.always[fpath("kernel")] = "500"
    with pytest.raises(LivelabError, match=rf"^{m.url}{fpath('kernel')}: HTTP 500 Internal Server Error$"):
        fetch_from(m, signer, kinds=["kernel"], retries=2)
    assert m.hits[fpath("kernel")] == 3
    del m.always[fpath("kernel")]
    m.rules[fpath("kernel")] = ["500"]
    assert fetch_from(m, signer, kinds=["kernel"], retries=2)["kernel"].downloaded


def test_stall_is_a_read_timeout(fcos_mirror, signer):
    m = fcos_mirror
    m.always[fpath("kernel")] = "stall"
    t0 = time.monotonic()
    with pytest.raises(LivelabError,
                       match=rf"^{m.url}{fpath('kernel')}: stalled: no data for 0.5s \(stall time-out\)$"):
        fetch_from(m, signer, kinds=["kernel"], timeout=0.5)
    assert time.monotonic() - t0 < 3


def test_connection_refused(tmp_path, monkeypatch):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    sleeps = []
    monkeypatch.setattr(poll, "pause", lambda seconds, check=None: sleeps.append(seconds))
    with pytest.raises(LivelabError, match=rf"^http://127.0.0.1:{port}/fcos/streams/stable.json: connection refused$"):
        resolve("fcos", "stable", mirror=f"http://127.0.0.1:{port}", cache_dir=tmp_path, timeout=2)
    assert len(sleeps) == afetch.DEFAULT_RETRIES and sleeps == sorted(sleeps)    # retried with backoff
    assert sleeps[1] == 2 * sleeps[0]


def test_offline_cold_and_warm(fcos_mirror, signer):
    m = fcos_mirror
    rel = resolve("fcos", "stable", mirror=m.url, cache_dir=m.cache)
    with pytest.raises(LivelabError, match=r"^offline: not in the cache .*: kernel \(fcos/prod/.*live-kernel.x86_64\), "
                                           r"initramfs .*rootfs .*iso"):
        fetch(rel, offline=True, keyring=str(signer.pub), cache_dir=m.cache)
    fetch(rel, keyring=str(signer.pub), cache_dir=m.cache, retries=0)
    m.close()                                               # no server any more
    rel2 = resolve("fcos", "stable", mirror=m.url, cache_dir=m.cache, offline=True)
    got = fetch(rel2, offline=True, keyring=str(signer.pub), cache_dir=m.cache)
    assert all(Path(g.path).is_file() and not g.downloaded for g in got.values())
    # offline with a keyring never used before: gpgv re-runs from the cached .sig, still no network
    with pytest.raises(LivelabError, match="not in keyring"):
        fetch(rel2, offline=True, cache_dir=m.cache)


def test_flatcar_over_http(tmp_path, signer):
    root = tmp_path / "m"
    base = root / "flatcar/alpha/amd64-usr"
    (base / "current").mkdir(parents=True)
    (base / "current/version.txt").write_text("FLATCAR_BUILD=4600\nFLATCAR_VERSION=4600.0.0\n")
    d = base / "4600.0.0"
    d.mkdir()
    for name, size in (("flatcar_production_pxe.vmlinuz", 50_000), ("flatcar_production_pxe_image.cpio.gz", 80_000)):
        (d / name).write_bytes(os.urandom(size))
        signer.sign(d / name)
    init = d / "flatcar_production_pxe_image.cpio.gz"
    sha512 = hashlib.sha512(init.read_bytes()).hexdigest()
    (d / (init.name + ".DIGESTS")).write_text(
        f"# MD5 HASH\n{hashlib.md5(init.read_bytes()).hexdigest()}  {init.name}\n"
        f"# SHA512 HASH\n{sha512}  {init.name}\n")
    m = Mirror(root)
    try:
        rel = resolve("flatcar", "alpha", mirror=m.url, cache_dir=tmp_path / "c")
        assert rel.version == "4600.0.0"
        got = fetch(rel, keyring=str(signer.pub), cache_dir=tmp_path / "c", retries=0)
        assert got["initramfs"].digests["sha512"] == sha512
        assert got["initramfs"].path.endswith("flatcar/alpha/amd64-usr/4600.0.0/flatcar_production_pxe_image.cpio.gz")
        assert "/current/" not in m.ranges[-1][0]
        # a DIGESTS that disagrees with the file is a refusal
        (d / (init.name + ".DIGESTS")).write_text(f"# SHA512 HASH\n{'0' * 128}  {init.name}\n")
        rel = resolve("flatcar", "alpha", mirror=m.url, cache_dir=tmp_path / "c2")
        with pytest.raises(LivelabError, match=rf"refusing {init.name}: sha512 mismatch"):
            fetch(rel, keyring=str(signer.pub), cache_dir=tmp_path / "c2", retries=0)
    finally:
        m.close()


def test_cli_fetch_ls_prune(fcos_mirror, signer, capsys, tmp_path):
    m = fcos_mirror
    assert main(["artifacts", "fetch", "fcos", "--stream", "stable", "--mirror", m.url, "--keyring", str(signer.pub),
                 "--cache-dir", str(m.cache), "--kinds", "kernel,initramfs"]) == 0
    out = capsys.readouterr().out
    assert str(m.cache) in out and "sha256:" in out and signer.fpr in out
    # an older version and a stale .part in the cache
    old = m.cache / "fcos/prod/streams/stable/builds/98.20980101.3.0/x86_64"
    old.mkdir(parents=True)
    (old / "k").write_bytes(b"x")
    (old / "k.livelab.json").write_text(json.dumps({"kind": "kernel"}))
    stale = m.cache / (fpath("rootfs").lstrip("/") + ".livelab-part")
    stale.write_bytes(b"partial")
    assert main(["artifacts", "ls", "--cache-dir", str(m.cache)]) == 0
    out = capsys.readouterr().out
    assert VER in out and "98.20980101.3.0" in out and "partial:1" in out
    assert main(["artifacts", "prune", "--keep", "1", "--cache-dir", str(m.cache)]) == 0
    out = capsys.readouterr().out
    assert "98.20980101.3.0" in out and not old.exists() and not stale.exists()
    assert not list(m.cache.rglob("*.livelab-lock"))
    assert Path(str(m.cache / fpath("kernel").lstrip("/"))).exists()
    assert main(["artifacts", "prune", "--older-than", "0", "--cache-dir", str(m.cache)]) == 0
    assert not (m.cache / f"fcos/prod/streams/stable/builds/{VER}").exists()


def test_cli_fetch_refusal_is_one_line(fcos_mirror, signer, capsys):
    m = fcos_mirror
    (m.dir / (FILES["kernel"][0] + ".sig")).unlink()
    rc = main(["artifacts", "fetch", "fcos", "--mirror", m.url, "--keyring", str(signer.pub),
               "--cache-dir", str(m.cache), "--kinds", "kernel"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "signature missing" in err and FILES["kernel"][0] in err


def test_progress_bar_renders(fcos_mirror, signer):
    la = fetch_from(fcos_mirror, signer, kinds=["kernel"], progress=True)["kernel"]
    assert la.downloaded
