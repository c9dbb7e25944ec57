"""Retries a store made: counted by the backends (per cause), read by the engine after each phase.

A retry is one more attempt at a request after a failed one (the first attempt is not a retry). Causes:
the HTTP status that was retried (``"503"``, ``"500"``, ``"429"`` …), ``"reset"`` (the connection was
closed or reset), ``"timeout"`` (connect or read timeout), ``"connect"`` (the connection was refused or
could not be made), ``"truncated"`` (a body shorter than its Content-Length or the range asked for).
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Retries:
    """Retries by cause, as ``((cause, count), …)`` sorted by count then cause."""

    by_cause: tuple[tuple[str, int], ...] = ()

    @classmethod
    def of(cls, counts: dict[str, int] | Counter[str]) -> Retries:
        items = [(k, int(n)) for k, n in counts.items() if n > 0]
        return cls(tuple(sorted(items, key=lambda kv: (-kv[1], kv[0]))))

    @property
    def total(self) -> int:
        return sum(n for _, n in self.by_cause)

    def __add__(self, other: Retries) -> Retries:
        return Retries.of(Counter(dict(self.by_cause)) + Counter(dict(other.by_cause)))

    def __bool__(self) -> bool:
        return self.total > 0

    def describe(self) -> str:
        """``"15 (503 ×12, reset ×3)"``; ``"0"`` when there were none."""
        if not self:
            return "0"
        return f"{self.total} ({', '.join(f'{k} ×{n}' for k, n in self.by_cause)})"


class RetryCounter:
    """The live, thread-safe counter a store (and every wrapper around it) shares."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, cause: str, n: int = 1) -> None:
        with self._lock:
            self._counts[cause] += n

    def snapshot(self) -> Retries:
        with self._lock:
            return Retries.of(self._counts)


def http_cause(status: int | None) -> str:
    """The cause of a retried HTTP answer."""
    return str(status) if status else "other"


def exception_cause(exc: BaseException) -> str:
    """The cause of a retried transport error, judged by the innermost error it wraps (by type name and
    text, so no client library is imported here)."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain and len(chain) < 8:
        chain.append(seen)
        kwargs = getattr(seen, "kwargs", None)  # botocore keeps the aiohttp error in kwargs["error"]
        inner = kwargs.get("error") if isinstance(kwargs, dict) else None
        seen = (
            inner
            if isinstance(inner, BaseException)
            else (getattr(seen, "inner_exception", None) or seen.__cause__ or seen.__context__)
        )
    for e in reversed(chain):
        names = " ".join(t.__name__ for t in type(e).__mro__).lower()
        text = str(e).lower()
        if "timeout" in names or "timed out" in text:
            return "timeout"
        if "incompleteread" in names or "payload" in names or "truncat" in text:
            return "truncated"
        if "refused" in names or "refused" in text or "connectorerror" in names:
            return "connect"
        if "disconnect" in names or "reset" in names or "reset" in text or "closed" in text:
            return "reset"
    return "reset"


class Truncated(Exception):
    """A response body shorter than it said it was: retried like a transient error, never a good read."""


async def retry_truncated(read: Callable[[], Awaitable[T]], attempts: int, count: Callable[[str], None]) -> T:
    """``await read()``, again (up to ``attempts`` in all) while it raises :class:`Truncated`, counting each
    retry as ``"truncated"`` (unless the Truncated says ``counted``); the last one propagates with
    ``dlio_attempts`` set."""
    for attempt in range(1, max(1, attempts) + 1):
        try:
            return await read()
        except Truncated as exc:
            if attempt >= attempts:
                exc.dlio_attempts = attempt  # type: ignore[attr-defined]
                raise
            if not getattr(exc, "counted", False):
                count("truncated")
            await asyncio.sleep(min(1.0, 0.05 * 2**attempt))
    raise AssertionError("unreachable")


def gave_up(
    attempts: int | None, elapsed: float, key: str, max_attempts: int, connect_timeout: float, timeout: float
) -> str:
    """What a failed request tried and which options bound it, for its error message."""
    tried = (
        f"{attempts} attempt{'s' if attempts != 1 else ''}" if attempts else f"up to {max_attempts} attempts"
    )
    return (
        f"gave up after {tried} in {elapsed:.1f} s (attempts: storage_options.{key}={max_attempts}; "
        f"storage_options.connect_timeout={connect_timeout:g} s, timeout={timeout:g} s)"
    )
