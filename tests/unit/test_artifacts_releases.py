"""A stream's releases, oldest first: the FCOS release index, the Flatcar channel's directory page (as the
release server, a static tree's index.html, or a plain web server's own listing serve it), and which
artifacts of a release its server does not publish."""
import contextlib
import functools
import http.server
import json
import threading
from pathlib import Path

import pytest
from release_mirror import standin_mirror

from harness.artifacts import fcos, flatcar, mirror, missing, releases, resolve
from harness.errors import LivelabError

INDEX = Path("/work/shared/reference/samples/fcos/releases-index.json")
ALPHA = "https://alpha.release.flatcar-linux.net/amd64-usr/"


def test_the_release_index_lists_releases_in_its_order():
    doc = json.loads(INDEX.read_text())
    got = fcos.index_versions(doc)
    assert got == [r["version"] for r in doc["releases"]]
    assert got[0] == "31.20200108.3.0" and len(got) == len(set(got))


@pytest.mark.parametrize("doc,error", [
    ({}, "has no 'releases' list"),
    ({"releases": [{"version": 42}]}, "releases[0]: release 42 is not a release version"),
    ({"releases": [{"version": "1.2"}, {"version": "1.2"}]}, "release 1.2 is listed twice"),
])
def test_a_bad_release_index_is_one_line(doc, error):
    with pytest.raises(LivelabError, match=error.replace("[", r"\[").replace("]", r"\]")):
        fcos.index_versions(doc, "releases.json")


PAGE = """<html><head><title>Index of /amd64-usr/</title></head><body><h1>Index of /amd64-usr/</h1><hr><pre>
<a href="../">../</a>
<a href="./4152.0.0/">4152.0.0/</a>            14-Oct-2025 10:01    -
<a href="./4012.0.0/">4012.0.0/</a>
<a href='./4081.0.0/'>4081.0.0/</a>
<a href="./current/">current/</a>
<a href="./current-2024/">current-2024/</a>
<a href="./4116.0.0/version.txt">a file</a>
<a href="https://www.flatcar.org/">Flatcar</a>
<a href="/amd64-usr/3975.0.0/">absolute</a>
<a HREF="4054.0.0/">4054.0.0/ (a plain listing's form)</a>
</pre></body></html>"""


def test_the_directory_page_names_every_release_in_release_order():
    assert flatcar.parse_listing(PAGE) == ["3975.0.0", "4012.0.0", "4054.0.0", "4081.0.0", "4152.0.0"]
    # release order, not text order
    assert flatcar.parse_listing('<a href="./999.0.0/"> <a href="./1000.0.0/"> <a href="./999.10.0/">') == [
        "999.0.0", "999.10.0", "1000.0.0"]


def test_a_page_without_releases_is_one_line():
    with pytest.raises(LivelabError, match="links to no release directory"):
        flatcar.parse_listing('<a href="./current/">current/</a>', source="the page")


def test_a_directory_url_is_cached_as_its_page_and_mapped_with_its_slash():
    assert mirror.cache_key(ALPHA) == "flatcar/alpha/amd64-usr/index.html"
    assert mirror.map_url(ALPHA, "http://m.example") == "http://m.example/flatcar/alpha/amd64-usr/"
    assert mirror.map_url(ALPHA, None) == ALPHA


def test_releases_from_a_directory_mirror(tmp_path):
    m = str(standin_mirror(tmp_path / "m"))
    cache = tmp_path / "cache"
    assert releases("fcos", "testing", mirror=m, cache_dir=cache) == [
        "42.20250707.2.0", "42.20250721.2.0", "42.20250804.2.0"]
    assert releases("flatcar", "alpha", mirror=m, cache_dir=cache) == ["4012.0.0", "4054.0.0", "4081.0.0"]
    # kept in the cache: offline reads the same
    assert releases("flatcar", "alpha", mirror=m, cache_dir=cache, offline=True) == [
        "4012.0.0", "4054.0.0", "4081.0.0"]
    with pytest.raises(LivelabError, match=r"unknown stream|stream"):
        releases("fcos", "nightly", mirror=m, cache_dir=cache)


@contextlib.contextmanager
def web_server(root: Path):
    """A plain web server of ``root`` (Python's: index.html of a directory, else its own listing)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("page", [True, False], ids=["its-page", "the-servers-own-listing"])
def test_releases_from_a_web_server(tmp_path, page):
    root = standin_mirror(tmp_path / "m", page=page)
    with web_server(root) as url:
        assert releases("flatcar", "alpha", mirror=url, cache_dir=tmp_path / "cache") == [
            "4012.0.0", "4054.0.0", "4081.0.0"]
        assert releases("fcos", "testing", mirror=url, cache_dir=tmp_path / "cache")[-1] == "42.20250804.2.0"


def test_missing_artifacts_are_named_and_nothing_is_downloaded(tmp_path):
    m = str(standin_mirror(tmp_path / "m"))
    cache = tmp_path / "cache"
    ok = resolve("fcos", "testing", version="42.20250707.2.0", mirror=m, cache_dir=cache)
    assert missing(ok, ["kernel", "initramfs", "rootfs", "iso"], cache_dir=cache) == []
    gap = resolve("fcos", "testing", version="42.20250721.2.0", mirror=m, cache_dir=cache)
    (gone,) = missing(gap, ["iso", "kernel"], cache_dir=cache)
    assert gone.startswith("iso (") and "not found" in gone
    assert not list(cache.rglob("fedora-coreos-*"))          # opened, not fetched
    # offline: what the cache does not hold is missing
    assert len(missing(ok, ["kernel", "iso"], cache_dir=cache, offline=True)) == 2
    with web_server(Path(m)) as url:
        rel = resolve("fcos", "testing", version="42.20250721.2.0", mirror=url, cache_dir=cache)
        (gone,) = missing(rel, ["kernel", "iso"], cache_dir=cache)
        assert gone.startswith("iso (") and "HTTP 404" in gone


def test_the_releases_verb(tmp_path, capsys):
    from harness.cli import main
    m = str(standin_mirror(tmp_path / "m"))
    assert main(["artifacts", "releases", "flatcar", "--channel", "alpha", "--mirror", m,
                 "--cache-dir", str(tmp_path / "c")]) == 0
    assert capsys.readouterr().out.split() == ["4012.0.0", "4054.0.0", "4081.0.0"]
    assert main(["artifacts", "releases", "fcos", "--stream", "testing", "--json", "--mirror", m,
                 "--cache-dir", str(tmp_path / "c")]) == 0
    assert json.loads(capsys.readouterr().out)[0] == "42.20250707.2.0"
