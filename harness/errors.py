"""Errors the user sees as one line, before any VM starts."""


class LivelabError(Exception):
    """A user-facing error: printed as one line (``livelab: error: ...``), exit status 2."""

    exit_status = 2

    def one_line(self) -> str:
        text = " ".join(str(self).split())
        return text or self.__class__.__name__


class BootFailure(LivelabError):
    """A guest failed to boot; the message carries the reason and the console evidence."""

    exit_status = 1
