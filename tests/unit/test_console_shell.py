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


def _serve_on_pty(tmp_path, program: str):
    sock = tmp_path / "console.sock"
    env = dict(os.environ, PS1="core@localhost:~$ ", HOME=str(tmp_path))
    proc = subprocess.Popen(["socat", f"UNIX-LISTEN:{sock}", f"EXEC:{program},pty,stderr,setsid,sane"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if sock.exists():
            break
        time.sleep(0.05)
    return sock, proc


@pytest.fixture
def shell_socket(tmp_path):
    sock, proc = _serve_on_pty(tmp_path, "bash --norc -i")
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


def test_take_shell_survives_a_banner_and_flushed_input(tmp_path):
    """The live ISO's motd has a line of #s that looks like a root prompt, and login flushes what
    was typed before it hands over: the set-up line is typed again until the known prompt shows."""
    script = tmp_path / "login.sh"
    # the banner arrives in two reads, the first one ending in "#"
    script.write_text("printf '##########'; sleep 1; echo '##########'; echo 'Welcome to the live environment'; "
                      "sleep 1.5; "
                      "python3 -c 'import termios; termios.tcflush(0, termios.TCIFLUSH)'; exec bash --norc -i\n")
    sock, proc = _serve_on_pty(tmp_path, f"sh {script}")
    con = Console(str(sock), ConsoleTap(time.monotonic()), name="t")
    con.RESEND_S = 1.0
    try:
        con.take_shell(20)
        assert con.run("echo ok", 10) == (0, "ok")
    finally:
        con.close()
        proc.kill()
        proc.wait()


def test_type_line_waits_for_each_piece_to_echo(shell_socket):
    """A firmware prompt is typed at a piece at a time (the UART holds 16 characters); the
    shell here echoes what is typed, as iPXE's prompt does."""
    con = Console(str(shell_socket), ConsoleTap(time.monotonic()), name="t")
    sent = []
    real_send = con.send
    con.send = lambda text: (sent.append(text), real_send(text))[1]
    try:
        con.wait_for("$ ", 10)
        con.type_line("echo typed-in-pieces-of-eight", 10)
        con.wait_for("typed-in-pieces-of-eight", 10)      # the output (the echo was read piece by piece)
    finally:
        con.close()
    assert sent == ["echo typ", "ed-in-pi", "eces-of-", "eight", "\r"]
