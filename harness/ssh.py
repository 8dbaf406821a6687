"""SSH into a guest with paramiko.

- One ed25519 key per test session (``SessionKey``), written 0600 into the run directory.
- ``wait_for_ssh`` retries with backoff until the guest accepts the key, checking the VM's
  console watchers between tries so a failed boot is reported at once.
- A live system makes new host keys at every boot: the key of the first login after a boot is
  pinned for that boot; a different key within the same boot is refused.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Callable

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from filelock import FileLock

from . import poll
from .atomic import atomic_write

# paramiko logs every refused early connection attempt; our own errors say what matters
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class SessionKey:
    """An ed25519 key pair for a test session."""

    def __init__(self, directory: Path):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "id_ed25519"
        # pytest-xdist workers share the session key: one creates it, under a lock
        with FileLock(str(directory / ".key.lock")):
            if not (directory / "id_ed25519.pub").exists():
                key = Ed25519PrivateKey.generate()
                pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                        serialization.NoEncryption())
                atomic_write(self.path, pem, mode=0o600)
                pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                    serialization.PublicFormat.OpenSSH)
                atomic_write(directory / "id_ed25519.pub", pub + b" livelab\n")
        self.pkey = paramiko.Ed25519Key.from_private_key_file(str(self.path))
        self.public = (directory / "id_ed25519.pub").read_text().strip()


class _PinPerBoot(paramiko.MissingHostKeyPolicy):
    def __init__(self, owner: SSH):
        self.owner = owner

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        pinned = self.owner.pinned_host_key
        if pinned is not None and key.asbytes() != pinned.asbytes():
            raise paramiko.SSHException(
                f"host key of {hostname} changed within one boot ({key.get_fingerprint().hex()})")


class CommandFailed(AssertionError):
    pass


class SSH:
    """A paramiko connection to one guest, re-established after reboots."""

    def __init__(self, host: str, port: int, key: SessionKey, user: str = "core", name: str = "vm"):
        self.host, self.port, self.key, self.user, self.name = host, port, key, user, name
        self.client: paramiko.SSHClient | None = None
        self.pinned_host_key: paramiko.PKey | None = None

    # ------------------------------------------------------------------ connection
    def new_boot(self) -> None:
        """The guest rebooted: drop the connection and accept its new host key once."""
        self.close()
        self.pinned_host_key = None

    def _connect(self, timeout: float, banner_timeout: float | None = None) -> paramiko.SSHClient:
        """A logged-in client, or an exception with nothing left open.

        A failed ``connect`` does not close what it opened: after a key exchange that ran past
        ``timeout`` (paramiko's ``start_client`` then returns without an error) its transport
        thread goes on with the connection.  Each such connection is one of sshd's unauthenticated
        ones until its ``LoginGraceTime`` (120 s). With more than 10 of those, sshd drops new
        connections at random, and with 100 it drops all (``MaxStartups 10:30:100``, "Exceeded
        MaxStartups"); every refused attempt was followed by another one, so a guest whose first
        logins were slow refused every later one."""
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(_PinPerBoot(self))
        try:
            client.connect(self.host, port=self.port, username=self.user, pkey=self.key.pkey,
                           timeout=timeout, banner_timeout=banner_timeout or timeout, auth_timeout=timeout,
                           allow_agent=False, look_for_keys=False)
        except BaseException:
            client.close()
            raise
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(15)
            # pinned once logged in, not at the key exchange: during a reboot the old boot's sshd
            # may still answer and go down before the login (``new_boot`` came before it)
            if self.pinned_host_key is None:
                self.pinned_host_key = transport.get_remote_server_key()
        return client

    def wait(self, timeout: float, check: Callable[[], None] = lambda: None) -> float:
        """Wait until the guest accepts our key; ``check`` raises if the boot failed meanwhile.

        Each attempt runs in a helper thread while this one keeps calling ``check`` every 0.1 s,
        so a failed boot is reported at once even while an attempt waits for sshd's banner.
        Attempts are 0.1 s apart, as tight as bench (a)'s bare banner probe: once the guest's
        network is up it refuses at once until sshd listens (slirp passes on its reset), so an
        attempt costs a few milliseconds, and sshd is seen within a tenth of a second of
        listening. Before that an attempt hangs until its banner time-out (2 s, growing to 4 s).
        slirp goes on re-sending its SYN, and once sshd listens the attempt reaches it as a
        connection nobody reads ("Connection closed ... [preauth]" in the guest's journal)."""
        start = time.monotonic()
        deadline = start + timeout
        state = {"banner": 2.0}

        def attempt() -> paramiko.SSHClient:
            result: dict = {}

            def connect() -> None:
                try:
                    # QEMU's user net accepts the TCP connection before sshd listens: a short
                    # banner wait, retried often, notices sshd within a second of its start
                    client = self._connect(timeout=min(15.0, max(1.0, deadline - time.monotonic())),
                                           banner_timeout=state["banner"])
                    result["client"] = client
                    if result.get("abandoned"):
                        client.close()
                except (OSError, paramiko.SSHException, EOFError) as exc:
                    result["error"] = f"{type(exc).__name__}: {exc}"

            worker = threading.Thread(target=connect, name=f"ssh-wait-{self.name}", daemon=True)
            worker.start()
            # the attempt ends by itself (its own time-out); a failed boot is reported now, and a
            # connection the attempt makes after that is closed
            try:
                poll.until(lambda: not worker.is_alive(), None, what="SSH attempt", check=check)
            except BaseException:
                result["abandoned"] = True
                if "client" in result:
                    result["client"].close()
                raise
            if "client" in result:
                return result["client"]
            if "banner" in result["error"].lower():
                state["banner"] = min(state["banner"] * 1.5, 4.0)   # a loaded host may answer slowly
            raise poll.Retry(result["error"])

        self.client = poll.poll(attempt, timeout, what=f"{self.name}: SSH to {self.user}@{self.host}:{self.port}",
                                interval=0.1, check=check)
        return time.monotonic() - start

    def _client(self) -> paramiko.SSHClient:
        transport = self.client.get_transport() if self.client is not None else None
        if self.client is None or transport is None or not transport.is_active():
            self.client = self._connect(timeout=30)
        return self.client

    # ------------------------------------------------------------------ commands
    def run(self, command: str, timeout: float = 120) -> tuple:
        """Run a command: (exit status, stdout, stderr)."""
        client = self._client()
        stdin, stdout, stderr = client.exec_command(command, timeout=timeout)
        stdin.close()
        out = stdout.read().decode(errors="replace")
        err = stderr.read().decode(errors="replace")
        return stdout.channel.recv_exit_status(), out, err

    def succeed(self, command: str, timeout: float = 120) -> str:
        """Run a command that must succeed; return its stdout."""
        status, out, err = self.run(command, timeout)
        if status != 0:
            raise CommandFailed(f"{self.name}: `{command}` exited {status}\nstdout: {out.strip()[-2000:]}\n"
                                f"stderr: {err.strip()[-2000:]}")
        return out

    def fail(self, command: str, timeout: float = 120) -> str:
        """Run a command that must fail; return its stdout + stderr."""
        status, out, err = self.run(command, timeout)
        if status == 0:
            raise CommandFailed(f"{self.name}: `{command}` succeeded but was expected to fail\n"
                                f"stdout: {out.strip()[-2000:]}")
        return out + err

    def get(self, remote: str, local: Path) -> None:
        with self._client().open_sftp() as sftp:
            sftp.get(remote, str(local))

    def put(self, local: Path, remote: str) -> None:
        with self._client().open_sftp() as sftp:
            sftp.put(str(local), remote)

    def read_text(self, remote: str) -> str:
        with self._client().open_sftp() as sftp, sftp.open(remote) as f:
            return f.read().decode(errors="replace")

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
            self.client = None
