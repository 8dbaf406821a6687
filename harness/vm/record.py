"""What a VM leaves in its run directory for people and for ``livelab repro``.

- ``vm.json``: the spec, the accelerator, the kernel arguments of every boot (direct kernel boots;
  ``LiveBoot`` adds its request, release, artifacts and network-boot arguments);
- ``timings.json`` (``livelab.timings/1``): per boot, the phases in seconds from QEMU start
  (``qemu_start``, ``first_console``, ``kernel_start``, ``ignition_done``, ``switch_root``,
  ``login_prompt``, ``ssh_ready``) and the guest's ``boot_id`` once SSH saw it.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..atomic import atomic_write
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
