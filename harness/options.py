"""The options livelab's front-ends share, defined once.

``OPTIONS`` holds each shared option's flags and argparse keywords; ``add_options`` puts a
selection of them on an argparse parser or on a pytest option group (``addoption`` takes the same
arguments), and ``lab_options`` builds the one ``LabOptions`` of a run from whichever front-end
parsed them.  Front-end specific options (``--via``, ``--workers``, ``--keep-vms`` ...) stay with
their front-end.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from . import runtime

if TYPE_CHECKING:
    from .lab import LabOptions


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]
    kwargs: dict = field(default_factory=dict)


OPTIONS: dict[str, Option] = {
    # where artifacts come from and how they are trusted
    "mirror": Option(("--mirror",), {"metavar": "URL|DIR", "help": (
        "mirror base URL (http://, https://, file://) or directory for upstream artifact URLs; "
        "'none' for upstream")}),
    "keyring": Option(("--keyring",), {"metavar": "FILE", "help": (
        "OpenPGP keyring (.asc or binary) trusted for artifact signatures instead of the bundled keys")}),
    "ignition_spec_table": Option(("--ignition-spec-table",), {"metavar": "FILE", "help": (
        "JSON {os: {version: max Ignition spec}} overriding the bundled table")}),
    "ignition_max_spec": Option(("--ignition-max-spec",), {"metavar": "SPEC", "help": (
        "newest Ignition config spec the target reads (override)")}),
    "insecure": Option(("--insecure",), {"action": "store_true", "help": (
        "do not check signatures (digests are still checked; reported)")}),
    "ignition_validate": Option(("--ignition-validate",), {"metavar": "FILE", "help": (
        "the ignition-validate that checks generated configs (default: ini livelab_ignition_validate, "
        "else the one on PATH; specs no validator reads get livelab's structural check)")}),
    "offline": Option(("--offline",), {"action": "store_true", "help": "use only cached artifacts"}),
    "cache_dir": Option(("--cache-dir",), {"metavar": "DIR", "help": (
        "artifact cache (default: $LIVELAB_CACHE_DIR or the user cache directory)")}),
    # how VMs run
    "accel": Option(("--accel",), {"default": "auto", "choices": ("auto", "kvm", "tcg"), "help": (
        "QEMU accelerator (auto probes KVM for real and falls back to TCG)")}),
    "backend": Option(("--backend",), {"default": "qemu", "choices": ("qemu", "libvirt"), "help": (
        "run VMs with QEMU directly or through libvirt (harness/vm/libvirt.py)")}),
    "libvirt_uri": Option(("--libvirt-uri",), {"metavar": "URI", "help": (
        "libvirt connection (default qemu:///system)")}),
    "extend_timeout": Option(("--extend-timeout",), {"type": float, "default": 0.0, "metavar": "PCT", "help": (
        "extend every timeout by PCT percent")}),
    "below_minimum": Option(("--below-minimum",), {"action": "store_true", "help": (
        "allow memory below the documented minimum")}),
    "vm_cpus": Option(("--vm-cpus",), {"default": "auto", "metavar": "N|auto", "help": runtime.VM_CPUS_HELP}),
    # what the CLI shows while it runs (harness.progress)
    "quiet": Option(("--quiet", "-q"), {"action": "store_true", "help": (
        "print only the result: no boot phases, no status line, no progress lines")}),
}
ARTIFACT_OPTIONS = ("mirror", "keyring", "ignition_spec_table", "ignition_max_spec", "insecure", "offline",
                    "cache_dir")
VM_OPTIONS = ("accel", "backend", "libvirt_uri", "extend_timeout", "below_minimum")
CONFIG_OPTIONS = ("ignition_validate",)
PROGRESS_OPTIONS = ("quiet",)


def add_options(add: Callable[..., Any], names: tuple[str, ...] | list[str], **changes: dict) -> None:
    """``add`` (an argparse ``add_argument`` or a pytest group's ``addoption``) each named option;
    ``changes``: per option, keywords that differ for this front-end (e.g. another help)."""
    for name in names:
        opt = OPTIONS[name]
        add(*opt.flags, dest=name, **{**opt.kwargs, **changes.get(name, {})})


def lab_options(value: Callable[[str], Any], cpus: int | None = None, **overrides: Any) -> LabOptions:
    """The run's ``LabOptions`` from a front-end's parsed values (``value(name)``: None when that
    front-end has no such option); ``--mirror none`` means upstream."""
    fields = ARTIFACT_OPTIONS + VM_OPTIONS + CONFIG_OPTIONS
    got = {name: value(name) for name in fields}
    got = {k: v for k, v in got.items() if v is not None}
    got.update({k: v for k, v in overrides.items() if v is not None})
    if got.get("mirror") == "none":
        got["mirror"] = None
    if cpus is not None:
        got["cpus"] = cpus
    from .lab import LabOptions  # the VM side is loaded only by those who boot
    return check(LabOptions(**got))


def check(opts: LabOptions) -> LabOptions:
    """``opts``, or a one-line error for the first value that cannot work (see ``check_values``)."""
    check_values(lambda name: getattr(opts, name, None))
    return opts


def check_values(value: Callable[[str], Any]) -> None:
    """A one-line error for the first shared option value that cannot work, before any probe,
    download or VM: a missing mirror directory or keyring file, an unreadable spec table, a bad spec,
    a cache path that is a file, a time extension that is not a percentage, no CPU.  ``value(name)``
    is None for an option the front-end does not have."""
    import math
    import os
    import urllib.parse
    import urllib.request

    from .artifacts import specs
    from .artifacts.mirror import normalize_mirror
    from .errors import LivelabError

    mirror = value("mirror")
    if mirror and mirror != "none":
        url = normalize_mirror(mirror)
        if url and url.startswith("file:"):
            path = urllib.request.url2pathname(urllib.parse.urlsplit(url).path)
            if not os.path.isdir(path):
                raise LivelabError(f"--mirror {mirror}: no such directory")
    for flag, name in (("--keyring", "keyring"), ("--ignition-spec-table", "ignition_spec_table"),
                       ("--ignition-validate", "ignition_validate")):
        given = value(name)
        if given and not os.path.isfile(given):
            raise LivelabError(f"{flag} {given}: no such file")
    if value("ignition_spec_table"):
        specs.load_override(value("ignition_spec_table"))
    if value("ignition_max_spec"):
        specs.parse_spec(value("ignition_max_spec"))
    cache_dir = value("cache_dir")
    if cache_dir and os.path.exists(cache_dir) and not os.path.isdir(cache_dir):
        raise LivelabError(f"--cache-dir {cache_dir} is not a directory")
    extend = value("extend_timeout")
    if extend is not None and not (math.isfinite(extend) and 0 <= extend <= 10000):
        raise LivelabError(f"--extend-timeout must be a percentage from 0 to 10000, not {extend:g}")
    cpus = value("cpus")
    if cpus is not None and cpus < 1:
        raise LivelabError(f"a VM needs at least 1 CPU, not {cpus}")
