"""The boot lines (logger ``harness.boot``, see ``boot.BootLog``) in pytest's output, as they happen.

``install(config)`` from the plugin's ``pytest_configure``:

- ``--log-cli-level=INFO`` (or lower) without xdist: pytest's own live log shows them; nothing to add;
- ``-v`` without xdist: a handler writes them through the terminal reporter, on a line of their own
  (as pytest's live log does: the capture is set aside for the line);
- an xdist worker (``-v`` or ``--log-cli-level=INFO``): its terminal reporter writes nowhere, so a
  handler writes them, prefixed with the worker's id, to the stderr the worker started with (kept
  before any test's capture replaces it): the controller's terminal or CI log.

Otherwise the records stay below the logger's level, as before.
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

from .boot import LOG

PREFIX = "livelab: "


def _level(value: Any) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    level = logging.getLevelName(str(value).upper())
    return level if isinstance(level, int) else None


def _wanted(config: Any) -> tuple[bool, bool]:
    """(show the boot lines, pytest's own live log shows them already)."""
    verbose = int(config.getoption("verbose", 0) or 0)
    cli_option = config.getoption("log_cli_level", None)
    log_cli = cli_option is not None or bool(config.getini("log_cli"))
    level = _level(cli_option) or _level(config.getini("log_cli_level")) or _level(config.getoption("log_level", None))
    cli_shows = log_cli and (level is None or level <= logging.INFO)
    return verbose > 0 or cli_shows, cli_shows


def install(config: Any) -> logging.Handler | None:
    """Show logger ``harness.boot``'s lines in this pytest process's output when asked (see the
    module); the handler it added, if any (removed again at the end of the run)."""
    show, cli_shows = _wanted(config)
    if not show:
        return None
    worker = getattr(config, "workerinput", None)
    if cli_shows and worker is None:
        return None
    old_level = LOG.level
    LOG.setLevel(logging.INFO)
    handler: logging.Handler
    if worker is not None:
        handler = FdHandler(os.dup(2), f"[{worker.get('workerid', 'worker')}] {PREFIX}")
    else:
        handler = TerminalHandler(config)
    LOG.addHandler(handler)

    def remove() -> None:
        LOG.removeHandler(handler)
        LOG.setLevel(old_level)
        handler.close()
    config.add_cleanup(remove)
    return handler


class FdHandler(logging.Handler):
    """Each record as one line, written at once to a file descriptor this handler owns."""

    def __init__(self, fd: int, prefix: str = PREFIX):
        super().__init__(logging.INFO)
        self.fd = fd
        self.prefix = prefix

    def emit(self, record: logging.LogRecord) -> None:
        try:
            os.write(self.fd, f"{self.prefix}{self.format(record)}\n".encode(errors="replace"))
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.fd >= 0:
                os.close(self.fd)
        self.fd = -1
        super().close()


class TerminalHandler(logging.Handler):
    """Each record as a line of pytest's terminal output, outside the test's capture (pytest's
    live log does the same)."""

    def __init__(self, config: Any):
        super().__init__(logging.INFO)
        self.config = config

    def emit(self, record: logging.LogRecord) -> None:
        try:
            plugins = self.config.pluginmanager
            reporter = plugins.get_plugin("terminalreporter")
            capture = plugins.get_plugin("capturemanager")
            if reporter is None:
                return
            off = capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext()
            with off:
                reporter.ensure_newline()
                reporter.write_line(PREFIX + self.format(record))
        except Exception:
            self.handleError(record)
