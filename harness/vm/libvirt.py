"""The libvirt backend: the same ``Machine`` interface, with libvirt running QEMU.

``--backend libvirt [--libvirt-uri URI]`` (default ``qemu:///system``; ``scripts/setup-libvirt.sh``
brings that daemon up) makes ``LiveBoot`` use ``LibvirtMachine``.  The domain is generated from
the same ``VMSpec`` as the QEMU command line (``domain_xml``, a pure function, unit-tested) and
started transient (``createXML``, paused, then resumed once the console is attached), named
``livelab-<name>-<pytest pid>``.

What is the same as the QEMU backend
  - Networking: no libvirt ``<interface>`` and no libvirt network (no bridge, no NAT, no host
    address outside loopback).  The user-mode netdev and the NIC are passed through
    (``<qemu:commandline>``) with exactly the QEMU backend's strings (``qemu.netdev_arg`` /
    ``qemu.nic_arg``): ``restrict=on``, QEMU's TFTP, ``hostfwd`` on 127.0.0.1 only, the guest's
    HTTP reached through ``guestfwd=...-cmd:`` relaying to the harness on 127.0.0.1.
  - The serial console is a unix socket in bind mode at ``run_dir/console.sock`` with a
    ``<log>`` to ``run_dir/console.log`` (written by virtlogd), so ``harness.console`` is unchanged.
  - Disks are the qcow2 overlays ``Machine`` creates, or an image as it is (the ISO of
    ``iso-as-disk``: raw, ``<readonly/>``); a disk's sector size is its ``<blockio>``; virtio-serial
    ports write to files in the run dir; the CD is a SATA ``ide-cd`` as with QEMU.
  - QMP: libvirt owns the monitor; ``LibvirtQMP`` sends QMP commands through
    ``virDomainQemuMonitorCommand`` (``cmd``/``cmd_raw``/``close`` as ``qemu.qmp``'s legacy
    client).  libvirt marks such domains "tainted: custom-monitor"; that is expected.  Device
    ids seen by QMP are libvirt aliases: the CD is ``ua-cd0dev`` (``eject``/``change_media``
    use it), disk i ``ua-disk<i>dev`` (``unplug_disk``; libvirt gives a q35 virtio disk a PCIe
    root port of its own, so it can be unplugged as with QEMU).

What differs
  - libvirtd, not the test, is QEMU's parent, so ``PR_SET_PDEATHSIG`` cannot tie QEMU to the test.
    Two things stop a domain outliving a test killed with SIGKILL: (1) a watchdog process
    (``setsid``, one per running domain, a few lines of Python over libvirt) that destroys the
    domain within about a second once the owning process is gone, and exits by itself when the
    domain ends; (2) the QEMU pid libvirt started is registered like a QEMU-backend VM, so
    ``runtime.reap_stale`` at the next session start kills it (libvirt then drops the transient
    domain) should the watchdog itself have been killed.
  - ``stop``/``kill`` are ``virDomainDestroy`` (SIGTERM, then SIGKILL after libvirt's grace).
  - QEMU's own stderr/log is ``/var/log/libvirt/qemu/<domain>.log``; the domain XML that was
    started is saved as ``run_dir/domain.xml`` and the QEMU command line libvirt built (read from
    ``/proc/<pid>/cmdline``) is appended to ``qemu-cmdline.txt``.

Remote URIs (``qemu+ssh://host/system``)
  The backend refuses them with a clear error instead of timing out: everything the harness
  attaches to a VM is local to the machine running pytest -- the console unix socket, the SSH
  ``hostfwd`` on 127.0.0.1, the HTTP server the guest reaches through ``guestfwd`` (its relay
  connects to 127.0.0.1 *on the QEMU host*), QEMU's TFTP directory, the ISO/kernel/qcow2 paths in
  the run dir and cache.  To spread a run over hosts, run the tests *on* each host: pytest-xdist
  workers over SSH (``pytest --tx ssh=host --dist load``, ``livelab matrix --hosts ssh=host1,ssh=host2``;
  ``harness.hosts``), each with its local ``qemu:///system``, their files coming home on their
  reports (``harness.attachments``); or one ``livelab matrix`` shard per host and ``livelab matrix
  merge``.  ``LIVELAB_LIBVIRT_ALLOW_REMOTE=1``
  skips the refusal for setups that provide all of the above on the remote host themselves
  (shared file system at the same paths, SSH tunnels for the ports and the console socket).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .. import poll, runtime
from ..atomic import atomic_output, atomic_write
from ..console import Console
from ..errors import LivelabError
from ..ssh import SessionKey
from .accel import TCG_CPU, Accel, Timeouts, qemu_binary, tcg_topology
from .machine import Machine
from .spec import (
    COMBINED_INITRD,
    DISK_ID,
    UEFI_FIRMWARE,
    VARS_FILE,
    VMSpec,
    booted_disk,
    netdev_arg,
    nic_arg,
)

DEFAULT_URI = "qemu:///system"
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
CD_ALIAS = "ua-cd0dev"          # the QMP device id of the CD (libvirt user alias)
DISK_ALIAS = "ua-" + DISK_ID    # the QMP device id of spec.disks[i]
NIC_PCI_SLOT = "0x10"           # the pass-through NIC's slot on the root bus, clear of libvirt's
LOCAL_HOSTS = ("", "localhost", "127.0.0.1", "::1")

ET.register_namespace("qemu", QEMU_NS)


def _libvirt():
    try:
        import libvirt
        import libvirt_qemu
    except ImportError as e:
        raise LivelabError("the libvirt backend needs libvirt-python: pip install 'livelab[libvirt]' "
                           "(and libvirt-dev, pkg-config to build it)") from e
    return libvirt, libvirt_qemu


def is_local_uri(uri: str) -> bool:
    return (urlparse(uri).hostname or "") in LOCAL_HOSTS


def domain_name(name: str, pid: int | None = None) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[:60] or "vm"
    return f"livelab-{safe}-{os.getpid() if pid is None else pid}"


def passthrough_args(spec: VMSpec, accel: Accel) -> list[str]:
    """QEMU arguments libvirt cannot express: the restricted user netdev and its NIC, fw_cfg
    entries outside ``opt/`` (libvirt's ``<sysinfo type='fwcfg'>`` takes only ``opt/`` names),
    and the spec's own ``extra_args``."""
    # libvirt addresses its own PCI devices from slot 1 up: the NIC gets a slot of its own
    bus = "pcie.0" if spec.machine.startswith("q35") else "pci.0"
    args = ["-netdev", netdev_arg(spec), "-device", f"{nic_arg(spec)},bus={bus},addr={NIC_PCI_SLOT}"]
    for name, path in spec.fw_cfg.items():
        if not name.startswith("opt/"):
            args += ["-fw_cfg", f"name={name},file={path}"]
    return args + list(spec.extra_args)


def _sub(parent: ET.Element, tag: str, text: object = None, **attrs) -> ET.Element:
    el = ET.SubElement(parent, tag, {k.rstrip("_"): str(v) for k, v in attrs.items()})
    if text is not None:
        el.text = str(text)
    return el


def domain_xml(spec: VMSpec, run_dir: Path, accel: Accel, name: str | None = None,
               emulator: str | None = None) -> str:
    """The libvirt domain XML for ``spec`` (pure: no side effects)."""
    rd = Path(run_dir)
    dom = ET.Element("domain", {"type": "kvm" if accel.name == "kvm" else "qemu"})
    _sub(dom, "name", name or domain_name(spec.name))
    _sub(dom, "title", f"livelab {spec.name}")
    _sub(dom, "memory", spec.memory_mib, unit="MiB")
    _sub(dom, "vcpu", spec.cpus)
    if any(n.startswith("opt/") for n in spec.fw_cfg):
        sysinfo = _sub(dom, "sysinfo", type="fwcfg")
        for n, path in spec.fw_cfg.items():
            if n.startswith("opt/"):
                _sub(sysinfo, "entry", name=n, file=path)
    os_ = _sub(dom, "os")
    _sub(os_, "type", "hvm", arch="x86_64", machine=spec.machine)
    if spec.firmware == "bios":
        _sub(os_, "bios", useserial="yes")   # SeaBIOS/iPXE on the serial console, as -nographic
    if spec.firmware in UEFI_FIRMWARE:
        code, template = UEFI_FIRMWARE[spec.firmware]
        secure = {"secure": "yes"} if spec.firmware == "uefi-secure" else {}
        _sub(os_, "loader", code, readonly="yes", type="pflash", **secure)
        _sub(os_, "nvram", rd / VARS_FILE, template=template)
    elif spec.firmware != "bios":
        raise LivelabError(f"unknown firmware {spec.firmware!r}")
    if spec.boot == "kernel" or spec.kernel:
        if not spec.kernel:
            raise LivelabError("direct kernel boot needs a kernel")
        _sub(os_, "kernel", spec.kernel)
        if len(spec.initrds) == 1:
            _sub(os_, "initrd", spec.initrds[0])
        elif spec.initrds:
            _sub(os_, "initrd", rd / COMBINED_INITRD)   # written by LibvirtMachine before start
        if spec.append:
            _sub(os_, "cmdline", spec.append)
    feats = _sub(dom, "features")
    _sub(feats, "acpi")
    _sub(feats, "apic")
    if spec.firmware == "uefi-secure":
        _sub(feats, "smm", state="on")     # the secure flash's variables are written from SMM only
    if accel.name == "kvm":
        _sub(dom, "cpu", mode="host-passthrough", check="none")
    else:
        # as accel.TCG_CPU: no nested virtualisation flags under TCG
        cpu = _sub(dom, "cpu", mode="custom", match="exact", check="none")
        model, *flags = TCG_CPU.split(",")
        _sub(cpu, "model", model, fallback="forbid")
        _sub(cpu, "topology", **tcg_topology(spec.cpus))
        for flag in flags:
            _sub(cpu, "feature", policy="require" if flag[0] == "+" else "disable", name=flag[1:])
    _sub(dom, "clock", offset="utc")
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "restart")
    _sub(dom, "on_crash", "destroy")
    # boot order: the spec's boot device first (the NIC's bootindex=1 is in its pass-through
    # string); every other medium gets an order after it, else libvirt's default <boot dev='hd'/>
    # would put bootindex=1 on the first disk as well
    order = iter(range(2, 100))
    dev = _sub(dom, "devices")
    if emulator:
        _sub(dev, "emulator", emulator)
    if spec.cdrom:
        cd = _sub(dev, "disk", type="file", device="cdrom")
        _sub(cd, "driver", name="qemu", type="raw")
        _sub(cd, "source", file=spec.cdrom)
        _sub(cd, "target", dev="sda", bus="sata")
        _sub(cd, "readonly")
        _sub(cd, "boot", order=1 if spec.boot == "cdrom" else next(order))
        _sub(cd, "alias", name=CD_ALIAS)
    boot_disk = booted_disk(spec)
    for i, disk in enumerate(spec.disks):
        d = _sub(dev, "disk", type="file", device="disk")
        if disk.image:   # as it is, read-only (libvirt gives a q35 virtio disk a hot-pluggable root port)
            _sub(d, "driver", name="qemu", type="raw")
            _sub(d, "source", file=disk.image)
        else:
            _sub(d, "driver", name="qemu", type="qcow2", discard="unmap")
            _sub(d, "source", file=rd / disk.file_name)
        _sub(d, "target", dev=f"vd{chr(ord('a') + i)}", bus="virtio")
        if disk.image:
            _sub(d, "readonly")
        if disk.serial:
            _sub(d, "serial", disk.serial)
        if disk.sector != 512:
            _sub(d, "blockio", logical_block_size=disk.sector, physical_block_size=disk.sector)
        _sub(d, "boot", order=1 if disk is boot_disk else next(order))
        _sub(d, "alias", name=DISK_ALIAS.format(i))
    _sub(dev, "controller", type="usb", model="none")
    # serial console: a socket for pexpect, every byte also logged (by virtlogd)
    ser = _sub(dev, "serial", type="unix")
    _sub(ser, "source", mode="bind", path=runtime.socket_dir(rd) / "console.sock")
    _sub(ser, "log", file=rd / "console.log", append="on")
    tgt = _sub(ser, "target", type="isa-serial", port=0)
    _sub(tgt, "model", name="isa-serial")
    for port in spec.virtio_ports:
        ch = _sub(dev, "channel", type="file")
        _sub(ch, "source", path=rd / f"port-{port}", append="off")   # truncated each start, as QEMU's
        _sub(ch, "target", type="virtio", name=port)
    rng = _sub(dev, "rng", model="virtio")
    _sub(rng, "backend", "/dev/urandom", model="random")
    _sub(dev, "memballoon", model="none")
    cmdline = ET.SubElement(dom, f"{{{QEMU_NS}}}commandline")
    for arg in passthrough_args(spec, accel):
        ET.SubElement(cmdline, f"{{{QEMU_NS}}}arg", {"value": arg})
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode") + "\n"


def xml_passthrough_args(xml: str) -> list[str]:
    """The ``<qemu:commandline>`` arguments of a domain XML (for isolation checks)."""
    root = ET.fromstring(xml)
    return [a.get("value", "") for a in root.iter(f"{{{QEMU_NS}}}arg")]


def xml_isolation_problems(xml: str) -> list[str]:
    """``qemu.isolation_problems`` for a domain XML, plus: no libvirt ``<interface>`` at all."""
    from .spec import isolation_problems
    root = ET.fromstring(xml)
    problems = [f"libvirt <interface type={i.get('type')!r}> present" for i in root.iter("interface")]
    return problems + isolation_problems(xml_passthrough_args(xml))


def combine_initrds(paths: list[str], out: Path) -> Path:
    """Concatenate initrds (each padded to 4 bytes, as boot loaders do) into one file."""
    out = Path(out)
    if out.exists() and all(os.path.getmtime(p) <= out.stat().st_mtime for p in paths):
        return out
    with atomic_output(out, fsync=False) as w:
        for p in paths:
            with open(p, "rb") as r:
                while True:
                    chunk = r.read(1 << 20)
                    if not chunk:
                        break
                    w.write(chunk)
            w.write(b"\0" * (-w.tell() % 4))
    return out


class LibvirtQMP:
    """QMP through libvirt (``virDomainQemuMonitorCommand``), shaped like qemu.qmp's legacy client."""

    def __init__(self, dom: Any):   # libvirt.virDomain (libvirt-python has no type information)
        self.dom = dom

    def cmd_raw(self, name: str, args: dict[str, object] | None = None) -> dict:
        _, libvirt_qemu = _libvirt()
        if self.dom is None:
            raise LivelabError("QMP: the domain is closed")
        msg: dict = {"execute": name}
        if args:
            msg["arguments"] = args
        return json.loads(libvirt_qemu.qemuMonitorCommand(self.dom, json.dumps(msg), 0))

    def cmd(self, name: str, **args) -> object:
        reply = self.cmd_raw(name, args or None)
        if "error" in reply:
            err = reply["error"]
            raise LivelabError(f"QMP {name}: {err.get('class')}: {err.get('desc')}")
        return reply.get("return")

    def close(self) -> None:
        self.dom = None


class _DomainProcess:
    """Stands in for ``Machine.proc``: the QEMU that libvirt started for the domain."""

    def __init__(self, machine: LibvirtMachine, pid: int | None):
        self.m = machine
        self.pid = pid
        self.start = runtime._proc_start_time(pid) if pid else None
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        if self.pid and is_local_uri(self.m.uri):
            alive = runtime.pid_alive(self.pid, self.start)
        else:
            alive = self.m._domain_active()
        if not alive:
            self.returncode = 0
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        def ended() -> int:
            rc = self.poll()
            if rc is None:
                raise poll.Retry("domain running")
            return rc

        def expired(msg: str) -> Exception:   # as subprocess.Popen.wait says it
            return subprocess.TimeoutExpired("libvirt domain", timeout or 0)

        return poll.poll(ended, timeout, what="libvirt domain to end", interval=0.1, error=expired)

    def kill(self) -> None:
        self.m._destroy()


# The watchdog: destroys the domain once its owner is gone; exits when the domain ends.
_WATCHDOG = r"""
import os, sys, time, libvirt
uri, uuid, owner, owner_start = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def alive():
    try:
        with open("/proc/%d/stat" % owner) as f:
            return f.read().rsplit(")", 1)[1].split()[19] == owner_start
    except OSError:
        return False
libvirt.registerErrorHandler(lambda *a: None, None)
conn = None
while True:
    try:
        conn = conn or libvirt.open(uri)
        dom = conn.lookupByUUIDString(uuid)
        if not dom.isActive():
            sys.exit(0)
        if not alive():
            print("owner %d is gone: destroying %s" % (owner, dom.name()), flush=True)
            dom.destroy()
            sys.exit(0)
    except libvirt.libvirtError as e:
        if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            sys.exit(0)
        conn = None   # libvirtd restarting: try again
    time.sleep(1)
"""

_names_in_use: set = set()


class LibvirtMachine(Machine):
    """``Machine`` on libvirt: ``LibvirtMachine(spec, run_dir, accel, uri="qemu:///system")``."""

    def __init__(self, spec: VMSpec, run_dir: Path, accel: Accel, timeouts: Timeouts | None = None,
                 ssh_key: SessionKey | None = None, admission: runtime.Admission | None = None,
                 ssh_user: str = "core", uri: str = DEFAULT_URI):
        super().__init__(spec, run_dir, accel, timeouts, ssh_key=ssh_key, admission=admission, ssh_user=ssh_user)
        _libvirt()
        self.uri = uri or DEFAULT_URI
        if not is_local_uri(self.uri) and os.environ.get("LIVELAB_LIBVIRT_ALLOW_REMOTE") != "1":
            raise LivelabError(
                f"libvirt URI {self.uri} is remote: the console socket, SSH port, HTTP server, TFTP dir and "
                "disk paths of a livelab VM are local to this machine. Run the tests on that host with "
                "qemu:///system instead: pytest --tx ssh=HOST, or livelab matrix --hosts ssh=HOST "
                "(see harness/hosts.py)")
        base = domain_name(spec.name)
        name, n = base, 1
        while name in _names_in_use:
            n += 1
            name = f"{base}-{n}"
        _names_in_use.add(name)
        self.domain_name = name
        self.conn: Any = None          # libvirt.virConnect (libvirt-python has no type information)
        self.dom: Any = None           # libvirt.virDomain
        self.watchdog: subprocess.Popen | None = None

    # ------------------------------------------------------------------ XML and command line
    def xml(self) -> str:
        emulator = qemu_binary() if is_local_uri(self.uri) else None
        return domain_xml(self.spec, self.run_dir, self.accel, name=self.domain_name, emulator=emulator)

    def command(self) -> list[str]:
        """The QEMU command line: the real one while running (``/proc/<pid>/cmdline``), else the
        pass-through arguments (what ``isolation_problems`` has to judge)."""
        pid = self.proc.pid if self.proc is not None else None
        if pid and is_local_uri(self.uri):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
            except OSError:
                pass
        return passthrough_args(self.spec, self.accel)

    def live_xml(self) -> str:
        return self.dom.XMLDesc(0)

    # ------------------------------------------------------------------ lifecycle
    def _prepare_disks(self) -> None:
        super()._prepare_disks()
        if (self.spec.boot == "kernel" or self.spec.kernel) and len(self.spec.initrds) > 1:
            combine_initrds(self.spec.initrds, self.run_dir / COMBINED_INITRD)

    def _connection(self):
        libvirt, _ = _libvirt()
        if self.conn is None or not self.conn.isAlive():
            try:
                self.conn = libvirt.open(self.uri)
            except libvirt.libvirtError as e:
                raise LivelabError(f"cannot connect to libvirt at {self.uri}: {e} "
                                   "(scripts/setup-libvirt.sh starts libvirtd for qemu:///system)") from e
        return self.conn

    def start(self) -> None:
        """Create the transient domain paused, attach console, register, resume."""
        libvirt, _ = _libvirt()
        self._admit_and_prepare()
        (runtime.socket_dir(self.run_dir) / "console.sock").unlink(missing_ok=True)
        xml = self.xml()
        self._starts += 1
        atomic_write(self.run_dir / "domain.xml", xml, fsync=False)
        self.write_vm_json({"libvirt": {"uri": self.uri, "domain": self.domain_name}})
        conn = self._connection()
        self._reap_own_leftover(conn)
        try:
            self.dom = conn.createXML(xml, libvirt.VIR_DOMAIN_START_PAUSED)
        except libvirt.libvirtError as e:
            raise LivelabError(f"{self.spec.name}: libvirt refused the domain: {e}\n"
                               f"(domain XML: {self.run_dir / 'domain.xml'})") from e
        try:
            self.proc = _DomainProcess(self, self._qemu_pid())
            if self.proc.pid and is_local_uri(self.uri):
                runtime.register_vm(self.proc.pid, self.spec.name, self.run_dir)
            self._start_watchdog()
            with open(self.run_dir / "qemu-cmdline.txt", "a") as f:
                f.write(f"# start {self._starts}, accel {self.accel.name} ({self.accel.reason}), "
                        f"libvirt {self.uri} domain {self.domain_name}\n"
                        f"{subprocess.list2cmdline(self.command())}\n")
            self.qmp = LibvirtQMP(self.dom)
            self._new_boot()
            self.console = Console(str(runtime.socket_dir(self.run_dir) / "console.sock"), self.tap,
                                   name=self.spec.name, alive=self._dead_reason)
            self.dom.resume()
        except BaseException:
            self.kill()
            raise

    def _reap_own_leftover(self, conn: Any) -> None:   # conn: libvirt.virConnect
        """A domain of this name can only be one this process left behind: destroy it."""
        libvirt, _ = _libvirt()
        with contextlib.suppress(libvirt.libvirtError):
            conn.lookupByName(self.domain_name).destroy()

    def _qemu_pid(self) -> int | None:
        if not is_local_uri(self.uri):
            return None
        for path in (f"/run/libvirt/qemu/{self.domain_name}.pid",
                     f"{os.environ.get('XDG_RUNTIME_DIR', '')}/libvirt/qemu/run/{self.domain_name}.pid"):
            try:
                return int(Path(path).read_text().strip())
            except (OSError, ValueError):
                continue
        try:   # the status XML (<domstatus pid=...>) of qemu:///system
            return int(ET.parse(f"/run/libvirt/qemu/{self.domain_name}.xml").getroot().get("pid", ""))
        except (OSError, ET.ParseError, TypeError, ValueError):
            return None

    def _start_watchdog(self) -> None:
        owner = runtime.owner_record()
        log = open(self.run_dir / "libvirt-watchdog.log", "ab")  # noqa: SIM115 -- handed to the watchdog, closed below
        try:
            self.watchdog = subprocess.Popen(
                [sys.executable, "-c", _WATCHDOG, self.uri, self.dom.UUIDString(),
                 str(owner["owner_pid"]), str(owner["owner_start"])],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True)
        finally:
            log.close()

    def _stop_watchdog(self) -> None:
        if self.watchdog is None:
            return
        if self.watchdog.poll() is None:
            self.watchdog.send_signal(signal.SIGTERM)
        try:
            self.watchdog.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.watchdog.kill()
            self.watchdog.wait()
        self.watchdog = None

    def _domain_active(self) -> bool:
        libvirt, _ = _libvirt()
        if self.dom is None:
            return False
        try:
            return bool(self.dom.isActive())
        except libvirt.libvirtError:
            return False   # a transient domain that ended no longer exists

    def _destroy(self) -> None:
        libvirt, _ = _libvirt()
        if self.dom is None:
            return
        with contextlib.suppress(libvirt.libvirtError):     # already gone
            self.dom.destroy()

    def _dead_reason(self) -> str | None:
        if self.proc is None:
            return "the libvirt domain is not running"
        if self.proc.poll() is None:
            return None
        log = Path(f"/var/log/libvirt/qemu/{self.domain_name}.log")
        lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
        lines = [line for line in lines if not line.startswith(("LC_ALL=", "/usr/bin/qemu", "-"))]
        return f"libvirt domain {self.domain_name} ended: {' | '.join(lines[-3:]) or 'no message'}"

    def stop(self) -> None:
        """Power off: destroy the domain (QEMU gets SIGTERM, then SIGKILL) and release it."""
        self.kill()

    def kill(self) -> None:
        self._close_channels()
        self._destroy()
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
            if self.proc.pid:
                runtime.unregister_vm(self.proc.pid)
            self.proc = None
        self.dom = None
        self._stop_watchdog()
        if self.ssh is not None:
            self.ssh.close()
        self.write_timings()

    def close(self) -> None:
        super().close()
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None
        _names_in_use.discard(self.domain_name)

    # ------------------------------------------------------------------ media
    CD_ID = CD_ALIAS   # Machine.eject / change_media / tray_open use the libvirt alias
    DISK_ID = DISK_ALIAS   # Machine.unplug_disk
