"""The upstream Ignition build of the stand-in (images/ignition_src.py, images/build.py): where the
source comes from, the pinned tree hash, the binary cache, the recipe key and the spec table.

The real download and the Go build cannot run here: a loopback HTTP server serves a source archive
and a stand-in ``builder`` writes the binaries."""
from __future__ import annotations

import hashlib
import http.server
import io
import json
import tarfile
import threading
import time
from pathlib import Path

import pytest
import repo_scripts

ROOT = Path(__file__).resolve().parents[2]


src = repo_scripts.load("images/ignition_src.py")
build = repo_scripts.load("images/build.py")

FILES = {
    "README.md": (b"ignition\n", 0o644),
    "build": (b"#!/bin/sh\necho build\n", 0o755),
    "dracut/30ignition/module-setup.sh": (b"check() { return 255; }\n", 0o755),
    "dracut/30ignition/ignition-fetch.service": (b"[Unit]\n", 0o644),
    "vendor/modules.txt": (b"# vendored\n", 0o644),
}


def make_archive(path: Path, files=FILES, prefix="ignition-2.23.0/", mtime=0, fmt=tarfile.PAX_FORMAT,
                 mode="w:gz") -> Path:
    with tarfile.open(path, mode, format=fmt) as tf:
        for name, (data, perm) in sorted(files.items()):
            info = tarfile.TarInfo(prefix + name)
            info.size, info.mode, info.mtime = len(data), perm, mtime
            tf.addfile(info, io.BytesIO(data))
    return path


def tree_of(tmp_path: Path, archive: Path) -> Path:
    return src.unpack(archive, tmp_path / f"u-{archive.name}")


def expected_hash(tmp_path: Path) -> str:
    return src.tree_hash(tree_of(tmp_path, make_archive(tmp_path / "ref.tar.gz")))


def fake_builder(calls: list):
    def builder(tree: Path, out: Path, log=None) -> dict:
        calls.append(tree)
        out.mkdir(parents=True, exist_ok=True)
        for b in src.BINARIES:
            (out / b).write_bytes(b"\x7fELF " + b.encode())
            (out / b).chmod(0o755)
        return {"go": "go1.23.5", "build_seconds": 0.0}
    return builder


# ---------------------------------------------------------------------- the tree hash

def test_tree_hash_ignores_archive_bytes_and_prefix(tmp_path):
    a = make_archive(tmp_path / "a.tar.gz", mtime=0)
    b = make_archive(tmp_path / "b.tar.xz", mtime=1234567, fmt=tarfile.GNU_FORMAT, prefix="other-dir/",
                     mode="w:xz")
    assert hashlib.sha256(a.read_bytes()).hexdigest() != hashlib.sha256(b.read_bytes()).hexdigest()
    assert src.tree_hash(tree_of(tmp_path, a)) == src.tree_hash(tree_of(tmp_path, b))


@pytest.mark.parametrize("change", ["content", "exec-bit", "extra-file", "renamed"])
def test_tree_hash_sees_every_file_change(tmp_path, change):
    files = dict(FILES)
    if change == "content":
        files["README.md"] = (b"ignition!\n", 0o644)
    elif change == "exec-bit":
        files["build"] = (files["build"][0], 0o644)
    elif change == "extra-file":
        files["vendor/evil.go"] = (b"package evil\n", 0o644)
    else:
        files["README.txt"] = files.pop("README.md")
    changed = src.tree_hash(tree_of(tmp_path, make_archive(tmp_path / "c.tar.gz", files)))
    assert changed != expected_hash(tmp_path)


def test_unpack_refuses_paths_outside_the_tree(tmp_path):
    bad = make_archive(tmp_path / "bad.tar.gz", {"../escape": (b"x", 0o644)}, prefix="")
    with pytest.raises(src.IgnitionBuildError):
        src.unpack(bad, tmp_path / "out")
    assert not (tmp_path / "escape").exists()


# ---------------------------------------------------------------------- where the source comes from

class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


@pytest.fixture
def loopback(tmp_path):
    """A loopback HTTP server over tmp_path/www; yields its base URL and the request log."""
    www = tmp_path / "www"
    www.mkdir()
    seen: list = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(www), **kw)

        def log_message(self, *a):
            seen.append(self.path)

    srv = _Server(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", www, seen
    finally:
        srv.shutdown()
        srv.server_close()


def test_download_from_loopback_checks_the_content_hash(tmp_path, loopback, monkeypatch):
    base, www, seen = loopback
    make_archive(www / "v2.23.0.tar.gz")
    monkeypatch.delenv(src.SOURCE_ENV, raising=False)
    monkeypatch.setenv(src.URL_ENV, f"{base}/v2.23.0.tar.gz")
    tree, origin = src.obtain_source(tmp_path / "work", expect=expected_hash(tmp_path))
    assert origin == f"{base}/v2.23.0.tar.gz" and seen == ["/v2.23.0.tar.gz"]
    assert (tree / "dracut/30ignition/module-setup.sh").is_file()


def test_download_with_other_content_is_refused(tmp_path, loopback, monkeypatch):
    base, www, _ = loopback
    files = dict(FILES, **{"vendor/modules.txt": (b"# tampered\n", 0o644)})
    make_archive(www / "v2.23.0.tar.gz", files)
    monkeypatch.delenv(src.SOURCE_ENV, raising=False)
    with pytest.raises(src.IgnitionBuildError, match=r"not v2\.23\.0 as pinned"):
        src.obtain_source(tmp_path / "work", url=f"{base}/v2.23.0.tar.gz", expect=expected_hash(tmp_path))


def test_failed_download_names_the_local_source_option(tmp_path, loopback, monkeypatch):
    base, _, _ = loopback
    monkeypatch.delenv(src.SOURCE_ENV, raising=False)
    with pytest.raises(src.IgnitionBuildError, match="--ignition-source"):
        src.obtain_source(tmp_path / "work", url=f"{base}/missing.tar.gz")


def test_local_source_from_option_or_environment_wins_over_the_url(tmp_path, monkeypatch):
    archive = make_archive(tmp_path / "local.tar.gz")
    want = expected_hash(tmp_path)
    monkeypatch.setenv(src.URL_ENV, "http://127.0.0.1:9/never-fetched.tar.gz")
    monkeypatch.delenv(src.SOURCE_ENV, raising=False)
    _, origin = src.obtain_source(tmp_path / "w1", source=archive, expect=want)
    assert origin == str(archive)
    monkeypatch.setenv(src.SOURCE_ENV, str(archive))
    _, origin = src.obtain_source(tmp_path / "w2", expect=want)
    assert origin == str(archive)
    with pytest.raises(src.IgnitionBuildError, match="not found"):
        src.obtain_source(tmp_path / "w3", source=tmp_path / "nope.tar.gz")


def test_default_url_is_the_upstream_tag_archive(monkeypatch):
    monkeypatch.delenv(src.SOURCE_ENV, raising=False)
    monkeypatch.delenv(src.URL_ENV, raising=False)
    assert src.source_from_env() == (None, "https://github.com/coreos/ignition/archive/refs/tags/v2.23.0.tar.gz")


SHARED = ROOT.parent / "shared" / "deps" / "ignition-v2.23.0.tar.gz"


@pytest.mark.skipif(not SHARED.is_file(), reason="no ../shared/deps/ignition-v2.23.0.tar.gz")
def test_the_pin_matches_the_shared_v2_23_0_archive(tmp_path):
    tree = src.unpack(SHARED, tmp_path)
    assert src.tree_hash(tree) == src.TREE_SHA256
    assert (tree / src.DRACUT_MODULE / "module-setup.sh").is_file()


# ---------------------------------------------------------------------- the binary cache

def test_cache_is_keyed_by_the_pin_and_reused_without_the_source(tmp_path, monkeypatch):
    archive = make_archive(tmp_path / "local.tar.gz")
    monkeypatch.setattr(src, "TREE_SHA256", expected_hash(tmp_path))
    calls: list = []
    d1, info1 = src.ensure(archive, root=tmp_path / "cache", builder=fake_builder(calls))
    assert not info1["cache_hit"] and len(calls) == 1
    assert d1.name == f"v2.23.0-{src.pin_key()}"
    assert (d1 / "30ignition/module-setup.sh").read_bytes() == FILES["dracut/30ignition/module-setup.sh"][0]
    archive.unlink()     # a cached rebuild needs no source
    t0 = time.monotonic()
    d2, info2 = src.ensure(None, url="http://127.0.0.1:9/unused", root=tmp_path / "cache",
                           builder=fake_builder(calls))
    assert time.monotonic() - t0 < 1.0
    assert d2 == d1 and info2["cache_hit"] and len(calls) == 1
    # another pin is another cache entry
    monkeypatch.setattr(src, "COMMIT", "0" * 40)
    assert src.cached(tmp_path / "cache") is None


def test_failed_build_leaves_no_cache_entry(tmp_path, monkeypatch):
    archive = make_archive(tmp_path / "local.tar.gz")
    monkeypatch.setattr(src, "TREE_SHA256", expected_hash(tmp_path))

    def broken(tree, out, log=None):
        raise src.IgnitionBuildError("go build ignition failed")
    with pytest.raises(src.IgnitionBuildError):
        src.ensure(archive, root=tmp_path / "cache", builder=broken)
    assert src.cached(tmp_path / "cache") is None
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []


def test_cache_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(src.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert src.cache_root() == tmp_path / "xdg" / "livelab" / "ignition"
    monkeypatch.setenv(src.CACHE_ENV, str(tmp_path / "mine"))
    assert src.cache_root() == tmp_path / "mine"


def test_go_too_old_is_a_one_line_error_naming_the_package(tmp_path, monkeypatch):
    fake = tmp_path / "go"
    fake.write_text("#!/bin/sh\necho go version go1.19.8 linux/amd64\n")
    fake.chmod(0o755)
    monkeypatch.setattr(src, "GO_CANDIDATES", [str(fake)])
    monkeypatch.delenv("LIVELAB_GO", raising=False)
    with pytest.raises(src.IgnitionBuildError, match=r"golang-1\.23-go"):
        src.find_go()


# ---------------------------------------------------------------------- recipe key and spec table

def test_recipe_key_includes_the_pin(monkeypatch):
    before = build.recipe_key()
    monkeypatch.setattr(build.ignition_src, "TREE_SHA256", "0" * 64)
    assert build.recipe_key() != before


def test_recipe_key_leaves_the_base_tarball_alone():
    # Debian's ignition package stays in the package list: the cached mmdebstrap tarball stays valid
    assert "ignition" in build.package_list()


def test_standin_spec_table_follows_the_real_releases():
    from harness.artifacts import specs
    for os_id, versions in (("fcos", [v for vs in build.FCOS_STREAMS.values() for v in vs]),
                            ("flatcar", [v for ch in build.FLATCAR_CHANNELS for v in build.flatcar_releases(ch)])):
        for v in versions:
            assert build.REAL_MAX_SPEC[os_id][v] == specs.max_spec(os_id, v), (os_id, v)
            want = min(specs.max_spec(os_id, v), "3.5.0", key=specs.parse_spec)
            assert build.standin_spec(os_id, v) == want
    assert build.standin_spec("fcos", build.FCOS_STREAMS["stable"][-1]) == "3.5.0"
    assert build.standin_spec("fcos", build.FCOS_STREAMS["stable"][0]) == "3.4.0"
    assert build.IGNITION_SPECS_ACCEPTED[:6] == ["3.0.0", "3.1.0", "3.2.0", "3.3.0", "3.4.0", "3.5.0"]


def test_built_standin_spec_table_matches(tmp_path):
    out = ROOT / "images" / "out"
    info = out / "build-info.json"
    if not info.is_file() or json.loads(info.read_text()).get("recipe_key") != build.recipe_key():
        pytest.skip("images/out is not built from this recipe")
    table = json.loads((out / "ignition-specs.json").read_text())
    for os_id in ("fcos", "flatcar"):
        for v, spec in table[os_id].items():
            assert spec == build.standin_spec(os_id, v)
    assert (out / "bin/ignition-validate").is_file()


def _standin_table() -> dict:
    return {"fcos": {v: build.standin_spec("fcos", v) for vs in build.FCOS_STREAMS.values() for v in vs},
            "flatcar": {v: build.standin_spec("flatcar", v) for ch in build.FLATCAR_CHANNELS
                        for v in build.flatcar_releases(ch)}}


def test_the_seeds_fcos_1_6_0_config_is_read_by_stable_but_not_by_the_older_release():
    """`livelab check fcos --butane` with a 1.6.0 config: stable's current release (real: 3.5.0) takes
    it; the older 41 (real: 3.4.0) refuses it as the real image would."""
    from harness.artifacts import specs
    from harness.errors import LivelabError
    from harness.ignition import butane_to_ignition, check_target
    cfg = butane_to_ignition("variant: fcos\nversion: 1.6.0\npasswd:\n  users:\n    - name: core\n"
                             "      ssh_authorized_keys:\n        - ssh-rsa AAAA...\n").config
    table = _standin_table()
    current, older = build.FCOS_STREAMS["stable"][-1], build.FCOS_STREAMS["stable"][0]
    check_target(cfg, specs.max_spec("fcos", current, table_override=table), target=f"fcos {current}")
    with pytest.raises(LivelabError, match=r"newer than 3\.4\.0.*use fcos ≤ 1\.5\.0"):
        check_target(cfg, specs.max_spec("fcos", older, table_override=table), target=f"fcos {older}")


# ---------------------------------------------------------------- the real root's prefetch list

def test_prefetch_paths_resolve_as_inside_the_chroot(tmp_path):
    """The list holds real files of the root: symlinks (merged /usr, library sonames, absolute
    links) are followed as the guest sees them, never into the build host's own tree."""
    resolve = build._resolve_in
    (tmp_path / "usr/lib/x86_64-linux-gnu").mkdir(parents=True)
    (tmp_path / "usr/lib/x86_64-linux-gnu/libc.so.6.1").write_text("elf")
    (tmp_path / "lib").symlink_to("usr/lib")                                    # merged /usr
    (tmp_path / "usr/lib/x86_64-linux-gnu/libc.so.6").symlink_to("/usr/lib/x86_64-linux-gnu/libc.so.6.1")
    (tmp_path / "usr/lib/up").symlink_to("../../etc/passwd")                    # climbs inside the root
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root")
    (tmp_path / "loop").symlink_to("loop")
    assert resolve(tmp_path, "lib/x86_64-linux-gnu/libc.so.6") == "usr/lib/x86_64-linux-gnu/libc.so.6.1"
    assert resolve(tmp_path, "usr/lib/up") == "etc/passwd"
    assert resolve(tmp_path, "loop") is None
    assert resolve(tmp_path, "usr/lib/missing.so") is None
    (tmp_path / "usr/lib/escape").symlink_to("../../../../../../etc/hostname")  # cannot leave the root
    assert resolve(tmp_path, "usr/lib/escape") is None


def test_the_built_ignition_is_linked_at_a_fixed_address():
    """The stand-in's `ignition` is not a PIE (images/README.md, a speed choice): ELF type
    ET_EXEC, no relocations for the loader to apply at each of Ignition's stages."""
    built = src.cached()
    if built is None:
        pytest.skip("Ignition of this pin is not built here (make images builds it)")
    with open(built / "ignition", "rb") as f:
        header = f.read(18)                   # e_ident and e_type, not the 42 MB binary
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[16:18], "little") == 2   # ET_EXEC, not ET_DYN
