"""The artifact cache under hostile servers and mistyped paths: nothing lost, nothing corrupted, nothing hangs.

Every test uses the hostile loopback mirror (``hostile_mirror.Mirror``); nothing leaves 127.0.0.1.
"""
import json
import math
import tempfile
import time
from pathlib import Path

import pytest
from clirun import refusal_line, run_livelab
from hostile_mirror import FILES, fetch_from, fpath

from harness.artifacts import fetch, pipeline, resolve
from harness.artifacts.store import MARKER, Store
from harness.artifacts.transport import Policy
from harness.cli import main
from harness.errors import LivelabError


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(pipeline.Fetcher, "backoff", 0.01)


# ------------------------------------------------------------ time limits

def test_trickle_trips_the_stall_time_out(fcos_mirror, signer):
    """1 byte every 100 ms never trips a socket time-out; the stall rule (64 KiB per window) does."""
    m = fcos_mirror
    m.always[fpath("kernel")] = "trickle"
    t0 = time.monotonic()
    with pytest.raises(LivelabError, match=r"stalled: \d+ bytes in the last 1s \(stall time-out\)"):
        fetch_from(m, signer, kinds=["kernel"], timeout=1)
    assert time.monotonic() - t0 < 5


def test_deadline_ends_a_slow_download_and_says_so(fcos_mirror, signer):
    m = fcos_mirror
    m.delay = 0.2                       # 64 KiB per 0.2 s: never a stall, but 2 MB take ~6 s
    t0 = time.monotonic()
    with pytest.raises(LivelabError, match=r"rootfs.*: not done within the deadline of 1s \(\d+ bytes so far\)"):
        fetch_from(m, signer, kinds=["rootfs"], deadline=1, retries=3)
    assert time.monotonic() - t0 < 4


@pytest.mark.parametrize("value", ["-5", "0", "nan", "inf"])
def test_bad_time_limits_are_refused(fcos_mirror, value):
    proc = run_livelab("artifacts", "resolve", "fcos", "--mirror", fcos_mirror.url, "--cache-dir",
               str(fcos_mirror.cache), "--timeout", value)
    assert "--timeout must be a positive number of seconds" in refusal_line(proc)


# ------------------------------------------------------------ redirects

def test_redirect_inside_the_mirror_is_followed_and_recorded(fcos_mirror, signer):
    m = fcos_mirror
    real = fpath("kernel")
    m.always[real + ".moved"] = None
    (m.dir / (FILES["kernel"][0] + ".moved")).write_bytes((m.dir / FILES["kernel"][0]).read_bytes())
    m.always[real] = ("redirect", m.url + real + ".moved")
    got = fetch_from(m, signer, kinds=["kernel"])["kernel"]
    assert got.final_url == m.url + real + ".moved"
    assert json.loads(Path(got.path + ".livelab.json").read_text())["final_url"] == got.final_url


@pytest.mark.parametrize("where", ["port", "host"])
def test_redirect_out_of_the_mirror_is_refused(fcos_mirror, signer, where):
    m = fcos_mirror
    port = int(m.url.rsplit(":", 1)[1])
    target = (f"http://127.0.0.1:{port + 1}/evil" if where == "port"
              else f"http://localhost:{port}{fpath('kernel')}")
    m.always[fpath("kernel")] = ("redirect", target)
    with pytest.raises(LivelabError) as ei:
        fetch_from(m, signer, kinds=["kernel"])
    text = ei.value.one_line()
    assert f"redirect to {target} leaves the mirror's origin http://127.0.0.1:{port}" in text
    assert m.url + fpath("kernel") in text


def test_without_a_mirror_only_https_redirects_are_followed_and_hops_are_limited():
    policy = Policy()
    policy.check_redirect("https://stable.release.flatcar-linux.net/a", "https://cdn.example.net/a", 1)   # a CDN: fine
    with pytest.raises(LivelabError, match=r"redirect to http://cdn.example.net/a is not https: refused"):
        policy.check_redirect("https://stable.release.flatcar-linux.net/a", "http://cdn.example.net/a", 1)
    with pytest.raises(LivelabError, match=r"more than 5 redirects"):
        policy.check_redirect("https://a.example/", "https://b.example/", 6)


# ------------------------------------------------------------ bytes that are wrong

@pytest.mark.parametrize("action", ["wrong", "truncate", "drop"])
def test_wrong_or_short_bodies_leave_nothing_under_the_final_name(fcos_mirror, signer, action):
    m = fcos_mirror
    m.always[fpath("rootfs")] = action
    with pytest.raises(LivelabError, match=r"sha256 mismatch|connection (closed after|broken)"):
        fetch_from(m, signer, kinds=["rootfs"], retries=1)
    final = m.cache / fpath("rootfs").lstrip("/")
    assert not final.exists() and not Path(str(final) + ".livelab.json").exists()


def test_broken_stream_json_keeps_the_good_copy_and_names_the_mirror_file(fcos_mirror, signer):
    m = fcos_mirror
    good = resolve("fcos", "stable", mirror=m.url, cache_dir=m.cache)
    cached = m.cache / "fcos/streams/stable.json"
    before = cached.read_bytes()
    m.always["/fcos/streams/stable.json"] = ("body", b'{"architectures": [')
    with pytest.raises(LivelabError) as ei:
        resolve("fcos", "stable", mirror=m.url, cache_dir=m.cache)
    assert ei.value.one_line().startswith(f"{m.url}/fcos/streams/stable.json: not valid JSON")
    assert cached.read_bytes() == before
    again = resolve("fcos", "stable", mirror=m.url, cache_dir=m.cache, offline=True)
    assert again.version == good.version


def test_stream_json_with_wrong_types_is_one_line(fcos_mirror):
    m = fcos_mirror
    doc = json.loads((m.root / "fcos/streams/stable.json").read_text())
    doc["architectures"]["x86_64"]["artifacts"]["metal"]["formats"]["pxe"]["kernel"]["sha256"] = 7
    m.always["/fcos/streams/stable.json"] = ("body", json.dumps(doc).encode())
    with pytest.raises(LivelabError, match=r"metal pxe\.kernel\.sha256 7 is not a sha256 digest"):
        resolve("fcos", "stable", mirror=m.url, cache_dir=m.cache)
    doc["architectures"]["x86_64"]["artifacts"]["metal"]["formats"]["pxe"]["kernel"]["location"] = 7
    m.always["/fcos/streams/stable.json"] = ("body", json.dumps(doc).encode())
    with pytest.raises(LivelabError, match=r"metal pxe\.kernel\.location is int 7, not a URL"):
        resolve("fcos", "stable", mirror=m.url, cache_dir=m.cache)


def test_a_record_that_is_not_a_record_is_rechecked(fcos_mirror, signer):
    m = fcos_mirror
    got = fetch_from(m, signer, kinds=["kernel"])["kernel"]
    Path(got.path + ".livelab.json").write_text("[1]")
    again = fetch_from(m, signer, kinds=["kernel"])["kernel"]
    assert not again.downloaded and again.verified_with == [signer.fpr]
    assert json.loads(Path(got.path + ".livelab.json").read_text())["verified_with"] == [signer.fpr]


# ------------------------------------------------------------ --insecure

def test_insecure_says_what_was_not_verified_once_and_keeps_its_files_apart(fcos_mirror, signer, capsys):
    m = fcos_mirror
    rel = resolve("fcos", "stable", mirror=m.url, cache_dir=m.cache)
    rel.artifacts["kernel"].digests = {}                   # nothing published for it
    (m.dir / FILES["kernel"][0]).write_bytes(b"tampered")   # and the mirror serves other bytes
    got = fetch(rel, kinds=["kernel", "initramfs"], insecure=True, cache_dir=m.cache)
    err = capsys.readouterr().err
    assert err.count("WARNING: --insecure") == 1
    assert "initramfs, kernel were NOT checked" in err and "kernel had no published digest either" in err
    assert str(m.cache / "insecure") in err
    fetch(rel, kinds=["kernel", "initramfs"], insecure=True, cache_dir=m.cache)
    assert "WARNING" not in capsys.readouterr().err                         # once per process
    assert got["kernel"].path.startswith(str(m.cache / "insecure") + "/")
    # a secure run never takes the tampered copy: it fetches its own, and the signature refuses it
    with pytest.raises(LivelabError, match=r"refusing .*kernel.*BAD signature"):
        fetch(rel, kinds=["kernel"], keyring=str(signer.pub), cache_dir=m.cache, retries=0)


# ------------------------------------------------------------ what may be deleted

def test_prune_refuses_a_directory_livelab_did_not_mark(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "Cargo.lock").write_text("keep me")
    (project / "yarn.lock").write_text("keep me too")
    (project / "build.part").write_text("mine")
    proc = run_livelab("artifacts", "prune", "--keep", "0", "--cache-dir", str(project))
    assert f"{project} is not a livelab cache" in refusal_line(proc)
    assert sorted(p.name for p in project.iterdir()) == ["Cargo.lock", "build.part", "yarn.lock"]
    proc = run_livelab("artifacts", "prune", "--keep", "0", env={"LIVELAB_CACHE_DIR": str(project)})
    assert "is not a livelab cache" in refusal_line(proc)
    assert len(list(project.iterdir())) == 3


def test_fetch_refuses_a_directory_that_holds_other_things(tmp_path, fcos_mirror):
    project = tmp_path / "project"
    project.mkdir()
    (project / "Cargo.lock").write_text("keep me")
    proc = run_livelab("artifacts", "resolve", "fcos", "--mirror", fcos_mirror.url, "--cache-dir", str(project))
    assert f"refusing to use {project} as the artifact cache" in refusal_line(proc)
    assert [p.name for p in project.iterdir()] == ["Cargo.lock"]


def test_prune_removes_only_livelab_names_and_says_what_it_left(fcos_mirror, signer, capsys):
    m = fcos_mirror
    fetch_from(m, signer, kinds=["kernel"])
    release = m.cache / fpath("kernel").lstrip("/")
    (release.parent / "notes.txt").write_text("a user's file")
    (release.parent / "Cargo.lock").write_text("not ours")
    assert main(["artifacts", "prune", "--keep", "0", "--cache-dir", str(m.cache)]) == 0
    out = capsys.readouterr().out
    assert not release.exists() and f"removed {release}" in out
    assert (release.parent / "notes.txt").exists() and (release.parent / "Cargo.lock").exists()
    assert "left alone 2 file(s) livelab did not write" in out
    assert (m.cache / MARKER).exists()


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_bad_older_than_is_refused(fcos_mirror, signer, value):
    m = fcos_mirror
    fetch_from(m, signer, kinds=["kernel"])
    proc = run_livelab("artifacts", "prune", "--older-than", value, "--cache-dir", str(m.cache))
    assert "--older-than must be a number of days, 0 or more" in refusal_line(proc)
    assert (m.cache / fpath("kernel").lstrip("/")).exists()


def test_ls_of_a_missing_directory_creates_nothing(tmp_path):
    missing = tmp_path / "missing" / "dir"
    proc = run_livelab("artifacts", "ls", "--cache-dir", str(missing))
    assert proc.returncode == 0 and "no cache at" in proc.stdout
    assert not missing.exists() and not missing.parent.exists()


def test_resolve_keeps_its_keyring_in_the_cache_not_the_system_temp_dir(fcos_mirror, signer, tmp_path):
    m = fcos_mirror
    before = set(Path(tempfile.gettempdir()).glob("livelab-keyrings-*"))
    proc = run_livelab("artifacts", "resolve", "fcos", "--mirror", m.url, "--cache-dir", str(m.cache),
               "--keyring", str(signer.pub))
    assert proc.returncode == 0, proc.stderr
    assert list((m.cache / "keyrings").glob("*.gpg"))
    assert set(Path(tempfile.gettempdir()).glob("livelab-keyrings-*")) == before


def test_a_dead_writers_temp_file_is_cleaned_by_the_next_run(fcos_mirror, signer):
    m = fcos_mirror
    fetch_from(m, signer, kinds=["kernel"])
    stale = m.cache / "fcos/streams/.stable.json.livelab-tmp.999999.deadbeef"
    stale.write_bytes(b"")
    foreign = m.cache / "fcos/streams/.stable.json.tmp"           # not livelab's name: left alone
    foreign.write_bytes(b"")
    resolve("fcos", "stable", mirror=m.url, cache_dir=m.cache)
    assert not stale.exists() and foreign.exists()


def test_prune_arguments_are_checked_before_anything_happens():
    from harness.artifacts.store import check_prune_args
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(LivelabError):
            check_prune_args(None, bad)
    with pytest.raises(LivelabError, match="--keep must be 0 or more"):
        check_prune_args(-1, None)
    check_prune_args(0, 0.0)


def test_store_for_writing_adopts_an_old_livelab_cache(tmp_path):
    old = tmp_path / "old"
    (old / "fcos/streams").mkdir(parents=True)
    (old / "keyrings").mkdir()
    store = Store.for_writing(old)
    assert store.marked()
