"""YAML → plain values with source positions, resolved the way Butane's YAML library does.

Butane uses go-yaml v3: YAML 1.2-ish scalars (``yes``/``on`` are strings unless decoded into
a bool field; ``0644`` is still octal), duplicate keys are errors.  We compose the document
with PyYAML (through harness.safeload, which bounds size, depth and alias expansion) and resolve
plain scalars ourselves, keeping each value's line/column so errors can name both the key path
and the location.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from .. import safeload
from ..errors import LivelabError


@dataclass
class Scalar:
    value: Any          # None, bool, int, float or str
    text: str           # the scalar as written
    quoted: bool
    line: int
    col: int


@dataclass
class Mapping:
    items: dict          # key (str) -> node
    line: int
    col: int
    key_pos: dict = field(default_factory=dict)   # key -> (line, col)


@dataclass
class Sequence:
    items: list
    line: int
    col: int


Node = Scalar | Mapping | Sequence          # what ``compose`` gives back for each YAML node

_NULL = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}
YAML11_TRUE = {"y", "Y", "yes", "Yes", "YES", "on", "On", "ON"}
YAML11_FALSE = {"n", "N", "no", "No", "NO", "off", "Off", "OFF"}
_INT_DEC = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")
_INT_OCT_LEGACY = re.compile(r"^[-+]?0[0-7_]+$")
_INT_OCT = re.compile(r"^[-+]?0o[0-7_]+$")
_INT_HEX = re.compile(r"^[-+]?0x[0-9a-fA-F_]+$")
_INT_BIN = re.compile(r"^[-+]?0b[01_]+$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$")


def _resolve_plain(text: str):
    if text in _NULL:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    t = text.replace("_", "")
    sign = -1 if t.startswith("-") else 1
    body = t.lstrip("+-")
    if _INT_DEC.match(text):
        return int(t)
    # a prefix and only underscores (0x_) has no digits: go-yaml leaves it a string
    if _INT_OCT.match(text):
        return sign * int(body[2:], 8) if body[2:] else text
    if _INT_OCT_LEGACY.match(text):
        return sign * int(body, 8)
    if _INT_HEX.match(text):
        return sign * int(body[2:], 16) if body[2:] else text
    if _INT_BIN.match(text):
        return sign * int(body[2:], 2) if body[2:] else text
    if _FLOAT.match(text) and any(c.isdigit() for c in text):
        return float(t)
    if text.lower() in (".inf", "+.inf", "-.inf", ".nan"):
        return float(text.lower().replace(".", ""))
    return text


def key_path(path: str, key: str) -> str:
    """``path.key`` as errors name it; a key that is not a plain name (spaces, line breaks, empty)
    shown quoted, on one line."""
    name = safeload.shown(key)
    return f"{path}.{name}" if path else name


def _convert(node: yaml.Node, path: str):
    line, col = node.start_mark.line + 1, node.start_mark.column + 1
    if isinstance(node, yaml.ScalarNode):
        quoted = node.style is not None and node.style != ""
        if quoted or node.style in ("|", ">"):
            return Scalar(node.value, node.value, True, line, col)
        try:
            value = _resolve_plain(node.value)
        except ValueError:      # an integer of more digits than Python converts (4300)
            raise LivelabError(f"{path or '$'}: number too long (line {line}, column {col})") from None
        return Scalar(value, node.value, False, line, col)
    if isinstance(node, yaml.SequenceNode):
        return Sequence([_convert(n, f"{path}[{i}]") for i, n in enumerate(node.value)], line, col)
    if isinstance(node, yaml.MappingNode):
        items: dict = {}
        key_pos: dict = {}
        merges = []
        for knode, vnode in node.value:
            if knode.tag == "tag:yaml.org,2002:merge" or (isinstance(knode, yaml.ScalarNode) and knode.value == "<<"
                                                           and knode.style in (None, "")):
                merges.append(vnode)
                continue
            if not isinstance(knode, yaml.ScalarNode):
                raise LivelabError(f"{path or '$'}: mapping keys must be strings "
                                   f"(line {knode.start_mark.line + 1}, column {knode.start_mark.column + 1})")
            key = knode.value
            kpath = key_path(path, key)
            if key in items:
                raise LivelabError(f"{kpath}: duplicate key (line {knode.start_mark.line + 1}, "
                                   f"column {knode.start_mark.column + 1})")
            items[key] = _convert(vnode, kpath)
            key_pos[key] = (knode.start_mark.line + 1, knode.start_mark.column + 1)
        for m in merges:
            srcs = m.value if isinstance(m, yaml.SequenceNode) else [m]
            for src in srcs:
                conv = _convert(src, path)
                if not isinstance(conv, Mapping):
                    raise LivelabError(f"{path or '$'}: merge key value must be a mapping (line {conv.line})")
                for k, v in conv.items.items():
                    if k not in items:
                        items[k] = v
                        key_pos[k] = conv.key_pos.get(k, (conv.line, conv.col))
        return Mapping(items, line, col, key_pos)
    raise LivelabError(f"{path or '$'}: unsupported YAML node")


def load(data: str | bytes, source: str = "Butane config", *,
         limits: safeload.Limits = safeload.DEFAULT) -> Scalar | Mapping | Sequence | None:
    """Parse one YAML document into Scalar/Mapping/Sequence nodes (None for an empty document).

    ``source`` names the input in errors; parsing is bounded by ``limits`` (see harness.safeload)."""
    docs = safeload.compose_yaml(data, source, limits=limits)
    if not docs:
        return None
    if len(docs) > 1:
        raise LivelabError(f"{source}: {len(docs)} YAML documents; a Butane config is a single one")
    return _convert(docs[0], "")


def plain(node: object) -> object:
    """Nodes → plain Python values (for diagnostics and tests)."""
    if isinstance(node, Scalar):
        return node.value
    if isinstance(node, Sequence):
        return [plain(n) for n in node.items]
    if isinstance(node, Mapping):
        return {k: plain(v) for k, v in node.items.items()}
    return node
