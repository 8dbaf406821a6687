"""livelab's errors.

- ``LivelabError``: bad input or a host problem, said in one line before any VM starts.
- ``BootFailure``: a guest that did not boot; the message carries the reason and console evidence
  (``poll.WaitTimeout`` is the kind that ran out of time).
- ``AbnormalShutdown``: a guest that did not power off by itself; QEMU had to be stopped.
"""
from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


class LivelabError(Exception):
    """A user-facing error: printed as one line (``livelab: error: ...``), exit status 2."""

    exit_status = 2

    def one_line(self) -> str:
        text = " ".join(str(self).split())
        return text or self.__class__.__name__


class BootFailure(LivelabError):
    """A guest failed to boot; the message carries the reason and the console evidence."""

    exit_status = 1


class AbnormalShutdown(LivelabError):
    """The guest did not power off cleanly (no answer to the power button in time, or QEMU
    exited with an error): it was stopped the hard way, and its disks may not be synced."""

    exit_status = 1


def required(value: T | None, error: Exception) -> T:
    """``value``, or ``error`` raised when it is None (a VM part that is not there yet or any more)."""
    if value is None:
        raise error
    return value
