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
    forwards: [80]                      # guest TCP ports forwarded to 127.0.0.1 (for port checks)
    ci: [fcos.stable.pxe.bios]          # ids (without the scenario) run in CI
    boots:
      - checks:
          - ssh: test -e /run/ostree-live           # exit status 0 expected unless `status:`
          - ssh: cat /etc/hostname
            output: '^\\w+'                         # regex searched in stdout
            save_as: hostname                       # later checks may say {{hostname}}
          - wait_until: curl -sf localhost:8080     # retried every second until it exits 0
            output: hello                           # (and its stdout matches)
            timeout: 60
          - console: 'Reached target .*Multi-User'  # a line seen on the console this boot
          - port: 80                                # from outside the guest (127.0.0.1 forward):
            expect: answers                         # answers | refused | dropped (a firewall drop)
      - how: reboot                     # reboot | reset | power-cycle (power-cycle may change kargs)
        remove_kargs: [flatcar.first_boot]
        add_kargs: []
        checks: [...]

Test ids: ``<os>.<stream>.<method>.<firmware>.<scenario>``.

``save_as: NAME`` keeps a check's stdout (stripped) for the rest of the case; ``{{NAME}}`` in a
later check's command is replaced by it, and in its ``output`` / ``not_output`` by it as a
literal (escaped) pattern.  A name must be saved by an earlier check than the one using it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import yaml

from .errors import BootFailure, LivelabError
from .lab import BootRequest
from .poll import WaitTimeout
from .vm.spec import Disk
from .vocab import FIRMWARES, OS_METHODS, STREAMS

_CHECK_KEYS = {"ssh", "console", "console_cmd", "port", "wait_until", "expect", "send", "status", "output",
               "not_output", "name", "timeout", "only", "save_as"}
_CHECK_KINDS = ("ssh", "console", "console_cmd", "port", "wait_until")
_SAVES_OUTPUT = ("ssh", "console_cmd", "wait_until")      # the kinds whose stdout save_as keeps
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REF = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
PORT_RESULTS = ("answers", "refused", "dropped")
_BOOT_KEYS = {"how", "checks", "add_kargs", "remove_kargs", "expect_failure"}


@dataclass
class Check:
    kind: str                     # ssh | console | console_cmd | port | wait_until
    text: str
    expect: str | None = None  # port: answers | refused | dropped
    send: str | None = None    # port: what to send (default an HTTP GET)
    status: int | None = 0
    output: str | None = None
    not_output: str | None = None
    name: str | None = None
    timeout: float | None = None
    only: str | None = None    # run only on this OS / method (e.g. fcos, iso)
    save_as: str | None = None # keep the stdout under this name for {{name}} in later checks

    def applies_to(self, req) -> bool:
        return self.only is None or self.only in (req.os, req.method, req.firmware)

    def describe(self) -> str:
        return self.name or f"{self.kind}: {self.text}"


@dataclass
class Boot:
    how: str = "start"
    checks: list[Check] = field(default_factory=list)
    add_kargs: list[str] = field(default_factory=list)
    remove_kargs: list[str] = field(default_factory=list)
    expect_failure: str | None = None   # this boot must fail fast with this reason (e.g. "Ignition failed")


def _key(kind: str) -> dict:
    """The metadata of a field that is a scenario file key; ``kind`` names its check in ``_KINDS``."""
    return {"yaml": kind}


@dataclass
class Scenario:
    """A scenario file: every field with a kind is a YAML key of that name (the one schema: the
    loader's key set, checks and constructor all come from these fields)."""
    name: str
    path: Path
    description: str = field(default="", metadata=_key("text"))
    butane: dict[str, str | None] = field(default_factory=lambda: {"fcos": None, "flatcar": None},
                                          metadata=_key("butane"))
    applies: dict[str, list[str]] = field(default_factory=dict, metadata=_key("applies"))
    boots: list[Boot] = field(default_factory=lambda: [Boot()], metadata=_key("boots"))
    memory: int | None = field(default=None, metadata=_key("MiB"))
    cpus: int | None = field(default=None, metadata=_key("count"))
    disks: list[dict] = field(default_factory=list, metadata=_key("disks"))
    ci: list[str] = field(default_factory=list, metadata=_key("strings"))
    completion: bool = field(default=True, metadata=_key("flag"))
    user_config: bool = field(default=True, metadata=_key("flag"))
    kargs: list[str] = field(default_factory=list, metadata=_key("strings"))
    first_boot_kargs: list[str] = field(default_factory=list, metadata=_key("strings"))
    slow: bool = field(default=False, metadata=_key("flag"))
    oem_config: str | None = field(default=None, metadata=_key("file"))
    below_minimum: bool = field(default=False, metadata=_key("flag"))
    forwards: list[int] = field(default_factory=list, metadata=_key("ports"))

    def cases(self, streams: dict[str, list[str]] | None = None) -> list[tuple]:
        """(test id, os, stream, method, firmware) for every cell this scenario applies to.

        ``streams`` (os -> streams) is where a scenario that names no stream runs (pytest
        ``--stream`` / ``--channel``); by default each OS's first.
        """
        out = []
        for os_id in self.applies.get("os", ["fcos"]):
            named = self.applies.get("stream") or self.applies.get("channel")
            chosen = named or (streams or {}).get(os_id) or [STREAMS[os_id][0]]
            streams_of_os = [s for s in chosen if s in STREAMS[os_id]] or [STREAMS[os_id][0]]
            for stream in streams_of_os:
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
                           disks=[Disk(**d) for d in self.disks], oem_config=oem, forwards=list(self.forwards))


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
    kinds = [k for k in _CHECK_KINDS if k in raw]
    if len(kinds) != 1:
        raise _err(path, f"{where}: exactly one of {', '.join(_CHECK_KINDS)}")
    kind = kinds[0]
    for key in ("output", "not_output"):
        if key in raw:
            try:
                re.compile(raw[key])
            except re.error as exc:
                raise _err(path, f"{where}.{key}: not a regular expression: {exc}") from None
    if kind == "port":
        if not isinstance(raw["port"], int) or not 0 < raw["port"] < 65536:
            raise _err(path, f"{where}.port: a guest TCP port number")
        if raw.get("expect") not in PORT_RESULTS:
            raise _err(path, f"{where}.expect: one of {', '.join(PORT_RESULTS)}")
    elif "expect" in raw or "send" in raw:
        raise _err(path, f"{where}: expect/send belong to a port check")
    save_as = raw.get("save_as")
    if save_as is not None:
        if kind not in _SAVES_OUTPUT:
            raise _err(path, f"{where}.save_as: only {', '.join(_SAVES_OUTPUT)} checks have an output to save")
        if not isinstance(save_as, str) or not _NAME.match(save_as):
            raise _err(path, f"{where}.save_as: a name of letters, digits and _")
    if kind == "wait_until" and "status" in raw:
        raise _err(path, f"{where}.status: wait_until waits for exit status 0")
    if "timeout" in raw and (isinstance(raw["timeout"], bool) or not isinstance(raw["timeout"], (int, float))
                             or raw["timeout"] <= 0):
        raise _err(path, f"{where}.timeout: seconds, a positive number")
    status_default = 0 if kind in ("ssh", "console_cmd") else None
    return Check(kind, str(raw[kind]), expect=raw.get("expect"), send=raw.get("send"),
                 status=raw.get("status", status_default), output=raw.get("output"),
                 not_output=raw.get("not_output"), name=raw.get("name"), timeout=raw.get("timeout"),
                 only=raw.get("only"), save_as=save_as)


def _positive(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _butane(path: Path, key: str, value: object) -> dict[str, str | None]:
    if value is None or isinstance(value, str):
        butane: dict = {"fcos": value, "flatcar": value}
    elif isinstance(value, dict) and set(value) <= {"fcos", "flatcar"}:
        butane = {"fcos": None, "flatcar": None, **value}
    else:
        raise _err(path, f"{key}: a file name, or {{fcos: FILE, flatcar: FILE}}")
    for os_id, f in butane.items():
        if f is not None and not isinstance(f, str):
            raise _err(path, f"{key}.{os_id}: a file name")
        if f and not (path.parent / f).is_file():
            raise _err(path, f"{key}.{os_id}: {f} not found next to the scenario")
    return butane


def _applies(path: Path, key: str, value: object) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise _err(path, f"{key}: a mapping of os, method, firmware, stream, channel to lists")
    for k, values in value.items():
        if k not in ("os", "method", "firmware", "stream", "channel"):
            raise _err(path, f"{key}.{k}: unknown key")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise _err(path, f"{key}.{k}: a list of names")
        if k == "firmware" and not set(values) <= set(FIRMWARES):
            raise _err(path, f"{key}.firmware: expected a subset of {FIRMWARES}")
    return value


def _boots(path: Path, key: str, value: object) -> list[Boot]:
    if not isinstance(value, list) or not value:
        raise _err(path, f"{key}: a list of boots")
    boots = []
    for i, raw in enumerate(value):
        if not isinstance(raw, dict):
            raise _err(path, f"{key}[{i}]: a mapping")
        unknown = set(raw) - _BOOT_KEYS
        if unknown:
            raise _err(path, f"{key}[{i}].{sorted(unknown)[0]}: unknown key")
        how = raw.get("how", "start" if i == 0 else "reboot")
        if how not in ("start", "reboot", "reset", "power-cycle"):
            raise _err(path, f"{key}[{i}].how: expected reboot, reset or power-cycle")
        if (raw.get("add_kargs") or raw.get("remove_kargs")) and how != "power-cycle":
            raise _err(path, f"{key}[{i}]: changing kernel arguments needs how: power-cycle")
        raw_checks = raw.get("checks") or []
        if not isinstance(raw_checks, list):
            raise _err(path, f"{key}[{i}].checks: a list of checks")
        checks = [_check(path, f"{key}[{i}].checks[{j}]", c) for j, c in enumerate(raw_checks)]
        boots.append(Boot(how, checks, list(raw.get("add_kargs") or []), list(raw.get("remove_kargs") or []),
                          raw.get("expect_failure")))
    return boots


def _plain(test: Callable[[object], bool], what: str) -> Callable[[Path, str, object], Any]:
    def parse(path: Path, key: str, value: object) -> Any:
        if not test(value):
            raise _err(path, f"{key}: {what}")
        return list(value) if isinstance(value, list) else value
    return parse


def _oem_file(path: Path, key: str, value: object) -> str | None:
    if value is not None and not (isinstance(value, str) and (path.parent / value).is_file()):
        raise _err(path, f"{key}: a file next to the scenario")
    return value


# what each kind of key must be (see Scenario's fields)
_KINDS: dict[str, Callable[[Path, str, object], Any]] = {
    "text": _plain(lambda v: isinstance(v, str), "text"),
    "MiB": _plain(lambda v: v is None or _positive(v), "a number of MiB"),
    "count": _plain(lambda v: v is None or _positive(v), "a positive number"),
    "flag": _plain(lambda v: isinstance(v, bool), "true or false"),
    "strings": _plain(lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of strings"),
    "disks": _plain(lambda v: isinstance(v, list) and all(isinstance(d, dict) and "name" in d for d in v),
                    "a list of disks ({name: ..., size: ..., serial: ...})"),
    "ports": _plain(lambda v: isinstance(v, list) and all(
        isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 and p != 22 for p in v),
                    "a list of guest TCP port numbers (22 is always forwarded)"),
    "file": _oem_file,
    "butane": _butane,
    "applies": _applies,
    "boots": _boots,
}
_KEY_FIELDS = {f.name: f for f in fields(Scenario) if "yaml" in f.metadata}


def load(path: Path) -> Scenario:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise _err(path, f"not valid YAML: {' '.join(str(exc).split())}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _err(path, "a scenario is a YAML mapping")
    unknown = set(data) - set(_KEY_FIELDS)
    if unknown:
        raise _err(path, f"{sorted(unknown, key=str)[0]}: unknown key")
    values = {name: _KINDS[f.metadata["yaml"]](path, name, data[name])
              for name, f in _KEY_FIELDS.items() if name in data and data[name] is not None}
    scenario = Scenario(name=path.stem, path=path, **values)
    saved: set[str] = set()
    for i, boot in enumerate(scenario.boots):
        for j, check in enumerate(boot.checks):
            if check.kind == "port" and int(check.text) not in scenario.forwards:
                raise _err(path, f"a port check on {check.text}: add {check.text} to forwards")
            for field_ in (check.text, check.output or "", check.not_output or ""):
                for ref in _REF.findall(field_):
                    if ref not in saved:
                        raise _err(path, f"boots[{i}].checks[{j}]: {{{{{ref}}}}} is not saved by an earlier "
                                         f"check (save_as: {ref})")
            if check.save_as:
                saved.add(check.save_as)
    return scenario


def scenario_dirs(paths, where: str = "") -> list[Path]:
    """``paths`` as existing directories, resolved, each once; ``where`` says where they were named."""
    out: list[Path] = []
    for d in map(Path, paths):
        if not d.is_dir():
            raise LivelabError(f"scenario directory {d} does not exist{where}")
        if d.resolve() not in out:
            out.append(d.resolve())
    return out


def load_all(directory) -> list[Scenario]:
    """Every scenario (``*.yaml``) of ``directory``; LivelabError on the first bad one."""
    (directory,) = scenario_dirs([directory])
    return [load(p) for p in sorted(directory.glob("*.yaml"))]


def _fill(text: str, values: dict[str, str], pattern: bool = False) -> str:
    """``{{name}}`` replaced by a saved value (escaped when ``text`` is a regex)."""
    return _REF.sub(lambda m: re.escape(values[m.group(1)]) if pattern else values[m.group(1)], text)


def run_check(lb, check: Check, values: dict[str, str] | None = None) -> str:
    """Run one check on a booted VM; raise AssertionError with the evidence when it fails.
    ``values``: what earlier checks saved (``save_as``); this check's own is added to it."""
    values = {} if values is None else values
    m = lb.machine
    text = _fill(check.text, values)
    output = _fill(check.output, values, pattern=True) if check.output else None
    not_output = _fill(check.not_output, values, pattern=True) if check.not_output else None
    if check.kind == "console":
        m.wait_for_console_text(re.compile(text), check.timeout or m.timeouts.boot)
        return f"console showed {text!r}"
    if check.kind == "port":
        send = (check.send if check.send is not None else "GET / HTTP/1.0\r\n\r\n").encode()
        result, data = m.probe_port(int(text), send, wait=check.timeout or 5.0)
        reply = data.decode(errors="replace")
        evidence = f"guest port {text} (127.0.0.1:{m.host_port(int(text))}) {result}: {reply[:300]!r}"
        if result != check.expect:
            raise AssertionError(f"{check.describe()}: expected {check.expect}; {evidence}")
        if output and not re.search(output, reply, re.M):
            raise AssertionError(f"{check.describe()}: reply does not match {output!r}; {evidence}")
        return f"{check.describe()}: {result}"
    if check.kind == "wait_until":
        try:
            out = m.wait_until_succeeds(text, check.timeout, output=output)
        except WaitTimeout as exc:
            raise AssertionError(f"{check.describe()}: {exc}") from None
        status, err = 0, ""
    elif check.kind == "ssh":
        status, out, err = m.execute(text, check.timeout)
    else:
        status, out = m.console_run(text, check.timeout)
        err = ""
    evidence = f"`{text}` exited {status}\nstdout: {out.strip()[-1500:]}\nstderr: {err.strip()[-800:]}"
    if check.status is not None and status != check.status:
        raise AssertionError(f"{check.describe()}: expected exit {check.status}; {evidence}")
    if output and not re.search(output, out, re.M):
        raise AssertionError(f"{check.describe()}: output does not match {output!r}; {evidence}")
    if not_output and re.search(not_output, out, re.M):
        raise AssertionError(f"{check.describe()}: output matches {not_output!r}; {evidence}")
    if check.save_as:
        values[check.save_as] = out.strip()
        return f"{check.describe()}: ok ({check.save_as} = {out.strip()[:200]!r})"
    return f"{check.describe()}: ok"


def wait_ready(lb) -> None:
    """Wait until the boot is usable: SSH when the config gave us a key, else the completion port."""
    m = lb.machine
    if lb.config and lb.req.ssh:
        m.wait_for_ssh()
    elif lb.config and lb.req.completion:
        m.wait_for_port_token()


def run_case(scenario: Scenario, os_id: str, stream: str, method: str, firmware: str, boot_vm) -> list[str]:
    """One case of a scenario, as pytest runs it: boot with ``boot_vm`` (the ``live_vm`` factory),
    run every boot and check, and check the guest has the memory asked for; returns the evidence."""
    req = scenario.request(os_id, stream, method, firmware)
    lb = boot_vm(req, start=False, below_minimum=scenario.below_minimum)
    log = run_scenario(scenario, lb)
    # the evidence is kept with the VM's artifacts (every scenario has checks)
    assert log and (Path(lb.run_dir) / "checks.log").read_text().splitlines() == log
    m = lb.require_machine()
    if lb.config and req.ssh and m.running and m.ssh is not None and not scenario.boots[-1].expect_failure:
        # the memory asked for (the documented minimum by default) is what the guest has
        total, asked = m.memory_total_mib(), lb.memory_mib
        assert 0.85 * asked <= total <= asked, f"the guest has {total} MiB, asked for {asked} MiB"
        log.append(f"memory: the guest has {total} MiB of the {asked} MiB asked for")
    return log


def run_scenario(scenario: Scenario, lb) -> list[str]:
    """Boot ``lb`` through every boot of the scenario, running its checks; returns the evidence."""
    log = []
    record = Path(lb.run_dir) / "checks.log"       # kept with the VM's other artifacts, as it goes

    def note(line: str) -> None:
        log.append(line)
        with open(record, "a") as f:
            f.write(line + "\n")

    values: dict[str, str] = {}     # save_as
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
                note(f"boot {i + 1}: failed fast as expected: {reason}")
                continue
            raise AssertionError(f"boot {i + 1} was expected to fail with {boot.expect_failure!r} but came up")
        if not (boot.checks and all(c.kind == "console" for c in boot.checks)):
            wait_ready(lb)
        for check in boot.checks:
            if not check.applies_to(lb.req):
                continue
            try:
                note(f"boot {i + 1}: {run_check(lb, check, values)}")
            except AssertionError as exc:
                note(f"boot {i + 1}: FAILED {exc}")
                raise
        lb.machine.write_timings()
    return log
