"""harness.safeload: outside YAML / JSON parsed within limits, every failure one line naming the source."""
from __future__ import annotations

import io
import textwrap
import time

import pytest
import yaml
from limits import GiB, run_python_limited

from harness import safeload
from harness.errors import LivelabError
from harness.safeload import Limits


def billion_laughs(levels: int = 9) -> str:
    """The classic alias bomb: 9 ** ``levels`` leaves from a few hundred bytes."""
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


# ---------------------------------------------------------------- text

def test_limits_defaults():
    d = safeload.DEFAULT
    assert (d.max_bytes, d.max_depth, d.max_nodes) == (16 << 20, 100, 100_000)


def test_decode_text_utf8_and_bom():
    assert safeload.decode_text("variant: fcos # é\n".encode(), "a.bu") == "variant: fcos # é\n"
    assert safeload.decode_text(b"\xef\xbb\xbfa: 1\n", "a.bu") == "a: 1\n"


def test_decode_text_names_the_first_bad_byte():
    data = b"variant: fcos\nab\xffc: 1\n"
    with pytest.raises(LivelabError) as e:
        safeload.decode_text(data, "butane.bu")
    assert one_line(e) == "butane.bu: not UTF-8 text: byte 0xff at offset 16 (line 2, column 3)"
    with pytest.raises(LivelabError) as e:     # the offset counts the byte order mark
        safeload.decode_text(b"\xef\xbb\xbf" + data, "butane.bu")
    assert "byte 0xff at offset 19 (line 2, column 3)" in one_line(e)


@pytest.mark.parametrize("data", [b"a: b\x07\n", "a: b\x07\n"])
def test_characters_yaml_refuses_are_one_line(data):
    with pytest.raises(LivelabError) as e:
        safeload.load_yaml(data, "x.yaml")
    assert one_line(e) == ("x.yaml: unacceptable character U+0007 at offset 4 (line 1, column 5): "
                           "special characters are not allowed in YAML")


def test_read_stream_and_file_stop_at_the_size_limit(tmp_path):
    small = Limits(max_bytes=10)
    assert safeload.read_stream(io.BytesIO(b"0123456789"), "<stdin>", limits=small) == b"0123456789"
    with pytest.raises(LivelabError, match=r"^<stdin>: more than the limit of 10 bytes$"):
        safeload.read_stream(io.BytesIO(b"0123456789+"), "<stdin>", limits=small)
    (tmp_path / "f").write_bytes(b"x" * 11)
    with pytest.raises(LivelabError, match=r"^f: more than the limit of 10 bytes$"):
        safeload.read_file(str(tmp_path / "f"), "f", limits=small)
    with pytest.raises(LivelabError, match=r"^cannot read .*nowhere: No such file or directory$"):
        safeload.read_file(str(tmp_path / "nowhere"))


# ---------------------------------------------------------------- YAML

VALID = textwrap.dedent("""\
    base: &base {name: core, groups: [wheel, sudo]}
    users:
      - <<: *base
        uid: 1000
      - *base
    flags: [yes, no, on, 0644, 1.5, ~, '0644', 2001-12-14]
    text: |
      line one
      line two
    """)


def test_valid_yaml_loads_as_safe_load_does():
    assert safeload.load_yaml(VALID, "v.yaml") == yaml.safe_load(VALID)
    assert safeload.load_yaml(VALID.encode(), "v.yaml") == yaml.safe_load(VALID)
    assert safeload.load_yaml("", "v.yaml") is None


def test_compose_yaml_keeps_nodes_and_aliases():
    docs = safeload.compose_yaml("a: &x [1]\nb: *x\n---\nc: 2\n", "v.yaml")
    assert len(docs) == 2
    (ka, va), (kb, vb) = docs[0].value
    assert (ka.value, kb.value) == ("a", "b") and va is vb
    assert (va.start_mark.line, va.start_mark.column) == (0, 3)
    assert safeload.compose_yaml("", "v.yaml") == []


@pytest.mark.parametrize("text, message", [
    ("a: b: c\n", "x.yaml: not valid YAML: mapping values are not allowed here (line 1, column 5)"),
    ("a: 1\n---\nb: 2\n", "x.yaml: not valid YAML: expected a single document in the stream (line 1, column 1), "
                          "but found another document (line 2, column 1)"),
    ("a: *nope\n", "x.yaml: not valid YAML: found undefined alias 'nope' (line 1, column 4)"),
])
def test_invalid_yaml_is_one_line_with_position(text, message):
    with pytest.raises(LivelabError) as e:
        safeload.load_yaml(text, "x.yaml")
    assert one_line(e) == message


def test_size_limit():
    with pytest.raises(LivelabError) as e:
        safeload.load_yaml("a: " + "x" * 20, "x.yaml", limits=Limits(max_bytes=16))
    assert one_line(e) == "x.yaml: 23 bytes, more than the limit of 16 bytes"
    with pytest.raises(LivelabError, match=r"^x\.yaml: 17825793 bytes, more than the limit of 16 MiB$"):
        safeload.load_yaml(b"x" * (17 * 1024 * 1024 + 1), "x.yaml")


def test_node_limit_counts_every_node_and_each_alias_as_its_subtree():
    limits = Limits(max_nodes=9)
    # mapping, 2 keys, list, 3 items: 7 nodes; the alias repeats the list's 4
    assert safeload.load_yaml("a: &l [1, 2, 3]\nb: 1\n", "x.yaml", limits=limits) == {"a": [1, 2, 3], "b": 1}
    with pytest.raises(LivelabError) as e:
        safeload.load_yaml("a: &l [1, 2, 3]\nb: *l\n", "x.yaml", limits=limits)
    assert one_line(e) == ("x.yaml: YAML aliases expand to more than 9 nodes (the limit), "
                           "at alias *l (line 2, column 4)")
    with pytest.raises(LivelabError) as e:
        safeload.load_yaml("[1, 2, 3, 4, 5, 6, 7, 8, 9]", "x.yaml", limits=limits)
    assert one_line(e) == "x.yaml: more than 9 YAML nodes (the limit), at line 1, column 26"


def test_billion_laughs_fails_fast():
    t0 = time.monotonic()
    with pytest.raises(LivelabError) as e:
        safeload.load_yaml(billion_laughs(), "lol.yaml")
    assert time.monotonic() - t0 < 2
    assert one_line(e).startswith("lol.yaml: YAML aliases expand to more than 100000 nodes (the limit), at alias *l")


def test_a_bomb_is_refused_whatever_key_holds_it():
    """The limits hold while parsing: a caller that ignores (or only warns about) a key is safe too."""
    text = billion_laughs().replace("l9:", "x-unknown-key-nobody-reads:")
    for parse in (safeload.load_yaml, safeload.compose_yaml):
        with pytest.raises(LivelabError, match="YAML aliases expand to more than 100000 nodes"):
            parse(text, "lol.yaml")


@pytest.mark.parametrize("text, where", [
    ("&a [*a]", "line 1, column 5"),
    ("a: &a {b: *a}", "line 1, column 11"),
    ("a: &a\n  b:\n    - c\n    - *a\n", "line 4, column 7"),
])
def test_alias_inside_its_own_node_is_refused(text, where):
    for parse in (safeload.load_yaml, safeload.compose_yaml):
        with pytest.raises(LivelabError) as e:
            parse(text, "self.yaml")
        assert one_line(e) == (f"self.yaml: YAML alias *a is inside the node it names, so it would repeat "
                               f"without end, at {where}")


@pytest.mark.parametrize("text, where", [
    ("[" * 100_000, "line 1, column 101"),
    ("- " * 100_000, "line 1, column 201"),
    ("{a: " * 100_000, "line 1, column 401"),
    ("a:\n" + "".join("  " * i + "b:\n" for i in range(1, 200)), "line 101, column 201"),
], ids=["flow-lists", "block-lists", "flow-mappings", "block-mappings"])
def test_deep_nesting_is_one_line_not_recursion_error(text, where):
    t0 = time.monotonic()
    for parse in (safeload.load_yaml, safeload.compose_yaml):
        with pytest.raises(LivelabError) as e:
            parse(text, "deep.yaml")
        assert one_line(e) == f"deep.yaml: YAML nested deeper than 100 levels (the limit), at {where}"
    assert time.monotonic() - t0 < 5


def test_depth_limit_is_exact_and_counts_expanded_aliases():
    assert safeload.load_yaml("[" * 100 + "]" * 100, "d.yaml") is not None
    nested = "[" * 99 + "]" * 99
    assert safeload.load_yaml(f"a: &a {nested}\nb: *a\n", "d.yaml")["b"] is not None
    with pytest.raises(LivelabError) as e:       # the alias puts 99 levels under a list at level 2
        safeload.load_yaml(f"a: &a {nested}\nb: [*a]\n", "d.yaml")
    assert one_line(e) == ("d.yaml: YAML nested deeper than 100 levels (the limit) once alias *a is expanded, "
                           "at line 2, column 5")


def test_huge_integer_is_one_line():
    with pytest.raises(LivelabError, match=r"^x\.yaml: a value YAML cannot hold: Exceeds the limit"):
        safeload.load_yaml("a: " + "1" * 5000, "x.yaml")


BOMB_IN_CHILD = """
import sys, time
from harness import safeload
from harness.errors import LivelabError
data = sys.stdin.buffer.read()
t0 = time.monotonic()
try:
    safeload.{func}(data, "bomb.yaml")
except LivelabError as exc:
    print(exc)
    print(f"{{time.monotonic() - t0:.2f}}")
else:
    print("parsed")
"""


@pytest.mark.parametrize("func", ["load_yaml", "compose_yaml"])
@pytest.mark.parametrize("text", [billion_laughs(), billion_laughs(20), "&a [*a, *a]", "[" * 1_000_000],
                         ids=["billion-laughs", "deeper-laughs", "self-alias", "deep"])
def test_bombs_finish_under_a_memory_cap(func, text):
    proc = run_python_limited(BOMB_IN_CHILD.format(func=func), input=text, memory=GiB, timeout=30)
    assert proc.returncode == 0, proc.stderr
    message, seconds = proc.stdout.splitlines()
    assert message.startswith("bomb.yaml: YAML ") and ("(the limit)" in message or "without end" in message)
    assert float(seconds) < 5


# ---------------------------------------------------------------- JSON

def test_valid_json():
    assert safeload.load_json('{"a": [1, {"b": "[[{"}]}', "s.json") == {"a": [1, {"b": "[[{"}]}
    assert safeload.load_json(b'\xef\xbb\xbf{"a": "\\"["}', "s.json") == {"a": '"['}
    deep_ok = "[" * 100 + "]" * 100
    assert safeload.load_json(deep_ok, "s.json") is not None


@pytest.mark.parametrize("data, message", [
    ('{"a": }', "s.json: not valid JSON: Expecting value (line 1, column 7)"),
    ('{\n  "a": 1,\n}', "s.json: not valid JSON: Expecting property name enclosed in double quotes (line 3, column 1)"),
    (b'{"a": "\xff"}', "s.json: not UTF-8 text: byte 0xff at offset 7 (line 1, column 8)"),
    ("[" * 101 + "]" * 101, "s.json: JSON nested deeper than 100 levels (the limit), at line 1, column 101"),
    ("[" * 1_000_000, "s.json: JSON nested deeper than 100 levels (the limit), at line 1, column 101"),
    ('["' + "[" * 200 + '", ' + "{" * 101, "s.json: JSON nested deeper than 100 levels (the limit), "
                                           "at line 1, column 305"),
    ("1" * 5000, None),
], ids=["syntax", "trailing-comma", "not-utf8", "depth-101", "depth-1000000", "brackets-in-strings", "huge-int"])
def test_invalid_json_is_one_line(data, message):
    with pytest.raises(LivelabError) as e:
        safeload.load_json(data, "s.json")
    text = one_line(e)
    if message is None:
        assert text.startswith("s.json: a value JSON cannot hold here: ")
    else:
        assert text == message


def test_json_size_limit():
    with pytest.raises(LivelabError, match=r"^s\.json: 12 bytes, more than the limit of 10 bytes$"):
        safeload.load_json(b'["123456789"]'[:12], "s.json", limits=Limits(max_bytes=10))
