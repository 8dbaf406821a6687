"""Scenarios: small YAML files next to their Butane configs, turned into pytest cases.

A scenario (``scenarios/<name>.yaml``)::

    description: Ignition applied on every live boot
    butane: {fcos: base.fcos.bu, flatcar: base.flatcar.bu}   # or one file, or omitted: no user config
    applies:                                                 # the matrix it runs on
      os: [fcos, flatcar]
      method: [pxe, ipxe, iso]          # each OS takes the methods valid for it (vocab.OS_METHODS)
      firmware: [bios]
      stream: [stable]                  # FCOS streams / Flatcar channels; default: the first
      sector: [512, 4096]               # the disks' sector size; 4096 (4Kn) ids end in .4k; default 512
    # or a list of such mappings: the union of their cases, e.g. one more on 4Kn disks alone:
    # applies: [{method: [iso], firmware: [bios, uefi]}, {method: [iso], firmware: [uefi], sector: [4096]}]
    memory: 2048                        # optional (default: the documented minimum)
    disks: [{name: var, size: 2G, serial: var}]   # blank qcow2 disks (keys: name, size, serial)
    forwards: [80]                      # guest TCP ports forwarded to 127.0.0.1 (for port checks)
    session_key_placeholder: "ssh-rsa AAAA..."  # this text of the Butane files becomes the session's SSH key
    ci: [fcos.stable.pxe.bios]          # ids without the scenario (with .4k on 4Kn disks) run in CI
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

Test ids: ``<os>.<stream>.<method>.<firmware>.<scenario>[.4k]`` (``vocab.CASE_ID_RE``); the scenario's
name is its file's, letters, digits, ``-`` and ``_``, and never contains ``4k``.  A combination that
cannot apply is no case: a method the OS lacks, a configuration ``vocab.refusal`` refuses
(``iso-as-disk`` on 4096-byte sectors).  ``only: 4k`` runs a check on 4Kn cases alone.

Everything is checked when the file loads (``load``), names against the vocabulary (``vocab.py``):
a mistake is one line naming the file, the key and the value, e.g.
``scenario append.yaml: applies.method: unknown method 'pxee' (expected one of pxe, ...)``.  The YAML
is parsed by ``safeload`` (size, nesting and alias-expansion limits).

``save_as: NAME`` keeps a check's stdout (stripped) for the rest of the case; ``{{NAME}}`` in a
later check's command is replaced by it, and in its ``output`` / ``not_output`` by it as a
literal (escaped) pattern.  A name must be saved by an earlier check than the one using it.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, NamedTuple

from . import safeload
from .errors import BootFailure, LivelabError
from .lab import BootRequest, LiveBoot
from .poll import WaitTimeout
from .triage.rules import REASONS
from .vm.spec import Disk
from .vocab import (
    DISK_SUFFIX,
    FIRMWARES,
    METHODS,
    OS_METHODS,
    OSES,
    SCENARIO_PATTERN,
    SECTORS,
    STREAMS,
    TestId,
    refusal,
)

_CHECK_KEYS = {"ssh", "console", "console_cmd", "port", "wait_until", "expect", "send", "status", "output",
               "not_output", "name", "timeout", "only", "save_as"}
_CHECK_KINDS = ("ssh", "console", "console_cmd", "port", "wait_until")
_SAVES_OUTPUT = ("ssh", "console_cmd", "wait_until")      # the kinds whose stdout save_as keeps
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLAIN_NAME = re.compile(r"[\w.+-]+")
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
    only: str | None = None    # run only on this OS / method / firmware / disk (e.g. fcos, iso, 4k)
    save_as: str | None = None # keep the stdout under this name for {{name}} in later checks

    def applies_to(self, req: BootRequest) -> bool:
        return self.only is None or self.only in (req.os, req.method, req.firmware, DISK_SUFFIX.get(req.sector))

    def describe(self) -> str:
        return self.name or f"{self.kind}: {self.text}"


@dataclass
class Boot:
    how: str = "start"
    checks: list[Check] = field(default_factory=list)
    add_kargs: list[str] = field(default_factory=list)
    remove_kargs: list[str] = field(default_factory=list)
    expect_failure: str | None = None   # this boot must fail fast with this reason (e.g. "Ignition failed")


class Case(NamedTuple):
    """One cell a scenario applies to; ``id`` is its test id."""
    id: str
    os: str
    stream: str
    method: str
    firmware: str
    sector: int = 512

    @property
    def config(self) -> str:
        """The id without the scenario: ``<os>.<stream>.<method>.<firmware>[.4k]`` (as ``ci:`` names it)."""
        return str(TestId(self.os, self.stream, self.method, self.firmware, disk=DISK_SUFFIX.get(self.sector)))


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
    applies: list[dict[str, list]] = field(default_factory=lambda: [{}], metadata=_key("applies"))
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
    session_key_placeholder: str | None = field(default=None, metadata=_key("placeholder"))

    def cases(self, streams: dict[str, list[str]] | None = None, with_refused: bool = False) -> list[Case]:
        """Every cell this scenario applies to (each ``applies`` mapping's, in order, once each).

        ``streams`` (os -> streams) is where a scenario that names no stream runs (pytest
        ``--stream`` / ``--channel``); by default each OS's first.  ``with_refused``: the cells
        ``vocab.refusal`` refuses too (a matrix lists them, "not applicable").
        """
        out: dict[str, Case] = {}
        for applies in self.applies:
            for case in _cells(self.name, applies, streams, with_refused):
                out.setdefault(case.id, case)
        return list(out.values())

    def request(self, os_id: str, stream: str, method: str, firmware: str, sector: int = 512) -> BootRequest:
        butane_file = self.butane.get(os_id)
        text = None
        if butane_file:
            text = safeload.decode_text(safeload.read_file(str(self.path.parent / butane_file)),
                                        f"scenario {self.path.name}: butane.{os_id}: {_as_name(butane_file)}")
        oem = _oem_json(self.path, self.oem_config) if self.oem_config else None
        return BootRequest(os_id, stream, method, firmware, memory_mib=self.memory, cpus=self.cpus,
                           butane=text, butane_dir=str(self.path.parent), user_config=self.user_config,
                           completion=self.completion and self.user_config, kargs=list(self.kargs),
                           first_boot_only=list(self.first_boot_kargs),
                           disks=[Disk(**d) for d in self.disks], sector=sector, oem_config=oem,
                           forwards=list(self.forwards), ssh_key_placeholder=self.session_key_placeholder)


def _cells(name: str, applies: dict[str, list], streams: dict[str, list[str]] | None,
           with_refused: bool = False) -> list[Case]:
    """The cells of one ``applies`` mapping: its cross product, less what cannot apply (and what
    cannot boot, unless ``with_refused``)."""
    out = []
    named = [*applies.get("stream", []), *applies.get("channel", [])]
    for os_id in applies.get("os", ["fcos"]):
        chosen = named or (streams or {}).get(os_id) or [STREAMS[os_id][0]]
        streams_of_os = [s for s in chosen if s in STREAMS[os_id]] or [STREAMS[os_id][0]]
        for stream in streams_of_os:
            for method in applies.get("method", ["pxe"]):
                if method not in OS_METHODS[os_id]:
                    continue
                for fw in applies.get("firmware", ["bios"]):
                    for sector in applies.get("sector", [512]):
                        if refusal(method, fw, sector) and not with_refused:
                            continue
                        tid = TestId(os_id, stream, method, fw, name, DISK_SUFFIX.get(sector))
                        out.append(Case(str(tid), os_id, stream, method, fw, sector))
    return out


def _err(path: Path, msg: str) -> LivelabError:
    return LivelabError(f"scenario {path.name}: {msg}")


def _shown(value: object) -> str:
    """A value as an error line shows it: short, on one line."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."


def _as_name(key: object) -> str:
    """A key or a file name of the scenario as an error line shows it: a plain name as it is, anything
    else (spaces, line breaks, a number, null) as ``_shown`` shows values."""
    return key if isinstance(key, str) and _PLAIN_NAME.fullmatch(key) else _shown(key)


def _bad(path: Path, key: str, what: str, value: object) -> LivelabError:
    """``scenario f.yaml: KEY: WHAT (got VALUE)``."""
    return _err(path, f"{key}: {what} (got {_shown(value)})")


def _unknown(path: Path, key: str, kind: str, value: object, expected: Iterable[str]) -> LivelabError:
    """``scenario f.yaml: KEY: unknown KIND 'VALUE' (expected one of A, B, ...)``."""
    return _err(path, f"{key}: unknown {kind} {_shown(value)} (expected one of {', '.join(expected)})")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _strings(path: Path, key: str, value: object, what: str = "a list of strings") -> list[str]:
    if not isinstance(value, list):
        raise _bad(path, key, what, value)
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise _bad(path, f"{key}[{i}]", "a string", item)
    return list(value)


def _regex(path: Path, key: str, value: object) -> str:
    if not isinstance(value, str):
        raise _bad(path, key, "a regular expression", value)
    try:
        re.compile(value)
    except (re.error, OverflowError, RecursionError) as exc:     # a{4294967296}: OverflowError
        raise _err(path, f"{key}: not a regular expression: {' '.join(str(exc).split())}") from None
    return value


# what `only:` may name: an OS, a boot method, a firmware or a disk suffix (see Check.applies_to)
_ONLY_VALUES = (*OSES, *METHODS, *FIRMWARES, *DISK_SUFFIX.values())


def _check(path: Path, where: str, raw: object) -> Check:
    if isinstance(raw, str):
        raw = {"ssh": raw}
    if not isinstance(raw, dict):
        raise _bad(path, where, "a check is a mapping", raw)
    unknown = set(raw) - _CHECK_KEYS
    if unknown:
        key = sorted(unknown, key=str)[0]
        raise _err(path, f"{where}.{_as_name(key)}: unknown key (expected one of {', '.join(sorted(_CHECK_KEYS))})")
    kinds = [k for k in _CHECK_KINDS if k in raw]
    if len(kinds) != 1:
        raise _err(path, f"{where}: exactly one of {', '.join(_CHECK_KINDS)}")
    kind = kinds[0]
    if kind == "console":
        _regex(path, f"{where}.console", raw["console"])
    elif kind != "port" and not (isinstance(raw[kind], str) and raw[kind].strip()):
        raise _bad(path, f"{where}.{kind}", "a command", raw[kind])
    for key in ("output", "not_output"):
        if key in raw:
            _regex(path, f"{where}.{key}", raw[key])
    for key in ("name", "send"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise _bad(path, f"{where}.{key}", "text", raw[key])
    if raw.get("status") is not None and not _is_int(raw["status"]):
        raise _bad(path, f"{where}.status", "an exit status (a number, or null for any)", raw["status"])
    only = raw.get("only")
    if only is not None and only not in _ONLY_VALUES:
        raise _unknown(path, f"{where}.only", "OS, method, firmware or disk", only, _ONLY_VALUES)
    if kind == "port":
        if not _is_int(raw["port"]) or not 0 < raw["port"] < 65536:
            raise _bad(path, f"{where}.port", "a guest TCP port number", raw["port"])
        if raw.get("expect") not in PORT_RESULTS:
            raise _bad(path, f"{where}.expect", f"one of {', '.join(PORT_RESULTS)}", raw.get("expect"))
    elif "expect" in raw or "send" in raw:
        raise _err(path, f"{where}: expect/send belong to a port check")
    save_as = raw.get("save_as")
    if save_as is not None:
        if kind not in _SAVES_OUTPUT:
            raise _err(path, f"{where}.save_as: only {', '.join(_SAVES_OUTPUT)} checks have an output to save")
        if not isinstance(save_as, str) or not _NAME.match(save_as):
            raise _bad(path, f"{where}.save_as", "a name of letters, digits and _", save_as)
    if kind == "wait_until" and "status" in raw:
        raise _err(path, f"{where}.status: wait_until waits for exit status 0")
    if "timeout" in raw and not _seconds(raw["timeout"]):
        raise _bad(path, f"{where}.timeout", "seconds, a positive number", raw["timeout"])
    status_default = 0 if kind in ("ssh", "console_cmd") else None
    return Check(kind, str(raw[kind]), expect=raw.get("expect"), send=raw.get("send"),
                 status=raw.get("status", status_default), output=raw.get("output"),
                 not_output=raw.get("not_output"), name=raw.get("name"), timeout=raw.get("timeout"),
                 only=only, save_as=save_as)


def _seconds(v: object) -> bool:
    """A time-out a clock can take: a positive, finite number of seconds (not .nan, .inf or 10**400)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return 0 < float(v) < math.inf
    except OverflowError:
        return False


def _positive(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _text_file(path: Path, key: str, name: str) -> Path:
    """``name`` next to the scenario, as a path; one line when it is not a readable UTF-8 file."""
    full = path.parent / name
    if not full.is_file():
        raise _err(path, f"{key}: {_as_name(name)} not found next to the scenario")
    safeload.decode_text(safeload.read_file(str(full)), f"scenario {path.name}: {key}: {_as_name(name)}")
    return full


def _butane(path: Path, key: str, value: object) -> dict[str, str | None]:
    if value is None or isinstance(value, str):
        butane: dict = {"fcos": value, "flatcar": value}
    elif isinstance(value, dict) and set(value) <= {"fcos", "flatcar"}:
        butane = {"fcos": None, "flatcar": None, **value}
    else:
        raise _bad(path, key, "a file name, or {fcos: FILE, flatcar: FILE}", value)
    for os_id, f in butane.items():
        if f is not None and not isinstance(f, str):
            raise _bad(path, f"{key}.{os_id}", "a file name", f)
        if f:
            _text_file(path, f"{key}.{os_id}", f)
    return butane


def _ordered_union(groups: Iterable[Iterable[str]]) -> list[str]:
    out: list[str] = []
    for group in groups:
        out += [name for name in group if name not in out]
    return out


def _applies(path: Path, key: str, value: object) -> list[dict[str, list]]:
    """The matrix a scenario runs on: one mapping, or a list of them (the union of their cases)."""
    if isinstance(value, list) and value:
        return [_one_applies(path, f"{key}[{i}]", v) for i, v in enumerate(value)]
    return [_one_applies(path, key, value)]


def _one_applies(path: Path, key: str, value: object) -> dict[str, list]:
    """One matrix; every name is checked against the vocabulary (vocab.py), and every OS and
    method named must give at least one case."""
    if not isinstance(value, dict):
        raise _bad(path, key, "a mapping of os, method, firmware, stream, channel, sector to lists "
                              "(or a list of such mappings)", value)
    for k, names in value.items():
        if k not in _APPLIES_KEYS:
            raise _err(path, f"{key}.{_as_name(k)}: unknown key (expected one of {', '.join(_APPLIES_KEYS)})")
        if k == "sector":
            if not isinstance(names, list) or not all(_is_int(n) and n in SECTORS for n in names):
                raise _bad(path, f"{key}.sector", f"a list of disk sector sizes ({', '.join(map(str, SECTORS))})",
                           names)
        else:
            _strings(path, f"{key}.{k}", names, "a list of names")
        if not names:
            raise _err(path, f"{key}.{k}: an empty list gives no cases (leave the key out for the default)")
    oses = value.get("os", ["fcos"])
    for name in oses:
        if name not in OSES:
            raise _unknown(path, f"{key}.os", "OS", name, OSES)
    methods = value.get("method", ["pxe"])
    for name in methods:
        if name not in METHODS:
            raise _unknown(path, f"{key}.method", "method", name, METHODS)
        if not any(name in OS_METHODS[o] for o in oses):
            raise _err(path, f"{key}.method: method {name!r} does not apply to {', '.join(oses)} (expected one of "
                             f"{', '.join(_ordered_union(OS_METHODS[o] for o in oses))})")
    for o in oses:
        if not any(m in OS_METHODS[o] for m in methods):
            raise _err(path, f"{key}.os: no case for {o}: none of the methods {', '.join(methods)} applies to it "
                             f"({o}: {', '.join(OS_METHODS[o])})")
    for name in value.get("firmware", []):
        if name not in FIRMWARES:
            raise _unknown(path, f"{key}.firmware", "firmware", name, FIRMWARES)
    known = _ordered_union(STREAMS[o] for o in oses)
    kind = " or ".join(f"{o} {'stream' if o == 'fcos' else 'channel'}" for o in dict.fromkeys(oses))
    for k in ("stream", "channel"):
        for name in value.get(k, []):
            if name not in known:
                raise _unknown(path, f"{key}.{k}", kind, name, known)
    refused = [refusal(m, f, sector) for m in methods for f in value.get("firmware", ["bios"])
               for sector in value.get("sector", [512])]
    if all(refused):
        raise _err(path, f"{key}: no case: {refused[0]}")
    return {k: list(v) for k, v in value.items()}


def _boots(path: Path, key: str, value: object) -> list[Boot]:
    if not isinstance(value, list) or not value:
        raise _bad(path, key, "a list of boots", value)
    boots = []
    for i, raw in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(raw, dict):
            raise _bad(path, where, "a mapping", raw)
        unknown = set(raw) - _BOOT_KEYS
        if unknown:
            name = sorted(unknown, key=str)[0]
            raise _err(path, f"{where}.{_as_name(name)}: unknown key "
                             f"(expected one of {', '.join(sorted(_BOOT_KEYS))})")
        how = raw.get("how", "start" if i == 0 else "reboot")
        if how not in ("start", "reboot", "reset", "power-cycle"):
            raise _bad(path, f"{where}.how", "expected reboot, reset or power-cycle", how)
        add = _strings(path, f"{where}.add_kargs", raw.get("add_kargs") or [])
        remove = _strings(path, f"{where}.remove_kargs", raw.get("remove_kargs") or [])
        if (add or remove) and how != "power-cycle":
            raise _err(path, f"{where}: changing kernel arguments needs how: power-cycle")
        expect_failure = raw.get("expect_failure")
        if expect_failure is not None and not isinstance(expect_failure, str):
            raise _bad(path, f"{where}.expect_failure", "the reason the boot fails with, as text", expect_failure)
        if expect_failure is not None and expect_failure not in REASONS:
            raise _unknown(path, f"{where}.expect_failure", "failure reason", expect_failure, REASONS)
        raw_checks = raw.get("checks") or []
        if not isinstance(raw_checks, list):
            raise _bad(path, f"{where}.checks", "a list of checks", raw_checks)
        checks = [_check(path, f"{where}.checks[{j}]", c) for j, c in enumerate(raw_checks)]
        boots.append(Boot(how, checks, add, remove, expect_failure))
    return boots


_DISK_KEYS = ("name", "size", "serial")
_DISK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")     # a file name part and a QEMU option value
_DISK_SIZE = re.compile(r"^[1-9][0-9]*[KMGT]?$")               # as qemu-img create takes it


def _disks(path: Path, key: str, value: object) -> list[dict]:
    what = "a list of disks ({name: ..., size: ..., serial: ...})"
    if not isinstance(value, list):
        raise _bad(path, key, what, value)
    names: set[str] = set()
    for i, disk in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(disk, dict):
            raise _err(path, f"{key}: {what} (got {_shown(disk)} as {where})")
        for k in disk:
            if k not in _DISK_KEYS:
                raise _err(path, f"{where}.{_as_name(k)}: unknown key (expected one of {', '.join(_DISK_KEYS)})")
        if "name" not in disk:
            raise _err(path, f"{where}.name: missing (a disk needs a name)")
        for k in ("name", "serial"):
            v = disk.get(k)
            if k in disk and not (isinstance(v, str) and _DISK_NAME.match(v)):
                raise _bad(path, f"{where}.{k}", "letters, digits, '.', '-' and '_'", v)
        if "size" in disk and not (isinstance(disk["size"], str) and _DISK_SIZE.match(disk["size"])):
            raise _bad(path, f"{where}.size", "a size like 8G or 512M", disk["size"])
        if disk["name"] in names:
            raise _err(path, f"{where}.name: {disk['name']!r} is already the name of another disk")
        names.add(disk["name"])
    return [dict(d) for d in value]


def _plain(test: Callable[[object], bool], what: str) -> Callable[[Path, str, object], Any]:
    def parse(path: Path, key: str, value: object) -> Any:
        if not test(value):
            raise _bad(path, key, what, value)
        return list(value) if isinstance(value, list) else value
    return parse


def _oem_file(path: Path, key: str, value: object) -> str | None:
    if value is not None and not (isinstance(value, str) and (path.parent / value).is_file()):
        raise _bad(path, key, "a file next to the scenario", value)
    if value is not None:
        _oem_json(path, value)
    return value


def _oem_json(path: Path, name: str) -> Any:
    """The OEM Ignition config ``name`` (next to the scenario ``path``), parsed."""
    return safeload.load_json(safeload.read_file(str(path.parent / name)),
                              f"scenario {path.name}: oem_config: {_as_name(name)}")


# what each kind of key must be (see Scenario's fields)
_KINDS: dict[str, Callable[[Path, str, object], Any]] = {
    "text": _plain(lambda v: isinstance(v, str), "text"),
    "MiB": _plain(lambda v: v is None or _positive(v), "a number of MiB"),
    "count": _plain(lambda v: v is None or _positive(v), "a positive number"),
    "flag": _plain(lambda v: isinstance(v, bool), "true or false"),
    "strings": _strings,
    "disks": _disks,
    "ports": _plain(lambda v: isinstance(v, list) and all(
        isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 and p != 22 for p in v),
                    "a list of guest TCP port numbers (22 is always forwarded)"),
    "file": _oem_file,
    "placeholder": _plain(lambda v: v is None or (isinstance(v, str) and bool(v.strip()) and "\n" not in v),
                          "one line of text"),
    "butane": _butane,
    "applies": _applies,
    "boots": _boots,
}
_KEY_FIELDS = {f.name: f for f in fields(Scenario) if "yaml" in f.metadata}
_APPLIES_KEYS = ("os", "method", "firmware", "stream", "channel", "sector")


def load(path: Path) -> Scenario:
    """A scenario file, every key and value checked (against the vocabulary where it names one):
    LivelabError, one line naming the file, the key and the value, on the first problem."""
    path = Path(path)
    source = f"scenario {path.name}"
    data = safeload.load_yaml(safeload.read_file(str(path), source), source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _err(path, f"a scenario is a YAML mapping (got {_shown(data)})")
    unknown = set(data) - set(_KEY_FIELDS)
    if unknown:
        raise _err(path, f"{_as_name(sorted(unknown, key=str)[0])}: unknown key "
                         f"(expected one of {', '.join(_KEY_FIELDS)})")
    if not re.fullmatch(SCENARIO_PATTERN, path.stem):
        raise _err(path, f"the name {_as_name(path.stem)} (the file's) makes no test id: letters, digits, '-' and '_' "
                         f"only, and no {' or '.join(map(repr, DISK_SUFFIX.values()))} in it (ids of 4096-byte-sector "
                         f"disks end in .{DISK_SUFFIX[4096]}, and pytest -k {DISK_SUFFIX[4096]} selects them by it)")
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
    # every configuration the scenario can run on (on any stream when it names none)
    every_case = [c.config for c in scenario.cases(streams={o: list(s) for o, s in STREAMS.items()})]
    for i, ci_id in enumerate(scenario.ci):
        if ci_id not in every_case:
            raise _err(path, f"ci[{i}]: {ci_id!r} is not a configuration this scenario applies to "
                             f"(<os>.<stream>.<method>.<firmware>[.4k] of its applies, e.g. {every_case[0]})")
    return scenario


def scenario_dirs(paths: Iterable[str | Path], where: str = "") -> list[Path]:
    """``paths`` as existing directories, resolved, each once; ``where`` says where they were named."""
    out: list[Path] = []
    for d in map(Path, paths):
        if not d.is_dir():
            raise LivelabError(f"scenario directory {d} does not exist{where}")
        if d.resolve() not in out:
            out.append(d.resolve())
    return out


def load_all(directory: str | Path) -> list[Scenario]:
    """Every scenario (``*.yaml``) of ``directory``; LivelabError on the first bad one."""
    (directory,) = scenario_dirs([directory])
    return [load(p) for p in sorted(directory.glob("*.yaml"))]


def _fill(text: str, values: dict[str, str], pattern: bool = False) -> str:
    """``{{name}}`` replaced by a saved value (escaped when ``text`` is a regex)."""
    return _REF.sub(lambda m: re.escape(values[m.group(1)]) if pattern else values[m.group(1)], text)


def run_check(lb: LiveBoot, check: Check, values: dict[str, str] | None = None) -> str:
    """Run one check on a booted VM; raise AssertionError with the evidence when it fails.
    ``values``: what earlier checks saved (``save_as``); this check's own is added to it."""
    values = {} if values is None else values
    m = lb.require_machine()
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


def wait_ready(lb: LiveBoot) -> None:
    """Wait until the boot is usable: SSH when the config gave us a key, else the completion port."""
    m = lb.require_machine()
    if lb.config and lb.req.ssh:
        m.wait_for_ssh()
    elif lb.config and lb.req.completion:
        m.wait_for_port_token()


def run_case(scenario: Scenario, case: Case, boot_vm: Callable[..., LiveBoot]) -> list[str]:
    """One case of a scenario, as pytest runs it: boot with ``boot_vm`` (the ``live_vm`` factory),
    run every boot and check, and check the guest has the memory asked for; returns the evidence."""
    req = scenario.request(case.os, case.stream, case.method, case.firmware, case.sector)
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


def run_scenario(scenario: Scenario, lb: LiveBoot) -> list[str]:
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
            lb.require_machine().reboot()
        elif boot.how == "reset":
            lb.require_machine().reset()
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
        lb.require_machine().write_timings()
    return log
