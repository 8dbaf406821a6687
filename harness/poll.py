"""The one way livelab waits: ``poll`` a probe until it answers, watching the VM all the while.

    poll(probe, timeout, what="unit nginx.service active", interval=1.0, check=machine.check)

- ``probe()`` returns the result when the wait is over, or raises ``Retry("what it saw")``.
- ``check()`` (the console watcher: a kernel panic, emergency mode, QEMU gone) runs before every
  try and every ``SLICE`` seconds of a pause, so a lost boot fails at once, not at the time-out.
- The pause between tries starts at ``interval`` and grows by ``backoff`` up to ``max_interval``.
- When ``timeout`` passes, ``error`` (``WaitTimeout`` by default) is raised with what the probe
  last saw.  ``timeout=None`` waits until the probe answers or ``check`` raises.

``pause(seconds, check)`` lets time pass with the same watching.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, TypeVar

from .errors import BootFailure

log = logging.getLogger(__name__)
T = TypeVar("T")
SLICE = 0.1          # how often ``check`` runs during a pause


class Retry(Exception):
    """Raised by a probe: not yet.  Its message is what the probe saw (kept for the time-out)."""


class WaitTimeout(BootFailure):
    """A wait ran out of time; the message says what was awaited and what was last seen."""


def _nothing() -> None:
    return None


def pause(seconds: float, check: Callable[[], None] = _nothing) -> None:
    """Let ``seconds`` pass, calling ``check`` every ``SLICE`` seconds (and once at the start)."""
    end = time.monotonic() + max(0.0, seconds)
    while True:
        check()
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(SLICE, left))


def poll(probe: Callable[[], T], timeout: float | None, *, what: str, interval: float = 1.0,
         backoff: float = 1.0, max_interval: float | None = None, check: Callable[[], None] = _nothing,
         error: Callable[[str], Exception] = WaitTimeout) -> T:
    """Try ``probe`` until it returns (see the module's doc); raise ``error`` after ``timeout``."""
    start = time.monotonic()
    deadline = None if timeout is None else start + timeout
    last = "no answer yet"
    delay = interval
    tries = 0
    while True:
        check()
        tries += 1
        try:
            result = probe()
            if tries > 1:
                log.debug("%s: after %.1f s, %d tries", what, time.monotonic() - start, tries)
            return result
        except Retry as exc:
            last = str(exc) or last
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            log.debug("%s: gave up after %.1f s, %d tries; last seen: %s", what, now - start, tries, last)
            raise error(f"{what}: not within {timeout:.0f} s (last seen: {last})")
        pause(delay if deadline is None else min(delay, deadline - now), check)
        delay = delay * backoff
        if max_interval is not None:
            delay = min(delay, max_interval)


def until(condition: Callable[[], bool], timeout: float | None, *, what: str, interval: float = SLICE,
          check: Callable[[], None] = _nothing, error: Callable[[str], Exception] = WaitTimeout) -> None:
    """``poll`` for a plain condition: wait until ``condition()`` is true."""
    def probe() -> None:
        if not condition():
            raise Retry("not yet")
    poll(probe, timeout, what=what, interval=interval, check=check, error=error)
