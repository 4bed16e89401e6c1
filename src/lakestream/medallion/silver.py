"""Bronze → silver for the weather pipeline: incremental, and atomic per partition.

Every dataset is a Delta table (:mod:`lakestream.medallion.delta_tables`;
issue #16): bronze is the table ``ingest`` lands, silver's three datasets are
tables partitioned by ``year`` and ``month``. Each is read from its snapshot's
file list, never by listing folders (a file a commit removed stays on disk
until ``vacuum``).

Incremental: ``<lake>/silver/_state/weather.json`` lists the bronze files
already processed. A run reads only the new ones, cleans them (the rules of
:mod:`lakestream.medallion.sql`), and recomputes only the months they touch:
the new rows are merged with that month's existing ``weather_cleaned`` rows
and deduplicated again, which gives exactly what a full recomputation would
(the dedup keeps the same row whatever the order the rows arrived in). The
month's daily and hourly aggregates are then recomputed from the merged rows.

Write-audit-publish: the engine writes the run's months of each dataset, and
the rows it dropped with their reasons (``silver/weather_rejected``, silver's
dead letters), as Parquet below ``<lake>/_staging/silver/<run>/``, where no
reader looks. The audit (the quality checks, given by the caller) reads them
there. Only if it lets them through is each dataset's touched months
replaced in one commit (the files moved into the table and committed with
``create_write_transaction``), so a reader sees the old months or the new
ones, never a mix; the three datasets are published one after the other,
after all were audited. A run the audit holds back publishes nothing: its
files stay in staging for ``keep_unpublished_h`` hours for a person to look
at (``lakestream quality show RUN``), the previous data stays current, and its
bronze files stay unprocessed, so the next run audits them again with what
arrived since.

The state is saved last; a run that dies before that is simply redone by
the next one (re-merging the same rows changes nothing, and a rejected row
whose Kafka coordinates ``weather_rejected`` already holds is not added
again). One silver run at a time per lake.

A dataset that exists but is not a Delta table was written before the lake
moved to Delta: the run refuses it (:class:`LegacyDatasetError`) and names
``lakestream lake upgrade``, which converts it in place.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from lakestream.lake.delta import DELTA_LOG, is_delta_table
from lakestream.lake.storage import Storage
from lakestream.medallion import sql
from lakestream.medallion.delta_tables import Month, publish_files, snapshot_files, staged_files
from lakestream.medallion.engines import MedallionError, SqlEngine
from lakestream.medallion.sql import REASONS, TimeBounds
from lakestream.warehouse.runlog import new_run_id

PIPELINE = "weather"
BRONZE = "bronze/weather"
CLEANED = "silver/weather_cleaned"
DAILY = "silver/weather_daily_agg"
HOURLY = "silver/weather_hourly_agg"
REJECTED = "silver/weather_rejected"
DATASETS = (CLEANED, DAILY, HOURLY)
STATE = "silver/_state/weather.json"
STAGING = "_staging/silver"
STAGE_MARK = "_stage.json"

Progress = Callable[[str], None]


@dataclass
class SilverReport:
    """What one silver run read, dropped and wrote."""

    engine: str
    run_id: str = ""
    bronze_files: int = 0
    rows_in: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    """Rows dropped, by reason (:data:`lakestream.medallion.sql.REASONS`)."""
    duplicates: int = 0
    rows_out: int = 0
    daily_rows: int = 0
    hourly_rows: int = 0
    rejected_rows: int = 0
    """Rows added to ``silver/weather_rejected`` (a row it holds already is not added again)."""
    partitions: list[str] = field(default_factory=list)
    held_back: str | None = None
    """Why the audit did not let the run publish (``None``: published, or nothing to do)."""
    staging: str | None = None
    """Where a held-back run's files are kept."""
    seconds: float = 0.0

    def dropped(self, group: str) -> int:
        """Rows dropped for a reason of ``group``: missing, out_of_range or implausible_time."""
        return sum(n for reason, n in self.rejected.items() if REASONS.get(reason) == group)

    @property
    def dropped_missing(self) -> int:
        """Rows without city, timestamp or temperature."""
        return self.dropped("missing")

    @property
    def dropped_out_of_range(self) -> int:
        """Rows with a temperature or humidity out of range."""
        return self.dropped("out_of_range")

    @property
    def dropped_implausible_time(self) -> int:
        """Rows dated in the future (past the tolerance) or before the floor."""
        return self.dropped("implausible_time")


@dataclass(frozen=True)
class SilverStage:
    """What a silver run wrote below its staging folder, waiting for the audit."""

    run_id: str
    folder: str
    """``_staging/silver/<run>``, relative to the lake root."""
    bronze: list[str]
    """The new bronze files the run read."""
    files: dict[str, list[str]]
    """Dataset (``silver/...``) → its staged Parquet files (relative paths)."""
    schemas: dict[str, pa.Schema]
    months: list[Month]
    bounds: TimeBounds
    report: SilverReport


Audit = Callable[[SilverStage], "str | None"]
"""Reads a staged run; returns why it must not be published, or ``None`` to publish it."""


class LegacyDatasetError(MedallionError):
    """A medallion dataset is not a Delta table: the lake was written before Delta."""


def delta_files(storage: Storage, rel: str,
                months: list[Month] | None = None) -> dict[str, int]:
    """The live data files of the Delta dataset ``rel`` (relative path → size), from its log.

    A dataset that does not exist yet has none. A folder holding only a log
    without a first commit (a creation that died) does not exist yet either.

    Args:
        months: Only the files of these (year, month) partitions (silver's tables).

    Raises:
        LegacyDatasetError: ``rel`` holds files but is not a Delta table.
    """
    return snapshot_files(storage, rel, months) if exists_as_delta(storage, rel) else {}


def exists_as_delta(storage: Storage, rel: str) -> bool:
    """Whether the dataset ``rel`` exists (``False``: not yet); an existing one must be Delta.

    Raises:
        LegacyDatasetError: ``rel`` holds files but is not a Delta table.
    """
    if is_delta_table(storage, rel):
        return True
    inside = len(rel) + 1
    if any(not f.path[inside:].startswith(f"{DELTA_LOG}/") for f in storage.list_files(rel)):
        raise LegacyDatasetError(
            f"{storage.url(rel)} is not a Delta table: it was written before the lake "
            "moved to Delta (issue #16)",
            "run `lakestream lake upgrade` to convert the lake in place, then run this again")
    return False


def bronze_files(storage: Storage) -> dict[str, int]:
    """Committed bronze data files (relative path → size), from the table's log."""
    return delta_files(storage, BRONZE)


def dataset_files(storage: Storage, dataset: str,
                  months: list[Month] | None = None) -> list[str]:
    """The live data files of a silver dataset (of ``months`` only, if given), from its log."""
    return list(delta_files(storage, dataset, months))


def held_back_stage(storage: Storage, run_id: str) -> dict[str, Any] | None:
    """The mark of a run's staged files (``status``, ``reason``, ``created_at``), if kept."""
    try:
        mark: dict[str, Any] = json.loads(storage.read(f"{STAGING}/{run_id}/{STAGE_MARK}"))
    except (FileNotFoundError, ValueError):
        return None
    return {**mark, "folder": storage.url(f"{STAGING}/{run_id}")}


class SilverBuilder:
    """Runs the incremental bronze → silver step on one engine.

    Args:
        storage: The lake.
        engine: DuckDB or Spark (:func:`lakestream.medallion.engines.open_engine`).
        on_progress: Called with a short message at each stage.
        bounds: The plausible observation times; default: 2000-01-01 to an hour from now.
        run_id: The run, which names the staging folder (default: a new ``weather-…`` id).
        keep_unpublished_h: How long a held-back run's staged files are kept.
    """

    def __init__(self, storage: Storage, engine: SqlEngine,
                 on_progress: Progress | None = None, bounds: TimeBounds | None = None,
                 run_id: str | None = None, keep_unpublished_h: float = 72.0) -> None:
        self.storage = storage
        self.engine = engine
        self.d = engine.dialect
        self.progress = on_progress or (lambda _m: None)
        now = dt.datetime.now(dt.UTC)
        self.bounds = bounds or TimeBounds.around(now, dt.timedelta(hours=1),
                                                  dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
        self.run_id = run_id or new_run_id(PIPELINE, now)
        self.keep_s = keep_unpublished_h * 3600

    def run(self, audit: Audit | None = None) -> SilverReport:
        """Process the bronze files not yet in silver; returns what it did.

        Args:
            audit: Reads the staged run before it is published (default: publish).

        Raises:
            LegacyDatasetError: Bronze or a silver dataset is not a Delta table.
        """
        started = time.monotonic()
        report = SilverReport(self.engine.name, self.run_id)
        state = self._load_state()
        current = bronze_files(self.storage)
        for dataset in (*DATASETS, REJECTED):  # refuse a lake from before Delta before writing
            exists_as_delta(self.storage, dataset)
        new = sorted(p for p in current if p not in state)
        report.bronze_files = len(new)
        self._clean_staging()
        if new:
            self.progress(f"silver: reading {len(new):,} new bronze file(s) on {self.engine.name}")
            stage = self._build(new, report)
            verdict = audit(stage) if audit else None
            if verdict:
                self._hold(stage, verdict, report)
                report.seconds = time.monotonic() - started
                return report
            self._publish(stage, report)
        self._save_state({p: s for p, s in current.items() if p in state or p in new})
        report.seconds = time.monotonic() - started
        return report

    def _build(self, new: list[str], report: SilverReport) -> SilverStage:
        q, e = self.d.quote, self.engine
        folder = f"{STAGING}/{self.run_id}"
        self.storage.delete_dir(folder)  # a retry of the run starts over
        e.register("bronze_new", new)
        e.materialize("silver_typed", sql.reasoned_sql(self.d, "bronze_new", self.bounds))
        for reason, rows in e.rows(sql.reason_counts_sql(self.d, "silver_typed")):
            report.rows_in += int(rows)
            if reason is not None:
                report.rejected[str(reason)] = int(rows)
        fresh = e.materialize("silver_new", sql.clean_sql(self.d, "silver_typed"))
        months = sorted((int(y), int(m)) for y, m in e.rows(
            f"SELECT DISTINCT {q('year')}, {q('month')} FROM {q('silver_new')}"))
        stage = SilverStage(self.run_id, folder, new, {}, {}, months, self.bounds, report)
        if months:
            report.partitions = [f"{y:04d}-{m:02d}" for y, m in months]
            union, existing = self._union_with_existing(months)
            merged = e.materialize("silver_merged", sql.dedup_sql(self.d, union))
            report.duplicates = fresh + existing - merged
            self.progress(f"silver: staging {len(months)} month partition(s) "
                          f"({', '.join(report.partitions)})")
            self._stage_datasets(stage)
        else:
            self.progress("silver: no valid row in the new bronze data")
        if report.rejected:
            self._stage_rejected(stage)
        self.storage.write_atomic(f"{folder}/{STAGE_MARK}", json.dumps({
            "run_id": self.run_id, "status": "staged", "created_at": time.time()}).encode())
        return stage

    def _union_with_existing(self, months: list[Month]) -> tuple[str, int]:
        """The new rows plus the existing rows of their months, and how many of those exist."""
        q = self.d.quote
        columns = ", ".join(q(c) for c in sql.cleaned_columns(self.d))
        union = f"SELECT {columns} FROM {q('silver_new')}"
        files = dataset_files(self.storage, CLEANED, months)
        if not files:
            return union, 0
        self.engine.register("silver_existing", files)
        existing = self.engine.materialize("silver_old", sql.existing_sql(self.d,
                                                                          "silver_existing"))
        return f"{union} UNION ALL SELECT {columns} FROM {q('silver_old')}", existing

    def _stage_datasets(self, stage: SilverStage) -> None:
        """Every dataset's months written below the staging folder."""
        plan = {
            CLEANED: (f"SELECT * FROM {self.d.quote('silver_merged')}", ("city", "timestamp")),
            DAILY: (sql.daily_sql(self.d, "silver_merged"), ("city", "date")),
            HOURLY: (sql.hourly_sql(self.d, "silver_merged"), ("city", "date", "hour")),
        }
        for dataset, (query, order) in plan.items():
            self._stage(stage, dataset, query, order)

    def _stage_rejected(self, stage: SilverStage) -> None:
        """The dropped rows, with reason, run and time, that ``weather_rejected`` lacks."""
        q = self.d.quote
        now = dt.datetime.now(dt.UTC)
        at = sql.timestamp_literal(self.d, now)
        query = (f"SELECT r.*, {at} AS {q('rejected_at')}, '{self.run_id}' AS {q('run_id')}, "
                 f"{now.year} AS {q('year')}, {now.month} AS {q('month')} "
                 f"FROM ({sql.rejected_sql(self.d, 'silver_typed')}) r")
        files = dataset_files(self.storage, REJECTED)
        if files:
            self.engine.register("silver_rejected_old", files)
            query += (f" WHERE NOT EXISTS (SELECT 1 FROM {q('silver_rejected_old')} o WHERE "
                      f"o.{q('_kafka_partition')} = r.{q('_kafka_partition')} AND "
                      f"o.{q('_kafka_offset')} = r.{q('_kafka_offset')})")
        self._stage(stage, REJECTED, query, ("_kafka_partition", "_kafka_offset"))

    def _stage(self, stage: SilverStage, dataset: str, query: str, order: tuple[str, ...]) -> None:
        where = f"{stage.folder}/{dataset.split('/', 1)[1]}"
        schema = self.engine.stage(query, where, order)
        files = [f.path for f in staged_files(self.storage, where)]
        if files:
            stage.files[dataset], stage.schemas[dataset] = files, schema

    def _publish(self, stage: SilverStage, report: SilverReport) -> None:
        """Each dataset's staged months into its table, one commit per dataset."""
        rows = {}
        for dataset in (*DATASETS, REJECTED):
            if dataset not in stage.files:
                continue
            months = [] if dataset == REJECTED else stage.months
            operation = "silver rejects" if dataset == REJECTED else "silver rebuild"
            files = staged_files(self.storage, f"{stage.folder}/{dataset.split('/', 1)[1]}")
            rows[dataset] = publish_files(self.storage, dataset, files, stage.schemas[dataset],
                                          months, stage.run_id, operation)
        self.storage.delete_dir(stage.folder)
        report.rows_out, report.daily_rows = rows.get(CLEANED, 0), rows.get(DAILY, 0)
        report.hourly_rows, report.rejected_rows = rows.get(HOURLY, 0), rows.get(REJECTED, 0)

    def _hold(self, stage: SilverStage, reason: str, report: SilverReport) -> None:
        """Keep a held-back run's files, marked, for a person to look at."""
        self.storage.write_atomic(f"{stage.folder}/{STAGE_MARK}", json.dumps({
            "run_id": stage.run_id, "status": "held", "reason": reason,
            "created_at": time.time()}).encode())
        report.held_back, report.staging = reason, self.storage.url(stage.folder)
        self.progress(f"silver: run {stage.run_id} held back, nothing published: {reason}")

    def _clean_staging(self) -> None:
        """Delete staged runs that died before publishing, and held-back runs past their time."""
        runs = {f.path[len(STAGING) + 1:].split("/", 1)[0]
                for f in self.storage.list_files(STAGING)}
        for run in sorted(runs):
            mark = held_back_stage(self.storage, run)
            kept = (mark is not None and mark.get("status") == "held"
                    and time.time() - float(mark.get("created_at", 0)) < self.keep_s)
            if not kept:
                self.storage.delete_dir(f"{STAGING}/{run}")

    def _load_state(self) -> dict[str, int]:
        try:
            data: dict[str, Any] = json.loads(self.storage.read(STATE))
        except FileNotFoundError:
            return {}
        return {str(k): int(v) for k, v in data.get("processed", {}).items()}

    def _save_state(self, processed: dict[str, int]) -> None:
        data = {"processed": dict(sorted(processed.items())),
                "updated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        self.storage.write_atomic(STATE, json.dumps(data, indent=1).encode())
