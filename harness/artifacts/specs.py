"""Which Ignition config spec an OS release reads (data: harness/data/ignition-specs.yaml).

Precedence: ``max_override`` (``--ignition-max-spec X``) > ``table_override``
(``--ignition-spec-table FILE``: JSON ``{"fcos": {"<version>": "<max spec>"}, "flatcar": {...}}``,
exact versions) > the bundled table.
"""
from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from ..errors import LivelabError
from ..safeload import load_json, load_yaml, read_file, shown
from ..vocab import check_os

TABLE_PATH = Path(__file__).resolve().parent.parent / "data" / "ignition-specs.yaml"
_SPEC_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(-experimental)?$", re.ASCII)


def parse_spec(spec: str) -> tuple[int, int, int, bool]:
    m = _SPEC_RE.match(str(spec).strip())
    if not m:
        raise LivelabError(f"bad Ignition config spec {spec!r}: expected e.g. 3.3.0 or 3.4.0-experimental")
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), bool(m.group(4))


@cache
def load_table(path: str = str(TABLE_PATH)) -> dict:
    return load_yaml(read_file(path, f"Ignition spec table {path}"), f"Ignition spec table {path}")


def load_override(table_override: str | Path | dict | None) -> dict:
    """An override table: a dict or a JSON/YAML file path."""
    if table_override is None:
        return {}
    if isinstance(table_override, dict):
        doc = table_override
    else:
        source = f"--ignition-spec-table {table_override}"
        data = read_file(str(table_override), source)
        try:
            doc = load_json(data, source)
        except LivelabError:
            try:
                doc = load_yaml(data, source)       # YAML is a superset: its error says the most
            except LivelabError as exc:
                raise LivelabError(f"{source} is neither JSON nor YAML ({exc.one_line()})") from None
    if isinstance(doc, dict):
        # "_comment" and other "_"-keys are notes; "accepted" lists what the table's Ignition reads
        doc = {k: v for k, v in doc.items() if not (isinstance(k, str) and (k.startswith("_") or k == "accepted"))}
    if not isinstance(doc, dict) or not all(isinstance(k, str) and isinstance(v, dict) for k, v in doc.items()):
        raise LivelabError(f"--ignition-spec-table {table_override}: expected "
                           '{"fcos": {"<version>": "<max spec>"}, "flatcar": {...}}')
    for os_id, os_map in doc.items():
        for version, spec in os_map.items():
            # exactly X.Y.Z[-experimental]: the value is compared and shown as it is
            if not (isinstance(spec, str) and _SPEC_RE.fullmatch(spec)):
                raise LivelabError(f"--ignition-spec-table {table_override}: {shown(os_id)} {shown(version)}: "
                                   f"bad Ignition config spec {shown(spec, quote=True)}: expected e.g. 3.3.0 "
                                   "or 3.4.0-experimental")
    return doc


def _leading_number(os_id: str, version: str) -> int:
    m = re.match(r"^(\d+)", str(version))
    if not m:
        raise LivelabError(f"bad {os_id} version {version!r}")
    return int(m.group(1))


def _row(os_id: str, version: str) -> dict:
    table = load_table()
    n = _leading_number(os_id, version)
    for row in table["os"][os_id]:
        if ("from" not in row or n >= row["from"]) and ("to" not in row or n < row["to"]):
            return row
    raise LivelabError(f"no Ignition spec data for {os_id} {version}")


def ignition_version(os_id: str, version: str) -> str | None:
    """The (possibly approximate) Ignition version of the bundled table, or None if unknown."""
    check_os(os_id)
    return _row(os_id, version).get("ignition")


def _bundled(os_id: str, version: str) -> tuple[str, str | None]:
    row = _row(os_id, version)
    if row.get("max_spec"):
        return row["max_spec"], row.get("experimental")
    ign = load_table()["ignition"][row["ignition"]]
    return ign["max_spec"], ign.get("experimental")


def max_spec(os_id: str, version: str, table_override: str | Path | dict | None = None,
             max_override: str | None = None) -> str:
    """The newest stable Ignition config spec that ``os_id`` ``version`` reads."""
    check_os(os_id)
    if max_override:
        parse_spec(max_override)
        return max_override
    over = load_override(table_override).get(os_id, {})
    if str(version) in over:
        return over[str(version)]
    return _bundled(os_id, version)[0]


def reads(os_id: str, version: str, spec: str, table_override: str | Path | dict | None = None,
          max_override: str | None = None) -> bool:
    """True when ``os_id`` ``version`` reads config spec ``spec`` (experimental specs: exact match)."""
    want = parse_spec(spec)
    top = max_spec(os_id, version, table_override, max_override)
    if want[3]:
        if top == spec:
            return True
        if not max_override and str(version) not in load_override(table_override).get(os_id, {}):
            return _bundled(os_id, version)[1] == spec
        return False
    have = parse_spec(top)
    return want[:3] <= have[:3] and want[:3] >= (3, 0, 0)
