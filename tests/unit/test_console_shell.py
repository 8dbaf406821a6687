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


def test_run_keeps_the_shell_state_and_stderr(shell):
    assert shell.run("cd /; export LL_X=7", 10) == (0, "")
    assert shell.run("pwd; echo $LL_X; echo to-stderr >&2", 10) == (0, "/\n7\nto-stderr")


def test_run_takes_out_kernel_messages_between_and_inside_lines(shell):
    """The kernel writes to the console whenever it likes.  Here the shell writes the records to
    the terminal itself: one before the command's output, one inside the framed base64 (a
    ``base64`` function, which the frame then calls, puts it after the second line).  A command's
    own dmesg-like lines stay."""
    record = "[   24.792221] input: ImExPS/2 Generic Explorer Mouse as /devices/platform/i8042/serio1/input/input3"
    shell.run(f"base64() {{ command base64 \"$@\" | {{ read -r a; read -r b; printf '%s\\n%s\\n' \"$a\" \"$b\"; "
              f"printf '%s\\r\\n' '{record}' >/dev/tty; cat; }}; }}", 10)
    try:
        status, out = shell.run(f"printf '%s\\r\\n' '{record}' >/dev/tty; echo core; "
                                f"printf '[    1.000000] a dmesg line of the command\\n'; "
                                f"head -c 3000 /dev/zero | command base64; false", 20)
    finally:
        shell.run("unset -f base64", 10)
    assert status == 1
    lines = out.splitlines()
    assert lines[:2] == ["core", "[    1.000000] a dmesg line of the command"]
    assert "".join(lines[2:]) == "A" * 4000
    shown = [line for line in shell.tap.last_lines(200).splitlines() if line.startswith(record)]
    assert len(shown) == 2     # both records were on the console


def test_a_garbled_frame_is_a_clear_failure(shell, monkeypatch):
    """Output that does not add up (a byte lost on the way) is an error, never a wrong answer."""
    monkeypatch.setattr("harness.console.decode_framed",
                        lambda *a: (_ for _ in ()).throw(ValueError("2 bytes of output arrived; the guest sent 3")))
    with pytest.raises(BootFailure, match=r"garbled the output of `echo hi`: 2 bytes .*sent 3"):
        shell.run("echo hi", 10)
    monkeypatch.undo()
    assert shell.run("echo again", 10) == (0, "again")


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


RECORD = "[   33.926559] input: Power Button as /devices/LNXSYSTM:00/LNXPWRBN:00/input/input2"


def test_a_kernel_record_after_the_prompt_on_its_line(tmp_path):
    """A getty prompt and an autologin shell's prompt, each with a kernel record printed right
    after it on the same line (as CI's console showed): both are still prompts."""
    script = tmp_path / "login.sh"
    script.write_text(f"printf 'localhost login: {RECORD}\\r\\n'; read -r user; "
                      f"printf 'core@localhost:~$ {RECORD}\\r\\n'; PS1= exec bash --norc -i\n")
    sock, proc = _serve_on_pty(tmp_path, f"sh {script}")
    con = Console(str(sock), ConsoleTap(time.monotonic()), name="t")
    try:
        con.login("core", None, 10)
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
