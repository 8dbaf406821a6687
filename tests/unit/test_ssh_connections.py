"""A failed SSH attempt leaves nothing open (harness.ssh.SSH._connect).

Against a slow guest, paramiko's key exchange runs past its time-out; ``connect`` then raises, but
its transport thread and socket went on.  Each such connection stays one of sshd's unauthenticated
ones for its LoginGraceTime, and past MaxStartups sshd refused every new login: CI's
``fcos.stable.pxe-rootfs-url.bios.persist-var`` waited 300 s for SSH after its reboot, with the
guest up and dozens of the harness's connections open.  A real socket server here plays an sshd
that sends its banner and then never answers the key exchange.
"""
from __future__ import annotations

import contextlib
import socket
import threading

import paramiko
import pytest

from harness import poll
from harness.ssh import SSH, SessionKey


class LoopbackServer:
    """A TCP server on 127.0.0.1 whose ``handle`` gets each connection, in one thread."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.handle(conn)

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.sock.close()


class StallingSSHD(LoopbackServer):
    """Sends an SSH banner, then reads and never answers; counts the connections open now and
    the most that were ever open at once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.open = self.most = self.accepted = 0
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        with self.lock:
            self.open += 1
            self.accepted += 1
            self.most = max(self.most, self.open)
        threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        with conn:
            conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
            while conn.recv(4096):      # the client's banner and KEXINIT, never answered
                pass
        with self.lock:
            self.open -= 1

    def wait_closed(self, within: float = 5.0) -> int:
        """The connections still open once all have closed or ``within`` seconds have passed."""
        with contextlib.suppress(poll.WaitTimeout):
            poll.until(lambda: not self.open, within, what="the client's connections closed")
        return self.open


@pytest.fixture
def sshd():
    server = StallingSSHD()
    yield server
    server.close()


def live_transports() -> list:
    return [t for t in threading.enumerate() if isinstance(t, paramiko.Transport) and t.is_alive()]


def test_a_key_exchange_past_its_time_out_closes_the_connection(sshd, tmp_path):
    before = len(live_transports())
    ssh = SSH("127.0.0.1", sshd.port, SessionKey(tmp_path / "key"), name="stall")
    for _ in range(3):
        with pytest.raises((paramiko.SSHException, OSError, EOFError)):
            ssh._connect(timeout=0.5)
    assert sshd.accepted == 3
    assert sshd.wait_closed() == 0, f"{sshd.open} of the harness's connections are still open at sshd"
    assert len(live_transports()) == before


def test_waiting_for_a_slow_sshd_holds_one_connection_at_a_time(sshd, tmp_path):
    ssh = SSH("127.0.0.1", sshd.port, SessionKey(tmp_path / "key"), name="stall")
    with pytest.raises(poll.WaitTimeout):
        ssh.wait(timeout=2.5)
    assert sshd.accepted >= 1
    assert sshd.most == 1
    assert sshd.wait_closed() == 0


class _LetEveryKeyIn(paramiko.ServerInterface):
    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        return paramiko.AUTH_SUCCESSFUL


class RebootingSSHD(LoopbackServer):
    """The guest's sshd across a reboot: the first connection meets the old boot's sshd, which
    finishes the key exchange with its host key and goes down before the login; every later one
    meets the new boot's sshd, with another host key, which lets the session key in."""

    def __init__(self):
        self.old_key, self.new_key = paramiko.ECDSAKey.generate(), paramiko.ECDSAKey.generate()
        self.connections = 0
        self.transports: list = []
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        self.connections += 1
        going_down = self.connections == 1
        t = paramiko.Transport(conn)
        self.transports.append(t)
        t.add_server_key(self.old_key if going_down else self.new_key)
        try:
            t.start_server(server=_LetEveryKeyIn())
        except (paramiko.SSHException, EOFError, OSError):
            return
        if going_down:
            t.close()

    def close(self) -> None:
        super().close()
        for t in self.transports:
            t.close()


def test_the_old_boots_sshd_going_down_before_the_login_pins_no_host_key(tmp_path):
    """CI's pxe-rootfs-url persist-var again: after ``systemctl reboot`` a first attempt met the
    old sshd, which was stopped after the key exchange; its host key was pinned, and the new
    boot's sshd was refused for 300 s as a "host key ... changed within one boot"."""
    sshd = RebootingSSHD()
    try:
        ssh = SSH("127.0.0.1", sshd.port, SessionKey(tmp_path / "key"), name="reboot")
        ssh.new_boot()
        ssh.wait(timeout=20)
        assert sshd.connections >= 2
        assert ssh.pinned_host_key.asbytes() == sshd.new_key.asbytes()
        ssh.close()
    finally:
        sshd.close()


def test_a_host_key_that_changes_within_a_boot_is_refused(tmp_path):
    sshd = RebootingSSHD()
    sshd.connections = 1             # no old sshd: every connection logs in, with new_key
    try:
        ssh = SSH("127.0.0.1", sshd.port, SessionKey(tmp_path / "key"), name="same-boot")
        ssh.wait(timeout=20)
        ssh.close()
        sshd.new_key = paramiko.ECDSAKey.generate()     # another host answers on the port
        with pytest.raises(paramiko.SSHException, match="changed within one boot"):
            ssh._connect(timeout=5)
    finally:
        sshd.close()
