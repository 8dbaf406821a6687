"""A lab of hosts: pytest-xdist workers on other machines, reached over SSH by execnet.

``livelab matrix … --hosts ssh=user@host1,ssh=user@host2`` and ``pytest --tx ssh=… --dist load``
run each test on the host of its worker.  A host entry is an execnet XSpec:

    ssh=[user@]host[//python=PATH][//chdir=DIR][//ssh_config=FILE][//env:NAME=VALUE][//nice=N]
    3*ssh=host1          three workers on host1

- ``python``: the host's Python with livelab installed (``--hosts`` default: the same path as this
  machine's ``sys.executable``); ``chdir``: the host's checkout of the tests (``--hosts`` default:
  the same path as the current directory).  xdist starts the worker there and puts its own copy of
  pytest in ``chdir/pytest`` and ``chdir/_pytest``; nothing else is copied (no ``--rsyncdir``).
- ``ssh_config``: an ssh_config file for the controller's ``ssh`` (host keys, key, jump hosts).

This module parses ``--hosts`` into ``--tx`` values and tells a remote spec from a local one; the
pytest plugin marks remote workers, and ``harness.attachments`` brings their files home.
"""
from __future__ import annotations

import re
import socket
from collections.abc import Iterable, Sequence

import execnet

from .errors import LivelabError

# XSpec keys a --hosts entry may use (execnet's; popen, socket, vagrant_ssh and via are not SSH hosts)
KEYS = ("ssh", "python", "chdir", "ssh_config", "nice", "dont_write_bytecode", "id")
_COUNT_RE = re.compile(r"^(\d+)\*(.*)$")
USAGE = "expected ssh=[user@]host[//python=PATH][//chdir=DIR][//ssh_config=FILE], or N*ssh=..."


def split_count(text: str) -> tuple[int, str]:
    """``"3*ssh=h"`` -> ``(3, "ssh=h")``; ``"ssh=h"`` -> ``(1, "ssh=h")`` (xdist's ``--tx`` grammar)."""
    m = _COUNT_RE.match(text)
    return (int(m.group(1)), m.group(2)) if m else (1, text)


def _xspec(text: str, where: str) -> execnet.XSpec:
    try:
        return execnet.XSpec(text)
    except (ValueError, AttributeError, IndexError) as exc:
        raise LivelabError(f"{where}: {exc}; {USAGE}") from None


def parse_hosts(values: str | Sequence[str], python: str, chdir: str) -> list[str]:
    """``--hosts`` (comma lists, the option repeatable) -> ``--tx`` values, each with ``python=`` and
    ``chdir=`` filled in from the defaults when the entry has none; one line for a bad entry."""
    items = [values] if isinstance(values, str) else list(values)
    out: list[str] = []
    for item in items:
        for raw in str(item).split(","):
            entry = raw.strip()
            if not entry:
                continue
            where = f"--hosts {entry!r}"
            count, text = split_count(entry)
            if count < 1:
                raise LivelabError(f"{where}: a host needs at least 1 worker")
            spec = _xspec(text, where)
            keys = [k for k in vars(spec) if k not in ("_spec", "env")]
            unknown = [k for k in keys if k not in KEYS]
            if unknown:
                raise LivelabError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(KEYS)}, env:NAME)")
            if not isinstance(spec.ssh, str) or not spec.ssh.strip():
                raise LivelabError(f"{where}: no ssh=[user@]host; {USAGE}")
            if spec.python is None:
                text += f"//python={python}"
            if spec.chdir is None:
                text += f"//chdir={chdir}"
            out.append(f"{count}*{text}" if count > 1 else text)
    if not out:
        raise LivelabError(f"--hosts: no host given; {USAGE}")
    return out


def installed_plugin() -> bool:
    """livelab's pytest plugin is installed (its ``pytest11`` entry point), as a run with remote
    workers needs: their controller runs outside the checkout, where no conftest.py loads it."""
    from importlib.metadata import distributions

    return any(ep.group == "pytest11" and ep.name == "livelab" for d in distributions() for ep in d.entry_points)


def worker_count(tx: Iterable[str]) -> int:
    """How many workers these ``--tx`` values start."""
    return sum(split_count(t)[0] for t in tx)


def host_name() -> str:
    """This machine's name: what a worker's reports say it ran on, and what a shard is tagged with."""
    return socket.gethostname() or "localhost"


def is_remote(spec: execnet.XSpec) -> bool:
    """A worker on another machine: anything but ``popen`` (ssh, socket, vagrant_ssh)."""
    return not spec.popen


def remote_tx(tx: Iterable[str] | None) -> bool:
    """Whether any of a pytest run's ``--tx`` values starts a worker on another machine."""
    return any(is_remote(_xspec(split_count(t)[1], f"--tx {t!r}")) for t in tx or ())


def address(spec: execnet.XSpec) -> str:
    """The machine a spec reaches (its ``ssh=`` target, options included), or ``""`` for popen."""
    return str(spec.ssh or spec.socket or spec.vagrant_ssh or "")
