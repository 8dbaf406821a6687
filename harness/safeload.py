"""The one place where data from outside (Butane, scenarios, stream metadata) is parsed.

Every function here takes the bytes (or text) and a ``source`` -- how the user knows the input,
e.g. a file name -- and either returns the parsed value or raises one ``LivelabError`` line that
names the source and, where it helps, the position::

    butane.bu: not UTF-8 text: byte 0xff at offset 17 (line 2, column 5)
    butane.bu: YAML aliases expand to more than 100000 nodes (the limit), at alias *c (line 5, column 9)

The ``Limits`` hold *while* parsing, whatever the keys of the document are, so a caller that only
warns about unknown keys is still protected:

- size: checked before parsing;
- nesting depth: checked as each collection opens, so a deep document never reaches Python's
  recursion limit (here, or in code that walks the result recursively);
- nodes: YAML nodes are counted as they are composed, an alias counting as the whole subtree it
  repeats, so an alias bomb ("billion laughs") stops after ``max_nodes`` instead of growing; an
  alias inside the node it names (``&a [*a]``) is refused outright.

YAML is parsed by PyYAML's pure-Python SafeLoader with a composer that enforces the limits.  The C
loader (CSafeLoader) composes nodes inside libyaml, out of reach of these checks, so it is not used.
"""
from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass
from typing import IO, Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import Node
from yaml.reader import Reader

from .errors import LivelabError


@dataclass(frozen=True)
class Limits:
    """How big outside data may be.  The defaults are far above any real input of livelab's and
    far below what would hurt the host."""

    # Bytes of input.  Real inputs are kilobytes: Butane configs and scenarios, an FCOS stream or
    # release index (a few hundred KiB).  16 MiB bounds the memory a parse takes and keeps the
    # pure-Python YAML parser to seconds.
    max_bytes: int = 16 * 1024 * 1024
    # Nesting of lists and mappings (YAML, after alias expansion, and JSON).  Real inputs nest
    # fewer than 15 levels.  100 keeps every recursive walk of the result (node converters,
    # constructors, validators) far from Python's recursion limit of 1000 frames.
    max_depth: int = 100
    # YAML nodes (scalars, lists and mappings; keys too), an alias counting as every node of what
    # it repeats.  Real Butane configs and scenarios have a few thousand at most.  100000 stops an
    # alias bomb within a fraction of a second and a few MB, whatever walks the result later.
    # (JSON has no aliases: its node count is bounded by max_bytes.)
    max_nodes: int = 100_000


DEFAULT = Limits()


_PLAIN_NAME = re.compile(r"[\w.+-]+")


def shown(value: object, limit: int = 80, *, quote: bool = False) -> str:
    """A value from outside data as an error line shows it: a plain name (letters, digits, ``._+-``)
    as it is (unless ``quote``), anything else as its ``repr`` on one line (runs of spaces as one),
    cut to ``limit``."""
    if not quote and isinstance(value, str) and 0 < len(value) <= limit and _PLAIN_NAME.fullmatch(value):
        return value
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _size_text(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def _position(data: bytes, offset: int) -> str:
    """``line L, column C`` of byte ``offset`` in ``data`` (the column counts characters)."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    line = data.count(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", errors="replace")) + 1
    return f"line {line}, column {column}"


def _encode(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogatepass")


def _check_size(data: bytes | str, source: str, limits: Limits) -> None:
    size = len(data) if isinstance(data, bytes) else len(_encode(data))
    if size > limits.max_bytes:
        raise LivelabError(f"{source}: {size} bytes, more than the limit of {_size_text(limits.max_bytes)}")


def _decode_utf8(data: bytes, source: str) -> str:
    """UTF-8 (a leading byte order mark is dropped), or one line naming the first bad byte."""
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = start + exc.start
        raise LivelabError(f"{source}: not UTF-8 text: byte 0x{data[offset]:02x} at offset {offset} "
                           f"({_position(data, offset)})") from None


def _check_printable(text: str, source: str) -> None:
    """Refuse the characters YAML does not allow in a document (PyYAML's own set)."""
    match = Reader.NON_PRINTABLE.search(text)
    if match:
        before = _encode(text[:match.start()])
        raise LivelabError(f"{source}: unacceptable character U+{ord(match.group()):04X} at offset {len(before)} "
                           f"({_position(before, len(before))}): special characters are not allowed in YAML")


def decode_text(data: bytes, source: str) -> str:
    """``data`` as text: UTF-8 (a byte order mark is tolerated) without the characters YAML
    refuses; otherwise one line naming ``source`` and the offset of the first bad byte."""
    text = _decode_utf8(data, source)
    _check_printable(text, source)
    return text


def read_file(path: str, source: str | None = None, *, limits: Limits = DEFAULT) -> bytes:
    """The bytes of the file ``path``, or one line: it cannot be read, or it is over ``limits.max_bytes``."""
    try:
        with open(path, "rb") as fh:
            return read_stream(fh, source or str(path), limits=limits)
    except OSError as exc:
        raise LivelabError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_stream(stream: IO[bytes], source: str, *, limits: Limits = DEFAULT) -> bytes:
    """The bytes of a binary stream (e.g. stdin), reading no more than ``limits.max_bytes`` + 1."""
    data = stream.read(limits.max_bytes + 1)
    if len(data) > limits.max_bytes:
        raise LivelabError(f"{source}: more than the limit of {_size_text(limits.max_bytes)}")
    return data


# ---------------------------------------------------------------- YAML

def _where(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


class _LimitedLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader whose composer enforces ``Limits`` as it builds each node."""

    def __init__(self, text: str, source: str, limits: Limits):
        super().__init__(text)
        self.source = source
        self.limits = limits
        self.node_count = 0       # nodes composed so far, an alias counting as the nodes it repeats
        self.depth = 0            # collections open around the current node
        self.reach = 0            # deepest level reached (aliases expanded) inside the open collection
        self.measures: dict[int, tuple[int, int]] = {}   # id(anchored node) -> (nodes, height)

    def _count(self, n: int, mark: Any, alias: str | None = None) -> None:
        self.node_count += n
        if self.node_count > self.limits.max_nodes:
            if alias:
                raise LivelabError(f"{self.source}: YAML aliases expand to more than {self.limits.max_nodes} nodes "
                                   f"(the limit), at alias *{alias} ({_where(mark)})")
            raise LivelabError(f"{self.source}: more than {self.limits.max_nodes} YAML nodes (the limit), "
                               f"at {_where(mark)}")

    def _reach_to(self, level: int, mark: Any, alias: str | None = None) -> None:
        if level > self.limits.max_depth:
            how = f" once alias *{alias} is expanded" if alias else ""
            raise LivelabError(f"{self.source}: YAML nested deeper than {self.limits.max_depth} levels (the limit)"
                               f"{how}, at {_where(mark)}")
        self.reach = max(self.reach, level)

    def compose_document(self) -> Any:
        self.measures = {}
        return super().compose_document()

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None:      # (an undefined alias is PyYAML's error)
                measure = self.measures.get(id(target))
                if measure is None:     # anchored, not finished: the alias is inside its own node
                    raise LivelabError(f"{self.source}: YAML alias *{event.anchor} is inside the node it names, "
                                       f"so it would repeat without end, at {_where(event.start_mark)}")
                nodes, height = measure
                self._count(nodes, event.start_mark, event.anchor)
                self._reach_to(self.depth + height, event.start_mark, event.anchor)
        return super().compose_node(parent, index)

    def compose_scalar_node(self, anchor: Any) -> Any:
        self._count(1, self.peek_event().start_mark)
        node = super().compose_scalar_node(anchor)
        if _SURROGATE.search(node.value):     # "\ud800": text no encoding holds (libyaml refuses it too)
            raise LivelabError(f"{self.source}: not valid YAML: {_BAD_ESCAPE}, a UTF-16 surrogate, in the scalar "
                               f"({_where(node.start_mark)})")
        if anchor is not None:
            self.measures[id(node)] = (1, 0)
        return node

    def _collection(self, compose: Any, anchor: Any) -> Any:
        mark = self.peek_event().start_mark
        self._count(1, mark)
        before, outer_reach = self.node_count - 1, self.reach
        self.depth += 1
        self.reach = 0
        self._reach_to(self.depth, mark)
        node = compose(anchor)
        if anchor is not None:
            self.measures[id(node)] = (self.node_count - before, self.reach - self.depth + 1)
        self.depth -= 1
        self.reach = max(outer_reach, self.reach)
        return node

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        """PyYAML's, with what its scalar constructors raise on a value their tag does not fit
        (``!!int ""``: IndexError, ``!!bool ""``: KeyError, ``!!timestamp x``: AttributeError, ...)
        as one line naming the value and its position."""
        try:
            return super().construct_object(node, deep=deep)
        except (yaml.YAMLError, LivelabError):
            raise
        except ValueError as exc:       # e.g. an integer of more digits than Python converts
            raise LivelabError(f"{self.source}: a value YAML cannot hold: {' '.join(str(exc).split())} "
                               f"({_where(node.start_mark)})") from None
        except (LookupError, AttributeError, TypeError, ArithmeticError):
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise LivelabError(f"{self.source}: a value YAML cannot hold: {shown(node.value)} is not a valid {tag} "
                               f"({_where(node.start_mark)})") from None

    def compose_sequence_node(self, anchor: Any) -> Any:
        return self._collection(super().compose_sequence_node, anchor)

    def compose_mapping_node(self, anchor: Any) -> Any:
        return self._collection(super().compose_mapping_node, anchor)


_SURROGATE = re.compile("[\ud800-\udfff]")
_BAD_ESCAPE = "found invalid Unicode character escape code"


def _scan_error(source: str, exc: ValueError, loader: _LimitedLoader) -> LivelabError:
    """What PyYAML's scanner raises as a bare ValueError (an escape beyond U+10FFFF: chr(); a %YAML
    version of more digits than Python converts: int()), as one line at the scanner's position."""
    what = (f"{_BAD_ESCAPE} beyond U+10FFFF" if str(exc).startswith("chr()")
            else " ".join(str(exc).split()))
    return LivelabError(f"{source}: not valid YAML: {what} ({_where(loader.get_mark())})")


def _yaml_text(data: bytes | str, source: str, limits: Limits) -> str:
    _check_size(data, source, limits)
    if isinstance(data, bytes):
        return decode_text(data, source)
    _check_printable(data, source)
    return data


def _yaml_error(source: str, exc: yaml.YAMLError) -> LivelabError:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    if not problem:
        problem = " ".join(str(exc).split())
    elif context:       # e.g. "while scanning a simple key (line 1, column 1), could not find expected ':'"
        cmark = getattr(exc, "context_mark", None)
        at = f" ({_where(cmark)})" if cmark is not None and (mark is None or cmark.line != mark.line
                                                              or cmark.column != mark.column) else ""
        problem = f"{context}{at}, {problem}"
    where = f" ({_where(mark)})" if mark is not None else ""
    return LivelabError(f"{source}: not valid YAML: {problem}{where}")


def load_yaml(data: bytes | str, source: str, *, limits: Limits = DEFAULT) -> Any:
    """One YAML document as plain values (safe tags only, like ``yaml.safe_load``), within ``limits``.

    An empty document is None; a stream of several documents is an error."""
    loader = _LimitedLoader(_yaml_text(data, source, limits), source, limits)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise _yaml_error(source, exc) from None
    except ValueError as exc:      # the scanner's (the constructors' are one line already)
        raise _scan_error(source, exc, loader) from None
    finally:
        loader.dispose()


def compose_yaml(data: bytes | str, source: str, *, limits: Limits = DEFAULT) -> list[Node]:
    """Every document of a YAML stream as PyYAML nodes (with their marks), within ``limits``.

    Aliases are the same node object as their anchor; the limits count them as copies."""
    loader = _LimitedLoader(_yaml_text(data, source, limits), source, limits)
    try:
        docs = []
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                docs.append(node)
        return docs
    except yaml.YAMLError as exc:
        raise _yaml_error(source, exc) from None
    except ValueError as exc:
        raise _scan_error(source, exc, loader) from None
    finally:
        loader.dispose()


# ---------------------------------------------------------------- JSON

# a JSON string (to skip: brackets inside it are text) or a bracket; an unterminated string runs to the end
_JSON_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.S)


def _check_json_depth(text: str, source: str, limits: Limits) -> None:
    """Refuse JSON nested deeper than ``limits.max_depth``, before ``json`` recurses into it."""
    if text.count("[") + text.count("{") <= limits.max_depth:
        return
    depth = 0
    for m in _JSON_STRING_OR_BRACKET.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > limits.max_depth:
                before = _encode(text[:m.start()])
                raise LivelabError(f"{source}: JSON nested deeper than {limits.max_depth} levels (the limit), "
                                   f"at {_position(before, len(before))}")
        elif c in "]}":
            depth -= 1


def load_json(data: bytes | str, source: str, *, limits: Limits = DEFAULT) -> Any:
    """A JSON document as plain values, within ``limits``; invalid JSON is one line with its position."""
    _check_size(data, source, limits)
    text = _decode_utf8(data, source) if isinstance(data, bytes) else data
    _check_json_depth(text, source, limits)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise LivelabError(f"{source}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:      # not expected after the depth check; still one line
        raise LivelabError(f"{source}: JSON nested too deeply") from None
    except ValueError as exc:   # e.g. an integer of more digits than Python converts
        raise LivelabError(f"{source}: a value JSON cannot hold here: {exc}") from None
