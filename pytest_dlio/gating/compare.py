"""Compare a run's figures with a baseline's: ``METRIC:LIMIT`` rules, direction-aware.

``--dlio-fail-on train_throughput_mean_samples_per_second:-10%`` fails when samples/s drops by more than
10 % of the baseline; ``read_latency_p99_ms:+2`` when p99 latency rises by more than 2 ms. The limit is how
much a figure may get *worse*; which way is worse comes from the metric (throughput, GB/s, AU: lower is
worse; latency, duration, seconds: higher is worse), so the sign may be left out. A metric whose name says
neither needs the sign: ``-`` means a drop is worse, ``+`` a rise.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_dlio.errors import DlioError

_SPREAD = ("_stdev_", "_stdev", "_cov_", "_cov")  # a spread of anything: more is worse
_HIGHER_BETTER = ("per_second", "_per_s", "throughput", "_au_", "au_mean", "bandwidth")
_LOWER_BETTER = ("latency", "duration", "seconds", "_time", "_ms", "wall")


def worse_direction(metric: str) -> int | None:
    """-1 when a lower value is worse (throughput, AU), +1 when higher is worse (latency), None if unknown."""
    name = f"_{metric}_"
    if any(p in name for p in _SPREAD):
        return 1
    if any(p in name for p in _HIGHER_BETTER):
        return -1
    if any(p in name for p in _LOWER_BETTER):
        return 1
    return None


@dataclass(frozen=True)
class FailOn:
    """How much ``metric`` may get worse: ``limit`` percent of the baseline (``percent``) or absolute units."""

    metric: str
    limit: float
    percent: bool
    worse: int  # -1: lower is worse; +1: higher is worse

    def __str__(self) -> str:
        sign = "-" if self.worse < 0 else "+"
        return f"{self.metric}:{sign}{self.limit:g}{'%' if self.percent else ''}"


_RULE = re.compile(
    r"^(?P<metric>[A-Za-z_][A-Za-z0-9_]*):(?P<sign>[+-]?)(?P<num>\d+(\.\d*)?|\.\d+)(?P<pct>%?)$"
)


def parse_fail_on(text: str) -> FailOn:
    """``METRIC:-10%``, ``METRIC:10%``, ``METRIC:+2.5`` (absolute); ValueError saying what is valid."""
    m = _RULE.match(text.strip())
    if not m:
        raise ValueError(
            f"expected METRIC:LIMIT such as train_throughput_mean_samples_per_second:-10% or "
            f"read_latency_p99_ms:+2 (absolute, in the metric's unit), got {text!r}"
        )
    metric, sign = m["metric"], m["sign"]
    known = worse_direction(metric)
    if known is None and not sign:
        raise ValueError(
            f"{text!r}: cannot tell whether a higher or a lower {metric} is worse; write "
            f"{metric}:-{m['num']}{m['pct']} (a drop is worse) or {metric}:+{m['num']}{m['pct']} "
            "(a rise is worse)"
        )
    worse = known if known is not None else (-1 if sign == "-" else 1)
    return FailOn(metric, float(m["num"]), bool(m["pct"]), worse)


#: What ``--dlio-compare`` checks when no ``--dlio-fail-on`` is given (only the figures a workload has).
DEFAULT_FAIL_ON = tuple(
    parse_fail_on(t)
    for t in (
        "train_au_mean_percentage:-5%",
        "train_throughput_mean_samples_per_second:-10%",
        "save_checkpoint_io_mean_GB_per_second:-10%",
        "load_checkpoint_io_mean_GB_per_second:-10%",
        "read_latency_p99_ms:+20%",
    )
)

#: Identity fields that must match (the rest, such as storage URI, may differ: that is what is compared).
COMPARABLE = ("config_hash", "scale_factor", "ranks", "hosts")


def differences(then: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """How two results' identities differ where comparing them would mislead."""
    return [
        f"{k} {then.get(k)!r} in the baseline, {now.get(k)!r} now"
        for k in COMPARABLE
        if then.get(k) != now.get(k)
    ]


def refusal(baseline_name: str, then: Mapping[str, Any], now: Mapping[str, Any]) -> str | None:
    """Why these two results must not be compared (None when they may)."""
    diffs = differences(then, now)
    if not diffs:
        return None
    return (
        f"refusing to compare with baseline {baseline_name!r}: " + "; ".join(diffs) + ". A different "
        "config, scale or world measures something else: save a baseline for this setup with --dlio-save, "
        "or pass --dlio-compare-force to compare anyway"
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        x = float(value)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class Comparison:
    lines: tuple[str, ...]  # one per compared metric, passing or not
    failures: tuple[str, ...]  # one per metric that got worse than allowed (or could not be compared)


def compare(
    then: Mapping[str, Any], now: Mapping[str, Any], rules: Sequence[FailOn], *, explicit: bool
) -> Comparison:
    """Check each rule's metric, baseline ``then`` against this run's ``now``.

    With ``explicit`` rules (the user's ``--dlio-fail-on``) a metric missing on either side is a failure;
    default rules skip metrics the workload does not have (a training workload has no checkpoint GB/s).
    """
    lines: list[str] = []
    failures: list[str] = []
    for rule in rules:
        old, new = _number(then.get(rule.metric)), _number(now.get(rule.metric))
        if old is None or new is None:
            if explicit:
                side = "the baseline" if old is None else "this run"
                failures.append(
                    f"{rule.metric}: not measured in {side}, so --dlio-fail-on {rule} cannot be "
                    "checked (name a figure both runs report, e.g. one of the items' properties)"
                )
            continue
        delta = new - old
        change = (
            f"{delta:+.4g}"
            if not rule.percent
            else (f"{100 * delta / old:+.2f} %" if old != 0 else ("+inf %" if delta else "+0.00 %"))
        )
        worse_by = delta * rule.worse  # > 0 means worse
        allowed = rule.limit * abs(old) / 100 if rule.percent else rule.limit
        sign = "-" if rule.worse < 0 else "+"
        allowed_text = f"{sign}{rule.limit:g}{' %' if rule.percent else ''}"
        text = f"{rule.metric}: baseline {old:.6g}, now {new:.6g}, change {change} (allowed {allowed_text})"
        if worse_by > allowed:
            failures.append(text)
            lines.append(f"REGRESSED {text}")
        else:
            lines.append(f"ok {text}")
    return Comparison(tuple(lines), tuple(failures))


def against_baseline(
    doc: Mapping[str, Any],
    path: str,
    workload: str,
    identity: Mapping[str, Any],
    figures: Mapping[str, Any],
    rules: Sequence[FailOn],
    *,
    explicit: bool,
    force: bool,
) -> Comparison:
    """One workload of this run against baseline ``doc`` (read from ``path``): its lines start with where the
    baseline came from. DlioError when the baseline lacks the workload or, unless ``force``, measured
    something else (another config hash, scale or world)."""
    saved = doc["workloads"].get(workload)
    name = doc.get("name")
    if saved is None:
        names = ", ".join(sorted(doc["workloads"])) or "none"
        raise DlioError(
            f"baseline {path} has no workload {workload!r} (it has: {names}); save a baseline "
            "that includes it with --dlio-save"
        )
    then = saved.get("identity", {})
    refused = refusal(str(name), then, identity)
    if refused and not force:
        raise DlioError(refused)
    result = compare(saved.get("figures", {}), figures, rules, explicit=explicit)
    if not result.lines and not result.failures:  # a gate that compared nothing must not pass
        result = Comparison(
            (),
            (
                f"none of {', '.join(r.metric for r in rules)} is in both the baseline and this "
                "run, so nothing was compared; name a figure both report with --dlio-fail-on "
                "(e.g. datagen_MiB_per_s:-10%)",
            ),
        )
    head = [f"baseline {name!r} ({path}), saved {doc.get('saved')} on {then.get('storage_uri')}"]
    if refused:
        head.append("compared anyway (--dlio-compare-force): " + "; ".join(differences(then, identity)))
    return Comparison((*head, *result.lines), result.failures)
