"""Headless Chromium for the end-to-end tests that render a report (imported by name: pytest puts this
folder on sys.path): ``chromium(tmp_path, "--dump-dom", url)``, and ``png_rows(screenshot)`` to tell a
blank page from a drawn one."""
import shutil
import struct
import subprocess
import zlib
from pathlib import Path


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "chromium is not installed (scripts/setup-host.sh installs it: apt-get install -y chromium)"
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def png_rows(path: Path) -> tuple:
    """(width, height, number of distinct scanlines) of a PNG: a blank page has one distinct line."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, bpp = 8, b"", 0, 0, 4
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", chunk[:10])
            bpp = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour, 4) * max(1, depth // 8)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp + 1
    return width, height, len({raw[i * stride + 1:(i + 1) * stride] for i in range(height)})
