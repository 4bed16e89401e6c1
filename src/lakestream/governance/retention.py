"""Retention, part one: the plan of exactly what would go (``lakestream retention --dry-run``).

Policies per feed and layer (docs/governance.md, "Retention"), each overridable in the feed file:

=========  ==========================================  =================================
layer      what is kept                                default
=========  ==========================================  =================================
streams    the last N days of date partitions          365 days (``retention_days``)
dlq        dead letters, by the day they were rejected  the stream's days
tables     the last N snapshot versions                ``lake.table_versions`` (7)
                                                       (``retention_versions``)
bronze     the last N days of date partitions          30 days (``weather.bronze_retention_days``)
silver     month/day partitions ending in the last N   90 days (``weather.silver_retention_days``)
gold       rows of ``gold_weather_*`` newer than N     365 days (``weather.gold_retention_days``)
=========  ==========================================  =================================

"The last N days" includes today: with N = 30 on 2025-03-31, partitions up to
2025-03-01 go. Today's partition, future partitions and the current table
version are never planned. :mod:`.retention_run` executes a plan exactly.

Every dataset of the lake is a Delta table, planned from its log (a dataset
written before Lakestream kept the lake as Delta tables is refused with the
hint to run ``lakestream lake upgrade``): a deletion lists the partition's
live files (the ones the run's delete commit removes
from the snapshot), and the plan's ``vacuum`` lists, per Delta dataset, the
files no snapshot of the last ``grace_hours`` refers to (the ones the run
deletes from storage). Files the delete commit removes are vacuumed by a
later run once the grace period has passed (at once with a grace of 0).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from lakestream.config import Settings
from lakestream.feeds import Feed
from lakestream.governance.catalog import view_name
from lakestream.governance.gold_retention import GoldRetention
from lakestream.governance.names import RETENTION_LAYERS
from lakestream.lake.delta import DeltaDataset, check_not_legacy, is_delta_table
from lakestream.lake.delta_maintenance import (
    partition_columns,
    partition_files,
    vacuum_candidates,
)
from lakestream.lake.layout import DLQ
from lakestream.lake.storage import Storage

log = logging.getLogger(__name__)

DEFAULT_STREAM_DAYS = 365
LAYERS = RETENTION_LAYERS
_VERSION = re.compile(r"^version=v(\d+)$")


@dataclass(frozen=True)
class Policy:
    """How much of one dataset is kept."""

    feed: str
    layer: str
    dataset: str
    keep: int
    unit: str
    cutoff: str | None = None
    """For days: the last date that goes (ISO)."""


@dataclass(frozen=True)
class Deletion:
    """One partition, version or set of gold rows that retention removes.

    Attributes:
        feed: The feed the data belongs to.
        layer: streams, dlq, tables, bronze, silver or gold.
        dataset: The lake folder (or the gold table).
        partition: ``year=YYYY/month=MM/day=DD``, ``version=vN`` or a gold predicate.
        date: The partition's (last) day, ISO; ``None`` for versions.
        files: Lake-relative paths of the files that go (none for gold).
        bytes: Their total size.
        rows: Rows that go (Parquet row counts, or gold rows).
        column: The time column of a gold table.
    """

    feed: str
    layer: str
    dataset: str
    partition: str
    date: str | None
    files: tuple[str, ...]
    bytes: int
    rows: int
    column: str | None = None

    @property
    def view(self) -> str:
        """The dataset's view name in ``query`` (for gold: the table)."""
        return self.dataset if self.layer == "gold" else view_name(self.dataset)

    def as_json(self, storage: Storage) -> dict[str, Any]:
        """JSON form with the partition's location and the file URLs."""
        data = asdict(self)
        data["view"] = self.view
        data["path"] = None if self.layer == "gold" else storage.url(
            f"{self.dataset}/{self.partition}")
        data["files"] = [storage.url(f) for f in self.files]
        return data


@dataclass(frozen=True)
class VacuumPlan:
    """Files of one Delta dataset that retention deletes from storage (no snapshot of the
    grace period refers to them: compacted, deleted or never-committed files)."""

    feed: str
    layer: str
    dataset: str
    files: tuple[str, ...]
    """Lake-relative paths."""
    bytes: int

    def as_json(self, storage: Storage) -> dict[str, Any]:
        """JSON form with the file URLs."""
        return {"feed": self.feed, "layer": self.layer, "dataset": self.dataset,
                "view": view_name(self.dataset), "bytes": self.bytes,
                "files": [storage.url(f) for f in self.files]}


@dataclass
class RetentionPlan:
    """Everything one retention run removes, as of ``today``."""

    today: dt.date
    lake: str
    policies: list[Policy] = field(default_factory=list)
    deletions: list[Deletion] = field(default_factory=list)
    vacuum: list[VacuumPlan] = field(default_factory=list)
    grace_hours: int = 24

    def totals(self) -> dict[str, int]:
        """Partitions/versions, files, bytes and rows over the whole plan."""
        return {"partitions": len(self.deletions),
                "files": sum(len(d.files) for d in self.deletions),
                "bytes": sum(d.bytes for d in self.deletions),
                "rows": sum(d.rows for d in self.deletions)}

    def as_json(self, storage: Storage, dry_run: bool) -> dict[str, Any]:
        """The plan as ``retention --format json`` prints it."""
        return {"dry_run": dry_run, "today": self.today.isoformat(), "lake": self.lake,
                "policies": [asdict(p) for p in self.policies],
                "deletions": [d.as_json(storage) for d in self.deletions],
                "totals": self.totals(), "grace_hours": self.grace_hours,
                "vacuum": [v.as_json(storage) for v in self.vacuum]}


class RetentionPlanner:
    """Works out a :class:`RetentionPlan` from the feed registry and the lake.

    Args:
        storage: The lake.
        settings: Defaults (table versions, weather layers).
        feeds: The feed registry.
        gold: The gold store's retention (``None``: no gold store).
        today: The day retention counts from (UTC today by default).
        grace_hours: Delta datasets: files removed from the log are deleted from
            storage this many hours later (``lake.vacuum_grace_hours`` by default).
    """

    def __init__(self, storage: Storage, settings: Settings, feeds: Iterable[Feed],
                 gold: GoldRetention | None = None, today: dt.date | None = None,
                 grace_hours: int | None = None) -> None:
        self.storage = storage
        self.settings = settings
        self.feeds = list(feeds)
        self.gold = gold
        self.today = today or dt.datetime.now(dt.UTC).date()
        self.grace_hours = settings.lake.vacuum_grace_hours if grace_hours is None \
            else grace_hours

    def plan(self, feed: str | None = None, layer: str | None = None) -> RetentionPlan:
        """The plan for every feed (or one) and every layer (or one)."""
        self.storage.check_root()  # a refused or missing bucket: one clear error, first
        plan = RetentionPlan(self.today, self.storage.uri, grace_hours=self.grace_hours)
        for f in self.feeds:
            if feed is not None and f.name != feed:
                continue
            for policy in self.policies(f, with_gold=layer in (None, "gold")):
                if layer is None or policy.layer == layer:
                    plan.policies.append(policy)
                    deletions = self._deletions(policy)
                    plan.deletions += deletions
                    if policy.layer != "gold" and is_delta_table(self.storage, policy.dataset):
                        vacuum = delta_vacuum_plan(self.storage, policy, deletions,
                                                   self.grace_hours)
                        plan.vacuum += [vacuum] if vacuum.files else []
        return plan

    def policies(self, feed: Feed, with_gold: bool = True) -> list[Policy]:
        """The policies that apply to ``feed``'s data (gold ones only ``with_gold``)."""
        weather = self.settings.weather
        if feed.kind == "table":
            keep = feed.retention_versions or self.settings.lake.table_versions
            return [Policy(feed.name, "tables", feed.dataset, keep, "versions")]
        days = feed.retention_days or (
            weather.bronze_retention_days if feed.layer == "bronze" else DEFAULT_STREAM_DAYS)
        found = [self._days(feed, feed.layer, feed.dataset, days),
                 self._days(feed, "dlq", f"{DLQ}/{feed.name}", days)]
        if feed.layer == "bronze" and feed.pipeline == "weather":
            found += [self._days(feed, "silver", f"silver/{name}", weather.silver_retention_days)
                      for name in self.storage.list_dirs("silver") if not name.startswith("_")]
            if self.gold is not None and with_gold:
                found += [self._days(feed, "gold", table, weather.gold_retention_days)
                          for table in self.gold.tables()]
        return found

    def _days(self, feed: Feed, layer: str, dataset: str, days: int) -> Policy:
        cutoff = self.today - dt.timedelta(days=days)
        return Policy(feed.name, layer, dataset, days, "days", cutoff.isoformat())

    def _deletions(self, policy: Policy) -> list[Deletion]:
        if policy.layer == "gold":
            assert self.gold is not None and policy.cutoff is not None
            return self.gold.plan(policy.feed, policy.dataset, dt.date.fromisoformat(policy.cutoff))
        if not deletions_from_log(self.storage, policy.dataset):
            return []  # nothing written yet
        return delta_deletions(self.storage, policy, self.today)


def deletions_from_log(storage: Storage, dataset: str) -> bool:
    """Whether ``dataset`` is a Delta table (``False``: it does not exist).

    Raises:
        ConfigError: It was written before the lake was kept as Delta tables.
    """
    check_not_legacy(storage, dataset)
    return is_delta_table(storage, dataset)


def last_day(partition: str) -> dt.date | None:
    """The last day a ``year=/month=[/day=]`` partition covers."""
    parts = dict(p.split("=", 1) for p in partition.split("/"))
    try:
        year, month = int(parts["year"]), int(parts["month"])
        if "day" in parts:
            return dt.date(year, month, int(parts["day"]))
        following = dt.date(year + month // 12, month % 12 + 1, 1)
        return following - dt.timedelta(days=1)
    except (KeyError, ValueError):
        return None


# -- Delta datasets: planned from the log -----------------------------------------------------


def delta_deletions(storage: Storage, policy: Policy, today: dt.date) -> list[Deletion]:
    """The partitions of a Delta dataset that go, each with its live files (from the log)."""
    table = DeltaDataset(storage, policy.dataset)
    columns = partition_columns(table)
    chosen: list[tuple[str, str | None]]
    parts = {"/".join(f"{c}={v}" for c, v in zip(columns, values, strict=True)): files
             for values, files in partition_files(table).items()}
    if policy.unit == "versions":
        numbers = {int(m.group(1)): p for p in parts if (m := _VERSION.match(p))}
        kept = sorted(numbers)[-policy.keep:]
        chosen = [(numbers[n], None) for n in sorted(numbers) if n not in kept]
    else:
        assert policy.cutoff is not None
        cutoff = min(dt.date.fromisoformat(policy.cutoff), today - dt.timedelta(days=1))
        chosen = [(p, str(last)) for p in sorted(parts)
                  if (last := last_day(p)) is not None and last <= cutoff]
    return [Deletion(policy.feed, policy.layer, policy.dataset, p, date,
                     tuple(f"{policy.dataset}/{f.path}" for f in parts[p]),
                     sum(f.size for f in parts[p]), sum(f.records for f in parts[p]))
            for p, date in chosen]


def delta_vacuum_plan(storage: Storage, policy: Policy, deletions: list[Deletion],
                      grace_hours: int) -> VacuumPlan:
    """The files of a Delta dataset the run deletes from storage.

    Those no snapshot of the last ``grace_hours`` refers to; with a grace of 0
    also the files this run's delete commit removes.
    """
    table = DeltaDataset(storage, policy.dataset)
    files = [f"{policy.dataset}/{p}" for p in vacuum_candidates(table, grace_hours)]
    if grace_hours == 0:
        files += [f for d in deletions for f in d.files]
    sizes = {f.path: f.size for f in storage.list_files(policy.dataset)} if files else {}
    chosen = tuple(sorted(f for f in set(files) if f in sizes))  # vacuum lists gone ones too
    return VacuumPlan(policy.feed, policy.layer, policy.dataset, chosen,
                      sum(sizes.get(f, 0) for f in chosen))
