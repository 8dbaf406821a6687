"""``livelab matrix merge OUT DIR…``: one summary.json, junit.xml and report.html from shard outputs.

Each DIR is the output of one ``livelab matrix … --shard K/N`` (or of an unsharded run): its
``summary.json`` names its host, its shard and the whole matrix it was cut from (``plan``).

- Every cell of every plan (and of ``--plan FILE``, a ``--list --json`` document) appears once, in
  the plan's order (fcos before flatcar): with the host and shard of its deciding attempt, or as
  ``missing`` when no DIR has it.  A cell that more than one DIR ran (a shard job run again) keeps
  every run as an attempt, in the order they started; pass, then flaky or fail, is decided over all.
- The files a report links to (console.log, timings.json, ... of each attempt, never disk images)
  are copied to ``OUT/shards/<os>-<K>of<N>-<host>/``, with each DIR's summary.json and junit.xml.
- Nothing depends on the clock or on where the DIRs lie: the same inputs give the same bytes.
- ``OUT/durations.json`` (``livelab.durations/1``) has each cell's seconds, for the next
  ``--durations``.
"""
from __future__ import annotations

import json
import re
import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import report, safeload
from .atomic import atomic_write
from .errors import LivelabError
from .matrix import Attempt, classify
from .matrix_shards import CELLS_SCHEMA, DURATIONS_SCHEMA

OS_ORDER = ("fcos", "flatcar")
# what a report links to and a person reads; disk images, firmware variables and sockets stay behind
COPIED_SUFFIXES = (".log", ".txt", ".json", ".ign", ".xml")
COPY_LIMIT = 64 * 1024 * 1024
# JUnit properties a merge sets again for each case
RESET_PROPERTIES = ("livelab_run_dir", "attempts", "result", "flaky", "livelab_host", "livelab_shard")
_CELL_KEYS = ("os", "stream", "method", "firmware", "scenario")


@dataclass
class Input:
    path: Path
    summary: dict
    label: str = ""
    cases: dict[str, ET.Element] = field(default_factory=dict)

    @property
    def shard(self) -> dict:
        shard = self.summary.get("shard")
        return shard if isinstance(shard, dict) else {}

    @property
    def os(self) -> str:
        return str(self.summary.get("os") or "")

    def sort_key(self) -> tuple:
        s = self.shard
        return (_number(s.get("started")), self.os, _number(s.get("index")), _number(s.get("count")),
                str(s.get("host") or ""), str(self.path))


def _os_rank(os_id: str) -> int:
    return OS_ORDER.index(os_id) if os_id in OS_ORDER else len(OS_ORDER)


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _read_summary(d: Path) -> dict:
    path = d / "summary.json"
    if not path.is_file():
        raise LivelabError(f"{d}: no summary.json: not the output of livelab matrix")
    data = safeload.load_json(safeload.read_file(str(path)), str(path))
    if not isinstance(data, dict) or data.get("schema") != report.SCHEMA or not isinstance(data.get("cells"), list):
        raise LivelabError(f"{path}: not a matrix summary (schema {report.SCHEMA} with cells)")
    for i, c in enumerate(data["cells"]):
        if not isinstance(c, dict) or not isinstance(c.get("id"), str) or not isinstance(c.get("result"), str):
            raise LivelabError(f"{path}: cells[{i}]: expected an object with id and result")
    return data


def _read_plan(path: Path) -> list[dict]:
    data = safeload.load_json(safeload.read_file(str(path)), str(path))
    if not isinstance(data, dict) or data.get("schema") != CELLS_SCHEMA or not isinstance(data.get("cells"), list):
        raise LivelabError(f"--plan {path}: not a cell list (livelab matrix ... --list --json, {CELLS_SCHEMA})")
    # a plan of one shard (--shard K/N --list --json) still names the whole matrix in its shards
    cells = {c["id"]: c for c in data["cells"] if isinstance(c, dict) and isinstance(c.get("id"), str)}
    out = list(cells.values())
    for shard in data.get("shards") or []:
        for cid in shard.get("cells") or [] if isinstance(shard, dict) else []:
            if isinstance(cid, str) and cid not in cells:
                cells[cid] = {"id": cid, "shard": shard.get("shard")}
                out.append(cells[cid])
    return out


def _label(inp: Input, taken: set[str]) -> str:
    s = inp.shard
    base = f"{inp.os or 'matrix'}-{s['index']}of{s['count']}-{s.get('host') or 'host'}" \
        if s.get("index") and s.get("count") else f"{inp.os or 'matrix'}-{inp.path.name}"
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", base).strip("._") or "shard"
    label, n = base, 2
    while label in taken:
        label, n = f"{base}-{n}", n + 1
    taken.add(label)
    return label


def _inside(base: Path, rel: object) -> Path | None:
    """``base/rel`` when ``rel`` is a relative path that stays inside ``base``."""
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute():
        return None
    path = (base / rel).resolve()
    return path if path.is_relative_to(base.resolve()) else None


def _copy_run_dir(src: Path, dest: Path) -> None:
    """The small text files of a VM's run directory (and of its VMs' subdirectories)."""
    for path in sorted(src.rglob("*")):
        if path.is_symlink() or not path.is_file() or path.suffix not in COPIED_SUFFIXES:
            continue
        if path.stat().st_size > COPY_LIMIT:
            continue
        target = dest / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def _moved(inp: Input, out: Path, rel: object, copied: set[str]) -> str | None:
    """A path of the input's summary (relative to it) as the merge's: copied under shards/<label>/."""
    src = _inside(inp.path, rel)
    if src is None or not src.exists():
        return None
    rel = str(rel).replace("\\", "/")
    if src.is_file():
        rel_dir = str(Path(rel).parent)
        if rel_dir not in copied and src.parent.is_dir() and src.parent != inp.path.resolve():
            copied.add(rel_dir)
            _copy_run_dir(src.parent, out / "shards" / inp.label / rel_dir)
    elif rel not in copied:
        copied.add(rel)
        _copy_run_dir(src, out / "shards" / inp.label / rel)
    return f"shards/{inp.label}/{rel}"


def _history(inp: Input, cell: dict, out: Path, copied: set[str]) -> list[dict]:
    """The cell's attempts in this input, tagged with the input (``run``), its host and shard."""
    entries = cell.get("history")
    if not isinstance(entries, list) or not entries:
        entries = [{"attempt": 1, "result": cell["result"], "duration": cell.get("duration") or 0,
                    "message": cell.get("message") or "", "run_dir": cell.get("run_dir"),
                    "console_log": cell.get("console_log")}]
    host = cell.get("host") or inp.shard.get("host")
    shard = cell.get("shard") or inp.shard.get("label")
    got = []
    for h in entries:
        if not isinstance(h, dict):
            continue
        h = dict(h)
        h["run_dir"] = _moved(inp, out, h.get("run_dir"), copied)
        h["console_log"] = _moved(inp, out, h.get("console_log"), copied)
        h.update(run=inp.label, host=host, shard=shard)
        got.append(h)
    return got


def _merge_cell(cid: str, sources: list[tuple[Input, dict]], out: Path, copied: dict[str, set[str]]) -> dict:
    history: list[dict] = []
    owner: list[tuple[Input, dict]] = []       # per attempt: the input and the cell it came from
    for inp, cell in sources:
        for h in _history(inp, cell, out, copied[inp.label]):
            history.append(h)
            owner.append((inp, cell))
    for i, h in enumerate(history):
        h["attempt"] = i + 1
    result = classify([Attempt(str(h.get("result"))) for h in history])
    final = next((i for i, h in enumerate(history) if h.get("result") == "pass"), len(history) - 1)
    inp, cell = owner[final]
    failed = next((i for i, h in enumerate(history) if h.get("result") == "fail"), None)
    failed_cell = owner[failed][1] if failed is not None else None
    return {"id": cid, **{k: cell.get(k) for k in _CELL_KEYS}, "result": result,
            "attempts": len(history), "duration": round(sum(_number(h.get("duration")) for h in history), 2),
            "run_dir": history[final].get("run_dir"), "console_log": history[final].get("console_log"),
            "timings": cell.get("timings"),
            "message": ((history[failed].get("message") or "failed")
                        if failed is not None and result in ("fail", "flaky") else ""),
            "triage": (failed_cell.get("triage") if failed_cell is not None and result in ("fail", "flaky")
                       else None),
            "history": history, "host": history[final].get("host"), "shard": history[final].get("shard"),
            "run": inp.label}


def _missing_cell(planned: dict) -> dict:
    parts = planned["id"].split(".")
    keys = dict(zip(_CELL_KEYS, [*parts[:4], ".".join(parts[4:])])) if len(parts) >= 5 else {}
    where = f" (planned for shard {planned['shard']})" if planned.get("shard") else ""
    return {"id": planned["id"], **{k: planned.get(k) or keys.get(k) for k in _CELL_KEYS},
            "result": report.MISSING, "attempts": 0, "duration": 0.0, "run_dir": None, "console_log": None,
            "timings": None, "message": f"missing: no shard's output has this cell{where}", "triage": None,
            "history": [], "host": None, "shard": planned.get("shard"), "run": None}


def _planned(inputs: Sequence[Input], plans: Sequence[list[dict]]) -> list[dict]:
    """Every cell some plan or input names, once: the plans' order, fcos before flatcar."""
    seen: dict[str, dict] = {}
    sources = [*plans, *([c for c in inp.summary.get("plan") or [] if isinstance(c, dict)] for inp in inputs),
               *(inp.summary["cells"] for inp in inputs)]
    for cells in sources:
        for c in cells:
            if isinstance(c.get("id"), str) and c["id"] not in seen:
                seen[c["id"]] = c
    return sorted(seen.values(), key=lambda c: _os_rank(str(c.get("os") or c["id"].split(".")[0])))


def _prepare_out(out: Path, inputs: Sequence[Path]) -> None:
    out = out.resolve()
    for d in inputs:
        if d.resolve() == out or d.resolve().is_relative_to(out / "shards"):
            raise LivelabError(f"{d}: an input cannot be the merge's output (or inside its shards/)")
    if out.exists():
        if not out.is_dir():
            raise LivelabError(f"{out}: not a directory")
        summary = out / "summary.json"
        previous = False
        if summary.is_file():
            try:
                previous = isinstance(json.loads(summary.read_text()).get("merged"), dict)
            except (ValueError, OSError, AttributeError):
                previous = False
        if any(out.iterdir()) and not previous:
            raise LivelabError(f"{out}: not empty and not an earlier merge's output: give a new directory")
        shutil.rmtree(out / "shards", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def _stamp(seconds: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(seconds)) if seconds else None


def merge(out: Path, dirs: Sequence[Path], plans: Sequence[Path] = (), log: Callable[[str], None] = print) -> dict:
    """Merge shard outputs ``dirs`` into ``out``; return the merged summary."""
    if not dirs and not plans:
        raise LivelabError("merge: no shard output directory (and no --plan) given")
    dirs = list({Path(d).resolve(): Path(d) for d in dirs}.values())     # a directory given twice counts once
    for d in dirs:
        if not d.is_dir():
            raise LivelabError(f"{d}: no such directory")
    planned_lists = [_read_plan(Path(p)) for p in plans]
    inputs = sorted((Input(d, _read_summary(d)) for d in dirs), key=Input.sort_key)
    out = Path(out)
    _prepare_out(out, dirs)
    taken: set[str] = set()
    for inp in inputs:
        inp.label = _label(inp, taken)
        inp.cases = report.junit_cases(inp.path / "junit.xml")
        dest = out / "shards" / inp.label
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("summary.json", "junit.xml"):
            if (inp.path / name).is_file():
                shutil.copyfile(inp.path / name, dest / name)

    by_id: dict[str, list[tuple[Input, dict]]] = {}
    for inp in inputs:
        for cell in inp.summary["cells"]:
            by_id.setdefault(cell["id"], []).append((inp, cell))
    copied: dict[str, set[str]] = {inp.label: set() for inp in inputs}
    cells = [_merge_cell(p["id"], by_id[p["id"]], out, copied) if p["id"] in by_id else _missing_cell(p)
             for p in _planned(inputs, planned_lists)]

    ended = max((_number(inp.shard.get("ended")) for inp in inputs), default=0.0)
    started = min((_number(inp.shard.get("started")) for inp in inputs if inp.shard.get("started")), default=0.0)
    meta = _merged_meta(inputs, cells, started, ended)
    final_cases = {}
    for c in cells:
        inp_case = next((i.cases.get(c["id"]) for i in inputs if i.label == c.get("run")), None)
        if inp_case is not None:
            final_cases[c["id"]] = _reset(inp_case)
    report.write_junit(final_cases, cells, out / "junit.xml",
                       timestamp=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started)) if started else "")
    report.build_report(out, cells, meta)
    atomic_write(out / "durations.json", json.dumps(_durations(cells, started), indent=1, sort_keys=True) + "\n",
                 fsync=False)
    t = report.totals(cells)
    log(f"livelab: merged {len(inputs)} shard output(s): {t['cells']} cells, {t['pass']} pass, {t['flaky']} flaky, "
        f"{t['fail']} fail, {t['skip']} skip, {t.get(report.MISSING, 0)} missing -> {out / 'report.html'}")
    for c in cells:
        if c["result"] == report.MISSING:
            log(f"livelab: {c['id']}: {c['message']}")
    return report.load_summary(out)


def _reset(case: ET.Element) -> ET.Element:
    """A copy of a shard's testcase without the properties the merge sets again."""
    import copy
    case = copy.deepcopy(case)
    for props in case.findall("properties"):
        for p in list(props):
            if p.get("name") in RESET_PROPERTIES:
                props.remove(p)
        if not len(props):
            case.remove(props)
    return case


def _merged_meta(inputs: Sequence[Input], cells: Sequence[dict], started: float, ended: float) -> dict:
    def union(key: str) -> list:
        return report.unique(v for inp in inputs for v in inp.summary.get(key) or [])

    oses = sorted(report.unique([*(inp.os for inp in inputs if inp.os), *(c["os"] for c in cells if c.get("os"))]),
                  key=_os_rank)
    generated = _stamp(ended) or max((str(inp.summary.get("generated") or "") for inp in inputs), default="")
    refused = {r["id"]: r for inp in inputs for r in inp.summary.get("refused") or [] if isinstance(r, dict)}
    return {"os": ", ".join(oses), "streams": union("streams"), "methods": union("methods"),
            "firmware": union("firmware"), "sectors": union("sectors"), "scenarios": union("scenarios"),
            "refused": list(refused.values()), "generated": generated,
            "accel": next((inp.summary.get("accel") for inp in inputs if inp.summary.get("accel")), None),
            "merged": {"inputs": [{"run": inp.label, "host": inp.shard.get("host"), "shard": inp.shard.get("label"),
                                   "os": inp.os, "cells": len(inp.summary["cells"]),
                                   "started": inp.shard.get("started"), "ended": inp.shard.get("ended")}
                                  for inp in inputs],
                       "missing": [c["id"] for c in cells if c["result"] == report.MISSING],
                       "rerun": [c["id"] for c in cells if len({h.get("run") for h in c["history"]}) > 1]}}


def _durations(cells: Sequence[dict], started: float) -> dict:
    """The seconds of each cell's deciding attempt, as ``--durations`` reads them."""
    cases = {}
    for c in cells:
        final = next((h for h in c["history"] if h.get("result") == "pass"), None)
        if final is not None and _number(final.get("duration")) > 0:
            cases[c["id"]] = {"seconds": round(_number(final["duration"]), 2), "outcome": "passed",
                              "host": c.get("host")}
    return {"schema": DURATIONS_SCHEMA, "started_at": started, "machine": {}, "phases": {}, "cases": cases}
