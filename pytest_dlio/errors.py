"""One small error hierarchy: a user's mistake becomes a failed item with one clear message."""

from __future__ import annotations

import unicodedata


def printable(text: str) -> str:
    """``text`` with control and format characters (ESC, NUL, newline, bidi overrides) shown as escapes,
    so a hostile key or value cannot forge or garble a terminal line or a report."""
    return "".join(
        ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) in ("Cc", "Cf") else ch
        for ch in text
    )


class DlioError(Exception):
    """Root of every error pytest-dlio reports to a user as a failed item (never a traceback)."""


class ConfigError(DlioError):
    """One or more problems in a workload config; each line names key path, file:line:col and the fix."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [printable(p) for p in ([problems] if isinstance(problems, str) else problems)]
        super().__init__("\n".join(self.problems))


class StorageError(DlioError):
    """A storage operation failed; names the URI, the operation and the key, never a secret."""

    def __init__(self, uri: str, op: str, key: str | None = None, reason: str = "") -> None:
        self.uri, self.op, self.key, self.reason = uri, op, key, reason
        where = f"{uri.rstrip('/')}/{key}" if key else uri
        super().__init__(f"{op} {where}: {reason}" if reason else f"{op} {where} failed")


class NotFound(StorageError, FileNotFoundError):
    """The key does not exist in the store."""

    def __init__(self, uri: str, op: str, key: str | None = None, reason: str = "no such key") -> None:
        super().__init__(uri, op, key, reason)
