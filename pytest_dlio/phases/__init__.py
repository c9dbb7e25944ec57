"""Phases drive a plan against an ObjectStore: datagen, train, checkpoint. No backend knowledge here."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PhaseResult:
    """What a phase hands back to its item.

    ``properties`` become the item's ``user_properties`` (JUnit ``<property>``): plain int/float/str only,
    DLIO's metric names where DLIO has one. ``summary`` is merged into DLIO-compatible ``summary.json``
    (``metric`` sub-dict for metrics). ``lines`` are short human lines for the terminal summary.
    ``failure`` set means the item fails with that message (e.g. AU below threshold).
    """

    properties: list[tuple[str, int | float | str]] = field(default_factory=list)
    summary: dict[str, object] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    failure: str | None = None
