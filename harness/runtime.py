"""Process safety shared by every VM of every run on this host.

- A registry of live VMs (``<state>/vms/<qemu pid>.json``) naming the process that owns each;
  ``reap_stale()`` kills QEMUs whose owner is dead and leaves those of live runs alone.
- Admission: a VM starts only when the memory and CPUs it asks for fit beside the VMs already
  admitted on this host (a ledger under a file lock), so parallel guests never starve.
- Free loopback ports that never collide between pytest-xdist workers (a lock file per port).
"""
from __future__ import annotations

import json
import os
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from filelock import FileLock

from . import poll
from .atomic import atomic_write
from .errors import LivelabError


def state_dir() -> Path:
    base = os.environ.get("LIVELAB_STATE_DIR") or f"/tmp/livelab-{os.getuid()}"
    path = Path(base)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def _proc_start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except OSError:
        return None


def pid_alive(pid: int, start_time: str | None = None) -> bool:
    now = _proc_start_time(pid)
    if now is None:
        return False
    return start_time is None or now == start_time


def owner_record() -> dict:
    pid = os.getpid()
    return {"owner_pid": pid, "owner_start": _proc_start_time(pid)}


def socket_dir(run_dir: Path) -> Path:
    """Where a VM's unix sockets live: its run dir, unless that path is too long for a socket
    (108 bytes on Linux); then a short directory in the state dir named by a hash of it."""
    run_dir = Path(run_dir)
    if len(str(run_dir / "console.sock")) < 100:
        return run_dir
    import hashlib
    short = state_dir() / "sock" / hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:16]
    short.mkdir(parents=True, exist_ok=True)
    return short


# ---------------------------------------------------------------- VM registry and reaping

def register_vm(qemu_pid: int, name: str, run_dir: Path) -> Path:
    vms = state_dir() / "vms"
    vms.mkdir(exist_ok=True)
    rec = {"qemu_pid": qemu_pid, "qemu_start": _proc_start_time(qemu_pid), "name": name,
           "run_dir": str(run_dir), **owner_record()}
    path = vms / f"{qemu_pid}.json"
    atomic_write(path, json.dumps(rec), fsync=False)
    return path


def unregister_vm(qemu_pid: int) -> None:
    with suppress(FileNotFoundError):
        (state_dir() / "vms" / f"{qemu_pid}.json").unlink()


def reap_stale(log: Callable[[str], None] = print) -> list:
    """Kill VMs whose owning process is gone; return the names reaped."""
    reaped: list[str] = []
    vms = state_dir() / "vms"
    if not vms.is_dir():
        return reaped
    for rec_path in vms.glob("*.json"):
        try:
            rec = json.loads(rec_path.read_text())
        except (OSError, ValueError):
            rec_path.unlink(missing_ok=True)
            continue
        if pid_alive(rec["owner_pid"], rec.get("owner_start")):
            continue
        pid = rec["qemu_pid"]
        if pid_alive(pid, rec.get("qemu_start")):
            try:
                os.kill(pid, signal.SIGKILL)
                reaped.append(rec.get("name", str(pid)))
                log(f"livelab: reaped stale VM {rec.get('name')} (pid {pid}) of dead run {rec['owner_pid']}")
            except ProcessLookupError:
                pass
        rec_path.unlink(missing_ok=True)
    return reaped


# ---------------------------------------------------------------- admission by memory and CPUs

def host_resources() -> tuple:
    """(available memory MiB, CPU count) of this host."""
    mem = None
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                mem = int(line.split()[1]) // 1024
    return mem or 0, os.cpu_count() or 1


# ---------------------------------------------------------------- how many VMs at once, and their vCPUs

DEFAULT_VM_CPUS = 2


def plan_workers(largest_vm_mib: int, mem_available: int | None = None, cpus: int | None = None) -> int:
    """How many VMs this host boots at once: one per core, as many as memory holds.

    max(1, min(CPUs, (MemAvailable - headroom) // (largest VM + QEMU overhead))).  The Admission
    ledger still gates every VM start, so a plan that is too generous only queues.
    """
    if mem_available is None or cpus is None:
        avail, ncpu = host_resources()
        mem_available = avail if mem_available is None else mem_available
        cpus = ncpu if cpus is None else cpus
    by_mem = (mem_available - Admission.HEADROOM_MIB) // (largest_vm_mib + Admission.OVERHEAD_MIB)
    return max(1, min(cpus, by_mem))


HOST_WORKERS_ENV = "LIVELAB_HOST_WORKERS"


def enclosing_workers() -> int:
    """The pytest-xdist workers on this host, of this run or of the run this process was started from.

    xdist sets PYTEST_XDIST_WORKER_COUNT in each worker; a pytest or livelab started by a test
    inherits it, so its VMs share the host with the workers beside it.  A run whose workers are on
    several hosts counts those of this host only: the plugin sets LIVELAB_HOST_WORKERS in a remote
    worker (``harness.hosts``).
    """
    for name in (HOST_WORKERS_ENV, "PYTEST_XDIST_WORKER_COUNT"):
        if os.environ.get(name):
            try:
                return max(1, int(os.environ[name]))
            except ValueError:
                return 1
    return 1


def auto_vm_cpus(workers: int = 1, cpus: int | None = None) -> int:
    """vCPUs per VM when ``workers`` VMs (times the enclosing xdist workers) boot at once: the
    host's cores shared among them, at least 1 and at most DEFAULT_VM_CPUS.  TCG runs a host
    thread per vCPU, so more vCPUs than cores only slows every guest down."""
    cpus = cpus or os.cpu_count() or 1
    return max(1, min(DEFAULT_VM_CPUS, cpus // (max(1, workers) * enclosing_workers())))


VM_CPUS_HELP = (f"vCPUs of each VM: N, or auto (default: the host's cores shared among the VMs that boot "
                f"at once, 1 to {DEFAULT_VM_CPUS})")


def count_or_auto(value: int | str | None, option: str) -> int | None:
    """An ``N|auto`` option's value: the positive number, or None for auto (also when unset)."""
    if value is None or value in ("", "auto"):
        return None
    return positive_count(value, option, "a positive number or 'auto'")


def positive_count(value: int | str, option: str, expected: str = "a positive number") -> int:
    """A count option's value as a number of at least 1, or one line naming the option and what it expects."""
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise LivelabError(f"{option} {value!r}: expected {expected}")
    return n


def parse_vm_cpus(value: int | str | None, workers: int = 1) -> int:
    """``--vm-cpus`` of the CLIs and the pytest plugin: a positive number, or auto."""
    n = count_or_auto(value, "--vm-cpus")
    return auto_vm_cpus(workers) if n is None else n


class Admission:
    """A host-wide ledger of (memory, CPUs) claimed by running VMs.

    Memory: a VM's claim is its guest RAM plus QEMU's overhead; the sum stays below the
    host's total memory less a headroom.  CPUs: the sum of vCPUs stays at or below the host's
    CPU count (TCG runs one host thread per vCPU: overcommitting starves guests into timeouts).
    """

    OVERHEAD_MIB = 256
    HEADROOM_MIB = 2048

    def __init__(self, total_mem_mib: int | None = None, cpus: int | None = None):
        self.path = state_dir() / "admission.json"
        self.lock = FileLock(str(self.path) + ".lock")
        if total_mem_mib is None:
            with open("/proc/meminfo") as f:
                total_mem_mib = int(f.readline().split()[1]) // 1024
        self.total_mem = total_mem_mib - self.HEADROOM_MIB
        self.cpus = cpus or os.cpu_count() or 1

    def _load(self) -> dict:
        try:
            claims = json.loads(self.path.read_text())
        except (OSError, ValueError):
            claims = {}
        return {k: c for k, c in claims.items() if pid_alive(c["owner_pid"], c.get("owner_start"))}

    def _save(self, claims: dict) -> None:
        atomic_write(self.path, json.dumps(claims), fsync=False)

    def fits(self, claims: dict, mem: int, cpus: int) -> bool:
        used_mem = sum(c["mem"] for c in claims.values())
        used_cpu = sum(c["cpus"] for c in claims.values())
        return used_mem + mem <= self.total_mem and used_cpu + cpus <= self.cpus

    def acquire(self, key: str, memory_mib: int, cpus: int, timeout: float) -> None:
        mem = memory_mib + self.OVERHEAD_MIB
        if mem > self.total_mem or cpus > self.cpus:
            raise LivelabError(
                f"VM {key} needs {memory_mib} MiB and {cpus} vCPUs; this host can run at most "
                f"{self.total_mem - self.OVERHEAD_MIB} MiB and {self.cpus} vCPUs per VM")

        def claim() -> None:
            with self.lock:
                claims = self._load()
                if not self.fits(claims, mem, cpus):
                    raise poll.Retry(f"{sum(c['mem'] for c in claims.values())} MiB and "
                                     f"{sum(c['cpus'] for c in claims.values())} vCPUs claimed by {len(claims)} VM(s)")
                claims[key] = {"mem": mem, "cpus": cpus, **owner_record()}
                self._save(claims)

        poll.poll(claim, timeout, what=f"VM {key} waited for {memory_mib} MiB and {cpus} vCPUs to become free "
                                       "on this host", interval=0.5, error=LivelabError)

    def release(self, key: str) -> None:
        with self.lock:
            claims = self._load()
            claims.pop(key, None)
            self._save(claims)


# ---------------------------------------------------------------- ports

class PortLease:
    """A loopback TCP port held by this process until release (a lock file per port)."""

    def __init__(self, port: int, lock: FileLock):
        self.port = port
        self._lock = lock

    def release(self) -> None:
        self._lock.release()


def lease_port() -> PortLease:
    ports = state_dir() / "ports"
    ports.mkdir(exist_ok=True)
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        lock = FileLock(str(ports / f"{port}.lock"), timeout=0)
        try:
            lock.acquire()
        except Exception:
            continue
        return PortLease(port, lock)
    raise LivelabError("could not find a free loopback port")


@contextmanager
def leased_port() -> Iterator[int]:
    lease = lease_port()
    try:
        yield lease.port
    finally:
        lease.release()
