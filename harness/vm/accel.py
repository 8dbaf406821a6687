"""Which accelerator QEMU can really use here, and how long waits may take with it.

``/dev/kvm`` existing proves nothing: on some hosts it exists and KVM aborts ("failed to set
MSR") or hangs.  The probe really starts a tiny guest (a 512-byte boot sector that writes to
``isa-debug-exit``) under ``-accel kvm`` with a hard time limit; only a guest that ran its code
and exited with the expected status counts.  Otherwise QEMU uses TCG, and every timeout is
scaled by the accelerator's factor.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass

from ..atomic import atomic_write
from ..errors import LivelabError

QEMU_BINARY = os.environ.get("LIVELAB_QEMU", "qemu-system-x86_64")

# Timeouts in this project are written for TCG on a 2-core host (the slow case).  KVM boots
# the same guest several times faster.
SCALE = {"tcg": 1.0, "kvm": 0.35}

# The TCG CPU model.  Not ``max``: with QEMU 7.2's TCG, ``-cpu max`` (which now advertises AVX2)
# made systemd-udevd and systemd-sysusers fail in the initramfs of a Debian 12 guest, while the
# same boot passes with an x86-64-v2 model.  No nested virtualisation flags either: a guest loading
# kvm modules under TCG soft-locked for 44 s.  RDRAND (which TCG implements, and which every CPU
# FCOS runs on has): the kernel trusts it and its random pool is ready before the second vCPU
# starts.  Without it the pool became ready during the initramfs, and the kernel then patched the
# `crng_is_ready` static key while the other vCPU ran through `mix_interrupt_randomness`: on QEMU
# 7.2's multi-threaded TCG that vCPU has executed the patch's stale `int3` (an Oops, then a panic
# in an interrupt, in 1 of about 120 boots of the 6.12 kernel), as with sched_clock's key below.
TCG_CPU = "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+rdrand,-svm,-vmx"


def tcg_topology(cpus: int) -> dict:
    """The TCG guest's CPU topology: one socket per vCPU, as libvirt lays out a bare ``<vcpu>``.

    Not QEMU's default for ``-smp N`` (one socket of N cores). Since Linux 6.9,
    ``unsynchronized_tsc()`` counts the TSC of a pre-Zen AMD-vendor CPU without an invariant TSC
    (``qemu64`` is family 15) as synchronised when there is one package (``topology_max_packages``;
    before, any second CPU made it unsynchronised). The kernel then marks ``sched_clock`` stable at
    late init and live-patches that static key while the other vCPUs run through it
    (``sched_clock_cpu``). On QEMU 7.2's multi-threaded TCG a vCPU has executed the patch's
    ``int3`` after it was gone (``Oops: int3`` at ``sched_clock: Marking stable``). With one
    package per vCPU the kernel marks the TSC unstable at start-up, as 6.1 kernels always did,
    and never flips that key (images/README.md, "The kernel: bookworm-backports' 6.12")."""
    return {"sockets": cpus, "dies": 1, "cores": 1, "threads": 1}

# mov al,0x31 ; out 0xf4,al ; hlt ; jmp $   -> isa-debug-exit makes QEMU exit with (0x31<<1)|1
_BOOT_SECTOR = bytes([0xB0, 0x31, 0xE6, 0xF4, 0xF4, 0xEB, 0xFE]).ljust(510, b"\0") + b"\x55\xaa"
_PROBE_EXIT = (0x31 << 1) | 1


@dataclass(frozen=True)
class Accel:
    name: str            # "kvm" or "tcg"
    reason: str          # why this one was chosen (shown in reports)

    @property
    def scale(self) -> float:
        return SCALE[self.name]

    def qemu_args(self, cpus: int) -> list:
        """Accelerator, CPU model and ``-smp`` for a guest with ``cpus`` vCPUs."""
        if self.name == "kvm":
            return ["-accel", "kvm", "-cpu", "host", "-smp", str(cpus)]
        topology = ",".join(f"{k}={v}" for k, v in tcg_topology(cpus).items())
        return ["-accel", "tcg,thread=multi", "-cpu", TCG_CPU, "-smp", f"{cpus},{topology}"]


def qemu_binary() -> str:
    path = shutil.which(QEMU_BINARY)
    if not path:
        raise LivelabError(
            f"QEMU binary {QEMU_BINARY!r} not found: install it with 'apt-get install qemu-system-x86'"
            " or set LIVELAB_QEMU")
    return path


def _run_probe(accel_args: list, timeout: float):
    """Run the probe guest; return (exit status or None on time-out, seconds, output)."""
    qemu = qemu_binary()
    with tempfile.TemporaryDirectory(prefix="livelab-accel-probe-") as tmp:
        disk = os.path.join(tmp, "probe.img")
        with open(disk, "wb") as f:
            f.write(_BOOT_SECTOR)
        cmd = [qemu, *accel_args, "-machine", "pc", "-m", "32",
               "-nodefaults", "-display", "none", "-serial", "none", "-monitor", "none",
               "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
               "-drive", f"file={disk},format=raw,if=ide"]
        start = time.monotonic()
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=timeout, start_new_session=True)
        except subprocess.TimeoutExpired:
            return None, time.monotonic() - start, ""
        out = " ".join(proc.stdout.decode(errors="replace").split())[:200]
        return proc.returncode, time.monotonic() - start, out


def probe_kvm(timeout: float = 10.0) -> str | None:
    """Return None if KVM really runs a guest well, else the reason it does not.

    The same probe guest runs under TCG first; a KVM that needs more than twice TCG's time
    (plus a second of slack) for it is broken or emulated, not an accelerator.
    """
    if not os.path.exists("/dev/kvm"):
        return "/dev/kvm does not exist"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm is not readable and writable by this user"
    status, kvm_s, out = _run_probe(["-accel", "kvm", "-cpu", "host"], timeout)
    if status is None:
        return f"a probe guest under -accel kvm hung for {timeout:.0f} s"
    if status != _PROBE_EXIT:
        return f"a probe guest under -accel kvm exited {status}: {out or 'no output'}"
    _, tcg_s, _ = _run_probe(["-accel", "tcg"], timeout)
    if kvm_s > 2 * tcg_s + 1.0:
        return (f"a probe guest took {kvm_s:.1f} s under KVM against {tcg_s:.1f} s under TCG"
                " (KVM is not accelerating)")
    return None


_cached: Accel | None = None


def choose(requested: str = "auto") -> Accel:
    """Pick the accelerator: ``kvm``, ``tcg`` or ``auto`` (probe, then fall back to TCG).

    The choice is cached for the process and, across pytest-xdist workers, in the
    environment variable ``LIVELAB_ACCEL_CHOICE`` set by the controller.
    """
    global _cached
    if requested == "tcg":
        return Accel("tcg", "requested with --accel tcg")
    if requested not in ("auto", "kvm"):
        raise LivelabError(f"unknown accelerator {requested!r}: expected auto, kvm or tcg")
    if _cached is None:
        inherited = os.environ.get("LIVELAB_ACCEL_CHOICE")
        if inherited and ":" in inherited:
            name, reason = inherited.split(":", 1)
            _cached = Accel(name, reason)
        else:
            _cached = _probe_cached()
            os.environ["LIVELAB_ACCEL_CHOICE"] = f"{_cached.name}:{_cached.reason}"
    if requested == "kvm" and _cached.name != "kvm":
        raise LivelabError(f"--accel kvm requested but {_cached.reason}")
    return _cached


def _probe_cached() -> Accel:
    """Probe once per host boot and QEMU binary (the result is kept in the state directory)."""
    import json

    from filelock import FileLock

    from ..runtime import state_dir
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot_id = f.read().strip()
        qemu = qemu_binary()
        key = f"{boot_id}:{qemu}:{os.stat(qemu).st_mtime_ns}"
    except OSError:
        key = None
    path = state_dir() / "accel.json"
    with FileLock(str(path) + ".lock"):
        if key:
            try:
                rec = json.loads(path.read_text())
                if rec.get("key") == key:
                    return Accel(rec["name"], rec["reason"] + " (probed earlier this host boot)")
            except (OSError, ValueError, KeyError):
                pass
        why_not = probe_kvm()
        accel = (Accel("kvm", "KVM probe guest ran") if why_not is None
                 else Accel("tcg", f"KVM unusable: {why_not}; using TCG"))
        if key:
            atomic_write(path, json.dumps({"key": key, "name": accel.name, "reason": accel.reason}), fsync=False)
        return accel


@dataclass(frozen=True)
class Timeouts:
    """Every wait of the harness, scaled by accelerator and ``--extend-timeout PCT``."""
    scale: float

    @classmethod
    def for_accel(cls, accel: Accel, extend_pct: float = 0.0) -> Timeouts:
        return cls(accel.scale * (1.0 + extend_pct / 100.0))

    def __call__(self, tcg_seconds: float) -> float:
        return tcg_seconds * self.scale

    # the waits, written for TCG on 2 cores (boot to SSH measured at about 55 s)
    @property
    def boot(self) -> float:          # QEMU start to SSH / completion token
        return self(300)

    @property
    def console_prompt(self) -> float:
        return self(240)

    @property
    def firmware(self) -> float:      # firmware / iPXE prompt
        return self(60)

    @property
    def command(self) -> float:       # one command over SSH or on the console
        return self(120)

    @property
    def condition(self) -> float:     # a condition in the running guest (wait_until_succeeds, wait_for_unit)
        return self(180)

    @property
    def shutdown(self) -> float:
        return self(60)
