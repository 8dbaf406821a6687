"""What a VM leaves in its run directory for people and for ``livelab repro``.

- ``vm.json``: the spec, the accelerator, the kernel arguments of every boot (direct kernel boots;
  ``LiveBoot`` adds its request, release, artifacts and network-boot arguments);
- ``timings.json`` (``livelab.timings/1``): per boot, the phases in seconds from QEMU start
  (``qemu_start``, ``first_console``, the console's phases of ``harness.triage.PHASES`` from
  ``kernel_start`` to ``login_prompt``, and ``ssh_ready``) and the guest's ``boot_id`` once SSH saw it.

``split()`` turns a boot's phases into where its time went (``SPANS``: firmware and loading, kernel
to /init, initramfs units, Ignition, the live rootfs, switch-root, real root to sshd, and the
harness's own lag behind sshd); ``timed_log_phases()`` reads the same phases back from a
``console-timed.log`` (so runs recorded before a phase existed split too).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from ..atomic import atomic_write
from ..triage import Triage
from .accel import Accel
from .spec import VMSpec

TIMINGS_SCHEMA = "livelab.timings/1"


def write_vm_json(run_dir: Path, spec: VMSpec, accel: Accel, boots: list[dict], extra: dict | None = None) -> None:
    """Update ``run_dir/vm.json`` (what others added to it is kept)."""
    path = Path(run_dir) / "vm.json"
    data: dict = {}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except ValueError:
            data = {}
    data.update({"spec": spec.to_dict(), "accel": {"name": accel.name, "reason": accel.reason}})
    if spec.kernel:   # direct kernel boot: the arguments are the machine's own
        data["kernel_args_per_boot"] = [b.get("append") for b in boots] or [spec.append]
    if extra:
        data.update(extra)
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True), fsync=False)


def write_timings(run_dir: Path, name: str, accel: Accel, boots: list[dict]) -> None:
    data = {"schema": TIMINGS_SCHEMA, "vm": name, "accel": accel.name, "accel_reason": accel.reason,
            "boots": [{"boot": b["boot"], "phases": b["phases"],
                       **({"boot_id": b["boot_id"]} if b.get("boot_id") else {})} for b in boots]}
    atomic_write(Path(run_dir) / "timings.json", json.dumps(data, indent=2), fsync=False)


# (span, start phase, end phase), in boot order; a span whose phases did not both show is absent
SPANS = (
    ("firmware_loading", "qemu_start", "kernel_start"),    # firmware, DHCP, TFTP/HTTP or CD loading
    ("kernel_to_init", "kernel_start", "init_start"),
    ("initramfs_units", "init_start", "ignition_start"),
    ("ignition", "ignition_start", "ignition_done"),        # the live rootfs's time taken out
    ("rootfs", "rootfs_start", "rootfs_done"),              # rootfs_url fetch, or the ISO's/initrd's mount
    ("switch_root", "ignition_done", "real_root"),          # initrd clean-up, switch, real root's manager
    ("real_root_to_sshd", "real_root", "sshd_started"),
    ("harness_lag", "sshd_started", "ssh_ready"),           # sshd up -> the harness's SSH login worked
)
# each span in words (livelab timings, the boot's progress lines, bench tables)
SPAN_LABELS = {
    "firmware_loading": "firmware and loading", "kernel_to_init": "kernel to /init",
    "initramfs_units": "initramfs units", "ignition": "Ignition", "rootfs": "live rootfs",
    "switch_root": "switch-root", "real_root_to_sshd": "real root to sshd", "harness_lag": "the harness's lag",
}


def split(phases: dict[str, float]) -> dict[str, float]:
    """Seconds per span of one boot (``SPANS``), from its phases (seconds since QEMU start)."""
    out: dict[str, float] = {}
    for name, start, end in SPANS:
        if start in phases and end in phases:
            out[name] = round(phases[end] - phases[start], 2)
    if "ignition" in out and "rootfs" in out and \
            phases["ignition_start"] <= phases["rootfs_start"] <= phases["ignition_done"]:
        out["ignition"] = round(out["ignition"] - out["rootfs"], 2)
    return out


_TIMED = re.compile(r"^\[\s*(\d+(?:\.\d+)?)\] ?(.*)$")
_BOOT_MARK = re.compile(r"^--- boot (\d+) ---$")


def timed_log_phases(text: str) -> list[dict[str, float]]:
    """The console's phases of each boot in a ``console-timed.log`` (``[seconds] line`` lines, a
    ``--- boot N ---`` line before each boot), in seconds since that boot's QEMU start or reset."""
    boots: list[dict[str, float]] = []
    triage = Triage(rules=())
    when = 0.0

    def seen(name: str, _line: object) -> None:
        boots[-1].setdefault(name, when)

    triage.on_phase = seen
    for raw in text.splitlines():
        if _BOOT_MARK.match(raw) or not boots:
            boots.append({"qemu_start": 0.0})
            triage.new_boot()
            if _BOOT_MARK.match(raw):
                continue
        m = _TIMED.match(raw)
        if not m:
            continue
        when = float(m.group(1))
        triage.feed(m.group(2) + "\n")
    return boots


def read_boots(run_dir: Path) -> list[dict[str, float]]:
    """Each boot's phases in a run directory: ``timings.json``'s, completed by the phases its
    ``console-timed.log`` shows (a record written before a phase was known)."""
    run_dir = Path(run_dir)
    recorded: list[dict[str, float]] = []
    tj = run_dir / "timings.json"
    if tj.is_file():
        recorded = [dict(b.get("phases") or {}) for b in json.loads(tj.read_text()).get("boots", [])]
    tl = run_dir / "console-timed.log"
    from_log = timed_log_phases(tl.read_text(errors="replace")) if tl.is_file() else []
    boots = []
    for i in range(max(len(recorded), len(from_log))):
        phases = dict(from_log[i]) if i < len(from_log) else {}
        phases.update(recorded[i] if i < len(recorded) else {})
        boots.append(phases)
    return boots
