"""``livelab check`` end to end with its output captured (no terminal, as in CI): a plain line per
boot phase on stderr, in boot order, never more than about 10 s without a line, then the result."""
import re
import subprocess
import sys
import threading
import time

import pytest
from procs import OUT, REPO, STANDIN

VM = "fcos.stable.iso.bios"
PHASE_LINE = re.compile(rf"^livelab: {re.escape(VM)}: +(?P<t>\d+\.\d) s +(?P<phase>[a-z_]+) ")
# what every boot of the stand-in's live ISO shows, in this order (sshd_started too, but its console
# line may come a moment after the harness's SSH login worked: it is not ordered against ssh_ready)
IN_ORDER = ["qemu_start", "first_console", "kernel_start", "init_start", "ignition_start", "ignition_done",
            "switch_root", "real_root", "ssh_ready"]
SILENCE_S = 12.0          # the heartbeat's 10 s, and some slack for a busy host


@pytest.mark.livelab(os="fcos", stream="stable", method="iso", firmware="bios")
@pytest.mark.e2e
def test_check_prints_the_boot_phases_in_order(tmp_path):
    assert (OUT / "mirror").is_dir(), "the stand-in mirror is missing: run `make images`"
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "check", "fcos", "--stream", "stable", "--via", "iso",
                             *STANDIN, "--run-dir", str(tmp_path / "run")], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    err: list = []          # (monotonic time, line) of stderr as it comes

    def read():
        for line in proc.stderr:
            err.append((time.monotonic(), line.rstrip("\n")))
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        out = proc.stdout.read()
        assert proc.wait(1200) == 0, "\n".join(ln for _, ln in err)[-4000:] + out[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(10)
    text = "\n".join(ln for _, ln in err)
    phases = [(m.group("phase"), float(m.group("t"))) for m in map(PHASE_LINE.match, (ln for _, ln in err)) if m]
    names = [p for p, _ in phases]
    for phase in [*IN_ORDER, "sshd_started"]:
        assert phase in names, (phase, text)
    assert [p for p in names if p in IN_ORDER] == IN_ORDER, text       # each once, in boot order
    assert names.index("sshd_started") > names.index("real_root"), text
    assert dict(phases)["kernel_start"] <= dict(phases)["ignition_done"] <= dict(phases)["ssh_ready"], text
    assert "\x1b[" not in text                                          # no terminal: no live line
    # never silent: from the first line to the last, a line at least every ~10 s
    stamps = [t for t, _ in err]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert max(gaps) < SILENCE_S, (max(gaps), text)
    assert re.search(rf"^livelab: {re.escape(VM)} passed; phases", out, re.M), out
    assert "  ok  SSH as core" in out
