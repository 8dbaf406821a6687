"""``livelab boot | check | down | repro | accel``: boot a live VM from the command line.

``livelab boot fcos --stream stable --via ipxe`` boots, shows the boot as it goes, prints the SSH
command and keeps the VM until Ctrl-C (or ``livelab down``).  ``livelab check`` boots, checks
that Ignition ran (over SSH) and powers off: the demo.  ``livelab repro TEST_ID`` re-creates the
exact VM of a test from its saved ``vm.json``.

All three show the boot with ``harness.progress.boot.BootProgress``: on a terminal a live status
line (stage, time) under a line per phase; without one (CI, pipes, ``-v``, ``--console``) a plain
line per phase and a heartbeat; ``--quiet`` only the result.  ``boot`` and ``repro`` copy the raw
serial console to stdout with ``--console``.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Callable

from .. import options, poll, runtime
from ..errors import LivelabError
from ..lab import BootRequest, LabOptions, LiveBoot
from ..progress.boot import BootProgress, choose_mode
from ..ssh import SessionKey
from ..vocab import FIRMWARES, METHODS, OSES, TestId, parse_sector


def add_boot_options(p: argparse.ArgumentParser, positional_os: bool = True) -> None:
    if positional_os:
        p.add_argument("os", choices=OSES)
    p.add_argument("--stream", help="FCOS stream")
    p.add_argument("--channel", help="Flatcar channel")
    p.add_argument("--version", help="pin a release version")
    p.add_argument("--via", required=True, choices=list(METHODS), help="boot method")
    p.add_argument("--firmware", default="bios", choices=FIRMWARES)
    p.add_argument("--sector", default="512", metavar="512|4096",
                   help="logical = physical sector size of the VM's disks, the ISO's of --via iso-as-disk "
                        "included (4096: a 4Kn disk, the id's .4k; default 512)")
    p.add_argument("--memory", type=int, help="MiB (default: the documented minimum)")
    p.add_argument("--cpus", type=int, default=None, help="vCPUs (default 2)")
    p.add_argument("--butane", help="Butane config for the boot")
    p.add_argument("--karg", action="append", default=[], help="extra kernel argument")
    p.add_argument("--run-dir", help="directory for the VM's artifacts")
    options.add_options(p.add_argument, options.VM_OPTIONS + options.ARTIFACT_OPTIONS + options.CONFIG_OPTIONS
                        + options.PROGRESS_OPTIONS)


def stream_of(args: argparse.Namespace) -> str:
    if args.os == "fcos":
        if args.channel:
            raise LivelabError("fcos takes --stream, not --channel")
        return args.stream or "stable"
    if args.stream:
        raise LivelabError("flatcar takes --channel, not --stream")
    return args.channel or "stable"


def options_of(args: argparse.Namespace) -> LabOptions:
    return options.lab_options(lambda name: getattr(args, name, None))


def request_of(args: argparse.Namespace) -> BootRequest:
    butane = None
    butane_dir = None
    if args.butane:
        path = Path(args.butane)
        if not path.is_file():
            raise LivelabError(f"Butane file {args.butane} not found")
        butane, butane_dir = path.read_text(), str(path.parent)
    return BootRequest(args.os, stream_of(args), args.via, args.firmware, memory_mib=args.memory, cpus=args.cpus,
                       version=args.version, butane=butane, butane_dir=butane_dir, kargs=list(args.karg),
                       sector=parse_sector(args.sector))


def _run_dir(args: argparse.Namespace, name: str) -> Path:
    if args.run_dir:
        return Path(args.run_dir)
    return Path("runs") / "cli" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _say(args: argparse.Namespace) -> Callable[[str], None]:
    """print() to stderr, or nothing with --quiet."""
    if getattr(args, "quiet", False):
        return lambda message: None
    return lambda message: print(message, file=sys.stderr)


def _display(args: argparse.Namespace, name: str) -> BootProgress:
    """The boot's progress display on stderr; in plain form its heartbeat starts at once (the
    preparation is heard too), the live line once the machine is watched."""
    console = bool(getattr(args, "console", False))
    mode = choose_mode(quiet=getattr(args, "quiet", False), plain=console or getattr(args, "verbose", False),
                       stream=sys.stderr)
    shown = BootProgress(name, mode, sys.stderr)
    if mode == "plain":
        shown.start()
    return shown


def _watch(args: argparse.Namespace, lb: LiveBoot, shown: BootProgress) -> BootProgress:
    """``shown`` watching the prepared machine (before it starts); with ``--console`` the raw
    console goes to stdout too."""
    console = bool(getattr(args, "console", False))
    return shown.attach(lb.require_machine().tap, echo=sys.stdout if console else None)


def _prepare_and_start(args: argparse.Namespace, lb: LiveBoot, say: Callable[[str], None]) -> BootProgress:
    """Prepare and start the boot with its progress display; on failure both are closed."""
    shown = _display(args, lb.name)
    try:
        lb.prepare()
        say(f"livelab: artifacts {lb.require_release().version} verified; run dir {lb.run_dir}")
        _watch(args, lb, shown)
        lb.start()
    except BaseException:
        shown.close()
        lb.close()
        raise
    return shown


def _boot(args: argparse.Namespace) -> tuple[LiveBoot, BootProgress]:
    req = request_of(args)
    run_dir = _run_dir(args, req.test_id)
    key = SessionKey(run_dir / "ssh")
    lb = LiveBoot(req, options_of(args), run_dir, ssh_key=key)
    say = _say(args)
    runtime.reap_stale(log=say)
    say(f"livelab: {req.test_id}: {req.memory_mib} MiB, {req.cpus} vCPUs, accel {lb.accel.name} ({lb.accel.reason})")
    return lb, _prepare_and_start(args, lb, say)


def cmd_boot(args: argparse.Namespace) -> int:
    return _keep(*_boot(args))


def _keep(lb: LiveBoot, shown: BootProgress) -> int:
    """Keep a booted VM until Ctrl-C or ``livelab down``, printing the SSH command once it answers."""
    m = lb.require_machine()
    state = runtime.state_dir() / "cli-vms"
    state.mkdir(exist_ok=True)
    rec = state / f"{os.getpid()}.json"
    rec.write_text(json.dumps({"pid": os.getpid(), "name": lb.name, "run_dir": str(lb.run_dir)}))
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *a: stop.update(now=True))
    try:
        if lb.req.ssh and lb.ssh_key is not None:
            m.wait_for_ssh()
            shown.finish()      # the live line goes; a later lost boot still gets its line
            print(f"\nlivelab: SSH ready: ssh -i {lb.ssh_key.path} -p {m.spec.ssh_port} -o StrictHostKeyChecking=no "
                  f"-o UserKnownHostsFile=/dev/null core@127.0.0.1", file=sys.stderr)
        else:
            shown.finish()
        print("livelab: Ctrl-C or `livelab down` powers it off", file=sys.stderr)
        # until `livelab down` (SIGTERM) or the VM ends; the console watchers keep running
        poll.until(lambda: stop["now"] or not m.running, None, what="livelab down", interval=0.5, check=m.check)
    except KeyboardInterrupt:
        pass
    finally:
        shown.close()
        lb.close()
        rec.unlink(missing_ok=True)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    state = runtime.state_dir() / "cli-vms"
    n = 0
    for rec in state.glob("*.json") if state.is_dir() else []:
        data = json.loads(rec.read_text())
        try:
            os.kill(data["pid"], signal.SIGTERM)
            n += 1
            print(f"livelab: stopping {data['name']} (pid {data['pid']})")
        except ProcessLookupError:
            rec.unlink(missing_ok=True)
    if not n:
        print("livelab: no VM of `livelab boot` is running")
    return 0


def check_ignition(lb: LiveBoot) -> list:
    """What `livelab check` verifies on a booted VM; returns lines of evidence."""
    m = lb.require_machine()
    out = []
    user = m.succeed("id -un").strip()
    out.append(f"SSH as {user} with the session key (written by Ignition)")
    if lb.req.os == "fcos":
        m.succeed("test -e /run/ostree-live")
        out.append("/run/ostree-live exists (live boot)")
    m.succeed("test -e /etc/.ignition-result.json || journalctl -b -t ignition --no-pager | grep -q 'files'"
              " || true")
    unit = m.succeed("systemctl is-enabled livelab-boot-done.service").strip()
    out.append(f"Ignition enabled livelab-boot-done.service: {unit}")
    mem = m.memory_total_mib()
    out.append(f"MemTotal {mem} MiB for {lb.req.memory_mib} MiB asked")
    return out


def cmd_check(args: argparse.Namespace) -> int:
    lb, shown = _boot(args)
    try:
        m = lb.require_machine()
        m.wait_for_ssh()
        shown.close()
        evidence = check_ignition(lb)
        if not args.quiet:
            for line in evidence:
                print(f"  ok  {line}")
        m.write_timings()
        phases = m.boots[-1]["phases"]
        print(f"livelab: {lb.req.test_id} passed; phases (s): " +
              ", ".join(f"{k} {v}" for k, v in sorted(phases.items(), key=lambda kv: kv[1])))
    finally:
        shown.close()
        lb.close()
    return 0


def find_vm_record(tid: TestId, root: Path) -> Path:
    """The newest vm.json of test ``tid`` under ``root`` (a test's VMs keep their test id)."""
    candidates = sorted(root.rglob("vm.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in candidates:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if data.get("test_id") == str(tid) or data.get("name") == str(tid):
            return path
    raise LivelabError(f"no vm.json of {tid} under {root}")


def cmd_repro(args: argparse.Namespace) -> int:
    tid = TestId.parse(args.test_id)
    path = find_vm_record(tid, Path(args.runs))
    data = json.loads(path.read_text())
    req_data = dict(data["request"])
    # the same release as the failed run, even when the stream has moved on since
    req_data["version"] = req_data.get("version") or data.get("release", {}).get("version")
    req = BootRequest(**{k: v for k, v in req_data.items() if k in BootRequest.__dataclass_fields__})
    opts = LabOptions(**data["options"])
    run_dir = _run_dir(args, f"repro-{tid}")
    lb = LiveBoot(req, opts, run_dir, ssh_key=SessionKey(run_dir / "ssh"))
    say = _say(args)
    say(f"livelab: re-creating {tid} ({req.os} {req.stream} {req.version}) from {path}; run dir {run_dir}")
    runtime.reap_stale(log=say)
    return _keep(lb, _prepare_and_start(args, lb, say))


def cmd_accel(args: argparse.Namespace) -> int:
    from ..vm.accel import choose
    a = choose(args.accel)
    print(f"{a.name}: {a.reason}")
    return 0


CONSOLE_HELP = "also copy the serial console to stdout as it comes (the phases are then plain lines on stderr)"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("boot", help="boot a live VM, show its boot as it goes, keep it until Ctrl-C")
    add_boot_options(p)
    p.add_argument("--console", action="store_true", help=CONSOLE_HELP)
    p.set_defaults(func=cmd_boot)
    p = sub.add_parser("check", help="boot a live VM, check Ignition ran over SSH, power off")
    add_boot_options(p)
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("down", help="power off the VMs of `livelab boot`")
    p.set_defaults(func=cmd_down)
    p = sub.add_parser("repro", help="re-create the VM of a test from its vm.json")
    p.add_argument("test_id")
    p.add_argument("--runs", default="runs", help="where test runs are kept")
    p.add_argument("--run-dir")
    p.add_argument("--console", action="store_true", help=CONSOLE_HELP)
    options.add_options(p.add_argument, options.PROGRESS_OPTIONS)
    p.set_defaults(func=cmd_repro)
    p = sub.add_parser("accel", help="say which accelerator QEMU will use here, and why")
    p.add_argument("--accel", default="auto", choices=("auto", "kvm", "tcg"))
    p.set_defaults(func=cmd_accel)
