"""What every data-quality check gives: a result, a run's report, and the policy that rates them.

A check passes, warns or fails (``status``). Whether a failure holds a
publication back is the policy's (``quality.blocking`` in the configuration,
docs/quality.md): a blocking failure keeps a silver or gold run from
publishing (write-audit-publish); any other failure is reported and alerts,
but lets the run publish.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from lakestream.config import QualitySettings
from lakestream.errors import DataQualityError
from lakestream.medallion.sql import TimeBounds


class QualityCheckFailed(DataQualityError):
    """At least one quality check failed (results are stored before this is raised)."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check."""

    name: str
    dataset: str
    status: str  # pass | warn | fail
    observed: float | None
    threshold: str
    detail: str
    blocking: bool = False
    """Whether a failure of this check holds a publication back (the policy says)."""

    @property
    def line(self) -> str:
        """``name status: detail``, for messages and logs."""
        return f"{self.name} {self.status}: {self.detail}"


@dataclass
class QualityReport:
    """Every check of one run."""

    run_id: str
    pipeline: str
    checked_at: dt.datetime
    results: list[CheckResult] = field(default_factory=list)

    @property
    def failed(self) -> list[CheckResult]:
        """The checks that failed."""
        return [r for r in self.results if r.status == "fail"]

    @property
    def blocked(self) -> list[CheckResult]:
        """The failed checks that hold a publication back."""
        return [r for r in self.failed if r.blocking]

    @property
    def ok(self) -> bool:
        """Whether no check failed (warnings allowed)."""
        return not self.failed

    def verdict(self) -> str | None:
        """Why the run must not publish (its blocking failures), or ``None``."""
        return "; ".join(r.line for r in self.blocked) or None


class Rater:
    """Makes results under one policy: which checks block, what times are plausible.

    Args:
        policy: The ``quality`` settings.
        now: The moment the run checks against (its freshness and time bounds).
        warn_only: No check blocks (a person decided to publish anyway).
    """

    def __init__(self, policy: QualitySettings, now: dt.datetime, warn_only: bool = False) -> None:
        self.policy = policy
        self.now = now
        self.warn_only = warn_only
        self.bounds = time_bounds(policy, now)

    def blocks(self, name: str) -> bool:
        """Whether a failure of the check ``name`` holds a publication back.

        ``quality.blocking`` lists names or prefixes of dot-separated parts
        (``validity`` covers ``validity.in`` and ``validity.temperature``); a
        gold check goes by its name without ``gold.`` too (``validity`` covers
        ``gold.validity.temperature``).
        """
        names = {name, name.removeprefix("gold.")}
        return not self.warn_only and any(n == p or n.startswith(f"{p}.")
                                          for n in names for p in self.policy.blocking)

    def result(self, name: str, dataset: str, status: str, observed: float | None,
               threshold: str, detail: str) -> CheckResult:
        """A result, rated blocking or not by the policy."""
        return CheckResult(name, dataset, status, observed, threshold, detail, self.blocks(name))


def time_bounds(policy: QualitySettings, now: dt.datetime) -> TimeBounds:
    """The plausible observation times of a run at ``now``."""
    floor = dt.datetime.combine(policy.timestamp_floor, dt.time(), dt.UTC)
    return TimeBounds.around(now, dt.timedelta(minutes=policy.future_tolerance_min), floor)


def share(part: int, whole: int) -> float:
    """``part`` of ``whole`` in %, 100 for nothing at all."""
    return 100.0 if whole == 0 else 100.0 * part / whole


def freshness_result(rater: Rater, name: str, dataset: str, newest: dt.datetime | None,
                     what: str) -> CheckResult:
    """Fresh when the newest ``what`` is at most ``freshness_warn_h`` old; warns up to
    ``freshness_alert_h``, fails (an alert) beyond."""
    policy, now = rater.policy, rater.now
    threshold = f"warn > {policy.freshness_warn_h:g} h, alert > {policy.freshness_alert_h:g} h"
    if newest is None:
        return rater.result(name, dataset, "fail", None, threshold, f"no {what}")
    newest = newest.astimezone(dt.UTC)
    age_h = (now - newest).total_seconds() / 3600
    if age_h > policy.freshness_alert_h:
        status, word = "fail", "alert: "
    elif age_h > policy.freshness_warn_h:
        status, word = "warn", "warning: "
    else:
        status, word = "pass", ""
    return rater.result(name, dataset, status, round(age_h, 2), threshold,
                        f"{word}newest {what} {newest:%Y-%m-%d %H:%M} UTC, {age_h:.1f} h old")
