"""Scenarios: small YAML files next to their Butane configs, turned into pytest cases.

A scenario (``scenarios/<name>.yaml``)::

    description: Ignition applied on every live boot
    butane: {fcos: base.fcos.bu, flatcar: base.flatcar.bu}   # or one file, or omitted: no user config
    applies:                                                 # the matrix it runs on
      os: [fcos, flatcar]
      method: [pxe, ipxe, iso]          # methods not valid for an OS are dropped
      firmware: [bios]
      stream: [stable]                  # FCOS streams / Flatcar channels; default: the first
    memory: 2048                        # optional (default: the documented minimum)
    disks: [{name: var, size: 2G, serial: var}]
    ci: [fcos.stable.pxe.bios]          # ids (without the scenario) run in CI
    boots:
      - checks:
          - ssh: test -e /run/ostree-live           # exit status 0 expected unless `status:`
          - ssh: cat /etc/hostname
            output: '^\\w+'                         # regex searched in stdout
          - console: 'Reached target .*Multi-User'  # a line seen on the console this boot
      - how: reboot                     # reboot | reset | power-cycle (power-cycle may change kargs)
        remove_kargs: [flatcar.first_boot]
        add_kargs: []
        checks: [...]

Test ids: ``<os>.<stream>.<method>.<firmware>.<scenario>``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from .errors import BootFailure, LivelabError
from .lab import BootRequest
from .vm.qemu import Disk
from .vocab import FIRMWARES, OS_METHODS, STREAMS

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"
_KEYS = {"description", "butane", "applies", "memory", "cpus", "disks", "ci", "boots", "completion",
         "user_config", "kargs", "first_boot_kargs", "slow", "oem_config", "below_minimum", "expect_failure"}
_CHECK_KEYS = {"ssh", "console", "console_cmd", "status", "output", "not_output", "name", "timeout", "only"}
_BOOT_KEYS = {"how", "checks", "add_kargs", "remove_kargs", "expect_failure"}


@dataclass
class Check:
    kind: str                     # ssh | console | console_cmd
    text: str
    status: Optional[int] = 0
    output: Optional[str] = None
    not_output: Optional[str] = None
    name: Optional[str] = None
    timeout: Optional[float] = None
    only: Optional[str] = None    # run only on this OS / method (e.g. fcos, iso)

    def applies_to(self, req) -> bool:
        return self.only is None or self.only in (req.os, req.method, req.firmware)

    def describe(self) -> str:
        return self.name or f"{self.kind}: {self.text}"


@dataclass
class Boot:
    how: str = "start"
    checks: List[Check] = field(default_factory=list)
    add_kargs: List[str] = field(default_factory=list)
    remove_kargs: List[str] = field(default_factory=list)
    expect_failure: Optional[str] = None   # this boot must fail fast with this reason (e.g. "Ignition failed")


@dataclass
class Scenario:
    name: str
    path: Path
    description: str
    butane: Dict[str, Optional[str]]
    applies: Dict[str, List[str]]
    boots: List[Boot]
    memory: Optional[int] = None
    cpus: Optional[int] = None
    disks: List[dict] = field(default_factory=list)
    ci: List[str] = field(default_factory=list)
    completion: bool = True
    user_config: bool = True
    kargs: List[str] = field(default_factory=list)
    first_boot_kargs: List[str] = field(default_factory=list)
    slow: bool = False
    oem_config: Optional[str] = None
    below_minimum: bool = False

    def cases(self) -> List[tuple]:
        """(test id, os, stream, method, firmware) for every cell this scenario applies to."""
        out = []
        for os_id in self.applies.get("os", ["fcos"]):
            streams = self.applies.get("stream") or self.applies.get("channel") or [STREAMS[os_id][0]]
            streams = [s for s in streams if s in STREAMS[os_id]] or [STREAMS[os_id][0]]
            for stream in streams:
                for method in self.applies.get("method", ["pxe"]):
                    if method not in OS_METHODS[os_id]:
                        continue
                    for fw in self.applies.get("firmware", ["bios"]):
                        out.append((f"{os_id}.{stream}.{method}.{fw}.{self.name}", os_id, stream, method, fw))
        return out

    def request(self, os_id: str, stream: str, method: str, firmware: str) -> BootRequest:
        butane_file = self.butane.get(os_id)
        text = None
        if butane_file:
            text = (self.path.parent / butane_file).read_text()
        oem = None
        if self.oem_config:
            import json
            oem = json.loads((self.path.parent / self.oem_config).read_text())
        return BootRequest(os_id, stream, method, firmware, memory_mib=self.memory, cpus=self.cpus,
                           butane=text, butane_dir=str(self.path.parent), user_config=self.user_config,
                           completion=self.completion and self.user_config, kargs=list(self.kargs),
                           first_boot_only=list(self.first_boot_kargs),
                           disks=[Disk(**d) for d in self.disks], oem_config=oem)


def _err(path: Path, msg: str) -> LivelabError:
    return LivelabError(f"{path.name}: {msg}")


def _check(path: Path, where: str, raw) -> Check:
    if isinstance(raw, str):
        raw = {"ssh": raw}
    if not isinstance(raw, dict):
        raise _err(path, f"{where}: a check is a mapping")
    unknown = set(raw) - _CHECK_KEYS
    if unknown:
        raise _err(path, f"{where}.{sorted(unknown)[0]}: unknown key")
    kinds = [k for k in ("ssh", "console", "console_cmd") if k in raw]
    if len(kinds) != 1:
        raise _err(path, f"{where}: exactly one of ssh, console, console_cmd")
    kind = kinds[0]
    if "output" in raw:
        re.compile(raw["output"])
    return Check(kind, str(raw[kind]), status=raw.get("status", 0 if kind != "console" else None),
                 output=raw.get("output"), not_output=raw.get("not_output"), name=raw.get("name"),
                 timeout=raw.get("timeout"), only=raw.get("only"))


def load(path: Path) -> Scenario:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise _err(path, f"not valid YAML: {' '.join(str(exc).split())}")
    if not isinstance(data, dict):
        raise _err(path, "a scenario is a YAML mapping")
    unknown = set(data) - _KEYS
    if unknown:
        raise _err(path, f"{sorted(unknown)[0]}: unknown key")
    butane = data.get("butane")
    if isinstance(butane, str) or butane is None:
        butane = {"fcos": butane, "flatcar": butane}
    for os_id, f in butane.items():
        if f and not (path.parent / f).is_file():
            raise _err(path, f"butane.{os_id}: {f} not found next to the scenario")
    applies = data.get("applies") or {}
    for key, values in applies.items():
        if key not in ("os", "method", "firmware", "stream", "channel"):
            raise _err(path, f"applies.{key}: unknown key")
        if key == "firmware" and not set(values) <= set(FIRMWARES):
            raise _err(path, f"applies.firmware: expected a subset of {FIRMWARES}")
    boots = []
    for i, raw in enumerate(data.get("boots") or [{}]):
        unknown = set(raw) - _BOOT_KEYS
        if unknown:
            raise _err(path, f"boots[{i}].{sorted(unknown)[0]}: unknown key")
        how = raw.get("how", "start" if i == 0 else "reboot")
        if how not in ("start", "reboot", "reset", "power-cycle"):
            raise _err(path, f"boots[{i}].how: expected reboot, reset or power-cycle")
        if (raw.get("add_kargs") or raw.get("remove_kargs")) and how != "power-cycle":
            raise _err(path, f"boots[{i}]: changing kernel arguments needs how: power-cycle")
        boots.append(Boot(how, [_check(path, f"boots[{i}].checks[{j}]", c) for j, c in enumerate(raw.get("checks") or [])],
                          list(raw.get("add_kargs") or []), list(raw.get("remove_kargs") or []),
                          raw.get("expect_failure")))
    return Scenario(name=path.stem, path=path, description=data.get("description", ""), butane=butane,
                    applies=applies, boots=boots, memory=data.get("memory"), cpus=data.get("cpus"),
                    disks=data.get("disks") or [], ci=list(data.get("ci") or []),
                    completion=data.get("completion", True), user_config=data.get("user_config", True),
                    kargs=list(data.get("kargs") or []), first_boot_kargs=list(data.get("first_boot_kargs") or []),
                    slow=bool(data.get("slow", False)), oem_config=data.get("oem_config"),
                    below_minimum=bool(data.get("below_minimum", False)))


def load_all(directory: Path = SCENARIO_DIR) -> List[Scenario]:
    return [load(p) for p in sorted(Path(directory).glob("*.yaml"))]


def run_check(lb, check: Check) -> str:
    """Run one check on a booted VM; raise AssertionError with the evidence when it fails."""
    m = lb.machine
    if check.kind == "console":
        m.console.wait_for(re.compile(check.text), check.timeout or m.timeouts.boot)
        return f"console showed {check.text!r}"
    if check.kind == "ssh":
        status, out, err = m.execute(check.text, check.timeout)
    else:
        status, out = m.console.run(check.text, check.timeout or m.timeouts.command)
        err = ""
    evidence = f"`{check.text}` exited {status}\nstdout: {out.strip()[-1500:]}\nstderr: {err.strip()[-800:]}"
    if check.status is not None and status != check.status:
        raise AssertionError(f"{check.describe()}: expected exit {check.status}; {evidence}")
    if check.output and not re.search(check.output, out, re.M):
        raise AssertionError(f"{check.describe()}: output does not match {check.output!r}; {evidence}")
    if check.not_output and re.search(check.not_output, out, re.M):
        raise AssertionError(f"{check.describe()}: output matches {check.not_output!r}; {evidence}")
    return f"{check.describe()}: ok"


def wait_ready(lb) -> None:
    """Wait until the boot is usable: SSH when the config gave us a key, else the completion port."""
    m = lb.machine
    if lb.config and lb.req.ssh:
        m.wait_for_ssh()
    elif lb.config and lb.req.completion:
        m.wait_for_port_token()


def run_scenario(scenario: Scenario, lb) -> List[str]:
    """Boot ``lb`` through every boot of the scenario, running its checks; returns the evidence."""
    log = []
    for i, boot in enumerate(scenario.boots):
        if i == 0:
            lb.start()
        elif boot.how == "reboot":
            lb.machine.reboot()
        elif boot.how == "reset":
            lb.machine.reset()
        else:
            lb.power_cycle(add=boot.add_kargs, remove=boot.remove_kargs)
        if boot.expect_failure:
            try:
                wait_ready(lb)
            except BootFailure as exc:
                reason = str(exc).split("\n", 1)[0]
                if boot.expect_failure not in reason:
                    raise
                log.append(f"boot {i + 1}: failed fast as expected: {reason}")
                continue
            raise AssertionError(f"boot {i + 1} was expected to fail with {boot.expect_failure!r} but came up")
        if not (boot.checks and all(c.kind == "console" for c in boot.checks)):
            wait_ready(lb)
        for check in boot.checks:
            if not check.applies_to(lb.req):
                continue
            log.append(f"boot {i + 1}: {run_check(lb, check)}")
        lb.machine.write_timings()
    return log
