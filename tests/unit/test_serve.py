"""The loopback HTTP server: 127.0.0.1 only, HEAD, Range, 404."""
import urllib.error
import urllib.request

import pytest

from harness.serve import HttpServer, guest_url, relay_command


@pytest.fixture
def server(tmp_path):
    f = tmp_path / "rootfs.img"
    f.write_bytes(bytes(range(256)) * 40)
    with HttpServer() as s:
        s.publish("prod/rootfs.img", f)
        s.publish("config.ign", b'{"ignition":{"version":"3.3.0"}}')
        yield s


def get(server, path, headers=None, method="GET"):
    req = urllib.request.Request(server.url + path, headers=headers or {}, method=method)
    return urllib.request.urlopen(req, timeout=5)


def test_binds_loopback_only(server):
    assert server._server.server_address[0] == "127.0.0.1"


def test_get_head_and_range(server):
    body = get(server, "/prod/rootfs.img").read()
    assert len(body) == 10240
    r = get(server, "/prod/rootfs.img", method="HEAD")
    assert r.headers["Content-Length"] == "10240" and r.read() == b""
    r = get(server, "/prod/rootfs.img", {"Range": "bytes=256-511"})
    assert r.status == 206 and r.read() == bytes(range(256))
    assert r.headers["Content-Range"] == "bytes 256-511/10240"
    assert get(server, "/config.ign").read().startswith(b'{"ignition"')
    assert server.requested("rootfs.img") == 3


def test_unpublished_path_is_404(server):
    with pytest.raises(urllib.error.HTTPError) as e:
        get(server, "/etc/passwd")
    assert e.value.code == 404
    with pytest.raises(urllib.error.HTTPError):
        get(server, "/prod/../config.ign/../../etc/passwd")


def test_guest_urls_and_relay():
    assert guest_url("/config.ign") == "http://10.0.2.100/config.ign"
    assert relay_command(8080).endswith("127.0.0.1:8080")
