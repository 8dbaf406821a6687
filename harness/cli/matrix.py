"""``livelab matrix fcos|flatcar ...``: run a boot matrix and report it; ``livelab matrix report DIR``.

    livelab matrix fcos --streams stable,testing,next --via pxe,ipxe,iso --firmware bios,uefi --output DIR
    livelab matrix flatcar --channels stable,beta --via pxe,ipxe --output DIR --rerun 1 -- -x
    livelab matrix report DIR          # regenerate report.html from DIR/summary.json

DIR gets junit.xml, summary.json and report.html; each VM's files are under DIR/runs/.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .. import matrix as mx
from .. import options, report, runtime
from ..errors import LivelabError
from ..progress import matrix as progress
from ..vocab import FCOS_STREAMS, FLATCAR_CHANNELS, OS_METHODS


def cmd_run(args: argparse.Namespace) -> int:
    m = mx.build_matrix(args.os, args.streams, args.via, args.firmware, args.scenarios, args.scenario_dir)
    workers = mx.compute_workers([c.memory_mib for c in m.cells], args.workers)
    if args.rerun < 0:
        raise LivelabError("--rerun: expected 0 or more")
    for tid in m.dropped:
        print(f"livelab: {tid}: not offered by its scenario, left out")
    out = Path(args.output).resolve()
    options = {"mirror": args.mirror, "keyring": args.keyring, "ignition_spec_table": args.ignition_spec_table,
               "extend_timeout": args.extend_timeout,
               "vm_cpus": runtime.parse_vm_cpus(args.vm_cpus, workers)}
    extra = list(args.pytest_args)
    if extra and extra[0] != "--":
        raise LivelabError(f"unexpected argument {extra[0]!r}: pytest options go after --")
    extra = extra[1:]
    with progress.for_matrix(m.ids, out, workers, quiet=args.quiet):   # cells as they start, fail and end
        cells = mx.run_matrix(m, out, workers, args.rerun, options, extra)
    report.merge_junit(mx.attempt_files(out), cells, out / "junit.xml")
    paths = report.build_report(out, cells, m.meta())
    t = report.totals(cells)
    print(f"livelab: matrix {m.os}: {t['pass']} pass, {t['flaky']} flaky, {t['fail']} fail, {t['skip']} skip"
          f" -> {paths['html']}")
    return 1 if t["fail"] else 0


def cmd_report(args: argparse.Namespace) -> int:
    summary = report.load_summary(Path(args.dir))
    meta = {k: v for k, v in summary.items() if k not in ("cells", "totals", "schema")}
    paths = report.build_report(Path(args.dir), summary.get("cells") or [], meta)
    print(paths["html"])
    return 0


def _matrix_options(p: argparse.ArgumentParser, os_id: str) -> None:
    if os_id == "fcos":
        p.add_argument("--streams", help=f"comma list of {', '.join(FCOS_STREAMS)} (default: all)")
    else:
        p.add_argument("--channels", "--streams", dest="streams",
                       help=f"comma list of {', '.join(FLATCAR_CHANNELS)} (default: all)")
    p.add_argument("--via", help=f"comma list of boot methods: {', '.join(OS_METHODS[os_id])} (default: all)")
    p.add_argument("--firmware", help="comma list of bios, uefi (default: both)")
    p.add_argument("--scenarios", help="comma list of scenario names (default: base)")
    p.add_argument("--scenario-dir", action="append", default=None, metavar="DIR",
                   help="where the scenario YAML files are (repeatable; default ./scenarios)")
    p.add_argument("--output", "-o", required=True, help="output directory")
    p.add_argument("--rerun", type=int, default=0, metavar="N", help="re-run failed cells up to N times")
    p.add_argument("--workers", default="auto", help="pytest-xdist workers: N or auto (by memory and CPUs)")
    # passed on to the matrix's pytest; the mirror and keyring default to its ini values
    options.add_options(p.add_argument, ("extend_timeout", "vm_cpus", "mirror", "keyring", "ignition_spec_table"))
    options.add_options(p.add_argument, options.PROGRESS_OPTIONS)
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: passed to pytest")
    p.set_defaults(func=cmd_run, os=os_id)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("matrix", help="run a boot matrix with pytest-xdist; write junit.xml, summary.json, report.html",
                       description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="\n".join(__doc__.splitlines()[2:]))
    msub = p.add_subparsers(dest="matrix_verb", metavar="fcos|flatcar|report")
    msub.required = True
    for os_id in ("fcos", "flatcar"):
        _matrix_options(msub.add_parser(os_id, help=f"run a {os_id} matrix"), os_id)
    r = msub.add_parser("report", help="regenerate report.html from DIR/summary.json")
    r.add_argument("dir")
    r.set_defaults(func=cmd_report)
