"""The memory-limit / timeout helper the hostile-input tests rely on (tests/unit/limits.py)."""
from __future__ import annotations

import os
import signal
import threading
import time

from limits import EXCEPTION, KILLED, LIVELAB_ERROR, RESULT, TIMEOUT, MiB, run_limited

from harness.errors import LivelabError


def test_result_comes_back():
    outcome = run_limited(sum, [1, 2, 3])
    assert (outcome.kind, outcome.value) == (RESULT, 6)


def test_memory_past_the_limit_fails_in_the_child_only():
    outcome = run_limited(lambda: len(bytearray(768 * MiB)), memory=256 * MiB)
    assert outcome.kind == EXCEPTION and outcome.message.startswith("MemoryError"), outcome
    assert run_limited(lambda: len(bytearray(128 * MiB)), memory=256 * MiB).value == 128 * MiB


def test_livelab_error_and_other_exceptions():
    def refuse():
        raise LivelabError("no")

    assert (run_limited(refuse).kind, run_limited(refuse).message) == (LIVELAB_ERROR, "no")
    outcome = run_limited(int, "x")
    assert outcome.kind == EXCEPTION and outcome.message.startswith("ValueError:") and "Traceback" in outcome.detail


def test_timeout_kills_the_child():
    outcome = run_limited(time.sleep, 30, timeout=0.3)
    assert outcome.kind == TIMEOUT and outcome.seconds < 5


def test_death_by_signal():
    outcome = run_limited(lambda: os.kill(os.getpid(), signal.SIGKILL))
    assert (outcome.kind, outcome.message) == (KILLED, "SIGKILL")


def test_unpicklable_result_comes_back_as_its_repr():
    outcome = run_limited(threading.Lock)
    assert outcome.kind == RESULT and "lock" in outcome.value
