"""Hosts on this machine for the lab-of-hosts test: each its own network, UTS and mount namespaces,
with its own sshd, host name and private directory.

A host is started by ``unshare --net --uts --mount`` (root; without root, an unprivileged user
namespace: ``--map-current-user --keep-caps``) running a short script: loopback up, its host name,
a tmpfs over its directory (its HOME, artifact cache, state and run root, and its checkout of the
tests: a copy of this repository's harness, scenarios and pytest configuration, with the stand-in
images read from this repository's ``images/out``), then ``sshd -D`` on 127.0.0.1:22 of its own
network namespace.  The tmpfs exists only in the host's mount namespace: seen from the controller
(this process and its children) the directory stays empty, so nothing the controller has can have
come from it except through the SSH connection.

The controller reaches a host with ``ssh -F <ssh_config> host-<x>``: a ``ProxyCommand`` enters the
host's network namespace (``nsenter --net``, the same kernel call as ``ip netns exec``) and connects
socat to its sshd; its key is generated here, its host keys pinned (``StrictHostKeyChecking yes``,
``UserKnownHostsFile`` of this test's own).  No traffic leaves the machine: each network namespace
has only its loopback.  sshd's ``SetEnv`` gives the host's sessions its HOME, ``LIVELAB_CACHE_DIR``,
``LIVELAB_STATE_DIR`` and ``LIVELAB_RUN_DIR``.
"""
from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# what a host's checkout holds (copied into its private directory); images/out is read from here
CHECKOUT = ("harness", "scenarios", "pyproject.toml", "conftest.py")
TOOLS = ("sshd", "ssh", "ssh-keygen", "socat", "nsenter", "unshare", "ip", "mount")
TMPFS_SIZE = "3g"


@dataclass
class Host:
    alias: str                # ssh alias: host-a
    name: str                 # its host name (its own UTS namespace)
    root: Path                # its private directory: a tmpfs in its mount namespace, empty outside it
    proc: subprocess.Popen    # sshd, in the host's namespaces
    log: Path                 # sshd's log (-e)

    @property
    def checkout(self) -> Path:
        return self.root / "livelab"

    @property
    def run_root(self) -> Path:
        return self.root / "runs"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def state(self) -> Path:
        return self.root / "state"


def missing_tools() -> list:
    return [t for t in TOOLS if shutil.which(t) is None and not Path("/usr/sbin", t).exists()]


def _sshd() -> str:
    return shutil.which("sshd") or "/usr/sbin/sshd"


def _keygen(path: Path) -> tuple:
    """A new ed25519 key pair at ``path``; its public key's (type, base64)."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)
    keytype, key = path.with_name(path.name + ".pub").read_text().split()[:2]
    return keytype, key


def _script(host_root: Path, name: str, repo: Path, sshd_config: Path) -> str:
    q = shlex.quote
    checkout = host_root / "livelab"
    return "\n".join([
        "set -e",
        "ip link set lo up",
        f"hostname {q(name)}",
        f"mount -t tmpfs -o size={TMPFS_SIZE},mode=0700 livelab-{q(name)} {q(str(host_root))}",
        f"mkdir -p {' '.join(q(str(host_root / d)) for d in ('home', 'cache', 'state', 'runs', 'livelab/images'))}",
        f"tar -C {q(str(repo))} --exclude=__pycache__ -cf - {' '.join(CHECKOUT)} | tar -C {q(str(checkout))} -xf -",
        f"ln -s {q(str(repo / 'images' / 'out'))} {q(str(checkout / 'images' / 'out'))}",
        f"exec {q(_sshd())} -D -e -f {q(str(sshd_config))}",
    ])


def start_hosts(base: Path, repo: Path, letters: tuple = ("a", "b")) -> tuple:
    """Start a host per letter (its sshd's files under ``base``); return (hosts, the controller's
    ssh_config).  The hosts' own directories are under a short directory of /tmp: a VM's unix
    sockets live in its run directory or its state directory, and a socket path has at most 107 bytes."""
    root = os.geteuid() == 0
    if root:
        # sshd's privilege separation directory (made by its package's service at boot; absent in containers)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    ctl = base / "controller-ssh"
    ctl.mkdir(parents=True)
    _keygen(ctl / "id_ed25519")
    user = "root" if root else os.environ.get("USER") or subprocess.run(
        ["id", "-un"], capture_output=True, text=True).stdout.strip()
    known, config, hosts = [], [], []
    short = Path(tempfile.mkdtemp(prefix="livelab-lab-"))
    for x in letters:
        alias, name = f"host-{x}", f"livelab-host-{x}-{os.getpid()}"
        etc = base / f"{alias}-sshd"
        etc.mkdir()
        host_root = short / alias
        host_root.mkdir()
        keytype, key = _keygen(etc / "ssh_host_ed25519_key")
        known.append(f"{alias} {keytype} {key}\n")
        (etc / "authorized_keys").write_text((ctl / "id_ed25519.pub").read_text())
        env = {"HOME": host_root / "home", "LIVELAB_CACHE_DIR": host_root / "cache",
               "LIVELAB_STATE_DIR": host_root / "state", "LIVELAB_RUN_DIR": host_root / "runs"}
        sshd_config = etc / "sshd_config"
        sshd_config.write_text("\n".join([
            "ListenAddress 127.0.0.1", "Port 22", f"HostKey {etc / 'ssh_host_ed25519_key'}", "PidFile none",
            f"AuthorizedKeysFile {etc / 'authorized_keys'}", "PermitRootLogin prohibit-password",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
            # the test's own files under /tmp (sticky, world-writable): sshd's ownership check refuses /tmp
            "StrictModes no",
            "SetEnv " + " ".join(f"{k}={v}" for k, v in env.items()), "LogLevel VERBOSE", ""]))
        log = etc / "sshd.log"
        ns = ["--net", "--uts", "--mount", "--propagation", "private"]
        if not root:
            ns = ["--map-current-user", "--keep-caps", *ns]
        with log.open("w") as out:
            script = _script(host_root, name, repo, sshd_config)
            proc = subprocess.Popen(["unshare", *ns, "--", "/bin/sh", "-c", script], stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        enter = ["nsenter", "--target", str(proc.pid), "--net"]
        if not root:
            enter = ["nsenter", "--target", str(proc.pid), "--user", "--preserve-credentials", "--net"]
        config.append("\n".join([
            f"Host {alias}", f"  User {user}", f"  ProxyCommand {' '.join(enter)} socat - TCP:127.0.0.1:22",
            f"  IdentityFile {ctl / 'id_ed25519'}", "  IdentitiesOnly yes", "  StrictHostKeyChecking yes",
            f"  UserKnownHostsFile {ctl / 'known_hosts'}", "  BatchMode yes", "  ConnectTimeout 20", ""]))
        hosts.append(Host(alias, name, host_root, proc, log))
    (ctl / "known_hosts").write_text("".join(known))
    cfg = ctl / "ssh_config"
    cfg.write_text("\n".join(config))
    try:
        for h in hosts:
            _wait_ready(cfg, h)
    except BaseException:
        stop_hosts(hosts)
        raise
    return hosts, cfg


def ssh(cfg: Path, host: Host, command: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["ssh", "-F", str(cfg), host.alias, command], capture_output=True, text=True,
                          timeout=timeout)


def _wait_ready(cfg: Path, host: Host, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if host.proc.poll() is not None:
            raise RuntimeError(f"{host.alias}: sshd exited {host.proc.returncode}:\n{host.log.read_text()}")
        got = ssh(cfg, host, "hostname")
        if got.returncode == 0 and got.stdout.strip() == host.name:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{host.alias}: no SSH after {timeout} s: {got.stderr}\n{host.log.read_text()}")
        time.sleep(0.3)


def processes_of(host: Host) -> list:
    """The pids of every process in the host's network namespace (its sshd, sessions, workers, QEMUs)."""
    try:
        ns = os.readlink(f"/proc/{host.proc.pid}/ns/net")
    except OSError:
        return []
    if ns == os.readlink("/proc/self/ns/net"):      # not (or no longer) a namespace of its own: nothing is its
        return []
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "ns" / "net") == ns:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def stop_hosts(hosts: list) -> None:
    """End every process of each host (sessions and their workers are not in sshd's process group);
    its namespaces and tmpfs go with the last of them."""
    for h in hosts:
        for pid in processes_of(h):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
    for h in hosts:
        h.proc.wait(timeout=30)
    for h in hosts:           # the mount points, empty once their namespaces are gone
        with contextlib.suppress(OSError):
            h.root.rmdir()
            h.root.parent.rmdir()
