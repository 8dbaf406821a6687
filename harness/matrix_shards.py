"""Cells as data: each cell's expected boot time, and a matrix split into N balanced shards.

``livelab matrix fcos … --list [--json]`` prints the cells; ``--shard K/N`` runs the K-th of N
shards.  A CI engine (a GitHub Actions job matrix, GitLab's ``parallel: matrix``) runs one shard
per job; ``harness.matrix_merge`` joins their outputs into one report.

- Expected seconds per cell: the recorded time of ``--durations FILE`` (``livelab.durations/1``,
  the format of ``runs/ci-durations.json``, or the ``durations.json`` a merge writes), matched by
  cell id; else an estimate from the boot method, the guest memory and the scenario's boots.
- The split is longest-processing-time first: cells by expected time (longest first, ties by
  id), each to the shard with the least expected time so far (ties: the lowest shard).  The same
  cells and durations give the same split on every host, so each shard job computes its own
  share; within a shard the cells keep the matrix's order.
"""
from __future__ import annotations

import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import runtime, safeload
from .errors import LivelabError
from .matrix import Cell, Matrix

CELLS_SCHEMA = "livelab.cells/1"
DURATIONS_SCHEMA = "livelab.durations/1"     # harness.durations.SCHEMA (kept free of its pytest import)

# One boot to SSH, by method, in seconds: the stand-in under TCG with one vCPU beside another VM
# (README, "How long": 45-70 s).  Real images under KVM are faster, and the balance only needs the
# ratios; a recorded --durations file replaces the estimate cell by cell.
BOOT_S = {"pxe": 60.0, "pxe-rootfs-url": 55.0, "ipxe": 60.0, "ipxe-chain": 65.0, "iso": 45.0,
          "iso-fromram": 55.0, "iso-as-disk": 45.0}
DEFAULT_BOOT_S = 60.0
PER_GIB_S = 2.0          # per GiB of guest RAM: firmware and kernel clear it, a fromram boot fills it
CHECKS_S = 10.0          # per boot: the scenario's checks and the power-off or reboot after them

_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int          # 1-based
    count: int

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"2/4"`` -> Shard(2, 4); anything else is one line."""
    m = _SHARD_RE.match(str(text))
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise LivelabError(f"--shard {text!r}: expected K/N with 1 <= K <= N, e.g. 2/4")
    return Shard(int(m.group(1)), int(m.group(2)))


def parse_count(text: str | int) -> int:
    """``--shards N``: a positive number."""
    return runtime.positive_count(text, "--shards")


def host_name() -> str:
    """This machine's name, as a shard records it (``--host`` overrides)."""
    return socket.gethostname() or "localhost"


# ---------------------------------------------------------------- expected seconds

def estimate(cell: Cell) -> float:
    """A cell's seconds from its method, memory and number of boots (no recorded time)."""
    per_boot = BOOT_S.get(cell.method, DEFAULT_BOOT_S) + CHECKS_S + PER_GIB_S * cell.memory_mib / 1024
    return round(max(1, cell.boots) * per_boot, 1)


def load_durations(path: str | Path) -> dict[str, float]:
    """Cell id -> recorded seconds of a ``livelab.durations/1`` file (its cases are keyed by pytest
    node id, ``scenarios/base.yaml::fcos.stable.pxe.bios.base``, or by cell id alone)."""
    source = f"--durations {path}"
    data = safeload.load_json(safeload.read_file(str(path), source), source)
    if not isinstance(data, dict) or data.get("schema") != DURATIONS_SCHEMA:
        raise LivelabError(f"{source}: not a durations file (schema is not {DURATIONS_SCHEMA})")
    cases = data.get("cases") or {}
    if not isinstance(cases, dict):
        raise LivelabError(f"{source}: cases: expected a mapping of node id to {{seconds: ...}}")
    out: dict[str, float] = {}
    for nodeid, case in sorted(cases.items()):
        seconds = case.get("seconds") if isinstance(case, dict) else None
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
            continue
        cell_id = re.sub(r"@[\w.-]+$", "", str(nodeid)).split("::")[-1]
        out[cell_id] = max(out.get(cell_id, 0.0), round(float(seconds), 1))
    return out


def expected_seconds(cells: Sequence[Cell], recorded: dict[str, float] | None = None) -> dict[str, tuple[float, str]]:
    """Cell id -> (seconds, "recorded" | "estimate")."""
    recorded = recorded or {}
    return {c.id: (recorded[c.id], "recorded") if c.id in recorded else (estimate(c), "estimate") for c in cells}


# ---------------------------------------------------------------- the split

def split(cells: Sequence[Cell], count: int, seconds: dict[str, float]) -> list[list[Cell]]:
    """``count`` shards of ``cells``, balanced by ``seconds`` (longest first, to the least loaded
    shard); deterministic, each shard in the matrix's order.  A shard may be empty."""
    count = parse_count(count)
    loads = [0.0] * count
    shards: list[list[Cell]] = [[] for _ in range(count)]
    for cell in sorted(cells, key=lambda c: (-seconds[c.id], c.id)):
        k = min(range(count), key=lambda i: (loads[i], i))
        shards[k].append(cell)
        loads[k] = round(loads[k] + seconds[cell.id], 3)
    order = {c.id: i for i, c in enumerate(cells)}
    return [sorted(s, key=lambda c: order[c.id]) for s in shards]


@dataclass
class Plan:
    """A matrix, each cell's expected seconds, and (with a shard count) its split."""
    matrix: Matrix
    expected: dict[str, tuple[float, str]]
    count: int | None = None                  # shards; None: not split
    shards: list[list[Cell]] | None = None

    @classmethod
    def make(cls, matrix: Matrix, count: int | None = None, durations: str | Path | None = None) -> Plan:
        expected = expected_seconds(matrix.cells, load_durations(durations) if durations else None)
        if count is None:
            return cls(matrix, expected)
        return cls(matrix, expected, count, split(matrix.cells, count, {k: v[0] for k, v in expected.items()}))

    def shard_of(self) -> dict[str, str]:
        """Cell id -> its shard's label (``"2/4"``); empty when not split."""
        shards = self.shards or []
        return {c.id: Shard(k + 1, len(shards)).label for k, cells in enumerate(shards) for c in cells}

    def cells_of(self, shard: Shard | None) -> list[Cell]:
        if shard is None or self.shards is None:
            return list(self.matrix.cells)
        return list(self.shards[shard.index - 1])

    def document(self, shard: Shard | None = None) -> dict:
        """``--list --json``: the cells (of ``shard``, or all), each with its expected seconds and
        shard, and the whole split (``shard_ids`` for a CI job matrix, ``shards`` with their cells)."""
        of = self.shard_of()
        doc: dict = {"schema": CELLS_SCHEMA, **self.matrix.meta(), "shard": shard.label if shard else None,
                     "shard_count": self.count, "cells": [], "dropped": list(self.matrix.dropped)}
        for c in self.cells_of(shard):
            seconds, source = self.expected[c.id]
            doc["cells"].append({"id": c.id, "os": c.os, "stream": c.stream, "method": c.method,
                                 "firmware": c.firmware, "sector": c.sector, "scenario": c.scenario,
                                 "memory_mib": c.memory_mib,
                                 "boots": c.boots, "expected_s": seconds, "expected_from": source,
                                 **({"shard": of[c.id]} if of else {})})
        doc["expected_s"] = round(sum(c["expected_s"] for c in doc["cells"]), 1)
        if self.shards is not None:
            doc["shard_ids"] = [Shard(k + 1, len(self.shards)).label for k in range(len(self.shards))]
            doc["shards"] = [{"shard": Shard(k + 1, len(self.shards)).label, "cells": [c.id for c in cells],
                              "expected_s": round(sum(self.expected[c.id][0] for c in cells), 1)}
                             for k, cells in enumerate(self.shards)]
        return doc

    def lines(self, shard: Shard | None = None) -> list[str]:
        """``--list``: one cell a line (id, expected seconds and where they come from, shard)."""
        of = self.shard_of()
        out = []
        for c in self.cells_of(shard):
            seconds, source = self.expected[c.id]
            out.append("\t".join([c.id, f"{seconds:g}s", source, *([of[c.id]] if of else [])]))
        return out

    def describe(self) -> str:
        """One line about the split, for stderr."""
        cells = self.matrix.cells
        total = sum(self.expected[c.id][0] for c in cells)
        text = f"livelab: {len(cells)} cell(s), expected {total:.0f} s of boots"
        if self.shards is not None:
            text += "; shards: " + ", ".join(
                f"{k + 1}/{len(self.shards)} {len(s)} cell(s) {sum(self.expected[c.id][0] for c in s):.0f} s"
                for k, s in enumerate(self.shards))
        return text


def shard_record(shard: Shard, host: str, plan: Plan, started: float, ended: float) -> dict:
    """What a shard's summary.json says about it (``shard``) and the whole matrix (``plan``)."""
    return {"shard": {"index": shard.index, "count": shard.count, "label": shard.label, "host": host,
                      "started": round(started, 3), "ended": round(ended, 3),
                      "cells": [c.id for c in plan.cells_of(shard)]},
            "plan": [{"id": c.id, "os": c.os, "stream": c.stream, "method": c.method, "firmware": c.firmware,
                      "scenario": c.scenario, "shard": plan.shard_of().get(c.id)} for c in plan.matrix.cells]}


def tag(cells: Sequence[dict], host: str, shard: Shard) -> list[dict]:
    """Summary cells (and each attempt) marked with the host and shard that ran them."""
    out = []
    for c in cells:
        history = [{**h, "host": host, "shard": shard.label} for h in c.get("history") or []]
        out.append({**c, "host": host, "shard": shard.label, "history": history})
    return out
