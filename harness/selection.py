"""Which configurations a pytest run keeps: ``--os``, ``--stream``, ``--channel``, ``--firmware``.

A test's configuration comes from its ``livelab(os=..., stream=..., method=..., firmware=...)``
marker (scenario cases carry one), or else from an id in its name such as
``test_x[fcos.stable.pxe.bios]``.  A test with neither (a unit test, a fault test) is not about
one configuration and is always kept.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import LivelabError
from .vocab import CONFIG_PATTERN, FCOS_STREAMS, FIRMWARES, FLATCAR_CHANNELS, OSES

if TYPE_CHECKING:
    import pytest

_ID_RE = re.compile(rf"(?<![\w-]){CONFIG_PATTERN}\b")


def _values(option: Sequence[str] | None, known: Sequence[str], what: str) -> list[str]:
    out: list[str] = []
    for raw in option or []:
        for v in str(raw).split(","):
            v = v.strip()
            if not v:
                continue
            if v not in known:
                raise LivelabError(f"--{what} {v!r}: expected one of {', '.join(known)}")
            if v not in out:
                out.append(v)
    return out


@dataclass(frozen=True)
class Selection:
    oses: list[str] = field(default_factory=list)
    streams: list[str] = field(default_factory=list)      # FCOS
    channels: list[str] = field(default_factory=list)     # Flatcar
    firmware: list[str] = field(default_factory=list)

    @classmethod
    def from_options(cls, oses: Sequence[str] | None = None, streams: Sequence[str] | None = None,
                     channels: Sequence[str] | None = None, firmware: Sequence[str] | None = None) -> Selection:
        return cls(_values(oses, OSES, "os"), _values(streams, FCOS_STREAMS, "stream"),
                   _values(channels, FLATCAR_CHANNELS, "channel"), _values(firmware, FIRMWARES, "firmware"))

    @property
    def active(self) -> bool:
        return bool(self.oses or self.streams or self.channels or self.firmware)

    def streams_for_unpinned(self) -> dict[str, list[str]]:
        """Streams / channels for scenarios that name none (instead of each OS's first)."""
        out = {}
        if self.streams:
            out["fcos"] = list(self.streams)
        if self.channels:
            out["flatcar"] = list(self.channels)
        return out

    def keeps(self, conf: dict[str, str] | None) -> bool:
        if not self.active or not conf:
            return True
        os_id = conf.get("os")
        if self.oses and os_id and os_id not in self.oses:
            return False
        if self.firmware and conf.get("firmware") and conf["firmware"] not in self.firmware:
            return False
        stream = conf.get("stream")
        if os_id == "fcos" and (self.streams or self.channels):
            return bool(self.streams) and (stream is None or stream in self.streams)
        if os_id == "flatcar" and (self.streams or self.channels):
            return bool(self.channels) and (stream is None or stream in self.channels)
        return True


_KEYS = ("os", "stream", "method", "firmware")
# parametrized arguments that name a part of the configuration
_PARAMS = {"os": "os", "os_id": "os", "stream": "stream", "channel": "stream", "method": "method", "via": "method",
           "firmware": "firmware"}


def configuration_of(item: pytest.Item) -> dict[str, str] | None:
    """The configuration a pytest item boots: its ``livelab`` marker and parametrized arguments
    (``os``/``os_id``, ``stream``/``channel``, ``method``, ``firmware``), else an id in its name."""
    conf: dict[str, str] = {}
    mark = item.get_closest_marker("livelab")
    if mark is not None:
        conf = {k: v for k, v in mark.kwargs.items() if k in _KEYS and v}
    params = getattr(getattr(item, "callspec", None), "params", {})
    for name, key in _PARAMS.items():
        if key not in conf and isinstance(params.get(name), str):
            conf[key] = params[name]
    if not conf:
        m = _ID_RE.search(item.name)
        conf = m.groupdict() if m else {}
    return conf or None
