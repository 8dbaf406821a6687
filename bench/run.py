#!/usr/bin/env python3
"""livelab benchmarks (``make bench``): every figure a ratio or latency measured in ONE run.

    .venv/bin/python bench/run.py                 # all of them
    .venv/bin/python bench/run.py --only c,d      # a subset: a b c d e
    .venv/bin/python bench/run.py --only a --pairs 5

(a) boot_to_ssh_ratio        harness (LiveBoot.start + wait_for_ssh) / bare QEMU (the exact command
                             line the harness recorded in qemu-cmdline.txt, run from a plain
                             subprocess, QMP qmp_capabilities + cont, the SSH banner probed on the
                             forwarded port every 0.1 s, then one `ssh ... true` login);
                             fcos stable pxe-rootfs-url BIOS; interleaved pairs; median ratio.
    harness_lag_s            the harness's ssh_ready minus the guest's sshd start (its console line).
(b) failure_detection_s      the line that ends a boot (tailed from console.log and triaged there) ->
                             BootFailure: emergency mode (a fatal line) and a disk label that never
                             shows up (a stall: the line whose start-job counter passes 30 s);
    stall_detection_s        the stall samples alone.
(c) warm_verify_s,           a 1 GiB signed artifact fetched twice through harness.artifacts: the
    warm_bytes_fetched       warm fetch's time and the bytes the server sent for it.
(d) download_throughput_ratio  harness.artifacts vs `curl -o`, same file, same loopback server;
                             throughput = bytes / server-side transfer seconds; median of pairs.
    fetch_wall_ratio         curl's wall / the whole fetch()'s wall (signature and gpgv included).
    gpgv_floor_ratio         curl's wall / a plain `gpgv sig file` on the same file: the ceiling of
                             fetch_wall_ratio for any fetch that has gpgv read every byte.
(e) matrix_efficiency        `pytest -n 2` over 1-vCPU cells: wall / (sum of boot times / workers).
(f) boot_to_ssh_s            boot to SSH under TCG, 2 vCPUs, BIOS, the base scenario's config: fcos
                             stable iso, fcos stable pxe-rootfs-url, flatcar stable ipxe; median of
                             --boots each, with each boot's split (harness.vm.record.SPANS).  With
                             --baseline CHECKOUT the same boots run from that checkout too (its
                             harness and its images/out), interleaved with this one's, and the
                             figure is the smallest cut: 1 - after/before of the medians
                             (--cases ID,... re-measures some cases; the figure then stays unset,
                             and the partial run's files go to --work, not bench/results).

Each figure goes to bench/results/<name>.json with its raw samples and the machine (nproc, accel);
the summary is printed and written to bench/results/summary.md.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
sys.path.insert(0, str(ROOT))

from bench.mirror import SignedMirror  # noqa: E402
from harness import artifacts  # noqa: E402
from harness.errors import BootFailure  # noqa: E402
from harness.lab import BootRequest, LabOptions, LiveBoot  # noqa: E402
from harness.ssh import SessionKey  # noqa: E402
from harness.triage import Triage  # noqa: E402
from harness.vm import record  # noqa: E402
from harness.vm.accel import choose  # noqa: E402

GIB = 1 << 30


# ---------------------------------------------------------------- common

def machine_info(accel=None) -> dict:
    info = {"nproc": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    try:
        a = accel or choose("auto")
        info["accel"] = a.name
        info["accel_reason"] = a.reason
    except Exception as exc:
        info["accel"] = f"unknown ({exc})"
    with open("/proc/meminfo") as f:
        info["mem_total_mib"] = int(f.readline().split()[1]) // 1024
    return info


def write_result(name: str, figures: dict, samples, info: dict, notes: str = "",
                 directory: Path | None = None) -> dict:
    directory = directory or RESULTS
    directory.mkdir(parents=True, exist_ok=True)
    rec = {"benchmark": name, "figures": figures, "samples": samples, "machine": info, "notes": notes,
           "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (directory / f"{name}.json").write_text(json.dumps(rec, indent=2))
    print(f"bench: {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()), flush=True)
    return rec


def lab_options(cache_dir: str) -> LabOptions:
    out = ROOT / "images" / "out"
    return LabOptions(mirror=str(out / "mirror"), keyring=str(out / "keyring.gpg"),
                      ignition_spec_table=str(out / "ignition-specs.json"), cache_dir=cache_dir)


def pre_admit(lb: LiveBoot) -> None:
    """Take the VM's admission before the clock starts (a queue behind other VMs is not boot time).
    Same key as Machine.start(), so Machine.close() releases it."""
    m = lb.machine
    m.admission.acquire(f"{m.spec.name}-{os.getpid()}-{id(m)}", m.spec.memory_mib, m.spec.cpus,
                        timeout=m.timeouts(1800))
    m._admitted = True


def _pdeathsig():
    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)
    os.setpgid(0, 0)


# ---------------------------------------------------------------- (a) boot to SSH

def recorded_cmdline(run_dir: Path) -> list:
    lines = [line for line in (run_dir / "qemu-cmdline.txt").read_text().splitlines()
             if line and not line.startswith("#")]
    return shlex.split(lines[-1])


def _qmp(sock_path: str, deadline: float, proc) -> None:
    """qmp_capabilities then cont on QEMU's QMP socket (the recorded command line starts with -S)."""
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"bare QEMU exited {proc.returncode}")
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sock_path)
            break
        except OSError as exc:
            s.close()
            if time.monotonic() > deadline:
                raise RuntimeError("bare QEMU: QMP socket never came up") from exc
            time.sleep(0.02)
    f = s.makefile("rwb")
    json.loads(f.readline())                     # greeting
    for cmd in ("qmp_capabilities", "cont"):
        f.write(json.dumps({"execute": cmd}).encode() + b"\n")
        f.flush()
        while True:
            msg = json.loads(f.readline())
            if "return" in msg or "error" in msg:
                if "error" in msg:
                    raise RuntimeError(f"QMP {cmd}: {msg['error']}")
                break
    s.close()


def bare_boot(run_dir: Path, key_path: Path, timeout: float = 900) -> float:
    """Run the harness's recorded QEMU command line from a plain script; seconds to SSH ready."""
    cmd = recorded_cmdline(run_dir)
    port = int(re.search(r"hostfwd=tcp:127\.0\.0\.1:(\d+)-:22", " ".join(cmd)).group(1))
    for sock in ("console.sock", "qmp.sock"):
        (run_dir / sock).unlink(missing_ok=True)
    # the login the guest can answer fastest: the key exchange paramiko negotiates with this sshd
    # (OpenSSH's default, sntrup761x25519, costs the TCG guest far more), publickey only, no pty
    ssh = ["ssh", "-T", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
           "-o", "ConnectTimeout=2", "-o", "LogLevel=ERROR", "-o", "KexAlgorithms=curve25519-sha256",
           "-o", "PreferredAuthentications=publickey", "-o", "IdentitiesOnly=yes", "-o", "GSSAPIAuthentication=no",
           "-i", str(key_path), "-p", str(port), "core@127.0.0.1", "true"]
    with open(run_dir / "bare-qemu.log", "ab") as log:    # QEMU holds its own copy of the fd; ours closes at once
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=_pdeathsig)
    try:
        _qmp(str(run_dir / "qmp.sock"), t0 + 15, proc)
        # the tightest detection: sshd's banner on the forwarded port, probed every 0.1 s, then
        # one login (repeated only while the guest still refuses it, e.g. before user sessions)
        while not _ssh_banner(port):
            if proc.poll() is not None:
                raise RuntimeError(f"bare QEMU exited {proc.returncode} before SSH")
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"bare QEMU: no SSH after {timeout} s")
            time.sleep(0.1)
        while subprocess.run(ssh, stdin=subprocess.DEVNULL, capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() - t0 > timeout:
                raise RuntimeError("bare QEMU: sshd answered but the login never worked")
            time.sleep(0.1)
        return time.monotonic() - t0
    finally:
        proc.kill()
        proc.wait()


def _median_of(values) -> float | None:
    vals = [v for v in values if v is not None]
    return round(statistics.median(vals), 2) if vals else None


def _ssh_banner(port: int) -> bool:
    """Whether sshd's banner comes back on the forwarded port (QEMU's user net accepts the TCP
    connection itself, before anything listens in the guest)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.settimeout(0.5)
            return s.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def bench_boot_to_ssh(work: Path, pairs: int, info: dict) -> dict:
    opts = lab_options(str(work / "cache"))
    key = SessionKey(work / "ssh")
    accel = choose("auto")
    samples, failures = [], []
    i = 0
    while len(samples) < pairs:
        if len(failures) > 2:
            raise RuntimeError(f"(a) gave up after {len(failures)} failed pairs: {failures}")
        run_dir = work / f"a-{i}"
        i += 1
        try:
            samples.append(_boot_pair(run_dir, opts, key, accel, len(samples)))
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
            print(f"bench: a pair failed, retrying: {failures[-1]}", flush=True)
    ratio = statistics.median(s["ratio"] for s in samples)
    return write_result("boot_to_ssh", {"boot_to_ssh_ratio": round(ratio, 3), "pairs": len(samples),
                                        "harness_median_s": statistics.median(s["harness_s"] for s in samples),
                                        "bare_median_s": statistics.median(s["bare_s"] for s in samples),
                                        "harness_lag_s": _median_of(s["harness_lag_s"] for s in samples)},
                        samples, info, "fcos stable pxe-rootfs-url BIOS, 2 vCPUs; each pair: a harness boot and "
                        "the same recorded command line bare (interleaved: odd pairs bare first), same HTTP server, "
                        "TFTP dir and port. "
                        "Admission is taken before the clock starts for both. Failed pairs (retried): "
                        f"{failures or 'none'}.")


def _boot_pair(run_dir: Path, opts, key, accel, i: int) -> dict:
    """One pair: even pairs boot through the harness first, odd pairs bare first (so neither side
    always gets the warmer page cache).  Bare runs the command line the harness records."""
    lb = LiveBoot(BootRequest("fcos", "stable", "pxe-rootfs-url", "bios", name=f"bench.boot-{i}"), opts,
                  run_dir, ssh_key=key, accel=accel)
    bare_first = i % 2 == 1
    try:
        lb.prepare()
        pre_admit(lb)
        if bare_first:
            # the exact line Machine.start() will run and record (ports leased, disks prepared)
            lb.machine._admit_and_prepare()
            planned = lb.machine.command()
            (run_dir / "qemu-cmdline.txt").write_text(f"# bare run first\n{shlex.join(planned)}\n")
            bare_s = bare_boot(run_dir, key.path)
        t0 = time.monotonic()
        lb.start()
        lb.machine.wait_for_ssh()
        harness_s = time.monotonic() - t0
        phases = lb.machine.tap.phases
        lag = phases["ssh_ready"] - phases["sshd_started"] if "sshd_started" in phases else None
        # same files: the harness's HttpServer (lb.http), TFTP dir and SSH port lease stay
        lb.machine.kill()
        if bare_first:
            assert recorded_cmdline(run_dir) == planned, "the harness ran another command line than bare did"
        else:
            bare_s = bare_boot(run_dir, key.path)
    finally:
        lb.close()
    print(f"bench: a pair {i} ({'bare' if bare_first else 'harness'} first): harness {harness_s:.1f} s, "
          f"bare {bare_s:.1f} s", flush=True)
    return {"pair": i, "first": "bare" if bare_first else "harness", "harness_s": round(harness_s, 2),
            "bare_s": round(bare_s, 2), "ratio": round(harness_s / bare_s, 4),
            "harness_lag_s": round(lag, 2) if lag is not None else None}


# ---------------------------------------------------------------- (f) boot to SSH, split

BOOT_CASES = (("fcos", "stable", "iso"), ("fcos", "stable", "pxe-rootfs-url"), ("flatcar", "stable", "ipxe"))


def _case_id(case: tuple) -> str:
    return ".".join(case) + ".bios.base"


def _boot_sample(checkout: Path, case: tuple, run_dir: Path, work: Path, side: str) -> dict:
    """One boot of ``case`` with ``checkout``'s harness and images (bench/boot_sample.py in a child)."""
    os_, stream, method = case
    cmd = [sys.executable, str(BENCH / "boot_sample.py"), "--checkout", str(checkout), "--os", os_,
           "--stream", stream, "--method", method, "--butane", str(ROOT / "scenarios" / f"base.{os_}.bu"),
           "--run-dir", str(run_dir), "--key-dir", str(work / "ssh"), "--cache-dir", str(work / f"cache-{side}"),
           "--name", f"bench.{side}.{_case_id(case)}"]
    p = subprocess.run(cmd, env=dict(os.environ, PYTHONPATH=str(checkout)), cwd=checkout, capture_output=True,
                       text=True, timeout=1800)
    if p.returncode != 0:
        tail = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
        raise RuntimeError(f"{side} {_case_id(case)}: {tail}")
    got = json.loads(p.stdout.strip().splitlines()[-1])
    if not Path(got["harness"]).resolve().is_relative_to(checkout):
        raise RuntimeError(f"{side}: the child imported {got['harness']}, not {checkout}'s harness")
    ssh_s = got["ssh_s"]
    boots = record.read_boots(run_dir)
    return {"ssh_s": ssh_s, "spans": record.split(boots[0]) if boots else {}}


def bench_boot_phases(work: Path, boots: int, info: dict, baseline: str | None,
                      only_cases: list[str] | None = None) -> dict:
    """(f): each case ``boots`` times with this checkout and, with ``baseline``, as often with that
    one, interleaved (the side that goes first alternates); medians, spans and the cuts.
    ``only_cases`` (case ids) re-measures some of the cases; the others keep no figure this run."""
    cases = [c for c in BOOT_CASES if not only_cases or _case_id(c) in only_cases]
    unknown = sorted(set(only_cases or ()) - {_case_id(c) for c in BOOT_CASES})
    if unknown:
        raise RuntimeError(f"--cases: unknown {', '.join(unknown)} (known: "
                           f"{', '.join(_case_id(c) for c in BOOT_CASES)})")
    sides = [("after", ROOT)]
    if baseline:
        base = Path(baseline).resolve()
        if not (base / "images" / "out" / "mirror").is_dir() or not (base / "harness").is_dir():
            raise RuntimeError(f"--baseline {baseline}: not a checkout with built images (images/out/mirror)")
        sides.append(("before", base))
    samples: dict = {side: {_case_id(c): [] for c in cases} for side, _ in sides}
    failures: list[str] = []
    for i in range(boots):
        for case in cases:
            for side, checkout in (sides if i % 2 == 0 else sides[::-1]):
                run_dir = work / f"f-{side}-{_case_id(case)}-{i}"
                try:
                    got = _boot_sample(checkout, case, run_dir, work, side)
                except Exception as exc:
                    failures.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
                    print(f"bench: f boot failed: {failures[-1]}", flush=True)
                    continue
                samples[side][_case_id(case)].append(got)
                print(f"bench: f {side} {_case_id(case)} #{i}: SSH after {got['ssh_s']} s", flush=True)
    figures: dict = {}
    medians: dict = {}
    for side, _ in sides:
        for cid, got in samples[side].items():
            if not got:
                continue
            spans = sorted({k for g in got for k in g["spans"]}, key=[s[0] for s in record.SPANS].index)
            medians.setdefault(cid, {})[side] = {
                "ssh_s": round(statistics.median(g["ssh_s"] for g in got), 2),
                "spans": {k: _median_of(g["spans"].get(k) for g in got) for k in spans}}
            figures[f"{cid}.{side}_s"] = medians[cid][side]["ssh_s"]
    cuts = []
    for cid, m in medians.items():
        if "after" in m and "before" in m:
            cut = round(1 - m["after"]["ssh_s"] / m["before"]["ssh_s"], 3)
            figures[f"{cid}.cut"] = cut
            cuts.append(cut)
    figures["boot_to_ssh_cut"] = min(cuts) if len(cuts) == len(BOOT_CASES) else None
    # a partial run (--cases) leaves bench/results to the last full one: its files go to the work dir
    out = work if only_cases else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    (out / "boot_phases.md").write_text(boot_phases_table(medians) + "\n")
    if only_cases:
        print(f"bench: f measured {', '.join(medians)} only: its files are in {out}; bench/results keeps "
              "the last full run's", flush=True)
    return write_result("boot_phases", figures, {"samples": samples, "medians": medians}, info,
                        f"median of {boots} boots per case and side, TCG, 2 vCPUs, BIOS, the base scenario's "
                        f"Butane; before = {baseline or 'not measured'}; sides interleaved. "
                        f"Failed boots: {failures or 'none'}.", directory=out)


def boot_phases_table(medians: dict) -> str:
    """Markdown: per case and side, boot to SSH and its split (medians, seconds)."""
    names = [s[0] for s in record.SPANS]
    lines = ["| case | side | SSH | " + " | ".join(record.SPAN_LABELS[n] for n in names) + " |",
             "|---|---|---|" + "---|" * len(names)]
    for cid, m in medians.items():
        for side in ("before", "after"):
            if side in m:
                sp = m[side]["spans"]
                lines.append(f"| {cid} | {side} | {m[side]['ssh_s']} | "
                             + " | ".join(str(sp.get(n, "")) for n in names) + " |")
        if "before" in m and "after" in m:
            lines.append(f"| {cid} | cut | {round(100 * (1 - m['after']['ssh_s'] / m['before']['ssh_s']))}% |"
                         + " |" * len(names))
    return "\n".join(lines)


# ---------------------------------------------------------------- (b) failure detection

class _Tail(threading.Thread):
    """Tails console.log (the file QEMU writes, not the harness's socket) through a triage of its
    own; records when the line that ends the boot (a fatal line, or a stall line past its bound)
    first appears in the file."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path = path
        self.triage = Triage()
        self.seen = None
        self.stop = False

    def run(self):
        pos = 0
        while not self.stop and self.seen is None:
            try:
                with open(self.path, "rb") as f:
                    f.seek(pos)
                    data = f.read()
            except FileNotFoundError:
                data = b""
            if data:
                pos += len(data)
                self.triage.feed(data.decode(errors="replace"))
                if self.triage.failure is not None:
                    self.seen = time.monotonic()
            time.sleep(0.02)


_EMPTY = {"ignition": {"version": "3.3.0"}}
FAILURE_CASES = {
    # a fatal line: systemd starts the emergency shell
    "emergency": lambda i: BootRequest("fcos", "stable", "pxe-rootfs-url", "bios", ignition=_EMPTY,
                                       kargs=["systemd.unit=emergency.target"], name=f"bench.emergency-{i}"),
    # a stall: the live ISO's label never shows up; the start job's own counter passes 30 s
    "stall": lambda i: BootRequest("fcos", "stable", "iso", "bios", ignition=_EMPTY,
                                   kargs=["coreos.liveiso=LIVELAB-NONE"], name=f"bench.stall-{i}"),
}


def bench_failure_detection(work: Path, samples_n: int, info: dict) -> dict:
    opts = lab_options(str(work / "cache"))
    key = SessionKey(work / "ssh")
    accel = choose("auto")
    samples = []
    for kind, request in FAILURE_CASES.items():
        for i in range(samples_n):
            run_dir = work / f"b-{kind}-{i}"
            lb = LiveBoot(request(i), opts, run_dir, ssh_key=key, accel=accel)
            try:
                lb.prepare()
                pre_admit(lb)
                tail = _Tail(run_dir / "console.log")
                tail.start()
                lb.start()
                try:
                    lb.machine.wait_for_ssh()
                    raise RuntimeError(f"the {kind} boot reached SSH")
                except BootFailure as exc:
                    raised = time.monotonic()
                    reason = str(exc).splitlines()[0]
                tail.join(5)
                tail.stop = True
            finally:
                lb.close()
            if tail.seen is None:
                raise RuntimeError(f"BootFailure without a deciding line in console.log: {reason}")
            f = tail.triage.failure
            samples.append({"kind": kind, "sample": i, "latency_s": round(raised - tail.seen, 3), "reason": reason,
                            "line": f.trigger.line.text.strip() if f else None,
                            "detail": f.trigger.detail if f else None})
            print(f"bench: b {kind} sample {i}: {raised - tail.seen:.2f} s ({reason})", flush=True)
    stalls = [s["latency_s"] for s in samples if s["kind"] == "stall"]
    return write_result("failure_detection", {"failure_detection_s": max(s["latency_s"] for s in samples),
                                              "stall_detection_s": max(stalls) if stalls else None,
                                              "median_s": statistics.median(s["latency_s"] for s in samples)},
                        samples, info,
                        "emergency: systemd.unit=emergency.target; stall: an FCOS live ISO with "
                        "coreos.liveiso=LIVELAB-NONE (the start job's counter passes 30 s). From the line that "
                        "ends the boot appearing in console.log (tailed every 20 ms and triaged there) to "
                        "BootFailure raised by wait_for_ssh; each figure is the worst sample. A sample below 0 "
                        "means the harness (reading the console socket) raised before the 20 ms tail of the log "
                        "file saw the line.")


# ---------------------------------------------------------------- (c)+(d) downloads

def _gpgv_alone(path: str, keyring_asc: str, work: Path) -> float:
    """Seconds of a plain ``gpgv sig file`` over a downloaded artifact (its keyring prepared first)."""
    from harness.artifacts.verify import load_keyring
    ring = load_keyring(keyring_asc, work / "gpgv-floor")
    with tempfile.TemporaryDirectory(prefix="ll-gpgv-") as home:
        t0 = time.monotonic()
        subprocess.run(["gpgv", "--homedir", home, "--keyring", ring.path, path + ".sig", path], check=True,
                       capture_output=True)
        return time.monotonic() - t0

def _harness_fetch(m: SignedMirror, cache: Path):
    rel = artifacts.resolve("fcos", "stable", mirror=m.url, cache_dir=cache)
    m.server.reset()
    t0 = time.monotonic()
    files = artifacts.fetch(rel, kinds=["rootfs"], keyring=m.keyring, cache_dir=cache, progress=False)
    return files["rootfs"], time.monotonic() - t0


def _transfer(m: SignedMirror, path: str) -> dict:
    reqs = [r for r in m.server.requests if r["path"] == path and r["method"] == "GET"]
    r = reqs[-1]
    return {"bytes": r["sent"], "server_s": round(r["seconds"], 3),
            "mib_s": round(r["sent"] / max(r["seconds"], 1e-6) / (1 << 20), 1)}


def bench_downloads(work: Path, size: int, pairs: int, info: dict, which: str) -> list:
    out = []
    m = SignedMirror(work / "mirror", {"rootfs": size, "kernel": 4096, "initramfs": 4096})
    path = m.artifact_path("rootfs")
    try:
        if "c" in which:
            cache = work / "cache-c"
            la, cold_s = _harness_fetch(m, cache)
            cold_bytes = m.server.bytes_sent
            assert la.downloaded
            runs = []
            for _ in range(3):
                la2, warm_s = _harness_fetch(m, cache)
                runs.append({"warm_s": round(warm_s, 4), "bytes": m.server.bytes_sent,
                             "requests": len(m.server.requests), "downloaded": la2.downloaded})
            out.append(write_result("warm_cache", {
                "warm_verify_s": max(r["warm_s"] for r in runs),
                "warm_bytes_fetched": max(r["bytes"] for r in runs),
                "cold_s": round(cold_s, 2), "cold_bytes_fetched": cold_bytes},
                {"cold": {"s": round(cold_s, 2), "bytes": cold_bytes}, "warm": runs}, info,
                f"{size} byte signed artifact on a loopback mirror; fetch() timed (resolve() of the stream JSON "
                "is outside, done before each); bytes counted by the server; figure = worst of 3 warm runs."))
        if "d" in which:
            samples = []
            data = m.paths["rootfs"]
            subprocess.run(["cat", str(data)], stdout=subprocess.DEVNULL, check=True)   # page cache warm for both
            target = work / "curl.out"
            for i in range(pairs):
                cache = work / f"cache-d{i}"
                shutil.rmtree(cache, ignore_errors=True)

                def run_curl() -> tuple[float, dict]:
                    m.server.reset()
                    t0 = time.monotonic()
                    subprocess.run(["curl", "-sS", "-f", "-o", str(target), m.url + path], check=True)
                    curl_s = time.monotonic() - t0
                    c = _transfer(m, path)
                    c["wall_s"] = round(curl_s, 2)
                    target.unlink()
                    return curl_s, c

                if i % 2:                                   # alternate who goes first
                    curl_s, c = run_curl()
                la, fetch_s = _harness_fetch(m, cache)
                h = _transfer(m, path)
                h["fetch_wall_s"] = round(fetch_s, 2)
                if not i % 2:
                    curl_s, c = run_curl()
                gpgv_s = _gpgv_alone(la.path, m.keyring, work)
                shutil.rmtree(cache, ignore_errors=True)
                assert h["bytes"] == c["bytes"] == size, (h, c)
                samples.append({"pair": i, "harness": h, "curl": c, "gpgv_alone_s": round(gpgv_s, 2),
                                "ratio": round(h["mib_s"] / c["mib_s"], 4),
                                "wall_ratio": round(curl_s / fetch_s, 4),
                                "gpgv_floor_ratio": round(curl_s / gpgv_s, 4)})
                print(f"bench: d pair {i}: harness {h['mib_s']} MiB/s (fetch {fetch_s:.2f} s incl. gpgv), "
                      f"curl {c['mib_s']} MiB/s ({curl_s:.2f} s), gpgv alone on the file {gpgv_s:.2f} s", flush=True)
            out.append(write_result("download_throughput", {
                "download_throughput_ratio": round(statistics.median(s["ratio"] for s in samples), 3),
                "fetch_wall_ratio": round(statistics.median(s["wall_ratio"] for s in samples), 3),
                "gpgv_floor_ratio": round(statistics.median(s["gpgv_floor_ratio"] for s in samples), 3),
                "harness_mib_s": statistics.median(s["harness"]["mib_s"] for s in samples),
                "curl_mib_s": statistics.median(s["curl"]["mib_s"] for s in samples)},
                samples, info,
                "throughput = bytes / server-side seconds of the artifact's GET (first to last byte sent), "
                "same server and file for both clients (page cache warmed first), interleaved pairs alternating "
                "who goes first, median ratio. fetch_wall_ratio = curl wall / harness fetch() wall, the latter "
                "including the signature fetch and gpgv's pass (streamed beside the download). "
                "gpgv_floor_ratio = curl wall / `gpgv sig file` alone on the same file: the best fetch_wall_ratio "
                "any fetch that runs gpgv over the bytes can reach on this machine."))
    finally:
        m.close()
    return out


# ---------------------------------------------------------------- (e) matrix under xdist

def bench_matrix(work: Path, cells: str, info: dict) -> dict:
    run_dir = work / "e-runs"
    shutil.rmtree(run_dir, ignore_errors=True)
    # the session key made up front: two xdist workers creating it at once race (harness/ssh.py O_EXCL)
    SessionKey(run_dir / "ssh")
    env = dict(os.environ, BENCH_MATRIX_CELLS=cells)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", str(BENCH / "matrix_cells.py"),
           "--run-dir", str(run_dir), "--cache-dir", str(work / "cache")]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"matrix run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    cells_rec = [json.loads(p.read_text()) for p in run_dir.rglob("cell.json")]
    boots = [c["boot_s"] for c in cells_rec]
    eff = wall / (sum(boots) / 2)
    return write_result("matrix", {"matrix_efficiency": round(eff, 3), "wall_s": round(wall, 1),
                                   "sum_boot_s": round(sum(boots), 1), "workers": 2, "cells": len(cells_rec)},
                        cells_rec, info, "pytest -n 2 over 1-vCPU cells; boot = QEMU start -> SSH ready "
                        "(timings.json ssh_ready); wall = the whole pytest command (collection, artifacts, "
                        "admission queueing behind other VMs on the host included).")


# ---------------------------------------------------------------- summary

ROWS = [("a", "boot_to_ssh", "boot_to_ssh_ratio", "≤ 1.03"),
        ("b", "failure_detection", "failure_detection_s", "≤ 5 s"),
        ("b", "failure_detection", "stall_detection_s", "≤ 5 s"),
        ("c", "warm_cache", "warm_verify_s", "≤ 1 s"),
        ("c", "warm_cache", "warm_bytes_fetched", "0"),
        ("d", "download_throughput", "download_throughput_ratio", "≥ 0.9"),
        ("d", "download_throughput", "fetch_wall_ratio", "≥ 0.8"),
        ("d", "download_throughput", "gpgv_floor_ratio", "(ceiling of fetch_wall_ratio)"),
        ("e", "matrix", "matrix_efficiency", "≤ 1.25"),
        ("f", "boot_phases", "boot_to_ssh_cut", "≥ 0.30 (vs --baseline)")]


def summary() -> str:
    lines = ["| | figure | measured | target | samples | machine |", "|---|---|---|---|---|---|"]
    for letter, name, key, target in ROWS:
        path = RESULTS / f"{name}.json"
        if not path.exists():
            lines.append(f"| {letter} | `{key}` | not measured | {target} | | |")
            continue
        rec = json.loads(path.read_text())
        smp = rec["samples"]
        n = len(smp) if isinstance(smp, list) else \
            sum(len(v) for side in smp["samples"].values() for v in side.values()) if "medians" in smp else \
            len(smp.get("warm", []))
        mach = rec["machine"]
        lines.append(f"| {letter} | `{key}` | {rec['figures'].get(key)} | {target} | {n} | "
                     f"{mach.get('nproc')} CPUs, {mach.get('accel')}, {rec['measured_at']} |")
    return "\n".join(lines)


README_BEGIN = "<!-- bench:begin (bench/run.py rewrites this table) -->"
README_END = "<!-- bench:end -->"


def update_readme(table: str) -> None:
    """Put the table in README.md's "## Benchmarks" section (appended at the end the first time)."""
    readme = ROOT / "README.md"
    text = readme.read_text() if readme.exists() else ""
    block = f"{README_BEGIN}\n{table}\n{README_END}"
    if README_BEGIN in text and README_END in text:
        head, rest = text.split(README_BEGIN, 1)
        text = head + block + rest.split(README_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## Benchmarks\n\n`make bench` (`bench/run.py`; raw samples in " \
            "`bench/results/*.json`).\n\n" + block + "\n"
    readme.write_text(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--only", default="a,b,c,d,e,f", help="comma list of a,b,c,d,e,f")
    ap.add_argument("--pairs", type=int, default=5, help="(a) harness/bare pairs")
    ap.add_argument("--failure-samples", type=int, default=2, help="(b) boots of each failure kind")
    ap.add_argument("--size", type=int, default=GIB, help="(c,d) artifact size in bytes")
    ap.add_argument("--download-pairs", type=int, default=3, help="(d) harness/curl pairs")
    ap.add_argument("--cells", default="fcos.stable,fcos.testing,fcos.next,fcos.stable-2", help="(e) matrix cells")
    ap.add_argument("--boots", type=int, default=3, help="(f) boots per case and side")
    ap.add_argument("--cases", help="(f) a comma list of case ids to measure (default: all three)")
    ap.add_argument("--baseline", metavar="CHECKOUT", help="(f) also boot with this checkout (its harness "
                    "and its built images/out), interleaved: the before of a before/after")
    ap.add_argument("--no-readme", action="store_true", help="do not update README.md's Benchmarks table")
    ap.add_argument("--work", help="scratch directory (default: a temp dir, removed at the end)")
    args = ap.parse_args(argv)
    which = {x.strip() for x in args.only.split(",") if x.strip()}
    bad = which - set("abcdef")
    if bad:
        ap.error(f"unknown benchmark(s) {', '.join(sorted(bad))}: expected a,b,c,d,e,f")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="livelab-bench-", dir="/var/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    print(f"bench: {', '.join(sorted(which))} in {work}; {info['nproc']} CPUs, accel {info['accel']}", flush=True)
    failed = []
    steps = [("c", lambda: bench_downloads(work, args.size, args.download_pairs, info, "".join(which & {"c", "d"}))),
             ("b", lambda: bench_failure_detection(work, args.failure_samples, info)),
             ("a", lambda: bench_boot_to_ssh(work, args.pairs, info)),
             ("e", lambda: bench_matrix(work, args.cells, info)),
             ("f", lambda: bench_boot_phases(work, args.boots, info, args.baseline,
                                                    args.cases.split(",") if args.cases else None))]
    try:
        for letter, fn in steps:
            if letter == "c" and not which & {"c", "d"}:
                continue
            if letter != "c" and letter not in which:
                continue
            try:
                fn()
            except Exception as exc:
                failed.append(letter)
                print(f"bench: {letter} failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    table = summary()
    (RESULTS / "summary.md").write_text(table + "\n")
    print(table)
    if not args.no_readme:
        update_readme(table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
