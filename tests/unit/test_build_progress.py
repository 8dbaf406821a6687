"""The image build's progress (images/build.py, images/ignition_src.py) with fake children: small
Python scripts that print like mmdebstrap --verbose, mksquashfs and go build -v, with pauses, under a
short heartbeat."""
import io
import re
import sys
import tarfile
import textwrap
import time

import pytest
import repo_scripts

build = repo_scripts.load("images/build.py")
src = repo_scripts.load("images/ignition_src.py")
STAMP = re.compile(r"^  \[ *(\d+\.\d)s\] ")


def child(tmp_path, body: str, name="child.py"):
    """A command running ``body`` (Python, output unbuffered)."""
    path = tmp_path / name
    path.write_text("import sys, time\n" + textwrap.dedent(body))
    return [sys.executable, "-u", str(path)]


MMDEBSTRAP = """
def say(*lines, pause=0.0):
    for line in lines:
        print(line, file=sys.stderr if line[:3] in ("I: ", "W: ") else sys.stdout, flush=True)
    time.sleep(pause)

say("I: chroot architecture amd64 is equal to the host's architecture")
say("I: downloading packages with apt...", "Reading package lists...",
    "0 upgraded, 3 newly installed, 0 to remove and 0 not upgraded.", "Need to get 3,100 kB of archives.")
say("Get:1 http://deb.debian.org/debian bookworm/main amd64 libc6 amd64 2.36-9+deb12u4 [2757 kB]", pause=0.3)
say("Get:2 http://deb.debian.org/debian bookworm/main amd64 bash amd64 5.2.15-2+b2 [1491 kB]", pause=0.3)
say("Get:3 http://deb.debian.org/debian bookworm/main amd64 systemd amd64 252.30-1~deb12u2 [3000 kB]")
say("Fetched 7,248 kB in 1s (5,000 kB/s)")
say("I: installing remaining packages inside the chroot...",
    "0 upgraded, 3 newly installed, 0 to remove and 0 not upgraded.")
say("Preparing to unpack .../libc6_2.36-9+deb12u4_amd64.deb ...", "Unpacking libc6:amd64 (2.36-9+deb12u4) ...")
say("Unpacking bash (5.2.15-2+b2) ...", pause=0.35)
say("Setting up libc6:amd64 (2.36-9+deb12u4) ...", pause=0.35)
say("I: creating tarball...", "I: done", pause=0.1)
"""


def test_mmdebstrap_phases_are_counted_and_a_heartbeat_shows_them(tmp_path):
    out = io.StringIO()
    progress = build.Progress(out, heartbeat_s=0.25, tty=False)
    progress.start("base: mmdebstrap (Debian 12 packages)")
    log = tmp_path / "build.log"
    assert build.run(child(tmp_path, MMDEBSTRAP), log=log,
                     on_line=progress.watch(build.MmdebstrapStatus())) == 0
    progress.close()
    lines = out.getvalue().splitlines()
    text = "\n".join(lines)
    # its own steps at once, with the apt total
    for step in ("base: mmdebstrap (Debian 12 packages): downloading packages with apt...",
                 "base: mmdebstrap (Debian 12 packages): 3 packages to install",
                 "downloaded 7,248 kB in 1s (5,000 kB/s)",
                 "installing remaining packages inside the chroot...", "creating tarball..."):
        assert step in text, (step, text)
    # the counts reach the heartbeat lines, with the stage's elapsed time
    beats = [ln for ln in lines if " so far" in ln]
    assert beats, text
    assert any(re.search(r"download [12]/3: (libc6|bash)", b) for b in beats), beats
    assert any(re.search(r"(unpack 2/3: bash|configure 1/3: libc6:amd64)", b) for b in beats), beats
    assert all(STAMP.match(ln) for ln in lines), lines
    # never silent for longer than the heartbeat (plus the ticker's second)
    stamps = [float(STAMP.match(ln).group(1)) for ln in lines]
    assert max(b - a for a, b in zip(stamps, stamps[1:])) < 0.25 + 1.1
    assert "Get:3 http://deb.debian.org" in log.read_text()     # the whole output is still logged


def test_status_parsers():
    st = build.MmdebstrapStatus()
    assert st.feed("\x1b[32mI: running apt-get update...\x1b[0m") == ("running apt-get update...", True)
    assert st.feed("Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB]") == ("download 1: InRelease", False)
    assert st.feed("Reading package lists...") is None
    assert st.feed("12 upgraded, 213 newly installed, 0 to remove and 0 not upgraded.") == (
        "213 packages to install", True)
    assert st.feed("Setting up systemd (252.30-1~deb12u2) ...") == ("configure 1/213: systemd", False)
    sq = build.SquashfsStatus()
    assert sq.feed("[=====\\        ] 100/400  25%") == ("mksquashfs 25% (100/400 blocks)", True)
    assert sq.feed("[======|       ] 120/400  30%") == ("mksquashfs 30% (120/400 blocks)", False)
    assert sq.feed("Parallel mksquashfs: Using 2 processors") is None


SQUASHFS = """
for n in range(0, 101, 10):
    sys.stdout.write(f"\\r[{'=' * (n // 10):<10}] {n * 4}/400 {n:3d}%")
    sys.stdout.flush()
    time.sleep(0.06)
sys.stdout.write("\\n")
"""


def test_mksquashfs_progress_bar_updates_on_carriage_returns(tmp_path):
    out = io.StringIO()
    progress = build.Progress(out, heartbeat_s=10, tty=False)
    progress.start("squashfs: trim + mksquashfs")
    build.run(child(tmp_path, SQUASHFS), on_line=progress.watch(build.SquashfsStatus()))
    assert progress.detail == "mksquashfs 100% (400/400 blocks)"
    progress.close()
    said = [ln.split("mksquashfs: ", 1)[1] for ln in out.getvalue().splitlines() if "%" in ln]
    assert said == ["mksquashfs 30% (120/400 blocks)", "mksquashfs 50% (200/400 blocks)",
                    "mksquashfs 80% (320/400 blocks)", "mksquashfs 100% (400/400 blocks)"]


def test_a_terminal_gets_a_ticker_with_the_last_line(tmp_path):
    out = io.StringIO()
    progress = build.Progress(out, tty=True)
    progress.start("rootfs: unpack + overlay + customize")
    build.run(child(tmp_path, "print('Setting up systemd ...', flush=True)\ntime.sleep(1.3)\n"),
              on_line=progress.watch())
    progress.close()
    frames = out.getvalue().split("\r\x1b[K")
    assert any(re.search(r"rootfs: unpack \+ overlay \+ customize \.\.\. +1\.\ds  Setting up systemd \.\.\.$", f)
               for f in frames), frames
    assert frames[-1].startswith("  [") and "rootfs: unpack + overlay + customize done in" in frames[-1]


def test_run_keeps_its_contract(tmp_path):
    cmd = child(tmp_path, "print('one'); print('two', file=sys.stderr)\n")
    assert build.run(cmd, capture=True).split() == [b"one", b"two"]
    seen = []
    build.run(child(tmp_path, "sys.stdout.write('a\\rb\\n\\nc')\n"), on_line=seen.append)
    assert seen == ["a", "b", "c"]
    with pytest.raises(build.BuildError, match=r"failed \(exit 3\): bad \| worse"):
        build.run(child(tmp_path, "print('bad'); print('worse'); sys.exit(3)\n"))
    with pytest.raises(build.BuildError, match="cannot run"):
        build.run([str(tmp_path / "missing")])
    assert build.run(child(tmp_path, "print(sys.stdin.read().upper())\n"), input=b"in", capture=True) == b"IN\n"


GO = """
for pkg in ["internal/abi", "runtime", "github.com/coreos/ignition/v2/config",
            "github.com/coreos/ignition/v2/internal"]:
    print(pkg, file=sys.stderr, flush=True)
    time.sleep(0.05)
"""


def test_the_ignition_build_tells_its_steps_and_packages(tmp_path, monkeypatch):
    fake_go = tmp_path / "go"
    fake_go.write_text(f"#!/bin/sh\nexec {sys.executable} -u {tmp_path / 'go.py'} \"$@\"\n")
    fake_go.chmod(0o755)
    (tmp_path / "go.py").write_text("import sys, time, pathlib\n" + GO +
                                    "pathlib.Path(sys.argv[sys.argv.index('-o') + 1]).write_bytes(b'ELF')\n")
    monkeypatch.setattr(src, "find_go", lambda: (str(fake_go), "go1.23.5"))
    monkeypatch.setattr(src, "check_blkid", lambda: None)
    notes = []
    info = src.build_binaries(tmp_path, tmp_path / "out", tmp_path / "log",
                              note=lambda t, m=False: notes.append((t, m)))
    assert info["go"] == "go1.23.5" and (tmp_path / "out" / "ignition").read_bytes() == b"ELF"
    assert notes[0] == (f"go build ignition ({src.PKG}/internal)", True)
    assert ("go build ignition: 4 packages compiled (github.com/coreos/ignition/v2/internal)", False) in notes
    assert notes[5] == (f"go build ignition-validate ({src.PKG}/validate)", True)
    assert "-v" in (tmp_path / "log").read_text().splitlines()[0].split()


def test_ensure_tells_its_steps(tmp_path, monkeypatch):
    archive = tmp_path / "ign.tar.gz"
    module = b"check() { return 255; }\n"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("ignition-2.23.0/dracut/30ignition/module-setup.sh")
        info.size, info.mode = len(module), 0o755
        tf.addfile(info, io.BytesIO(module))
    monkeypatch.setattr(src, "TREE_SHA256", src.tree_hash(src.unpack(archive, tmp_path / "ref")))
    notes = []

    def builder(tree, out, log=None, note=None):
        note("compiling", False)
        out.mkdir(parents=True)
        for b in src.BINARIES:
            (out / b).write_bytes(b"ELF")
        return {"go": "go1.23.5"}

    src.ensure(archive, root=tmp_path / "cache", builder=builder, note=lambda t, m=False: notes.append((t, m)))
    assert notes == [(f"source: {archive} (unpack, check the tree hash)", True),
                     (f"building from {archive}", True), ("compiling", False)]


def test_heartbeat_waits_for_silence():
    out = io.StringIO()
    progress = build.Progress(out, heartbeat_s=0.3, tty=False)
    progress.start("publish: signed mirror tree")
    for _ in range(6):          # a line every 0.1 s: no heartbeat needed
        progress.note("busy", milestone=True)
        time.sleep(0.1)
    progress.close()
    assert " so far" not in out.getvalue()
