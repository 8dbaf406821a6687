"""Matrix outputs: ``summary.json``, ``report.html`` (one self-contained file) and the merged ``junit.xml``.

Plain functions: ``build_report(output_dir, cells)`` writes the summary and the HTML from summary
cells (see :func:`harness.matrix.make_cell`); ``merge_junit`` folds pytest's per-attempt JUnit
files into one.  The HTML is XHTML-compatible (parses as XML), uses inline CSS and inline SVG,
needs no JavaScript and fetches nothing; its links are relative paths into the output directory.
"""
from __future__ import annotations

import copy
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from urllib.parse import quote

from .atomic import atomic_write
from .vocab import CASE_ID_RE

SCHEMA = "livelab.matrix/1"
RESULTS = ("pass", "flaky", "fail", "skip")
COLOURS = {"pass": "#2e7d32", "flaky": "#ef8f00", "fail": "#c62828", "skip": "#757575", "missing": "#6a1b9a"}
MISSING = "missing"           # a merged matrix's cell that no shard's output has (harness.matrix_merge)
# timeline phases: (name, label, colour, end markers in order of preference); each starts where the last ended
PHASES = (
    ("firmware", "firmware", "#8d6e63", ("kernel_start", "first_console")),
    ("kernel", "kernel", "#1565c0", ("ignition_done", "switch_root")),
    ("initramfs", "initramfs/Ignition", "#6a1b9a", ("switch_root",)),
    ("login", "login", "#00838f", ("login_prompt",)),
    ("ssh", "SSH", "#2e7d32", ("ssh_ready",)),
)
ARTIFACTS = ("console.log", "qemu-cmdline.txt", "config.ign", "vm.json", "timings.json")


# ---------------------------------------------------------------- summary.json

def totals(cells: Sequence[dict]) -> dict:
    out = {"cells": len(cells), **{r: 0 for r in RESULTS}}
    for c in cells:
        out[c["result"]] = out.get(c["result"], 0) + 1
    out["duration"] = round(sum(c.get("duration") or 0 for c in cells), 2)
    return out


def unique(values: Iterable[object]) -> list:
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def summarize(cells: Sequence[dict], meta: dict | None = None) -> dict:
    """The summary.json document; ``meta`` (os, streams, methods, firmware, scenarios) defaults from the cells."""
    meta = dict(meta or {})
    derived = {"os": cells[0]["os"] if cells else None,
               "streams": unique(c["stream"] for c in cells), "methods": unique(c["method"] for c in cells),
               "firmware": unique(c["firmware"] for c in cells), "scenarios": unique(c["scenario"] for c in cells)}
    accel = next((c["timings"].get("accel") for c in cells if c.get("timings") and c["timings"].get("accel")), None)
    doc: dict = {"schema": SCHEMA}
    for key in ("os", "streams", "methods", "firmware", "scenarios"):
        doc[key] = meta.get(key) or derived[key]
    doc.update({"generated": meta.get("generated") or time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "accel": meta.get("accel") or accel})
    # what else the run says about itself (a shard's host and plan, a merge's inputs), kept as given
    doc.update({k: v for k, v in meta.items() if k not in doc and k not in ("cells", "totals", "schema")})
    doc.update({"cells": list(cells), "totals": totals(cells)})
    return doc


def load_summary(output_dir: Path) -> dict:
    from .errors import LivelabError
    path = Path(output_dir) / "summary.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise LivelabError(f"{path} not found: not a matrix output directory") from None
    except ValueError as exc:
        raise LivelabError(f"{path}: not valid JSON ({exc})") from None


# ---------------------------------------------------------------- timelines

def segments(phases: dict) -> list[tuple]:
    """(name, label, colour, start, end) of each phase a boot reached, in order."""
    out, t = [], float(phases.get("qemu_start") or 0.0)
    for name, label, colour, ends in PHASES:
        end = next((float(phases[e]) for e in ends if phases.get(e) is not None), None)
        if end is None or end <= t:
            continue
        out.append((name, label, colour, t, end))
        t = end
    return out


def _max_time(cells: Sequence[dict]) -> float:
    best = 1.0
    for c in cells:
        for boot in (c.get("timings") or {}).get("boots") or []:
            for v in (boot.get("phases") or {}).values():
                if isinstance(v, (int, float)):
                    best = max(best, float(v))
    return best


def _tick_step(span: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600):
        if span / step <= 8:
            return step
    return 7200


def timeline_svg(timings: dict, scale: float | None = None, width: int = 860) -> str:
    """Inline SVG: one bar per boot, one coloured segment per phase, on a shared time axis."""
    boots = timings.get("boots") or []
    scale = scale or _max_time([{"timings": timings}])
    left, row, top = 70, 24, 8
    bar_w = width - left - 10
    height = top + row * len(boots) + 24
    x = lambda t: left + bar_w * t / scale  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="boot timeline">']
    for i, boot in enumerate(boots):
        y = top + i * row
        label = escape(str(boot.get("boot", i + 1)))
        parts.append(f'<text x="4" y="{y + 15}" font-size="12" fill="#333">boot {label}</text>')
        parts.append(f'<rect x="{left}" y="{y + 2}" width="{bar_w}" height="{row - 6}" fill="#f2f2f2"/>')
        for name, label, colour, start, end in segments(boot.get("phases") or {}):
            w = max(1.0, x(end) - x(start))
            parts.append(f'<g class="phase phase-{name}"><rect x="{x(start):.1f}" y="{y + 2}" width="{w:.1f}" '
                         f'height="{row - 6}" fill="{colour}"><title>{escape(label)}: {start:.1f} s to {end:.1f} s '
                         f'({end - start:.1f} s)</title></rect>')
            if w > 8 * len(label) + 6:
                parts.append(f'<text x="{x(start) + 4:.1f}" y="{y + 15}" font-size="11" fill="#fff">'
                             f'{escape(label)} {end - start:.0f}s</text>')
            parts.append('</g>')
    axis_y = top + row * len(boots) + 4
    parts.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + bar_w}" y2="{axis_y}" stroke="#999"/>')
    step = _tick_step(scale)
    t = 0.0
    while t <= scale + 1e-9:
        parts.append(f'<line x1="{x(t):.1f}" y1="{axis_y}" x2="{x(t):.1f}" y2="{axis_y + 4}" stroke="#999"/>'
                     f'<text x="{x(t):.1f}" y="{axis_y + 16}" font-size="10" fill="#555" '
                     f'text-anchor="middle">{t:g}s</text>')
        t += step
    parts.append("</svg>")
    return "".join(parts)


# ---------------------------------------------------------------- report.html

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.5em}h3{font-size:1em;margin:.2em 0}
table.matrix{border-collapse:collapse;margin:1em 0}
table.matrix th,table.matrix td{border:1px solid #bbb;padding:.35em .7em;text-align:left}
table.matrix thead th{background:#eee}
td.cell{min-width:9em}td.cell a{color:inherit}
.pass{background:#c8e6c9}.fail{background:#ffcdd2}.flaky{background:#ffe0b2}.skip{background:#e0e0e0}
.missing{background:#e1bee7}.cell.refused{background:#eceff1;color:#546e7a}
.none{background:#fafafa;color:#aaa}
.badge{display:inline-block;padding:0 .5em;border-radius:.6em;color:#fff;font-weight:600}
.badge.pass{background:#2e7d32}.badge.fail{background:#c62828}.badge.flaky{background:#ef8f00}.badge.skip{background:#757575}
.badge.missing{background:#6a1b9a}
section.vm{border-left:6px solid #bbb;padding:.3em .8em;margin:1em 0;background:#fff}
section.vm.pass{border-color:#2e7d32}section.vm.fail{border-color:#c62828}section.vm.flaky{border-color:#ef8f00}
section.vm.missing{border-color:#6a1b9a}
table.hosts{border-collapse:collapse;margin:1em 0}
table.hosts th,table.hosts td{border:1px solid #bbb;padding:.3em .6em;text-align:right}
table.hosts th:first-child,table.hosts td:first-child{text-align:left}
section.host{margin:1em 0}
pre.message{background:#fff3f3;border:1px solid #e6b3b3;padding:.5em;white-space:pre-wrap;margin:.3em 0}
pre.triage{background:#f7f7f7;border:1px solid #ddd;padding:.5em;white-space:pre-wrap;margin:.3em 0;font-size:90%}
.legend span{display:inline-block;margin-right:1em}
.legend i{display:inline-block;width:1em;height:.8em;margin-right:.3em}
.muted{color:#777}
"""


def _href(rel: str) -> str:
    return escape(quote(rel.replace("\\", "/")), quote=True)


def _link(output_dir: Path, rel: str | None, text: str) -> str:
    """A relative link, only when the file exists (so every href of the report resolves)."""
    if not rel or not (output_dir / rel).is_file():
        return ""
    return f'<a href="{_href(rel)}">{escape(text)}</a>'


def _cell_text(c: dict) -> str:
    text = c["result"]
    if c.get("attempts", 1) > 1:
        text += f" ({c['attempts']} attempts)"
    return text


def _place(cell_id: str, cell: dict | None = None) -> tuple:
    """Where a cell goes in the table: (os, stream, method, scenario with its disk suffix, firmware)."""
    m = CASE_ID_RE.match(cell_id)
    if m:
        return (m["os"], m["stream"], m["method"], m["scenario"] + (f".{m['disk']}" if m["disk"] else ""),
                m["firmware"])
    c = cell or {}
    return (c.get("os"), c.get("stream"), c.get("method"), c.get("scenario"), c.get("firmware"))


def _matrix_table(cells: Sequence[dict], summary: dict, output_dir: Path) -> str:
    by_key = {_place(c["id"], c): c for c in cells}
    # cells that cannot boot (summary "refused"): "not applicable" in their place
    refused = {_place(str(r.get("id"))): r for r in summary.get("refused") or [] if isinstance(r, dict)}
    keys = [*by_key, *refused]
    firmware = unique([*(summary.get("firmware") or []), *(k[4] for k in keys)])
    multi = len(unique(k[3] for k in keys)) > 1
    oses = unique(k[0] for k in keys)
    rows = unique(k[:4] for k in keys)
    kind = "stream / channel" if len(oses) > 1 else "channel" if (oses or [summary.get("os")])[0] == "flatcar" \
        else "stream"
    head = ("<th>OS</th>" if len(oses) > 1 else "") + f"<th>{kind}</th><th>method</th>"
    head += ("<th>scenario</th>" if multi else "") + "".join(f"<th>{escape(f)}</th>" for f in firmware)
    body = []
    for os_id, stream, method, scen in rows:
        tds = [(f"<th>{escape(os_id)}</th>" if len(oses) > 1 else "")
               + f"<th>{escape(stream)}</th><th>{escape(method)}</th>"
               + (f"<th>{escape(scen)}</th>" if multi else "")]
        for fw in firmware:
            c = by_key.get((os_id, stream, method, scen, fw))
            r = refused.get((os_id, stream, method, scen, fw))
            if c is None and r is not None:
                tds.append(f'<td class="cell refused" data-id="{escape(str(r["id"]))}" '
                           f'title="{escape(str(r.get("reason")))}">not applicable</td>')
                continue
            if c is None:
                tds.append('<td class="cell none">&#8212;</td>')
                continue
            console = _link(output_dir, c.get("console_log"), "console.log")
            tds.append(f'<td class="cell {escape(c["result"])}" data-id="{escape(c["id"])}" title="{escape(c["id"])}">'
                       f'<a href="#vm-{escape(c["id"])}">{escape(_cell_text(c))}</a>'
                       + (f' &#183; {console}' if console else "") + "</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    return (f'<table class="matrix" id="matrix"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _vm_section(c: dict, output_dir: Path, scale: float) -> str:
    out = [f'<section class="vm {escape(c["result"])}" id="vm-{escape(c["id"])}">',
           f'<h3>{escape(c["id"])} <span class="badge {escape(c["result"])}">{escape(_cell_text(c))}</span></h3>']
    facts = [f'{c.get("duration") or 0:.1f} s'] + ([f'on <span class="host">{escape(str(c["host"]))}</span>']
                                                   if c.get("host") else [])
    if c.get("run_dir"):
        for name in ARTIFACTS:
            link = _link(output_dir, f'{c["run_dir"]}/{name}', name)
            if link:
                facts.append(link)
    for h in c.get("history") or []:
        if h.get("result") == "fail" and h.get("attempt") != c.get("attempts"):
            link = _link(output_dir, h.get("console_log"), f'attempt {h["attempt"]} console.log')
            facts.append(link or f'attempt {h["attempt"]} failed')
    out.append(f'<p>{" &#183; ".join(facts)}</p>')
    if c.get("message"):
        out.append(f'<pre class="message">{escape(c["message"])}</pre>')
    if c.get("triage"):
        out.append(f'<p>console triage: <b>{escape(c["triage"]["verdict"])}</b></p>'
                   f'<pre class="triage">{escape(c["triage"]["summary"])}</pre>')
    timings = c.get("timings")
    if timings and timings.get("boots"):
        out.append(timeline_svg(timings, scale))
    else:
        out.append('<p class="muted">no timings recorded</p>')
    out.append("</section>")
    return "".join(out)


# ---------------------------------------------------------------- hosts: who ran what, when

def host_runs(summary: dict, cells: Sequence[dict] = ()) -> list[dict]:
    """The runs behind a summary, each ``{run, host, shard, started, ended}``: a merge's inputs, or a
    shard's own run (``run`` ""); none for a summary that records no host.  A run whose attempts name
    other hosts (workers on other hosts: ``livelab matrix --hosts``) is one entry per host they name,
    in the order the cells first name them."""
    merged = summary.get("merged")
    if isinstance(merged, dict):
        runs = [r for r in merged.get("inputs") or [] if isinstance(r, dict)]
    elif isinstance(summary.get("shard"), dict):
        shard = summary["shard"]
        runs = [{"run": "", "host": shard.get("host"), "shard": shard.get("label"),
                 "started": shard.get("started"), "ended": shard.get("ended")}]
    else:
        runs = []
    out = []
    for r in runs:
        named = unique(h["host"] for _, h in _entries(cells, r.get("run", "")) if h.get("host"))
        out += [{**r, "host": name} for name in named] if named and named != [r.get("host")] else [r]
    return out


def _ran_on(record: dict, host: object) -> bool:
    """A cell or attempt ran on ``host`` (one that names no host belongs to every host of its run)."""
    return not record.get("host") or record.get("host") == host


def _entries(cells: Sequence[dict], run: str, host: object = None) -> list[tuple[dict, dict]]:
    """(cell, attempt) of every attempt that ran in ``run`` (on ``host``, when given)."""
    return [(c, h) for c in cells for h in c.get("history") or []
            if h.get("run", "") == run and (host is None or _ran_on(h, host))]


def host_totals(summary: dict, cells: Sequence[dict]) -> list[dict]:
    """Per run and host: its cells by final result, its attempts, their boot seconds, its wall time."""
    out = []
    for r in host_runs(summary, cells):
        run, host = r.get("run", ""), r.get("host")
        mine = [c for c in cells if c.get("result") != MISSING and c.get("run", "") == run and _ran_on(c, host)]
        entries = _entries(cells, run, host)
        started, ended = r.get("started"), r.get("ended")
        wall = round(ended - started, 2) if isinstance(started, (int, float)) and isinstance(ended, (int, float)) \
            else None
        out.append({**r, "cells": len(mine), **{res: sum(c["result"] == res for c in mine) for res in RESULTS},
                    "attempts": len(entries), "boot_s": round(sum(h.get("duration") or 0 for _, h in entries), 2),
                    "wall_s": wall})
    return out


def host_timeline_svg(cells: Sequence[dict], run: str, started: float | None, width: int = 860,
                      host: object = None) -> str:
    """Inline SVG: the attempts one run made (on ``host``, when given), on its wall clock (lanes:
    attempts that overlapped)."""
    bars = sorted(((h["started"], h.get("ended") or h["started"] + (h.get("duration") or 0), c, h)
                   for c, h in _entries(cells, run, host) if isinstance(h.get("started"), (int, float))),
                  key=lambda b: (b[0], b[2]["id"]))
    # the run's start, unless an attempt's clock says earlier (clocks of other machines)
    origin = min([*([started] if isinstance(started, (int, float)) else []), *(b[0] for b in bars)] or [0.0])
    lanes: list[float] = []
    placed = []
    for start, end, c, h in bars:
        lane = next((i for i, last in enumerate(lanes) if last <= start + 1e-6), len(lanes))
        if lane == len(lanes):
            lanes.append(end)
        lanes[lane] = end
        placed.append((lane, start - origin, end - origin, c, h))
    scale = max([1.0, *(p[2] for p in placed)])
    left, row, top = 70, 22, 8
    bar_w = width - left - 10
    height = top + row * max(1, len(lanes)) + 24
    x = lambda t: left + bar_w * max(0.0, t) / scale  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="host-timeline" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="cells over time">']
    for i in range(len(lanes)):
        parts.append(f'<text x="4" y="{top + i * row + 14}" font-size="12" fill="#333">lane {i + 1}</text>')
    for lane, start, end, c, h in placed:
        y = top + lane * row
        w = max(1.0, x(end) - x(start))
        label = f'{c["id"]} attempt {h.get("attempt", 1)}: {h["result"]}, {start:.0f} s to {end:.0f} s'
        parts.append(f'<g class="run-bar {escape(h["result"])}" data-id="{escape(c["id"])}">'
                     f'<rect x="{x(start):.1f}" y="{y + 2}" width="{w:.1f}" height="{row - 6}" '
                     f'fill="{COLOURS.get(h["result"], "#757575")}"><title>{escape(label)}</title></rect>')
        short = c["id"].split(".", 1)[-1]
        if w > 6.5 * len(short) + 6:
            parts.append(f'<text x="{x(start) + 3:.1f}" y="{y + 13}" font-size="10" fill="#fff">{escape(short)}</text>')
        parts.append("</g>")
    axis_y = top + row * max(1, len(lanes)) + 4
    parts.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + bar_w}" y2="{axis_y}" stroke="#999"/>')
    step, t = max(_tick_step(scale), scale / 8), 0.0
    while t <= scale + 1e-9:
        parts.append(f'<text x="{x(t):.1f}" y="{axis_y + 16}" font-size="10" fill="#555" '
                     f'text-anchor="middle">{t:.0f}s</text>')
        t += step
    parts.append("</svg>")
    return "".join(parts)


def _hosts_section(summary: dict, cells: Sequence[dict]) -> str:
    rows = host_totals(summary, cells)
    if not rows:
        return ""
    missing = sum(c.get("result") == MISSING for c in cells)
    cols = ("cells", *RESULTS, "attempts")
    head = ("<th>host</th><th>shard</th>" + "".join(f"<th>{c}</th>" for c in cols)
            + "<th>boots (s)</th><th>wall (s)</th>")
    body = []
    for r in rows:
        wall = f'{r["wall_s"]:.0f}' if r["wall_s"] is not None else "&#8212;"
        body.append(f'<tr data-run="{escape(r.get("run") or "")}"><td>{escape(str(r.get("host") or "?"))}</td>'
                    f'<td>{escape(str(r.get("shard") or "?"))}</td>'
                    + "".join(f"<td>{r[c]}</td>" for c in cols) + f'<td>{r["boot_s"]:.0f}</td><td>{wall}</td></tr>')
    if missing:
        body.append(f'<tr class="missing"><td>no host</td><td>&#8212;</td><td>{missing} missing</td>'
                    + "<td></td>" * (len(cols) + 1) + "</tr>")
    out = [f'<h2>Hosts</h2><table class="hosts" id="hosts"><thead><tr>{head}</tr></thead>'
           f'<tbody>{"".join(body)}</tbody></table>']
    for r in rows:
        out.append(f'<section class="host" data-run="{escape(r.get("run") or "")}"><h3>{escape(str(r.get("host")))} '
                   f'&#183; shard {escape(str(r.get("shard")))}</h3>'
                   + host_timeline_svg(cells, r.get("run", ""), r.get("started"), host=r.get("host"))
                   + "</section>")
    return "".join(out)


def _refused_section(summary: dict) -> str:
    """The cells the matrix was asked for but did not run because they cannot boot (not failures)."""
    refused = [r for r in summary.get("refused") or [] if isinstance(r, dict)]
    if not refused:
        return ""
    items = "".join(f'<li><code>{escape(str(r.get("id")))}</code>: {escape(str(r.get("reason")))}</li>'
                    for r in refused)
    return (f'<h2>Refused before boot</h2><p>{len(refused)} cell(s) not run, not failed: they cannot boot.</p>'
            f'<ul class="refused" id="refused">{items}</ul>')


def render_html(summary: dict, output_dir: Path) -> str:
    output_dir = Path(output_dir)
    cells = summary.get("cells") or []
    t = summary.get("totals") or totals(cells)
    title = f"livelab matrix: {summary.get('os') or ''}"
    counts = " ".join(f'<span class="badge {r}">{t.get(r, 0)} {r}</span>'
                      for r in (*RESULTS, MISSING) if r != MISSING or t.get(r))
    legend = "".join(f'<span><i style="background:{colour}"></i>{escape(label)}</span>'
                     for _, label, colour, _ in PHASES)
    scale = _max_time(cells)
    accel = summary.get("accel") or "unknown"
    junit = _link(output_dir, "junit.xml", "junit.xml")
    sjson = _link(output_dir, "summary.json", "summary.json")
    return "".join([
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"/>',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p>{t.get("cells", len(cells))} cells {counts} &#183; accelerator: <b>{escape(accel)}</b> &#183; '
        f'generated {escape(str(summary.get("generated", "")))}'
        + "".join(f" &#183; {link}" for link in (junit, sjson) if link) + "</p>",
        "<h2>Matrix</h2>", _matrix_table(cells, summary, output_dir), _refused_section(summary),
        _hosts_section(summary, cells),
        f'<h2>Boot timelines</h2><p class="legend">{legend}</p>',
        "".join(_vm_section(c, output_dir, scale) for c in cells),
        "</body></html>\n"])


def build_report(output_dir: Path, cells: Sequence[dict], meta: dict | None = None) -> dict[str, Path]:
    """Write ``summary.json`` and ``report.html`` into ``output_dir``; return their paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(cells, meta)
    paths = {"summary": output_dir / "summary.json", "html": output_dir / "report.html"}
    atomic_write(paths["summary"], json.dumps(summary, indent=2) + "\n", fsync=False)
    atomic_write(paths["html"], render_html(summary, output_dir), fsync=False)
    if (output_dir / "junit.xml").is_file():
        paths["junit"] = output_dir / "junit.xml"
    return paths


# ---------------------------------------------------------------- junit.xml

def _case_id(case: ET.Element) -> str | None:
    """A scenario case's id: its JUnit name (``fcos.stable.pxe.bios.base``)."""
    m = CASE_ID_RE.match(case.get("name", ""))
    return m.group("id") if m else None


def _set_property(case: ET.Element, name: str, value: str) -> None:
    props = case.find("properties")
    if props is None:
        props = ET.Element("properties")
        case.insert(0, props)
    ET.SubElement(props, "property", name=name, value=value)


def _drop_property(case: ET.Element, name: str) -> None:
    for props in case.findall("properties"):
        for p in props.findall("property"):
            if p.get("name") == name:
                props.remove(p)


def junit_cases(path: Path) -> dict[str, ET.Element]:
    """Scenario case id -> its testcase in a JUnit file (the last one of that id); none for no file."""
    out: dict[str, ET.Element] = {}
    if Path(path).is_file():
        for case in ET.parse(path).getroot().iter("testcase"):
            tid = _case_id(case)
            if tid:
                out[tid] = case
    return out


def merge_junit(attempt_files: Sequence[Path], cells: Sequence[dict], out: Path) -> Path:
    """One JUnit file: per cell the final attempt's testcase, with properties ``attempts``,
    ``result`` and ``flaky``; a cell pytest gave no result for gets an ``error``."""
    final: dict[str, ET.Element] = {}
    for path in attempt_files:
        final.update(junit_cases(path))
    return write_junit(final, cells, out)


def write_junit(final: dict[str, ET.Element], cells: Sequence[dict], out: Path, timestamp: str | None = None) -> Path:
    """The JUnit file of ``cells`` from each one's testcase in ``final``; a cell's ``host`` and
    ``shard`` become properties ``livelab_host`` and ``livelab_shard``."""
    suite = ET.Element("testsuite", name="livelab-matrix",
                       timestamp=time.strftime("%Y-%m-%dT%H:%M:%S") if timestamp is None else timestamp)
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    for c in cells:
        found = final.get(c["id"])
        if found is not None:
            case = copy.deepcopy(found)
        else:
            case = ET.Element("testcase", classname=f'scenarios.{c.get("scenario", "")}', name=c["id"], time="0")
            ET.SubElement(case, "error", message=c.get("message") or "no result")
        if c.get("run_dir") and not any(p.get("name") == "livelab_run_dir" for p in case.iter("property")):
            _set_property(case, "livelab_run_dir", c["run_dir"])
        _set_property(case, "attempts", str(c.get("attempts", 1)))
        _set_property(case, "result", c["result"])
        if c["result"] == "flaky":
            _set_property(case, "flaky", "true")
        for key in ("host", "shard"):
            if c.get(key):
                _drop_property(case, f"livelab_{key}")     # a remote worker's report named its host already
                _set_property(case, f"livelab_{key}", str(c[key]))
        counts["tests"] += 1
        counts["failures"] += case.find("failure") is not None
        counts["errors"] += case.find("error") is not None and case.find("failure") is None
        counts["skipped"] += case.find("skipped") is not None
        total_time += float(case.get("time") or 0)
        suite.append(case)
    for k, v in counts.items():
        suite.set(k, str(v))
    suite.set("time", f"{total_time:.3f}")
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    atomic_write(out, ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n", fsync=False)
    return Path(out)
