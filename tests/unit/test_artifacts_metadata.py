"""Metadata parsing, version pins, mirror mapping, version.txt, DIGESTS, spec table, CLI args."""
import json
import shutil
from pathlib import Path

import pytest

from harness.artifacts import fcos, flatcar, mirror, resolve, specs
from harness.artifacts.verify import parse_digests
from harness.cli import main
from harness.errors import LivelabError

SAMPLES = Path("/work/shared/reference/samples")
S33 = SAMPLES / "fcos/stream-stable-33.20201201.3.0.json"
S41 = SAMPLES / "fcos/stream-stable-41.20250331.3.0.json"
INDEX = SAMPLES / "fcos/releases-index.json"
REL33 = SAMPLES / "fcos/release-33.20201201.3.0.json"
B = "https://builds.coreos.fedoraproject.org/prod/streams/stable/builds"


def new_era_stream(tmp_path) -> Path:
    """The 41 sample rewritten with the 2025 names (live-kernel.<arch>, live-iso.<arch>.iso)."""
    text = S41.read_text().replace("41.20250331.3.0", "42.20250410.3.1")
    for arch in ("x86_64", "aarch64", "ppc64le", "s390x"):
        text = text.replace(f"-live-kernel-{arch}", f"-live-kernel.{arch}").replace(
            f"-live.{arch}.iso", f"-live-iso.{arch}.iso")
    p = tmp_path / "stream-42.json"
    p.write_text(text)
    return p


@pytest.mark.parametrize("sample,version,kernel,iso", [
    (S33, "33.20201201.3.0", "fedora-coreos-33.20201201.3.0-live-kernel-x86_64",
     "fedora-coreos-33.20201201.3.0-live.x86_64.iso"),
    (S41, "41.20250331.3.0", "fedora-coreos-41.20250331.3.0-live-kernel-x86_64",
     "fedora-coreos-41.20250331.3.0-live.x86_64.iso"),
])
def test_stream_json_old_names(sample, version, kernel, iso):
    rel = resolve("fcos", "stable", metadata=str(sample))
    assert rel.version == version and rel.os == "fcos" and rel.arch == "x86_64"
    assert set(rel.artifacts) == {"kernel", "initramfs", "rootfs", "iso"}
    k = rel.artifacts["kernel"]
    assert k.filename == kernel and k.url == k.upstream_url == f"{B}/{version}/x86_64/{kernel}"
    assert k.signature_url == k.url + ".sig"
    assert rel.artifacts["iso"].filename == iso
    assert len(k.digests["sha256"]) == 64
    assert rel.artifacts["rootfs"].filename == f"fedora-coreos-{version}-live-rootfs.x86_64.img"


def test_stream_json_new_names(tmp_path):
    rel = resolve("fcos", "stable", metadata=str(new_era_stream(tmp_path)))
    assert rel.version == "42.20250410.3.1"
    assert rel.artifacts["kernel"].filename == "fedora-coreos-42.20250410.3.1-live-kernel.x86_64"
    assert rel.artifacts["iso"].filename == "fedora-coreos-42.20250410.3.1-live-iso.x86_64.iso"
    assert rel.artifacts["initramfs"].filename == "fedora-coreos-42.20250410.3.1-live-initramfs.x86_64.img"


def test_stream_json_other_arch_and_errors(tmp_path):
    rel = resolve("fcos", "stable", arch="aarch64", metadata=str(S41))
    assert rel.artifacts["kernel"].filename.endswith("live-kernel-aarch64")
    with pytest.raises(LivelabError, match=r"no architecture 'riscv64'.*aarch64"):
        resolve("fcos", "stable", arch="riscv64", metadata=str(S41))
    with pytest.raises(LivelabError, match="'stable' stream, not 'testing'"):
        resolve("fcos", "testing", metadata=str(S41))
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(LivelabError, match="not valid JSON"):
        resolve("fcos", "stable", metadata=str(bad))


def test_release_index_and_release_json():
    idx = json.loads(INDEX.read_text())
    assert fcos.find_in_index(idx, "33.20201201.3.0", "stable") == f"{B}/33.20201201.3.0/release.json"
    with pytest.raises(LivelabError, match=r"no release 1\.2\.3 .*latest: 33\.20201214\.3\.1"):
        fcos.find_in_index(idx, "1.2.3", "stable")
    version, entries = fcos.parse_release(json.loads(REL33.read_text()), "x86_64")
    assert version == "33.20201201.3.0"
    # release.json (media/artifacts) and the stream JSON (artifacts/formats) agree for that release
    _, from_stream = fcos.parse_stream(json.loads(S33.read_text()), "x86_64")
    assert entries == from_stream


def _fcos_mirror(tmp_path) -> Path:
    """A file:// mirror holding the 41 stream JSON, the release index and release 33's release.json."""
    root = tmp_path / "mirror"
    (root / "fcos/streams").mkdir(parents=True)
    shutil.copy(S41, root / "fcos/streams/stable.json")
    (root / "fcos/prod/streams/stable/builds/33.20201201.3.0").mkdir(parents=True)
    shutil.copy(INDEX, root / "fcos/prod/streams/stable/releases.json")
    shutil.copy(REL33, root / "fcos/prod/streams/stable/builds/33.20201201.3.0/release.json")
    return root


def test_version_pin_through_index(tmp_path):
    root = _fcos_mirror(tmp_path)
    m = root.as_uri()
    rel = resolve("fcos", "stable", version="33.20201201.3.0", mirror=m, cache_dir=tmp_path / "c")
    assert rel.version == "33.20201201.3.0"
    k = rel.artifacts["kernel"]
    assert k.upstream_url == f"{B}/33.20201201.3.0/x86_64/fedora-coreos-33.20201201.3.0-live-kernel-x86_64"
    assert k.url == f"{m}/fcos/prod/streams/stable/builds/33.20201201.3.0/x86_64/{k.filename}"
    assert k.digests["sha256"] == "d6bddcc1cc8f2642b11f38ca4602573211171814a53ab57c2655853008167407"
    assert rel.metadata_source.endswith("33.20201201.3.0/release.json")
    latest = resolve("fcos", "stable", mirror=m, cache_dir=tmp_path / "c")
    assert latest.version == "41.20250331.3.0"
    with pytest.raises(LivelabError, match=r"no release 99\.1\.1"):
        resolve("fcos", "stable", version="99.1.1", mirror=m, cache_dir=tmp_path / "c")
    # offline: metadata comes from the cache only
    shutil.rmtree(root)
    again = resolve("fcos", "stable", version="33.20201201.3.0", mirror=m, cache_dir=tmp_path / "c", offline=True)
    assert again.artifacts["kernel"].digests == k.digests
    with pytest.raises(LivelabError, match=r"offline: fcos/streams/next\.json is not in the cache"):
        resolve("fcos", "next", mirror=m, cache_dir=tmp_path / "c", offline=True)


def test_mirror_mapping_rules():
    m = "http://127.0.0.1:8000/mirror/"
    assert mirror.map_url(f"{B}/41.1/x86_64/k", m) == "http://127.0.0.1:8000/mirror/fcos/prod/streams/stable/builds/41.1/x86_64/k"
    assert mirror.map_url("https://builds.coreos.fedoraproject.org/streams/next.json", m) == \
        "http://127.0.0.1:8000/mirror/fcos/streams/next.json"
    assert mirror.map_url("https://lts.release.flatcar-linux.net/amd64-usr/current/version.txt", m) == \
        "http://127.0.0.1:8000/mirror/flatcar/lts/amd64-usr/current/version.txt"
    assert mirror.map_url(f"{B}/x", None) == f"{B}/x"
    assert mirror.map_url("https://example.com/x", None) == "https://example.com/x"
    for bad in ("https://example.com/fcos/x", "http://builds.coreos.fedoraproject.org/x",
                "https://nightly.release.flatcar-linux.net/amd64-usr/x",
                "https://builds.coreos.fedoraproject.org/../etc/passwd"):
        with pytest.raises(LivelabError):
            mirror.map_url(bad, m)
    assert mirror.cache_key(f"{B}/41.1/x86_64/k") == "fcos/prod/streams/stable/builds/41.1/x86_64/k"
    assert mirror.normalize_mirror("/srv/m/") == "file:///srv/m"
    with pytest.raises(LivelabError, match="unsupported mirror"):
        mirror.normalize_mirror("ftp://x")


def test_stream_json_locations_go_through_mirror(tmp_path):
    rel = resolve("fcos", "stable", metadata=str(S41), mirror="file:///srv/m")
    for a in rel.artifacts.values():
        assert a.url.startswith("file:///srv/m/fcos/prod/streams/stable/builds/41.20250331.3.0/x86_64/")
        assert a.signature_url.startswith("file:///srv/m/fcos/") and a.signature_url.endswith(".sig")
    doc = json.loads(S41.read_text())
    doc["architectures"]["x86_64"]["artifacts"]["metal"]["formats"]["pxe"]["kernel"]["location"] = "https://evil.example/k"
    p = tmp_path / "s.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(LivelabError, match=r"https://evil\.example/k matches no mirror rule"):
        resolve("fcos", "stable", metadata=str(p), mirror="file:///srv/m")


def test_version_txt():
    assert flatcar.parse_version_txt(
        (SAMPLES / "flatcar/flatcar-release-version.txt-3510.2.2.DERIVED").read_text()) == "3510.2.2"
    assert flatcar.parse_version_txt(
        (SAMPLES / "flatcar/flatcar-scripts-manifest-version.txt-stable-4593.2.5").read_text()) == "4593.2.5"
    assert flatcar.parse_version_txt('FLATCAR_VERSION_ID="3602.2.1"\n') == "3602.2.1"
    for bad, why in (("<html>404</html>", "not KEY=value"), ("FLATCAR_BUILD=1\n", "no FLATCAR_VERSION"),
                     ("FLATCAR_VERSION=latest\n", "not a version"), ("", "no FLATCAR_VERSION")):
        with pytest.raises(LivelabError, match=why) as ei:
            flatcar.parse_version_txt(bad, "https://stable.release.flatcar-linux.net/amd64-usr/current/version.txt")
        assert "\n" not in str(ei.value) and "version.txt" in str(ei.value)


DIGESTS = """# MD5 HASH
0123456789abcdef0123456789abcdef  flatcar_production_pxe_image.cpio.gz
# SHA1 HASH
0123456789abcdef0123456789abcdef01234567  flatcar_production_pxe_image.cpio.gz
# SHA512 HASH
{sha512}  flatcar_production_pxe_image.cpio.gz
"""


def test_digests_parsing():
    h = "ab" * 64
    d = parse_digests(DIGESTS.format(sha512=h), "flatcar_production_pxe_image.cpio.gz")
    assert d["sha512"] == h and d["md5"] == "0123456789abcdef0123456789abcdef"
    with pytest.raises(LivelabError, match="no '# SHA512 HASH' entry for other"):
        parse_digests(DIGESTS.format(sha512=h), "other")
    with pytest.raises(LivelabError, match="bad sha512 digest"):
        parse_digests(DIGESTS.format(sha512="ab" * 10), "flatcar_production_pxe_image.cpio.gz")
    with pytest.raises(LivelabError, match="before any"):
        parse_digests("abc  x\n", "x")


def test_flatcar_resolve_file_mirror(tmp_path):
    root = tmp_path / "m" / "flatcar/beta/amd64-usr"
    (root / "current").mkdir(parents=True)
    (root / "current/version.txt").write_text("FLATCAR_VERSION=3602.1.0\nFLATCAR_BUILD_ID=\"x\"\n")
    (root / "3602.1.0").mkdir()
    h = "cd" * 64
    (root / "3602.1.0/flatcar_production_pxe_image.cpio.gz.DIGESTS").write_text(DIGESTS.format(sha512=h))
    m = (tmp_path / "m").as_uri()
    rel = resolve("flatcar", "beta", mirror=m, cache_dir=tmp_path / "c")
    assert rel.version == "3602.1.0" and rel.stream == "beta"
    k, i = rel.artifacts["kernel"], rel.artifacts["initramfs"]
    assert k.upstream_url == "https://beta.release.flatcar-linux.net/amd64-usr/3602.1.0/flatcar_production_pxe.vmlinuz"
    assert k.url == f"{m}/flatcar/beta/amd64-usr/3602.1.0/flatcar_production_pxe.vmlinuz"
    assert k.signature_url == k.url + ".sig" and k.digests == {}      # no DIGESTS for the kernel: fine
    assert i.digests == {"sha512": h}
    (root / "current/version.txt").write_text("garbage\n")
    with pytest.raises(LivelabError, match=r"malformed .*current/version\.txt"):
        resolve("flatcar", "beta", mirror=m, cache_dir=tmp_path / "c")
    pinned = resolve("flatcar", "beta", version="3602.1.0", mirror=m, cache_dir=tmp_path / "c")
    assert pinned.artifacts["initramfs"].digests == {"sha512": h}
    with pytest.raises(LivelabError, match="bad Flatcar version"):
        resolve("flatcar", "beta", version="../x", mirror=m, cache_dir=tmp_path / "c")


def test_spec_table():
    assert specs.max_spec("flatcar", "3510.2.2") == "3.3.0"
    assert specs.reads("flatcar", "3510.2.2", "3.4.0-experimental")
    assert not specs.reads("flatcar", "3510.2.2", "3.4.0")
    assert specs.max_spec("flatcar", "3602.2.0") == "3.4.0"
    assert specs.max_spec("flatcar", "4593.2.5") == "3.5.0"
    assert specs.max_spec("fcos", "36.20220505.3.2") == "3.3.0"
    assert specs.max_spec("fcos", "39.20240101.3.0") == "3.4.0"
    assert specs.max_spec("fcos", "41.20250331.3.0") == "3.4.0"
    assert specs.max_spec("fcos", "42.20250410.3.1") == "3.5.0"
    assert specs.reads("fcos", "42.20250410.3.1", "3.0.0") and not specs.reads("fcos", "42.20250410.3.1", "3.6.0")
    assert specs.ignition_version("fcos", "37.1") == "2.14.0"
    assert "approximate" in specs.TABLE_PATH.read_text().lower()


def test_spec_table_overrides(tmp_path):
    t = tmp_path / "table.json"
    t.write_text(json.dumps({"fcos": {"42.20250410.3.1": "3.3.0"}, "flatcar": {}}))
    assert specs.max_spec("fcos", "42.20250410.3.1", table_override=str(t)) == "3.3.0"
    assert not specs.reads("fcos", "42.20250410.3.1", "3.4.0", table_override=str(t))
    assert specs.max_spec("fcos", "42.20250411.3.1", table_override=str(t)) == "3.5.0"
    assert specs.max_spec("fcos", "42.20250410.3.1", table_override=str(t), max_override="3.1.0") == "3.1.0"
    with pytest.raises(LivelabError, match="bad Ignition config spec"):
        specs.max_spec("fcos", "42.1", max_override="3.x")
    t.write_text("[1,2]")
    with pytest.raises(LivelabError, match="expected"):
        specs.max_spec("fcos", "42.1", table_override=str(t))


def test_cli_stream_channel_errors(capsys):
    assert main(["artifacts", "resolve", "fcos", "--channel", "beta", "--metadata", str(S41)]) == 2
    assert "fcos takes --stream" in capsys.readouterr().err
    assert main(["artifacts", "resolve", "flatcar", "--stream", "stable"]) == 2
    assert "flatcar takes --channel" in capsys.readouterr().err
    assert main(["artifacts", "resolve", "flatcar", "--channel", "edge"]) == 2
    err = capsys.readouterr().err
    assert "stable, beta, alpha, lts" in err and err.count("\n") == 1


def test_cli_resolve_output(capsys, tmp_path):
    assert main(["artifacts", "resolve", "fcos", "--metadata", str(S33), "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "sha256:d6bddcc1cc8f2642b11f38ca4602573211171814a53ab57c2655853008167407" in out
    assert "live-kernel-x86_64.sig" in out
    (tmp_path / "m").mkdir()
    assert main(["artifacts", "resolve", "fcos", "--metadata", str(S41), "--json", "--mirror", f"file://{tmp_path}/m",
                 "--ignition-max-spec", "3.2.0", "--cache-dir", str(tmp_path / "c")]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["version"] == "41.20250331.3.0" and d["ignition_max_spec"] == "3.2.0"
    assert d["artifacts"]["iso"]["url"].startswith(f"file://{tmp_path}/m/fcos/")
