"""A pytest plugin the matrix loads into its runs (``-p harness.matrix_clock``): when each test ran.

Each test case of the JUnit file gets the properties ``livelab_started`` and ``livelab_ended``:
the wall clock (seconds since the epoch) at the start of its set-up and at the end of its
tear-down, as measured where it ran (an xdist worker).  ``harness.matrix.parse_junit`` reads them
into each attempt, and the matrix report draws each host's timeline from them.
"""
from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from .matrix import CLOCK_ENDED as ENDED
from .matrix import CLOCK_STARTED as STARTED


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if call.when == "setup" and not any(name == STARTED for name, _ in item.user_properties):
        # the teardown report copies the item's properties, and junitxml writes those
        item.user_properties.append((STARTED, f"{call.start:.3f}"))
    elif call.when == "teardown":
        report.user_properties.append((ENDED, f"{call.stop:.3f}"))
