"""Property tests (Hypothesis) for every parser of outside data: whatever the input, the outcome is
a result or one ``LivelabError`` line -- never another exception, never a traceback, never a hang.

Covered: harness.safeload (YAML, JSON, text), the Butane translation, FCOS stream / release /
release index JSON, Flatcar version.txt, versions and DIGESTS, cache records, scenario files and
the Ignition spec table override.  The profile (``HYPOTHESIS_PROFILE``: ci, the default, or fuzz;
``make fuzz``) is in hypothesis_profiles.py.  A failure Hypothesis found once stays as an
``@example`` on its property.
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis_profiles  # noqa: F401 -- registers and loads the profile
import pytest
import yaml
from hypothesis import event, example, given
from hypothesis import strategies as st

from harness import safeload, scenario
from harness.artifacts import fcos, flatcar, specs, store
from harness.artifacts.verify import parse_digests
from harness.errors import LivelabError
from harness.ignition import butane_to_ignition
from harness.ignition.schema import SCHEMA, F, ListOf, Prim
from harness.ignition.specs import SPEC_TABLE
from harness.safeload import Limits
from harness.vocab import FIRMWARES, METHODS, OS_METHODS, OSES, STREAMS

# one call of a parser on a small input; anything near this is a hang, not a slow machine
TIME_LIMIT_S = 5.0


def assert_result_or_one_line(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``: its result, or the ``LivelabError`` it raised (returned, not raised).

    Fails the test on any other exception, on an error that is not one non-empty line (``one_line()``
    is the message as it is), and on a call that takes longer than ``TIME_LIMIT_S``."""
    name = getattr(fn, "__qualname__", repr(fn))
    start = time.monotonic()
    try:
        outcome = fn(*args, **kwargs)
    except LivelabError as exc:
        text = str(exc)
        assert text.strip(), f"{name}: an empty LivelabError ({type(exc).__name__})"
        assert "\n" not in text, f"{name}: a LivelabError of more than one line: {text!r}"
        assert exc.one_line() == text, f"{name}: one_line() changes the message: {text!r}"
        outcome = exc
    except Exception as exc:
        raise AssertionError(f"{name} raised {type(exc).__name__} instead of a LivelabError: {exc!r:.300}") from exc
    elapsed = time.monotonic() - start
    assert elapsed < TIME_LIMIT_S, f"{name} took {elapsed:.1f} s"
    # --hypothesis-show-statistics: how many inputs got as far as a result
    event(f"{name}: {'LivelabError' if failed(outcome) else 'a result'}")
    return outcome


def failed(outcome: Any) -> bool:
    return isinstance(outcome, LivelabError)


def assert_utf8(value: Any) -> None:
    """Every string in a parsed value can be written out as UTF-8 (no lone surrogate from an escape)."""
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, dict):
        for k, v in value.items():
            assert_utf8(k)
            assert_utf8(v)
    elif isinstance(value, (list, tuple, set)):
        for v in value:
            assert_utf8(v)


# ---------------------------------------------------------------- generic strategies

class Plain(str):
    """A scalar written as is (unquoted) into the YAML text, so the parser resolves its type."""


PLAIN_SCALARS = ["yes", "no", "on", "off", "y", "n", "true", "False", "~", "null", "0", "-0", "0644", "0o17",
                 "0o", "0o_", "0x", "0x_", "0xff", "0b", "0b_", "0b101", "1_000", "_", "-", "+1", "1e5", "1e99999",
                 ".inf", "-.inf", ".nan", ".", "1.5", "2001-12-14", "1:20", "12:30:45", "9" * 5000, "1.0.0",
                 "fcos", "flatcar", "3.3.0", "é", "a b", "a  b", "x\ty", "<<", "!!int", "=", "*"]

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
    st.sampled_from(["", "a" * 64, "0" * 64, "https://builds.coreos.fedoraproject.org/prod/x",
                     "http://127.0.0.1/x", "1.2.3", "\n", "a  b", "\u2028", "\x00"]))
json_values = st.recursive(
    json_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=8)
# YAML documents as plain values: JSON's, Plain scalars and keys that are not strings
yaml_scalars = st.one_of(json_scalars, st.sampled_from(PLAIN_SCALARS).map(Plain))
yaml_keys = st.one_of(st.text(max_size=8), st.sampled_from(PLAIN_SCALARS).map(Plain), st.integers(), st.none(),
                      st.booleans(), st.sampled_from(["a\nb", "a  b", " ", "\t", "_x", "accepted"]))
yaml_values = st.recursive(
    yaml_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(yaml_keys, c, max_size=3), max_leaves=8)


def flow_yaml(value: Any) -> str:
    """``value`` as flow-style YAML: ``Plain`` scalars as they are, other scalars as JSON (which YAML reads)."""
    if isinstance(value, Plain):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{flow_yaml(k)}: {flow_yaml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(flow_yaml(v) for v in value) + "]"
    return json.dumps(value)


def _unplain(value: Any) -> Any:
    if isinstance(value, dict):
        return {_unplain(k): _unplain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unplain(v) for v in value]
    return str(value) if isinstance(value, Plain) else value


@st.composite
def yaml_text(draw: st.DrawFn, documents: st.SearchStrategy[Any]) -> str:
    """A document as YAML: flow style (plain scalars unquoted), or PyYAML's block style."""
    doc = draw(documents)
    if draw(st.booleans()):
        return flow_yaml(doc)
    return yaml.safe_dump(_unplain(doc), allow_unicode=draw(st.booleans()), sort_keys=False)


@st.composite
def mostly(draw: st.DrawFn, good: st.SearchStrategy[Any], wrong: st.SearchStrategy[Any] = yaml_values) -> Any:
    """``good`` nine times in ten, else a value of any type (shrinks towards the good one)."""
    return draw(wrong) if draw(st.integers(0, 9)) == 9 else draw(good)


YAML_TOKENS = [
    ": ", ":", "- ", "-", "\n", "\n  ", "\n    ", "  ", "\t", "[", "]", "{", "}", ", ", "&a ", "*a", "&b ", "*b",
    "!!str ", "!!int ", "!!float ", "!!bool ", "!!null ", "!!timestamp ", "!!binary ", "!!set ", "!!omap ",
    "!!pairs ", "!!map ", "!!seq ", "!!merge ", "!!python/object ", "!foo ", "!<tag:yaml.org,2002:int> ",
    "%YAML 1.1\n", "%YAML 1.", "%TAG !e! tag:x,2000:\n", "!e!x ", "---\n", "...\n", "|\n", ">\n", "|-\n", ">+\n",
    '"', "'", "#", "? ", "<<: ", "\\", "\\x4", "\\u12", "\\N", "\\ud800", "\\U0011ffff", "\\U0001f600",
    '"\\U0011ffff"', '"\\udc00"', '"\\0"', '"\\ud83d\\ude00"',
    "0x", "0o", "0b", "_", "1", "0", "9", ".", "e", "+", "~", "null", "true", "yes", "on", "a", "key",
    "2001-12-14", "2001-12-14t21:59:43.10-05:00", ".inf", ".nan", "é", "\ufeff", "\x85", "\u2028", "\x00", "\x07",
    " ", "9" * 5000]
yamlish = st.lists(st.one_of(st.sampled_from(YAML_TOKENS), st.text(max_size=3)), max_size=25).map("".join)

JSON_TOKENS = ["{", "}", "[", "]", '"', '"a"', "\\", "\\u", "\\ud800", ":", ",", "0", "-", "1", "1e400", ".5",
               "true", "null", "NaN", "Infinity", " ", "\n", "9" * 5000, "[" * 150, "{\"a\":" * 150]
jsonish = st.lists(st.one_of(st.sampled_from(JSON_TOKENS), st.text(max_size=3)), max_size=25).map("".join)

any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=60)   # surrogates too
SMALL = Limits(max_bytes=400, max_depth=4, max_nodes=30)


# ---------------------------------------------------------------- safeload

@given(data=st.one_of(st.binary(max_size=200), yamlish.map(lambda t: t.encode("utf-8", "surrogatepass"))),
       limits=st.sampled_from([safeload.DEFAULT, SMALL]))
# PyYAML's scalar constructors raised IndexError / KeyError (found by Hypothesis)
@example(data=b"!!float", limits=safeload.DEFAULT)
@example(data=b"!!bool", limits=safeload.DEFAULT)
@example(data=b"!!int", limits=safeload.DEFAULT)
# the scanner's chr() raised ValueError out of compose_yaml (found by Hypothesis)
@example(data=b'"\\U00110000', limits=safeload.DEFAULT)
def test_safeload_yaml_bytes(data, limits):
    assert_result_or_one_line(safeload.load_yaml, data, "x.yaml", limits=limits)
    docs = assert_result_or_one_line(safeload.compose_yaml, data, "x.yaml", limits=limits)
    assert failed(docs) or isinstance(docs, list)
    assert_result_or_one_line(safeload.decode_text, data, "x.yaml")


@given(text=st.one_of(yamlish, any_text, yaml_text(yaml_values)), limits=st.sampled_from([safeload.DEFAULT, SMALL]))
@example(text="!!float ", limits=safeload.DEFAULT)             # IndexError (found by Hypothesis)
@example(text="!!int ", limits=safeload.DEFAULT)               # IndexError (found by Hypothesis)
@example(text="!!timestamp ", limits=safeload.DEFAULT)         # AttributeError (found by Hypothesis)
@example(text='"\\U0011ffff"', limits=safeload.DEFAULT)        # ValueError from compose_yaml (found by Hypothesis)
@example(text="%YAML 1." + "1" * 5000 + "\n--- a", limits=safeload.DEFAULT)   # ValueError from compose_yaml (read)
@example(text='["\\ud800"]', limits=safeload.DEFAULT)           # a lone surrogate in the result (found by Hypothesis,
                                                                # through Butane)
def test_safeload_yaml_text(text, limits):
    out = assert_result_or_one_line(safeload.load_yaml, text, "x.yaml", limits=limits)
    if not failed(out):
        assert_utf8(out)
    assert_result_or_one_line(safeload.compose_yaml, text, "x.yaml", limits=limits)


@given(data=st.one_of(st.binary(max_size=200), jsonish, any_text, json_values.map(json.dumps)),
       limits=st.sampled_from([safeload.DEFAULT, SMALL]))
def test_safeload_json(data, limits):
    assert_result_or_one_line(safeload.load_json, data, "x.json", limits=limits)
    if isinstance(data, str):
        assert_result_or_one_line(safeload.load_json, data.encode("utf-8", "surrogatepass"), "x.json", limits=limits)


# ---------------------------------------------------------------- Butane

def _schema_strategy(typ: Any) -> st.SearchStrategy[Any]:
    """Documents of the Butane schema's shape (every field optional), a value of any type here and there."""
    if isinstance(typ, Prim):
        if typ.kind == "str":
            good = (st.sampled_from((*typ.enum, "ntfs")) if typ.enum
                    else st.one_of(st.sampled_from(BUTANE_STRINGS), st.text(max_size=10)))
        elif typ.kind == "int":
            good = st.one_of(st.sampled_from([0, 420, 0o644, 644, 0o4755, 777, 1000, -1, 2 ** 70]), st.integers())
        else:
            good = st.one_of(st.booleans(), st.sampled_from(["yes", "off", "Y"]).map(Plain))
    elif isinstance(typ, ListOf):
        good = st.lists(_schema_strategy(typ.item), max_size=2)
    else:
        fields: dict[str, F] = typ.fields
        good = st.fixed_dictionaries({}, optional={k: _schema_strategy(f.type) for k, f in fields.items()
                                                   if k not in ("variant", "version") and not f.ign_only})
    return mostly(good)


BUTANE_STRINGS = ["", "/etc/foo", "/var/lib/x", "/var", "/dev/vdb", "/dev/mapper/root", "/dev/disk/by-id/dm-name-root",
                  "root", "core", "hello\nworld", "data:,x", "https://example.com/x", "gzip", "sha512-" + "0" * 128,
                  "local.txt", "keys.pub", "tree", "tree/a.txt", "missing", "../x", "/etc/hostname", ".", "a\x00b",
                  "a\udcff", "x" * 300, "https://tang.example", "[Unit]\nDescription=x\n", "0644", "yes", "a  b",
                  "notutf8.bin"]
butane_body = _schema_strategy(SCHEMA)
VARIANTS = sorted(SPEC_TABLE)


@st.composite
def butane_docs(draw: st.DrawFn) -> Any:
    body = draw(butane_body)
    doc: dict = {}
    variant, version = draw(st.sampled_from(VARIANTS))
    if draw(st.integers(0, 9)) < 9:
        doc["variant"] = draw(mostly(st.just(variant)))
    if draw(st.integers(0, 9)) < 9:
        doc["version"] = draw(mostly(st.just(version)))
    doc.update(body if isinstance(body, dict) else {"storage": body})
    if draw(st.integers(0, 9)) == 9:
        doc.update(draw(st.dictionaries(yaml_keys, yaml_values, max_size=1)))
    return doc


@pytest.fixture(scope="module")
def files_dir():
    """A Butane files directory (``-d``): files, an SSH key file, a tree with a symlink, bytes not UTF-8."""
    with tempfile.TemporaryDirectory(prefix="livelab-fuzz-") as d:
        root = Path(d)
        (root / "local.txt").write_text("hello\n")
        (root / "keys.pub").write_text("# keys\nssh-ed25519 AAAA x@y\n\n")
        (root / "notutf8.bin").write_bytes(b"\xff\xfe\x00")
        (root / "tree" / "sub").mkdir(parents=True)
        (root / "tree" / "a.txt").write_text("a")
        (root / "tree" / "sub" / "b.sh").write_text("#!/bin/sh\n")
        os.chmod(root / "tree" / "sub" / "b.sh", 0o755)
        os.symlink("a.txt", root / "tree" / "link")
        os.symlink("sub", root / "tree" / "dirlink")
        yield root


@given(data=st.one_of(st.binary(max_size=200), yamlish, yaml_text(yaml_values)), strict=st.booleans())
def test_butane_any_input(data, strict):
    assert_result_or_one_line(butane_to_ignition, data, strict=strict, source="x.bu")


@given(text=yaml_text(butane_docs()), strict=st.booleans(), with_dir=st.booleans())
# variant '' printed as nothing: "variant/version  1.0.0" (found by Hypothesis)
@example(text="variant: ''\nversion: 1.0.0\n", strict=False, with_dir=False)
# a key with line breaks / a space printed raw: a message of several lines (found by Hypothesis)
@example(text="variant: fcos\nversion: 1.0.0\n? '\n\n  '\n: null\n", strict=False, with_dir=False)
@example(text="variant: fcos\nversion: 1.0.0\n' ': null\n", strict=False, with_dir=False)
# a surrogate escape in a local path: UnicodeEncodeError from open() (found by Hypothesis)
@example(text='{"variant": "fcos", "version": "1.5.0", "systemd": {"units": [{"name": "", "dropins": [], '
              '"contents_local": "\\ud800\\udc00"}]}}', strict=False, with_dir=True)
# a value with a run of spaces, shown by repr(): one_line() changed it (read)
@example(text="variant: fcos\nversion: 1.4.0\nstorage: {files: [{path: /a, mode: a  b}]}\n", strict=False,
         with_dir=False)
def test_butane_documents(files_dir, text, strict, with_dir):
    out = assert_result_or_one_line(butane_to_ignition, text, files_dir=files_dir if with_dir else None,
                                    strict=strict, source="x.bu")
    if not failed(out):
        assert_utf8(out.config)     # an Ignition config: JSON, in UTF-8
        assert out.config["ignition"]["version"] == out.spec


LOCAL_PATHS = ["local.txt", "keys.pub", "tree", "tree/a.txt", "tree/link", "notutf8.bin", "missing", "../x", "/etc",
               ".", "", "a\x00b", "a  b", "a\nb", "x" * 300, "tree/../../x"]
# every Butane key that names a file of the files directory, as a document around it
LOCAL_PLACES = [
    lambda p: {"storage": {"files": [{"path": "/a", "contents": {"local": p}}]}},
    lambda p: {"storage": {"files": [{"path": "/a", "append": [{"local": p}]}]}},
    lambda p: {"storage": {"trees": [{"local": p, "path": "/usr/local"}]}},
    lambda p: {"systemd": {"units": [{"name": "a.service", "contents_local": p}]}},
    lambda p: {"systemd": {"units": [{"name": "a.service", "dropins": [{"name": "b.conf", "contents_local": p}]}]}},
    lambda p: {"passwd": {"users": [{"name": "core", "ssh_authorized_keys_local": [p]}]}},
    lambda p: {"ignition": {"config": {"merge": [{"local": p}]}}},
    lambda p: {"storage": {"luks": [{"name": "r", "device": "/dev/vdb", "key_file": {"local": p}}]}},
]


@st.composite
def butane_local_docs(draw: st.DrawFn) -> Any:
    variant, version = draw(st.sampled_from([("fcos", "1.5.0"), ("fcos", "1.6.0"), ("flatcar", "1.1.0"),
                                             ("fcos", "1.1.0")]))
    place = draw(st.sampled_from(LOCAL_PLACES))
    return {"variant": variant, "version": version,
            **place(draw(st.one_of(st.sampled_from(LOCAL_PATHS), st.text(max_size=8))))}


@given(doc=butane_local_docs(), with_dir=st.booleans())
# a NUL in a local path: ValueError from os.path.realpath (found by Hypothesis)
@example(doc={"variant": "fcos", "version": "1.5.0", **LOCAL_PLACES[0]("a\x00b")}, with_dir=True)
@example(doc={"variant": "fcos", "version": "1.5.0", **LOCAL_PLACES[2]("a\x00b")}, with_dir=True)
# a local file name with a run of spaces, shown by repr() (read)
@example(doc={"variant": "fcos", "version": "1.5.0", **LOCAL_PLACES[0]("a  b")}, with_dir=True)
def test_butane_local_files(files_dir, doc, with_dir):
    assert_result_or_one_line(butane_to_ignition, flow_yaml(doc), files_dir=files_dir if with_dir else None,
                              source="x.bu")


@pytest.mark.parametrize("scalar", ["0x_", "0o_", "0b_", "-0x_"])
def test_butane_a_radix_prefix_without_digits_is_a_string(scalar):
    """Was "number too long" (found reading yamlnodes); go-yaml, Butane's parser, reads it as a string."""
    out = butane_to_ignition(f"variant: fcos\nversion: 1.4.0\nstorage: {{disks: [{{device: /dev/vdb, partitions: "
                             f"[{{label: {scalar}}}]}}]}}\n")
    assert out.config["storage"]["disks"][0]["partitions"][0]["label"] == scalar


# ---------------------------------------------------------------- FCOS stream, release, release index

SAMPLES = Path("/work/shared/reference/samples/fcos")
STREAM_SAMPLES = [SAMPLES / "stream-stable-33.20201201.3.0.json", SAMPLES / "stream-stable-41.20250331.3.0.json"]
RELEASE_SAMPLE = SAMPLES / "release-33.20201201.3.0.json"
INDEX_SAMPLE = SAMPLES / "releases-index.json"
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"no samples in {SAMPLES}")


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, text: str, focus: tuple) -> Any:
    """The JSON document ``text`` with up to 3 subtrees replaced by random JSON values or deleted, at the
    top level or along/under ``focus`` (the part the parser reads)."""
    doc = json.loads(text)
    for _ in range(draw(st.integers(0, 3))):
        candidates = [p for p in _paths(doc) if len(p) <= 1 or p == focus[:len(p)] or p[:len(focus)] == focus]
        path = draw(st.sampled_from(candidates))
        if not path:
            doc = draw(json_values)
            continue
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        if draw(st.integers(0, 3)) == 3:
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return doc


def _read(p: Path) -> str:
    return p.read_text() if p.is_file() else "{}"


def _stream_then_release(data: bytes, arch: str, mirror: str | None) -> Any:
    """What fcos.resolve does with a stream document: parse it, then build the release from it."""
    version, entries = fcos.parse_stream(fcos._load_json(data, "s.json"), arch, "s.json")
    return fcos.build_release("stable", arch, version, entries, mirror, "s.json")


def _release_then_build(data: bytes, arch: str, mirror: str | None) -> Any:
    version, entries = fcos.parse_release(fcos._load_json(data, "release.json"), arch, "release.json")
    return fcos.build_release("stable", arch, version, entries, mirror, "release.json")


arches = mostly(st.sampled_from(["x86_64", "x86_64", *fcos.ARCHES]), st.text(max_size=6))
mirrors = st.sampled_from([None, "file:///m", "http://127.0.0.1:8000/mirror"])


@st.composite
def stream_cases(draw: st.DrawFn) -> tuple[bytes, str, str | None]:
    """(stream JSON, arch, mirror): a sample stream document, mutated where the parser reads it."""
    arch, sample = draw(arches), draw(st.sampled_from(STREAM_SAMPLES))
    doc = draw(mutated(_read(sample), ("architectures", arch, "artifacts", "metal")))
    return json.dumps(doc).encode(), arch, draw(mirrors)


@st.composite
def release_cases(draw: st.DrawFn) -> tuple[bytes, str, str | None]:
    arch = draw(arches)
    doc = draw(mutated(_read(RELEASE_SAMPLE), ("architectures", arch, "media", "metal")))
    return json.dumps(doc).encode(), arch, draw(mirrors)


@st.composite
def index_cases(draw: st.DrawFn) -> tuple[bytes, str]:
    doc = draw(mutated(_read(INDEX_SAMPLE), ("releases",)))
    version = draw(st.one_of(st.sampled_from(["33.20201201.3.0", "33.20201214.3.1"]), st.text(max_size=8)))
    return json.dumps(doc).encode(), version


def _find_in_index(data: bytes, version: str) -> str:
    return fcos.find_in_index(fcos._load_json(data, "releases.json"), version, "stable")


@needs_samples
@given(case=stream_cases())
# architecture names listed raw: "it has  " (found by Hypothesis)
@example(case=(b'{"stream": "stable", "architectures": {" ": null}}', "x86_64", None))
# a location with a line break passed as a URL, then printed raw by the mirror rules (found by Hypothesis)
@example(case=(json.dumps({"architectures": {"x86_64": {"artifacts": {"metal": {"release": "1", "formats": {"pxe": {
    "kernel": {"location": "\r"}, "initramfs": {"location": f"{fcos.FCOS_BASE}i"},
    "rootfs": {"location": f"{fcos.FCOS_BASE}r"}}}}}}}}).encode(), "x86_64", "file:///m"))
# ... and one with a line break inside a URL became the artifact's URL, cache file name and all (read)
@example(case=(json.dumps({"architectures": {"x86_64": {"artifacts": {"metal": {"release": "1", "formats": {"pxe": {
    "kernel": {"location": f"{fcos.FCOS_BASE}a\nb"}, "initramfs": {"location": f"{fcos.FCOS_BASE}i"},
    "rootfs": {"location": f"{fcos.FCOS_BASE}r"}}}}}}}}).encode(), "x86_64", None))
def test_fcos_stream_json(case):
    assert_usable_release(assert_result_or_one_line(_stream_then_release, *case))


def assert_usable_release(out: Any) -> None:
    """A release parsed from metadata names its artifacts by URLs that are one word each."""
    if failed(out):
        return
    for art in out.artifacts.values():
        for url in (art.url, art.upstream_url, art.signature_url, art.upstream_signature_url):
            assert re.fullmatch(r"[^\s\x00-\x1f\x7f]+", url), url


@needs_samples
@given(case=release_cases())
# release "  " shown by repr(): one_line() changed it (found by Hypothesis)
@example(case=(b'{"release": "  ", "architectures": {}}', "x86_64", None))
# arch "" printed as nothing: "no metal media for " (found by Hypothesis)
@example(case=(b'{"release": "33.20201201.3.0", "stream": "stable", "architectures": {"": {}}}', "", None))
def test_fcos_release_json(case):
    assert_usable_release(assert_result_or_one_line(_release_then_build, *case))


@needs_samples
@given(case=index_cases())
# version "" printed as nothing: "has no release  in" (found by Hypothesis); the latest version, raw (read)
@example(case=(b'{"releases": [{"version": "33.20201214.3.1"}]}', ""))
@example(case=(b'{"releases": [{"version": "a\\nb"}]}', "1"))
def test_fcos_release_index(case):
    assert_result_or_one_line(_find_in_index, *case)


@given(data=st.one_of(st.binary(max_size=100), jsonish.map(str.encode)), arch=arches)
def test_fcos_metadata_any_bytes(data, arch):
    assert_result_or_one_line(_stream_then_release, data, arch, None)
    assert_result_or_one_line(_release_then_build, data, arch, None)
    assert_result_or_one_line(_find_in_index, data, "1")


# ---------------------------------------------------------------- Flatcar

STRICT_VERSION = r"[0-9]+\.[0-9]+\.[0-9]+(?:[+-][0-9A-Za-z._+-]+)?"
version_lines = st.one_of(
    st.sampled_from(["FLATCAR_VERSION=3510.2.2", "FLATCAR_VERSION_ID=3510.2.2", "FLATCAR_BUILD_ID=\"2023-05\"",
                     "export FLATCAR_VERSION='4593.2.5'", "FLATCAR_VERSION=", "FLATCAR_VERSION=\"\"", "# c", "",
                     "  ", "FLATCAR_VERSION=3510.2.2+dev-1", "lower=1", "FLATCAR_VERSION=1.2", "=x"]),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["FLATCAR_VERSION", "FLATCAR_VERSION_ID", "X"]),
              st.one_of(st.from_regex(STRICT_VERSION, fullmatch=True), st.text(max_size=12))),
    st.text(max_size=20))
version_txt = st.builds(lambda lines, sep: sep.join(lines), st.lists(version_lines, max_size=6),
                        st.sampled_from(["\n", "\r\n", "\r", "\x0b", "\u2028", "\n\n"]))


@given(text=st.one_of(version_txt, any_text, st.binary(max_size=100).map(lambda b: b.decode("utf-8", "replace"))))
@example(text="FLATCAR_VERSION=\u0661.\u0662.\u0663")     # Arabic-Indic digits taken for a version (read)
@example(text="x  y")                                       # a line shown by repr(): one_line() changed it (read)
def test_flatcar_version_txt(text):
    out = assert_result_or_one_line(flatcar.parse_version_txt, text, "version.txt")
    if not failed(out):
        assert re.fullmatch(STRICT_VERSION, out), out


@given(version=st.one_of(st.from_regex(STRICT_VERSION), any_text))
@example(version="3510.2.2\n")      # `$` matched before the line break: accepted, line break and all (read)
@example(version="\u0661.\u0662.\u0663")                # Unicode digits (read)
def test_flatcar_check_version(version):
    out = assert_result_or_one_line(flatcar.check_version, version)
    if not failed(out):
        assert re.fullmatch(STRICT_VERSION, out), out


DIGEST_NAME = "flatcar_production_pxe.vmlinuz"
DIGEST_LENGTHS = {"MD5": 32, "SHA1": 40, "SHA256": 64, "SHA512": 128, "FOO": 10}


@st.composite
def digests_blocks(draw: st.DrawFn) -> str:
    """A DIGESTS file: ``# <ALGO> HASH`` blocks of ``<hex>  <name>`` lines, a mistake here and there."""
    lines = []
    for _ in range(draw(st.integers(1, 4))):
        algo = draw(st.sampled_from(["SHA512", "SHA512", *sorted(DIGEST_LENGTHS)]))
        lines.append(draw(mostly(st.sampled_from([f"# {algo} HASH", f"#{algo.lower()}  hash"]),
                                 st.sampled_from(["# HASH", "#", "# SHA512", "SHA512 HASH"]))))
        n = draw(mostly(st.just(DIGEST_LENGTHS[algo]), st.integers(0, 130)))
        hexd = draw(st.from_regex(f"[0-9a-fA-F]{{{n}}}", fullmatch=True)) if n else ""
        for _ in range(draw(st.integers(0, 2))):
            name = draw(mostly(st.sampled_from([DIGEST_NAME, "*" + DIGEST_NAME, "other.bin"]), st.text(max_size=8)))
            lines.append(f"{hexd}{draw(st.sampled_from(['  ', ' ', chr(9)]))}{name}")
        if draw(st.integers(0, 9)) == 9:
            lines.append(draw(st.text(max_size=20)))
    return draw(st.sampled_from(["\n", "\r\n"])).join(lines)


@given(text=st.one_of(digests_blocks(), any_text, st.binary(max_size=100).map(lambda b: b.decode("utf-8", "replace"))),
       filename=mostly(st.sampled_from([None, DIGEST_NAME]), st.text(max_size=6)))
@example(text="# SHA512 HASH\n0", filename=None)        # "expected '<hex>  <file name>'" (found by Hypothesis)
@example(text="", filename=" ")                          # "entry for  " (found by Hypothesis)
def test_flatcar_digests(text, filename):
    out = assert_result_or_one_line(parse_digests, text, filename, source="x.DIGESTS")
    if not failed(out):
        assert len(out["sha512"]) == 128


# ---------------------------------------------------------------- cache records

RECORD = {"digests": {"sha512": "0" * 128}, "kind": "kernel", "size": 3, "mtime_ns": 1, "verified_with": ["ABCD"],
          "final_url": "file:///x", "insecure": False, "verified_at": "2025-01-01T00:00:00Z"}


@pytest.fixture(scope="module")
def record_dir():
    with tempfile.TemporaryDirectory(prefix="livelab-fuzz-") as d:
        yield Path(d)


@given(data=st.one_of(st.binary(max_size=200), jsonish.map(str.encode),
                      mutated(json.dumps(RECORD), ()).map(lambda d: json.dumps(d).encode()),
                      json_values.map(lambda v: json.dumps(v).encode("utf-16"))))
# verified_with that is not a list of fingerprints: a TypeError in the pipeline's set(...) (read)
@example(data=b'{"digests": {}, "verified_with": [{"a": 1}]}')
@example(data=b'{"digests": {}, "verified_with": 7}')
@example(data=b'{"digests": {"sha512": 7}}')
def test_cache_record(record_dir, data):
    final = record_dir / "file"
    store.record_path(final).write_bytes(data)
    rec = assert_result_or_one_line(store.load_record, final)
    assert rec is None or (isinstance(rec, dict) and isinstance(rec["digests"], dict))
    if rec is not None:      # what the callers do with a record (pipeline._trusted, _local; Store.scan)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in rec["digests"].items())
        signers = rec.get("verified_with")
        assert signers is None or (isinstance(signers, list) and all(isinstance(v, str) for v in signers))


# ---------------------------------------------------------------- scenarios

COMMANDS = ["true", "cat /etc/hostname", "echo {{saved}}", "  ", "", "test -e /run/ostree-live"]
REGEXES = ["^ok$", "Reached target .*", "(", "a{4294967296}", "(?P<a>x)(?P<a>y)", "\\", "{{saved}}", "[", "*",
           "(?<", "\\N{x}", "(" * 120 + ")" * 120, "(?s).*"]
PORTS = [80, 8080, 9, 22, 0, 65536, -1]
CASE_IDS = [f"{o}.{s}.{m}.{f}" for o in OSES for s in STREAMS[o] for m in OS_METHODS[o] for f in FIRMWARES]


def _names(values: list) -> st.SearchStrategy[Any]:
    return mostly(st.lists(mostly(st.sampled_from(values), st.text(max_size=6)), min_size=1, max_size=3, unique=True))


@st.composite
def checks(draw: st.DrawFn) -> Any:
    kind = draw(mostly(st.sampled_from(scenario._CHECK_KINDS), st.sampled_from(["ssh2", "expect"])))
    if kind in ("ssh", "console_cmd", "wait_until") and draw(st.integers(0, 5)) == 0:
        return draw(st.sampled_from(COMMANDS))            # a check written as its command
    value = {"console": st.sampled_from(REGEXES), "port": st.sampled_from(PORTS)}.get(kind, st.sampled_from(COMMANDS))
    check = {kind: draw(mostly(value))}
    optional = {
        "name": st.text(max_size=10), "output": st.sampled_from(REGEXES), "not_output": st.sampled_from(REGEXES),
        "status": st.one_of(st.none(), st.integers(-1, 300)), "only": st.sampled_from([*OSES, *METHODS, *FIRMWARES]),
        "timeout": st.one_of(st.integers(-1, 100), st.floats(), st.sampled_from([math.nan, math.inf, 10 ** 400, 0.5])),
        "save_as": st.sampled_from(["saved", "1x", ""]),
        "expect": st.sampled_from(scenario.PORT_RESULTS), "send": st.text(max_size=5),
        "console": st.sampled_from(REGEXES)}
    for key in draw(st.lists(st.sampled_from(sorted(optional)), max_size=3, unique=True)):
        check[key] = draw(mostly(optional[key]))
    return draw(mostly(st.just(check)))


boots = st.lists(mostly(st.fixed_dictionaries({}, optional={
    "how": mostly(st.sampled_from(["start", "reboot", "reset", "power-cycle"])),
    "checks": mostly(st.lists(checks(), max_size=4)),
    "add_kargs": mostly(st.lists(st.sampled_from(["quiet", "a=b"]), max_size=2)),
    "remove_kargs": mostly(st.lists(st.sampled_from(["flatcar.first_boot"]), max_size=2)),
    "expect_failure": mostly(st.sampled_from(["Ignition failed", ""])),
})), max_size=3)

BUTANE_FILES = ["base.fcos.bu", "notutf8.bu", "nul.bu", "missing.bu", "subdir", "../outside.bu", "a\x00b", ""]
scenario_fields = {
    "description": st.text(max_size=20),
    "butane": st.one_of(st.sampled_from(BUTANE_FILES),
                        st.fixed_dictionaries({}, optional={o: mostly(st.sampled_from(BUTANE_FILES)) for o in OSES})),
    "applies": st.fixed_dictionaries({}, optional={
        "os": _names(list(OSES)), "method": _names(list(METHODS)), "firmware": _names(list(FIRMWARES)),
        "stream": _names(sorted({s for v in STREAMS.values() for s in v})),
        "channel": _names(list(STREAMS["flatcar"]))}),
    "memory": st.one_of(st.integers(-1, 8192), st.just(2 ** 64)),
    "cpus": st.integers(-1, 8),
    "disks": st.lists(st.fixed_dictionaries({"name": mostly(st.sampled_from(["var", "data", "-x", "var"]))}, optional={
        "size": mostly(st.sampled_from(["2G", "512M", "0G", "1X", "8"])),
        "serial": mostly(st.sampled_from(["var", "a b"]))}), max_size=2),
    "ci": st.lists(st.sampled_from(CASE_IDS), max_size=2),
    "completion": st.booleans(), "user_config": st.booleans(), "slow": st.booleans(), "below_minimum": st.booleans(),
    "kargs": st.lists(st.sampled_from(["quiet", "console=ttyS0"]), max_size=2),
    "first_boot_kargs": st.lists(st.sampled_from(["ignition.firstboot"]), max_size=1),
    "oem_config": st.sampled_from(["oem.json", "bad.json", "missing.json", "subdir"]),
    "forwards": st.lists(st.sampled_from(PORTS), max_size=3),
    "boots": boots,
}


@st.composite
def scenario_docs(draw: st.DrawFn) -> Any:
    doc = draw(st.fixed_dictionaries({}, optional={k: mostly(v) for k, v in scenario_fields.items()}))
    if draw(st.integers(0, 9)) == 9:
        doc.update(draw(st.dictionaries(yaml_keys, yaml_values, max_size=1)))
    return draw(mostly(st.just(doc)))


# one boot of checks and nothing else (most inputs reach the end of the loader)
check_scenarios = st.builds(lambda cs: {"boots": [{"checks": cs}], "forwards": [80, 8080, 9]},
                            st.lists(checks(), min_size=1, max_size=3))


@pytest.fixture(scope="module")
def scenario_dir():
    """A scenario directory with the files scenarios name: a Butane config, bad ones, an OEM config."""
    with tempfile.TemporaryDirectory(prefix="livelab-fuzz-") as d:
        root = Path(d) / "scenarios"
        root.mkdir()
        (root / "base.fcos.bu").write_text("variant: fcos\nversion: 1.4.0\n")
        (root / "notutf8.bu").write_bytes(b"variant: \xff\n")
        (root / "nul.bu").write_bytes(b"a\x00")
        (root / "subdir").mkdir()
        (Path(d) / "outside.bu").write_text("variant: fcos\n")
        (root / "oem.json").write_text('{"ignition": {"version": "3.3.0"}}')
        (root / "bad.json").write_text("{")
        yield root


def _load_and_cases(path: Path) -> Any:
    loaded = scenario.load(path)
    loaded.cases()
    return loaded


def assert_usable_scenario(out: Any) -> None:
    """What the loader accepts, the run can use: e.g. a check's time-out is a number of seconds a clock takes."""
    if failed(out):
        return
    for boot in out.boots:
        for check in boot.checks:
            assert check.timeout is None or _clock_seconds(check.timeout), check


def _clock_seconds(t: float) -> bool:
    try:
        return 0 < float(t) < math.inf
    except OverflowError:       # an int beyond floats: no clock adds it to its time
        return False


@given(text=st.one_of(yaml_text(scenario_docs()), yaml_text(check_scenarios), yamlish, st.binary(max_size=100)))
# keys with line breaks / spaces printed raw (found by Hypothesis)
@example(text="? '\n\n  '\n: null\n")
@example(text="' ': null\n")
@example(text="description: ''\nboots:\n- ? '\n\n    '\n  : null\n")
@example(text='description: \'\'\nboots:\n- "\\r": null\n')
@example(text='{"applies": {"\\u0085": null}}')
@example(text='? "\\N"\n: null\n')
# the PyYAML constructors' crashes, through the scenario loader (found by Hypothesis)
@example(text="!<tag:yaml.org,2002:int> ")
# a time-out of .inf / .nan / 10**400 seconds was accepted (found by Hypothesis: .inf; read: the others)
@example(text="boots:\n- checks:\n  - console: ^ok$\n    name: ''\n    timeout: .inf\nforwards:\n- 80\n- 8080\n- 9\n")
@example(text="boots: [{checks: [{ssh: 'true', timeout: .nan}]}]")
@example(text=f"boots: [{{checks: [{{ssh: 'true', timeout: {10 ** 400}}}]}}]")
def test_scenario_file(scenario_dir, text):
    path = scenario_dir / "s.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    out = assert_result_or_one_line(_load_and_cases, path)
    assert failed(out) or isinstance(out, scenario.Scenario)
    assert_usable_scenario(out)


@given(texts=st.lists(st.one_of(yaml_text(scenario_docs()), yamlish), max_size=3))
# re.compile's OverflowError (found by Hypothesis)
@example(texts=["kargs: []\ndescription: ''\nforwards: []\noem_config: oem.json\nfirst_boot_kargs: []\nboots:\n"
                "- checks:\n  - console: a{4294967296}\n"])
@example(texts=["!!timestamp "])    # AttributeError (found by Hypothesis)
@example(texts=["!!bool "])         # KeyError (found by Hypothesis)
@example(texts=["butane: ' '\n"])   # "butane.fcos:   not found" (found by Hypothesis)
def test_scenario_directory(scenario_dir, texts):
    for old in scenario_dir.glob("*.yaml"):
        old.unlink()
    for i, text in enumerate(texts):
        (scenario_dir / f"s{i}.yaml").write_bytes(text.encode("utf-8", "surrogatepass"))
    out = assert_result_or_one_line(scenario.load_all, scenario_dir)
    assert failed(out) or len(out) == len(texts)
    for loaded in [] if failed(out) else out:
        assert_usable_scenario(loaded)


# ---------------------------------------------------------------- Ignition spec table override

SPECS = ["3.0.0", "3.3.0", "3.4.0-experimental", "3.3", " 3.3.0", "3.3.0\n", "x", "", "3.3.0-beta", "٣.٣.٠"]
spec_tables = st.fixed_dictionaries({}, optional={
    "fcos": mostly(st.dictionaries(mostly(st.sampled_from(["42.20250410.3.1", "41.20250331.3.0"]), yaml_keys),
                                   mostly(st.sampled_from(SPECS)), max_size=2)),
    "flatcar": mostly(st.dictionaries(mostly(st.sampled_from(["3510.2.2"]), yaml_keys),
                                      mostly(st.sampled_from(SPECS)), max_size=2)),
    "_comment": st.text(max_size=10), "accepted": st.lists(st.sampled_from(SPECS), max_size=2)})


@st.composite
def spec_table_files(draw: st.DrawFn) -> bytes:
    doc = draw(st.one_of(spec_tables, yaml_values))
    if draw(st.integers(0, 9)) == 9 and isinstance(doc, dict):
        doc.update(draw(st.dictionaries(yaml_keys, yaml_values, max_size=1)))
    how = draw(st.sampled_from(["json", "yaml"]))
    if how == "json":
        try:
            return json.dumps(_unplain(doc)).encode()
        except TypeError:       # keys JSON cannot have
            pass
    return draw(yaml_text(st.just(doc))).encode("utf-8", "surrogatepass")


@given(data=st.one_of(spec_table_files(), st.binary(max_size=100), jsonish.map(str.encode), yamlish.map(str.encode)))
@example(data=b"0: null\n")       # a key that is not a string: AttributeError (found by Hypothesis)
@example(data=b'{"fcos": {"42.1": "3.3.0\\n"}}')        # accepted with its line break (read)
@example(data=b'{"fcos": {"42.1": " 3.3.0"}}')           # accepted with its space (read)
def test_spec_table_override(record_dir, data):
    path = record_dir / "table.json"
    path.write_bytes(data)
    out = assert_result_or_one_line(specs.load_override, str(path))
    if not failed(out):
        assert isinstance(out, dict) and all(isinstance(v, dict) for v in out.values())
        for os_map in out.values():     # each max spec exactly as max_spec() returns it
            assert all(isinstance(v, str) and re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+(-experimental)?", v)
                       for v in os_map.values()), os_map
