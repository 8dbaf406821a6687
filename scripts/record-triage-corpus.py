#!/usr/bin/env python3
"""Record the console-triage corpus: the stand-in broken on purpose, booted, and its console kept.

    .venv/bin/python scripts/record-triage-corpus.py                     # every broken case
    .venv/bin/python scripts/record-triage-corpus.py --only panic-init   # some of them
    .venv/bin/python scripts/record-triage-corpus.py --healthy-from runs/ci-20261127-145229
    .venv/bin/python scripts/record-triage-corpus.py --table             # the precision/recall table
    .venv/bin/python scripts/record-triage-corpus.py --readme            # ... written into README.md

Each broken case boots the stand-in (images/out, as `make demo` does) with one thing wrong, waits
for the harness to give up, and keeps an excerpt of the console.log QEMU wrote: the raw bytes
(ANSI codes, CRs and all) from some lines before the deciding line to some lines after the line
that ended the boot, widened until the excerpt replays to the same verdict as the whole log.
The manifest (tests/data/triage/corpus.yaml) records what was broken, the reason the live
console tap reported, and the reason the excerpt must replay to.  ``--healthy-from`` takes one
passing console.log per OS, boot method and firmware from a directory of run directories (a
`make test-e2e` run) and keeps it whole, gzipped.  The unit tests replay the corpus; CI boots
nothing for it.
"""
from __future__ import annotations

import argparse
import dataclasses
import gzip
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.errors import BootFailure  # noqa: E402
from harness.lab import BootRequest, LabOptions, LiveBoot  # noqa: E402
from harness.ssh import SessionKey  # noqa: E402
from harness.triage import Triage  # noqa: E402
from harness.triage.rules import REASONS  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "triage"
MANIFEST = CORPUS / "corpus.yaml"
BEFORE, AFTER = 60, 40          # raw lines kept before the deciding line / after the line that ended the boot
LINGER_S = 10                   # the VM runs on this long after the harness gave up (its consequences)
EMPTY = {"ignition": {"version": "3.3.0"}}


@dataclass
class Case:
    name: str
    expect: str                  # the reason the excerpt must replay to
    how: str                     # what is broken, for the manifest
    request: BootRequest
    below_minimum: bool = False
    before_start: Callable[[LiveBoot], None] | None = None
    tags: list[str] = field(default_factory=list)


def _tamper_rootfs(lb: LiveBoot) -> None:
    assert lb.http is not None
    data = bytearray(Path(lb.files["rootfs"].path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered = lb.run_dir / "rootfs-tampered.img"
    tampered.write_bytes(bytes(data))
    lb.http.publish(lb.paths["rootfs"], tampered)


def _unsign_kernel(lb: LiveBoot) -> None:
    """The customized live ISO's kernel without its signature (the harness's own media code)."""
    from harness.boot.iso import LiveISO
    LiveISO.strip_signature(lb.require_machine().spec.cdrom or "", "images/pxeboot/vmlinuz")


def cases() -> list[Case]:
    files_404 = {"ignition": {"version": "3.3.0"}, "storage": {"files": [
        {"path": "/etc/livelab-triage", "contents": {"source": "http://10.0.2.100/livelab-triage-missing"}}]}}
    return [
        Case("ignition-files-404", "Ignition failed",
             "an Ignition config whose file source is missing on the harness's HTTP server (ignition-files fails)",
             BootRequest("fcos", "stable", "pxe-rootfs-url", "bios", ignition=files_404)),
        Case("flatcar-ignition-files-404", "Ignition failed", "the same broken Ignition config on Flatcar",
             BootRequest("flatcar", "stable", "pxe", "bios", ignition=files_404)),
        Case("rootfs-missing", "live rootfs refused", "PXE without coreos.live.rootfs_url and no appended rootfs",
             BootRequest("fcos", "stable", "pxe-rootfs-url", "bios", ignition=EMPTY,
                         without_kargs=["coreos.live.rootfs_url"])),
        Case("rootfs-tampered", "live rootfs refused",
             "the rootfs served at coreos.live.rootfs_url has one byte flipped",
             BootRequest("fcos", "stable", "pxe-rootfs-url", "uefi", ignition=EMPTY), before_start=_tamper_rootfs),
        Case("ram-too-small", "out of RAM-disk space", "256 MiB with the rootfs appended (4 GiB documented)",
             BootRequest("fcos", "stable", "pxe", "bios", ignition=EMPTY, memory_mib=256), below_minimum=True),
        Case("panic-init", "kernel panic", "rdinit= and init= name a program that does not exist",
             BootRequest("fcos", "stable", "pxe-rootfs-url", "bios", ignition=EMPTY,
                         kargs=["rdinit=/livelab-no-such-init", "init=/livelab-no-such-init"])),
        Case("initrd-target-missing", "emergency mode",
             "rd.systemd.unit= names a target that does not exist (systemd cannot isolate it)",
             BootRequest("fcos", "stable", "pxe-rootfs-url", "bios", ignition=EMPTY,
                         kargs=["rd.systemd.unit=livelab-no-such.target"])),
        Case("emergency-target", "emergency mode", "systemd.unit=emergency.target",
             BootRequest("fcos", "stable", "pxe-rootfs-url", "bios", ignition=EMPTY,
                         kargs=["systemd.unit=emergency.target"])),
        # FCOS keeps Ignition's retries in the journal: the console shows the stage failing when
        # Ignition gives up (after its 2-minute fetch limit)
        Case("config-server-unreachable", "Ignition failed",
             "ignition.config.url points at an address nothing answers on (Ignition retries, then gives up)",
             BootRequest("fcos", "stable", "pxe-rootfs-url", "bios", ignition=EMPTY,
                         without_kargs=["ignition.config.url"],
                         kargs=["ignition.config.url=http://10.0.2.99:8080/config.ign"])),
        # Flatcar forwards the initramfs journal to the console: the retries themselves show
        Case("flatcar-config-server-unreachable", "network never up",
             "the same unreachable config URL on Flatcar (each failed GET on the console)",
             BootRequest("flatcar", "stable", "pxe", "bios", ignition=EMPTY, without_kargs=["ignition.config.url"],
                         kargs=["ignition.config.url=http://10.0.2.99:8080/config.ign"])),
        Case("unsigned-kernel", "secure boot refused",
             "Secure Boot enforced (uefi-secure) and the live ISO's kernel signature stripped (GRUB asks shim, "
             "which says no)",
             BootRequest("fcos", "stable", "iso", "uefi-secure", ignition=EMPTY), before_start=_unsign_kernel),
        Case("iso-label-missing", "dracut initqueue timeout",
             "coreos.liveiso= names a label the CD does not have (the live ISO's media never shows up)",
             BootRequest("fcos", "stable", "iso", "bios", ignition=EMPTY, kargs=["coreos.liveiso=LIVELAB-NONE"])),
    ]


# ---------------------------------------------------------------- excerpts

def _raw_lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def triage_raw(lines: list[bytes]) -> tuple[Triage, dict[int, int]]:
    """The triage of raw console lines, and each triage line number's raw line index."""
    t = Triage()
    where: dict[int, int] = {}
    for i, raw in enumerate(lines):
        before = t.n
        t.feed(raw.decode("utf-8", errors="replace"))
        for no in range(before + 1, t.n + 2):      # +2: a line decided while still open
            where.setdefault(no, i)
    t.close()
    return t, where


def excerpt(data: bytes) -> tuple[bytes, str]:
    """The part of a console log that decides its verdict, and that verdict's headline."""
    lines = _raw_lines(data)
    t, where = triage_raw(lines)
    v = t.verdict()
    if v.failure is None:
        return data, v.headline
    first = where.get(v.failure.deciding.line.no, 0)
    last = where.get(v.failure.trigger.line.no, len(lines) - 1)
    lo, hi = max(0, first - BEFORE), min(len(lines), last + AFTER + 1)
    while True:
        part = b"".join(lines[lo:hi])
        t2, _ = triage_raw(_raw_lines(part))
        if t2.verdict().headline == v.headline or lo == 0:
            return part, v.headline
        lo = max(0, lo - 200)


def _load_manifest() -> list[dict]:
    return yaml.safe_load(MANIFEST.read_text()) if MANIFEST.is_file() else []


def _save_manifest(entries: list[dict]) -> None:
    entries[:] = [e for e in entries if (CORPUS / e["file"]).is_file()]
    entries.sort(key=lambda e: e["file"])
    MANIFEST.write_text("# the console-triage corpus: written by scripts/record-triage-corpus.py, replayed by "
                        "tests/unit/test_triage_corpus.py\n" + yaml.safe_dump(entries, sort_keys=False, width=110))


def _put(entries: list[dict], entry: dict) -> None:
    entries[:] = [e for e in entries if e["file"] != entry["file"]] + [entry]


# ---------------------------------------------------------------- recording

def record(selected: list[Case], options: LabOptions, work: Path) -> int:
    key = SessionKey(work / "ssh")
    entries = _load_manifest()
    bad = 0
    for case in selected:
        req = case.request
        req.name = f"triage.{req.test_id}.{case.name}"
        opts = dataclasses.replace(options, below_minimum=case.below_minimum)
        run_dir = work / req.name
        shutil.rmtree(run_dir, ignore_errors=True)      # QEMU appends to a console.log that is there
        lb = LiveBoot(req, opts, run_dir, ssh_key=key)
        live = "reached SSH"
        t0 = time.monotonic()
        try:
            lb.prepare()
            if case.before_start:
                case.before_start(lb)
            lb.start()
            assert lb.machine is not None
            try:
                lb.machine.wait_for_ssh()
            except BootFailure as exc:
                live = str(exc).splitlines()[0].split(": ", 2)[1] if ": " in str(exc) else str(exc)
                time.sleep(LINGER_S)      # what the console shows after the deciding line belongs in the log
        finally:
            lb.close()
        took = time.monotonic() - t0
        part, headline = excerpt((run_dir / "console.log").read_bytes())
        name = f"failures/{req.test_id}.{case.name}.log"
        (CORPUS / name).parent.mkdir(parents=True, exist_ok=True)
        (CORPUS / name).write_bytes(part)
        ok = headline == f"lost: {case.expect}" and live in (case.expect, f"timed out ({case.expect})")
        bad += not ok
        print(f"{'ok ' if ok else 'BAD'} {name}: live {live!r}, replay {headline!r}, expected {case.expect!r} "
              f"({took:.0f} s, {len(part)} bytes)", flush=True)
        _put(entries, {"file": name, "expect": case.expect, "live": live, "how": case.how})
    _save_manifest(entries)
    return 1 if bad else 0


_BASE_RUN = re.compile(r"^(fcos|flatcar)\.(\w+)\.([\w-]+)\.(bios|uefi-secure|uefi)\.base$")


def harvest_healthy(runs: list[Path]) -> int:
    entries = _load_manifest()
    seen: set[tuple[str, str, str]] = set()
    for root in runs:
        for run_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            m = _BASE_RUN.match(run_dir.name)
            log = run_dir / "console.log"
            if not m or not log.is_file():
                continue
            key = (m.group(1), m.group(3), m.group(4))
            if key in seen:
                continue
            data = log.read_bytes()
            t, _ = triage_raw(_raw_lines(data))
            if t.verdict().headline != "ok":
                print(f"skip {run_dir.name}: {t.verdict().headline}")
                continue
            seen.add(key)
            name = f"healthy/{run_dir.name}.log.gz"
            (CORPUS / name).parent.mkdir(parents=True, exist_ok=True)
            (CORPUS / name).write_bytes(gzip.compress(data, mtime=0))
            _put(entries, {"file": name, "expect": "ok", "live": "reached SSH",
                           "how": f"a passing {m.group(1)} {m.group(3)} {m.group(4)} boot of the base scenario"})
            print(f"ok  {name}")
    _save_manifest(entries)
    return 0


# ---------------------------------------------------------------- precision and recall

def replay() -> list[tuple[dict, str]]:
    """(manifest entry, replayed headline) for every log of the corpus."""
    from harness.triage.inputs import triage_path
    return [(e, triage_path(CORPUS / e["file"]).verdict.headline) for e in _load_manifest()]


def table(results: list[tuple[dict, str]]) -> str:
    """The README table: per reason, precision and recall of the replayed corpus."""
    def got(h: str) -> str:
        return h.removeprefix("lost: ") if h.startswith("lost: ") else "ok"

    rows = ["| reason | logs | recognised | precision | recall |", "|---|---|---|---|---|"]
    for reason in [*REASONS, "ok"]:
        expected = [r for r in results if r[0]["expect"] == reason]
        called = [r for r in results if got(r[1]) == reason]
        if not expected and not called:
            continue
        hit = sum(1 for r in expected if got(r[1]) == reason)
        precision = f"{hit / len(called):.2f}" if called else "-"
        recall = f"{hit / len(expected):.2f}" if expected else "-"
        label = "healthy (ok)" if reason == "ok" else reason
        rows.append(f"| {label} | {len(expected)} | {hit} | {precision} | {recall} |")
    return "\n".join(rows)


README = ROOT / "README.md"
_README_TABLE = re.compile(r"(<!-- triage:begin[^\n]*-->\n)(.*?)(<!-- triage:end -->)", re.S)


def readme_table(text: str) -> str | None:
    """The table between the README's triage markers (None without markers)."""
    m = _README_TABLE.search(text)
    return m.group(2).strip() if m else None


def write_readme(table_text: str) -> None:
    text = README.read_text()
    README.write_text(_README_TABLE.sub(lambda m: m.group(1) + table_text + "\n" + m.group(3), text, count=1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="comma-separated case names")
    ap.add_argument("--healthy-from", nargs="*", type=Path,
                    help="directories of run directories to take healthy logs from")
    ap.add_argument("--table", action="store_true", help="print the precision/recall table of the corpus")
    ap.add_argument("--readme", action="store_true", help="write that table into README.md")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "triage-corpus")
    args = ap.parse_args()
    if args.table or args.readme:
        text = table(replay())
        print(text)
        if args.readme:
            write_readme(text)
        return 0
    if args.healthy_from:
        return harvest_healthy(args.healthy_from)
    want = set(args.only.split(",")) if args.only else None
    selected = [c for c in cases() if want is None or c.name in want]
    if want and len(selected) != len(want):
        print(f"unknown case(s): {sorted(want - {c.name for c in selected})}", file=sys.stderr)
        return 2
    out = ROOT / "images" / "out"
    options = LabOptions(mirror=str(out / "mirror"), keyring=str(out / "keyring.gpg"),
                         ignition_spec_table=str(out / "ignition-specs.json"),
                         cache_dir=str(args.work / "cache"))
    return record(selected, options, args.work)


if __name__ == "__main__":
    sys.exit(main())
