"""gpgv verification against coreos-installer's signed fixtures; bundled keyrings; insecure override."""
import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from harness.artifacts import fetch
from harness.artifacts.model import Artifact, Release
from harness.artifacts.verify import BUNDLED_KEYRINGS, gpgv_verify, keyring_for, load_keyring
from harness.errors import LivelabError

V = Path("/work/shared/reference/samples/coreos-installer/verify")
TEST_FPR = "1A304569BFADFB3E3F96F0C3AA2A69A46EC352FC"


@pytest.fixture
def ring(tmp_path):
    return load_keyring(V / "test-key.pub.asc", tmp_path / "cache")


def test_bundled_keyrings(tmp_path):
    fc = keyring_for("fcos", None, tmp_path)
    assert {"C6E7F081CF80E13146676E88829B606631645531", "36F612DCF27F7D1A48A835E4DBFCF71C6D9F90A6",
            "4F50A6114CD5C6976A7F1179655A4B02F577861E"} <= set(fc.fingerprints)
    assert keyring_for("flatcar", None, tmp_path).fingerprints == ("F88CFEDEFF29A5B4D9523864E25D9AED0593B34A",)
    assert BUNDLED_KEYRINGS["fcos"].read_text().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")


def test_good_signatures(ring, tmp_path):
    assert ring.fingerprints == (TEST_FPR,)
    assert gpgv_verify(V / "1M.gz", V / "1M.gz.sig", ring) == [TEST_FPR]
    assert gpgv_verify(V / "1M.xz", V / "1M.xz.sig", ring) == [TEST_FPR]
    plain = tmp_path / "1M"
    plain.write_bytes(gzip.decompress((V / "1M.gz").read_bytes()))
    assert gpgv_verify(plain, V / "1M.sig", ring) == [TEST_FPR]


def test_binary_keyring_accepted(tmp_path, ring):
    binary = tmp_path / "test.gpg"
    shutil.copy(ring.path, binary)
    r2 = load_keyring(binary, tmp_path / "other")
    assert r2.fingerprints == (TEST_FPR,)
    assert gpgv_verify(V / "1M.gz", V / "1M.gz.sig", r2) == [TEST_FPR]


def test_tampered_file_refused(ring, tmp_path):
    bad = tmp_path / "1M.gz"
    data = bytearray((V / "1M.gz").read_bytes())
    data[500] ^= 0x01
    bad.write_bytes(bytes(data))
    with pytest.raises(LivelabError, match=r"refusing 1M.gz: signature check failed: BAD signature") as ei:
        gpgv_verify(bad, V / "1M.gz.sig", ring)
    assert "\n" not in str(ei.value)
    # a signature made for another file
    with pytest.raises(LivelabError, match="BAD signature"):
        gpgv_verify(V / "1M.xz", V / "1M.gz.sig", ring)


def test_missing_and_garbage_signature(ring, tmp_path):
    with pytest.raises(LivelabError, match=r"refusing 1M\.gz"):
        gpgv_verify(V / "1M.gz", tmp_path / "nope.sig", ring)
    junk = tmp_path / "junk.sig"
    junk.write_text("not a signature")
    with pytest.raises(LivelabError, match=r"refusing 1M\.gz: signature check failed"):
        gpgv_verify(V / "1M.gz", junk, ring)


def test_wrong_key_refused(tmp_path):
    fc = keyring_for("fcos", None, tmp_path)
    with pytest.raises(LivelabError,
                       match=r"signed by key 5FBDA8071BF24B78, which is not in keyring fcos-signing-keys\.asc"):
        gpgv_verify(V / "1M.gz", V / "1M.gz.sig", fc)


def test_bad_keyring_file(tmp_path):
    k = tmp_path / "k.asc"
    k.write_text("hello")
    with pytest.raises(LivelabError, match="holds no usable OpenPGP public key"):
        load_keyring(k, tmp_path)
    with pytest.raises(LivelabError, match="cannot read keyring"):
        load_keyring(tmp_path / "missing.asc", tmp_path)


def _release_for_fixture(mirror_root: Path, with_sig: bool) -> Release:
    """A Release whose kernel is the 1M.gz fixture, served from a file:// mirror."""
    up = "https://builds.coreos.fedoraproject.org/prod/streams/stable/builds/1.0/x86_64/1M.gz"
    d = mirror_root / "fcos/prod/streams/stable/builds/1.0/x86_64"
    d.mkdir(parents=True)
    shutil.copy(V / "1M.gz", d / "1M.gz")
    if with_sig:
        shutil.copy(V / "1M.gz.sig", d / "1M.gz.sig")
    m = mirror_root.as_uri()
    sha = hashlib.sha256((V / "1M.gz").read_bytes()).hexdigest()
    art = Artifact(kind="kernel", url=f"{m}/fcos/prod/streams/stable/builds/1.0/x86_64/1M.gz", upstream_url=up,
                   signature_url=f"{m}/fcos/prod/streams/stable/builds/1.0/x86_64/1M.gz.sig",
                   digests={"sha256": sha}, filename="1M.gz")
    return Release("fcos", "stable", "1.0", "x86_64", {"kernel": art}, mirror=m)


def test_fetch_file_mirror_signed(tmp_path):
    rel = _release_for_fixture(tmp_path / "m", with_sig=True)
    got = fetch(rel, keyring=str(V / "test-key.pub.asc"), cache_dir=tmp_path / "c", retries=0)["kernel"]
    assert got.verified_with == [TEST_FPR] and not got.insecure
    assert got.path == str(tmp_path / "c/fcos/prod/streams/stable/builds/1.0/x86_64/1M.gz")
    rec = json.loads(Path(got.path + ".livelab.json").read_text())
    assert rec["verified_with"] == [TEST_FPR] and rec["size"] == 1054
    # bundled FCOS keys do not trust the test key: the warm entry must be re-checked, and refused
    with pytest.raises(LivelabError, match=r"not in keyring fcos-signing-keys\.asc"):
        fetch(rel, cache_dir=tmp_path / "c", retries=0)
    assert Path(got.path).exists()          # right bytes for another keyring: kept, not thrown away


def test_insecure_override(tmp_path):
    rel = _release_for_fixture(tmp_path / "m", with_sig=False)
    with pytest.raises(LivelabError, match=r"refusing 1M.gz: signature missing at file://.*1M.gz.sig") as ei:
        fetch(rel, keyring=str(V / "test-key.pub.asc"), cache_dir=tmp_path / "c", retries=0)
    assert "\n" not in str(ei.value)
    assert not (tmp_path / "c/fcos/prod/streams/stable/builds/1.0/x86_64/1M.gz").exists()
    got = fetch(rel, insecure=True, cache_dir=tmp_path / "c", retries=0)["kernel"]
    assert got.insecure is True and got.verified_with == []
    assert got.path == str(tmp_path / "c/insecure/fcos/prod/streams/stable/builds/1.0/x86_64/1M.gz")   # kept apart
    assert json.loads(Path(got.path + ".livelab.json").read_text())["insecure"] is True
    # a later secure fetch never sees the insecure copy
    with pytest.raises(LivelabError, match="signature missing"):
        fetch(rel, keyring=str(V / "test-key.pub.asc"), cache_dir=tmp_path / "c", retries=0)
    # once the signature is published, a secure fetch downloads its own copy and verifies it
    shutil.copy(V / "1M.gz.sig", tmp_path / "m/fcos/prod/streams/stable/builds/1.0/x86_64/1M.gz.sig")
    got = fetch(rel, keyring=str(V / "test-key.pub.asc"), cache_dir=tmp_path / "c", retries=0)["kernel"]
    assert got.insecure is False and got.verified_with == [TEST_FPR] and got.downloaded
    assert got.path == str(tmp_path / "c/fcos/prod/streams/stable/builds/1.0/x86_64/1M.gz")
    # and an insecure run is then served by the verified copy
    again = fetch(rel, insecure=True, cache_dir=tmp_path / "c", retries=0)["kernel"]
    assert again.path == got.path and not again.downloaded


def test_digest_mismatch_refused_even_insecure(tmp_path):
    rel = _release_for_fixture(tmp_path / "m", with_sig=True)
    rel.artifacts["kernel"].digests = {"sha256": "00" * 32}
    with pytest.raises(LivelabError, match=r"refusing 1M\.gz: sha256 mismatch"):
        fetch(rel, insecure=True, cache_dir=tmp_path / "c", retries=0)
    d = tmp_path / "c/fcos/prod/streams/stable/builds/1.0/x86_64"
    assert not (d / "1M.gz").exists() and not (d / "1M.gz.livelab-part").exists()
