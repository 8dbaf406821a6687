"""Console.take_shell / run against a real interactive bash on a pty behind a unix socket (the
way a guest's autologin shell sits behind QEMU's serial chardev), and fail-fast on a fatal line."""
import os
import shutil
import subprocess
import time

import pytest

from harness.console import Console, ConsoleTap
from harness.errors import BootFailure

pytestmark = pytest.mark.skipif(not shutil.which("socat"), reason="socat is installed by scripts/setup-host.sh")


@pytest.fixture
def shell_socket(tmp_path):
    sock = tmp_path / "console.sock"
    env = dict(os.environ, PS1="core@localhost:~$ ", HOME=str(tmp_path))
    proc = subprocess.Popen(["socat", f"UNIX-LISTEN:{sock}", "EXEC:bash --norc -i,pty,stderr,setsid,sane"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if sock.exists():
            break
        time.sleep(0.05)
    yield sock
    proc.kill()
    proc.wait()


@pytest.fixture
def shell(shell_socket):
    """A Console attached to the shell, prompt taken over."""
    con = Console(str(shell_socket), ConsoleTap(time.monotonic()), name="t")
    try:
        con.send_line("")
        con.take_shell(10)
        yield con
    finally:
        con.close()


def test_take_shell_and_run(shell):
    assert shell.run("echo hello; true", 10) == (0, "hello")
    status, out = shell.run("printf 'a\\nb\\n'; exit_code() { return 3; }; exit_code", 10)
    assert status == 3 and out.splitlines() == ["a", "b"]


def test_fatal_console_line_fails_the_wait_at_once(shell):
    shell.send_line("echo 'Kernel panic - not syncing: ''test'")
    t0 = time.monotonic()
    with pytest.raises(BootFailure, match="kernel panic") as exc:
        shell.wait_for("this never comes", 30)
    assert time.monotonic() - t0 < 2
    assert "--- last 50 console lines ---" in str(exc.value)
