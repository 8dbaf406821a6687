"""Property tests (Hypothesis) of the frame ``Console.run`` puts around a command's output: kernel
messages that land anywhere in it (between lines, inside a base64 line, inside a marker) are
taken out and the output comes back whole; a frame that does not add up is a ValueError, never a
wrong answer.  The profile is in hypothesis_profiles.py."""
from __future__ import annotations

import base64
import contextlib

import hypothesis_profiles  # noqa: F401 -- registers and loads the profile
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.console import decode_framed, frame_end, without_kernel_records

TOKEN = "0a1b2c3d"
BEGIN, END = f"__LL_{TOKEN}_OUT__", f"__LL_{TOKEN}_RC="


def framed(status: int, data: bytes) -> str:
    """The console's text of a run: the shell's PS2, the frame (base64 -w 76, CR LF line ends)."""
    b64 = base64.encodebytes(data).decode().replace("\n", "\r\n")
    return f"> {BEGIN}\r\n{b64}{END}{status}_N={len(data)}__\r\n"


chars = st.characters(blacklist_categories=("Cs",))      # what UTF-8 can carry
records = st.builds(lambda secs, text: f"[{secs:>12.6f}] {text}\r\n",
                    st.floats(0, 99999, allow_nan=False), st.text(chars.filter(lambda c: c != "\n"), max_size=60))


@st.composite
def with_records(draw: st.DrawFn, text: str) -> str:
    """``text`` with kernel records put in at any places."""
    places = sorted(draw(st.lists(st.integers(0, len(text)), max_size=4)), reverse=True)
    for at in places:
        text = text[:at] + draw(records) + text[at:]
    return text


@given(data=st.binary(max_size=400), status=st.integers(0, 255), st_data=st.data())
def test_output_comes_back_whole_whatever_the_kernel_prints(data, status, st_data):
    shown = st_data.draw(with_records(framed(status, data)))
    m = frame_end(END).search(shown)
    assert m is not None, shown
    assert decode_framed(shown[:m.end()], BEGIN, END) == (status, data)


@given(text=st.text(chars, max_size=300), st_data=st.data())
def test_the_commands_own_dmesg_lines_are_kept(text, st_data):
    """Output that looks like kernel records travels as base64, which no record regex can touch."""
    data = st_data.draw(with_records(text)).encode()
    assert decode_framed(framed(0, data), BEGIN, END) == (0, data)


@given(data=st.binary(min_size=1, max_size=300), st_data=st.data())
def test_a_frame_that_does_not_add_up_is_an_error(data, st_data):
    shown = framed(0, data)
    lines = shown.split("\r\n")
    body = [i for i, line in enumerate(lines) if line and not line.startswith(("> ", "__LL_"))]
    drop = st_data.draw(st.sampled_from(body))
    # a whole line of base64 lost on the way
    with pytest.raises(ValueError, match="bytes of output arrived"):
        decode_framed("\r\n".join(lines[:drop] + lines[drop + 1:]), BEGIN, END)


@given(text=st.text(max_size=200))
def test_any_console_text_is_a_frame_or_a_value_error(text):
    with contextlib.suppress(ValueError):
        decode_framed(text, BEGIN, END)


def test_a_record_without_its_end_marker_is_not_whole():
    with pytest.raises(ValueError, match="not whole"):
        decode_framed(f"{BEGIN}\r\naGkK\r\n", BEGIN, END)


def test_without_kernel_records_leaves_other_lines():
    text = "a\r\n[   24.792221] input: ImExPS/2\r\nb [not a record]\r\n[    1.0] x\r\n"
    assert without_kernel_records(text) == "a\r\nb [not a record]\r\n"
