"""One live boot, end to end: artifacts -> Ignition -> loopback services -> boot media -> Machine.

``LiveBoot`` is the plain class behind the pytest fixtures and ``livelab boot``::

    opts = LabOptions(mirror="http://127.0.0.1:8000", keyring="images/out/keyring.gpg")
    with LiveBoot(BootRequest("fcos", "stable", "pxe", "bios", butane=...), opts, run_dir) as vm:
        vm.start()
        vm.machine.wait_for_ssh()
        vm.machine.succeed("test -e /run/ostree-live")

Every input is checked before any VM starts (memory minimum, method for the OS, a configuration
that cannot boot (``vocab.refusal``), Ignition spec the target reads, a root-disk config the VM's
disks cannot hold, ISO embed areas); the same code
path serves real FCOS/Flatcar and the project's stand-in mirror: only data differs (``--mirror``,
``--keyring``, the spec table).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import artifacts as _artifacts
from .artifacts import specs as _specs
from .artifacts.model import LocalArtifact, Release
from .atomic import atomic_write
from .boot.methods import ISO_DISK
from .errors import LivelabError, required
from .serve import HttpServer, guest_url
from .ssh import SessionKey
from .vm.accel import Accel, Timeouts, choose, qemu_binary
from .vm.machine import Machine
from .vm.spec import COMPLETION_PORT, COMPLETION_TOKEN, LIVEISO_SUCCESS_PORT, Disk, VMSpec
from .vocab import (
    DISK_SUFFIX,
    ISO_METHODS,
    TestId,
    check_firmware,
    check_method,
    check_sector,
    check_stream,
    memory_minimum,
    refusal,
)

log = logging.getLogger(__name__)
CONSOLE_KARG = "console=ttyS0,115200"


@dataclass
class LabOptions:
    """Session-wide settings (pytest options / CLI flags)."""
    mirror: str | None = None
    keyring: str | None = None
    insecure: bool = False
    offline: bool = False
    cache_dir: str | None = None
    accel: str = "auto"
    extend_timeout: float = 0.0
    ignition_spec_table: str | None = None
    ignition_max_spec: str | None = None
    ignition_validate: str | None = None  # the ignition-validate to use first (else PATH's)
    below_minimum: bool = False
    metadata: str | None = None
    cpus: int = 2                         # vCPUs of a VM whose request names none
    backend: str = "qemu"                 # qemu | libvirt (harness/vm/libvirt.py)
    libvirt_uri: str | None = None     # libvirt backend: default qemu:///system


@dataclass
class BootRequest:
    os: str
    stream: str
    method: str
    firmware: str = "bios"
    memory_mib: int | None = None
    cpus: int | None = None            # None: the session default (LabOptions.cpus)
    version: str | None = None
    butane: str | None = None          # Butane text
    butane_dir: str | None = None      # -d for local file contents
    ignition: dict | None = None       # or an Ignition config
    user_config: bool = True              # False: boot with no user Ignition config at all
    completion: bool = True               # add the completion-token unit (needs a config)
    ssh: bool = True                      # add the session SSH key for user core
    kargs: list[str] = field(default_factory=list)         # extra kernel arguments, every boot
    first_boot_only: list[str] = field(default_factory=list)  # kernel arguments of boot 1 only
    without_kargs: list[str] = field(default_factory=list)    # harness defaults to leave out (by key)
    disks: list[Disk] = field(default_factory=list)
    sector: int = 512                  # sector size of every virtio disk: its disks, iso-as-disk's ISO (4096: .4k)
    oem_config: dict | None = None     # Flatcar: /usr/share/oem/config.ign from an extra initrd
    forwards: list[int] = field(default_factory=list)        # guest TCP ports reachable on 127.0.0.1
    ssh_key_placeholder: str | None = None   # this text of the Butane becomes the session's public key
    name: str | None = None

    @property
    def config_id(self) -> str:
        """``<os>.<stream>.<method>.<firmware>``."""
        return str(TestId(self.os, self.stream, self.method, self.firmware))

    @property
    def test_id(self) -> str:
        """The configuration's id, with the disk suffix of 4Kn disks (``fcos.stable.iso.uefi.4k``)."""
        return str(TestId(self.os, self.stream, self.method, self.firmware, disk=DISK_SUFFIX.get(self.sector)))


def artifact_kinds(os_id: str, method: str) -> list[str]:
    """The artifacts a boot of ``os_id`` via ``method`` downloads."""
    if os_id == "flatcar":
        return ["kernel", "initramfs"]
    if method in ISO_METHODS:
        return ["iso"]
    return ["kernel", "initramfs", "rootfs"]


def completion_unit() -> dict:
    return {
        "name": "livelab-boot-done.service",
        "enabled": True,
        "contents": ("[Unit]\nDescription=livelab: report boot completion on a virtio port\n"
                     "After=multi-user.target sshd.service\n"
                     f"ConditionPathExists=/dev/virtio-ports/{COMPLETION_PORT}\n\n"
                     "[Service]\nType=oneshot\n"
                     f"ExecStart=/bin/sh -c 'echo {COMPLETION_TOKEN} > /dev/virtio-ports/{COMPLETION_PORT}'\n\n"
                     "[Install]\nWantedBy=multi-user.target\n"),
    }


def harness_snippet(spec_version: str, ssh_public: str | None, completion: bool) -> dict:
    """The harness's additions to a user config: the session SSH key and the completion unit."""
    cfg: dict = {"ignition": {"version": spec_version}}
    if ssh_public:
        cfg["passwd"] = {"users": [{"name": "core", "sshAuthorizedKeys": [ssh_public]}]}
    if completion:
        cfg["systemd"] = {"units": [completion_unit()]}
    return cfg


def _core_keys(config: dict | None) -> list[str]:
    """The SSH keys a config authorizes for user core."""
    users = ((config or {}).get("passwd") or {}).get("users") or []
    return [k for u in users if isinstance(u, dict) and u.get("name") == "core"
            for k in (u.get("sshAuthorizedKeys") or [])]


class LiveBoot:
    """Prepares and owns one VM of a live boot (and its loopback services)."""

    def __init__(self, request: BootRequest, options: LabOptions, run_dir: Path,
                 ssh_key: SessionKey | None = None, accel: Accel | None = None):
        self.req = request
        self.opts = options
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.ssh_key = ssh_key
        self.name = request.name or request.test_id
        self.http: HttpServer | None = None
        self.machine: Machine | None = None
        self.release: Release | None = None
        self.files: dict[str, LocalArtifact] = {}
        self.config: dict | None = None
        self.boot_kargs: list[list[str]] = []
        self._validate_request()        # every input is checked before the accelerator probe starts a guest
        self.accel = accel or choose(options.accel)
        self.timeouts = Timeouts.for_accel(self.accel, options.extend_timeout)

    # ------------------------------------------------------------------ checks before boot
    def _validate_request(self) -> None:
        r = self.req
        check_stream(r.os, r.stream)
        check_method(r.os, r.method)
        check_firmware(r.firmware)
        check_sector(r.sector)
        why = refusal(r.method, r.firmware, r.sector)
        if why:
            raise LivelabError(f"{r.test_id}: refused before boot: {why}")
        for d in r.disks:
            if d.sector not in (512, r.sector):
                raise LivelabError(f"disk {d.name}: sector {d.sector}, but this boot's disks have {r.sector}-byte "
                                   f"sectors: a boot's sector size is one for all its disks (BootRequest.sector, "
                                   f"its id's disk suffix)")
            if d.image or (r.method == "iso-as-disk" and d.name == ISO_DISK):
                raise LivelabError(f"disk {d.name}: the live ISO's disk is the boot method's (iso-as-disk, disk "
                                   f"{ISO_DISK!r}), not a request's")
        minimum = memory_minimum(r.os, r.method)
        if r.memory_mib is None:
            r.memory_mib = minimum.mib
        elif r.memory_mib < minimum.mib and not self.opts.below_minimum:
            raise LivelabError(
                f"{r.memory_mib} MiB is below the minimum of {minimum.mib} MiB for {r.os} via {r.method} "
                f"({minimum.source}); pass --below-minimum to boot it anyway")
        if r.memory_mib < 64:
            raise LivelabError(f"{r.memory_mib} MiB is too little memory for any boot (at least 64 MiB)")
        if r.cpus is None:
            r.cpus = self.opts.cpus
        if r.cpus < 1:
            raise LivelabError("a VM needs at least 1 CPU")
        self.memory_mib: int = r.memory_mib
        self.cpus: int = r.cpus
        if self.opts.backend == "qemu":
            qemu_binary()   # a missing QEMU is said before anything is downloaded
        self.user_config = self._user_config()
        # an installed system's root-disk config (boot_device, grub, root filesystem) on a live boot
        # would leave Ignition waiting for a disk that never comes: refused unless the request's disks hold it
        from . import ignition as ign
        ign.check_live_disks(self.user_config, r.disks)

    def _user_config(self) -> dict | None:
        """The request's own config (Butane translated), checked before anything is downloaded."""
        from . import ignition as ign
        r = self.req
        if not r.user_config:
            return None
        if r.butane is not None:
            translation = ign.butane_to_ignition(self._butane_text(), files_dir=r.butane_dir)
            for w in translation.warnings:
                log.warning("%s: Butane: %s", self.name, w)
            user = translation.config
        elif r.ignition is not None:
            user = copy.deepcopy(r.ignition)
        else:
            return None
        ign.validate_or_raise(user, binary=self.opts.ignition_validate)
        return user

    def _butane_text(self) -> str:
        """The request's Butane, its SSH key placeholder (a seed's ``ssh-rsa AAAA...``) replaced by
        the session's public key."""
        r = self.req
        text = r.butane or ""
        ph = r.ssh_key_placeholder
        if not ph:
            return text
        if ph not in text:
            raise LivelabError(f"the Butane config has no {ph!r} (the SSH key placeholder to replace)")
        if self.ssh_key is None:
            raise LivelabError(f"the Butane config's SSH key placeholder {ph!r} needs the session's SSH key")
        return text.replace(ph, self.ssh_key.public)

    def kinds(self) -> list[str]:
        return artifact_kinds(self.req.os, self.req.method)

    def render_config(self) -> dict | None:
        """Butane/Ignition of the request + harness snippet, validated for the target."""
        from . import ignition as ign
        r = self.req
        if not r.user_config:
            self.config = None
            return None
        user = self.user_config
        release = self.require_release()
        max_spec = _specs.max_spec(r.os, release.version, table_override=self.opts.ignition_spec_table,
                                   max_override=self.opts.ignition_max_spec)
        spec = user["ignition"]["version"] if user else _specs_default(max_spec)
        public = self.ssh_key.public if (self.ssh_key and r.ssh) else None
        if public and public in _core_keys(user):
            public = None       # the user's config authorizes the session key already
        snippet = harness_snippet(spec, public, r.completion)
        config = ign.merge(user, snippet) if user else snippet
        ign.validate_or_raise(config, binary=self.opts.ignition_validate)
        ign.check_target(config, max_spec, target=f"{r.os} {release.version}")
        self.config = config
        atomic_write(self.run_dir / "config.ign", json.dumps(config, indent=2, sort_keys=True), fsync=False)
        return config

    # ------------------------------------------------------------------ preparation
    def prepare(self) -> Machine:
        """Resolve, fetch and verify artifacts, render Ignition, build the boot media. No VM yet."""
        r = self.req
        log.debug("%s: resolving %s %s (mirror %s)", self.name, r.os, r.stream, self.opts.mirror or "upstream")
        release = self.release = _artifacts.resolve(r.os, r.stream, version=r.version, mirror=self.opts.mirror,
                                                    metadata=self.opts.metadata, cache_dir=self.opts.cache_dir,
                                                    offline=self.opts.offline)
        self.files = _artifacts.fetch(release, kinds=self.kinds(), keyring=self.opts.keyring,
                                      insecure=self.opts.insecure, offline=self.opts.offline,
                                      cache_dir=self.opts.cache_dir)
        log.debug("%s: release %s, artifacts %s verified", self.name, release.version, ", ".join(self.files))
        self.render_config()
        self.http = HttpServer()
        spec = VMSpec(name=self.name, memory_mib=self.memory_mib, cpus=self.cpus, firmware=r.firmware,
                      http_port=self.http.port, disks=[dataclasses.replace(d, sector=r.sector) for d in r.disks],
                      forwards=[[int(p), None] for p in r.forwards])
        if not r.completion or not self.config:
            spec.virtio_ports = []
        if r.method in ISO_METHODS and not self.config:
            spec.virtio_ports = [LIVEISO_SUCCESS_PORT]
        # artifacts are served from the verified cache under their upstream (cache-key) paths
        from .artifacts.mirror import cache_key
        self.paths = {}
        for kind, local in self.files.items():
            key = cache_key(release.artifacts[kind].upstream_url)
            self.http.publish(key, Path(local.path))
            self.paths[kind] = key
        if self.config:
            self.http.publish("config.ign", json.dumps(self.config).encode())
        machine = self.machine = self._machine_class()(spec, self.run_dir, self.accel, self.timeouts,
                                                       ssh_key=self.ssh_key, **self._machine_kwargs())
        self._prepare_boot(1)
        machine.write_vm_json(self.vm_record())
        log.debug("%s: %s media ready in %s", self.name, r.method, self.run_dir)
        return machine

    def _machine_class(self):
        if self.opts.backend == "libvirt":
            from .vm.libvirt import LibvirtMachine
            return LibvirtMachine
        if self.opts.backend != "qemu":
            raise LivelabError(f"unknown backend {self.opts.backend!r}: expected qemu or libvirt")
        return Machine

    def _machine_kwargs(self) -> dict:
        if self.opts.backend == "libvirt" and self.opts.libvirt_uri:
            return {"uri": self.opts.libvirt_uri}
        return {}

    def kargs_for_boot(self, boot: int) -> list[str]:
        r = self.req
        args: list[str] = []
        if r.os == "fcos":
            if r.method not in ISO_METHODS:
                args += ["ignition.firstboot", "ignition.platform.id=metal"]
                if self.config:
                    args.append(f"ignition.config.url={guest_url('config.ign')}")
                if r.method in ("pxe-rootfs-url", "ipxe", "ipxe-chain"):
                    args.append(f"coreos.live.rootfs_url={guest_url(self.paths['rootfs'])}")
            elif r.method == "iso-fromram":
                args.append("coreos.liveiso.fromram")
        else:
            args.append("flatcar.first_boot=1")
            if self.config:
                args.append(f"ignition.config.url={guest_url('config.ign')}")
        args.append(CONSOLE_KARG)
        args = [a for a in args if a.split("=", 1)[0] not in r.without_kargs]
        args += r.kargs
        if boot == 1:
            args += r.first_boot_only
        return args

    def _prepare_boot(self, boot: int, kargs: list[str] | None = None) -> None:
        from .boot import methods
        kargs = kargs if kargs is not None else self.kargs_for_boot(boot)
        self.boot_kargs.append(kargs)
        self.require_machine().use_media(methods.prepare(self, kargs))

    def vm_record(self) -> dict:
        return {
            "test_id": self.req.test_id, "name": self.name,
            "request": {k: v for k, v in self.req.__dict__.items() if k not in ("disks",)},
            "release": self.release.to_dict() if self.release else None,
            "artifacts": {k: {"path": v.path, "digests": v.digests, "verified_with": v.verified_with,
                              "insecure": v.insecure} for k, v in self.files.items()},
            "kernel_args_per_boot": self.boot_kargs,
            "options": self.opts.__dict__,
        }

    # ------------------------------------------------------------------ life
    def start(self) -> Machine:
        machine = self.machine or self.prepare()
        machine.start()
        from .boot import methods
        methods.after_start(self)
        return machine

    def require_release(self) -> Release:
        return required(self.release, LivelabError(f"{self.name}: no release resolved yet (prepare() first)"))

    def require_machine(self) -> Machine:
        return required(self.machine, LivelabError(f"{self.name}: not prepared yet (prepare() or start() first)"))

    def power_cycle(self, add: Sequence[str] = (), remove: Sequence[str] = ()) -> None:
        """Power off and boot again, with kernel arguments changed for the next boot."""
        machine = self.require_machine()
        boot = machine.boot_index + 1
        kargs = [a for a in self.kargs_for_boot(boot) if a.split("=", 1)[0] not in remove and a not in remove]
        kargs += list(add)

        def prepare(m: Machine) -> None:
            self._prepare_boot(boot, kargs)
            m.write_vm_json(self.vm_record())

        machine.power_cycle(prepare=prepare)
        from .boot import methods
        methods.after_start(self)

    def close(self) -> None:
        if self.machine is not None:
            self.machine.close()
        if self.http is not None:
            self.http.close()
            self.http = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _specs_default(max_spec: str) -> str:
    """The spec of a harness-only config: the newest stable spec the target reads, at most 3.3.0."""
    return max_spec if _specs.parse_spec(max_spec) <= _specs.parse_spec("3.3.0") else "3.3.0"
