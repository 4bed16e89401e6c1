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

Atomic per partition: the touched months of each silver dataset are replaced
in one commit (DuckDB: a predicate overwrite; Spark: its Parquet files,
written below ``<lake>/_staging/silver/<run>/`` and moved into the table,
committed with ``create_write_transaction``), so a reader sees the old months
or the new ones, never a mix. The state is saved last; a run that dies before
that is simply redone by the next one (re-merging the same rows changes
nothing). One silver run at a time per lake.

A dataset that exists but is not a Delta table was written before the lake
moved to Delta: the run refuses it (:class:`LegacyDatasetError`) and names
``lakestream lake upgrade``, which converts it in place.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lakestream.lake.delta import DELTA_LOG, is_delta_table
from lakestream.lake.storage import Storage
from lakestream.medallion import sql
from lakestream.medallion.delta_tables import Month, snapshot_files
from lakestream.medallion.engines import MedallionError, SqlEngine

BRONZE = "bronze/weather"
CLEANED = "silver/weather_cleaned"
DAILY = "silver/weather_daily_agg"
HOURLY = "silver/weather_hourly_agg"
DATASETS = (CLEANED, DAILY, HOURLY)
STATE = "silver/_state/weather.json"
STAGING = "_staging/silver"

Progress = Callable[[str], None]


@dataclass
class SilverReport:
    """What one silver run read, dropped and wrote."""

    engine: str
    bronze_files: int = 0
    rows_in: int = 0
    dropped_missing: int = 0
    dropped_out_of_range: int = 0
    duplicates: int = 0
    rows_out: int = 0
    daily_rows: int = 0
    hourly_rows: int = 0
    partitions: list[str] = field(default_factory=list)
    seconds: float = 0.0


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


def dataset_files(storage: Storage, dataset: str) -> list[str]:
    """The live data files of a silver dataset, from its log."""
    return list(delta_files(storage, dataset))


class SilverBuilder:
    """Runs the incremental bronze → silver step on one engine.

    Args:
        storage: The lake.
        engine: DuckDB or Spark (:func:`lakestream.medallion.engines.open_engine`).
        on_progress: Called with a short message at each stage.
    """

    def __init__(self, storage: Storage, engine: SqlEngine,
                 on_progress: Progress | None = None) -> None:
        self.storage = storage
        self.engine = engine
        self.d = engine.dialect
        self.progress = on_progress or (lambda _m: None)

    def run(self) -> SilverReport:
        """Process the bronze files not yet in silver; returns what it did.

        Raises:
            LegacyDatasetError: Bronze or a silver dataset is not a Delta table.
        """
        started = time.monotonic()
        report = SilverReport(self.engine.name)
        state = self._load_state()
        current = bronze_files(self.storage)
        for dataset in DATASETS:  # refuse a lake from before Delta before writing anything
            exists_as_delta(self.storage, dataset)
        new = sorted(p for p in current if p not in state)
        report.bronze_files = len(new)
        if new:
            self.storage.delete_dir(STAGING)  # a crashed Spark run's scratch files
            self.progress(f"silver: reading {len(new):,} new bronze file(s) on {self.engine.name}")
            self._build(new, report)
        self._save_state({p: s for p, s in current.items() if p in state or p in new})
        report.seconds = time.monotonic() - started
        return report

    def _build(self, new: list[str], report: SilverReport) -> None:
        q, e = self.d.quote, self.engine
        e.register("bronze_new", new)
        rows_in, missing, out_of_range = e.rows(sql.drop_counts_sql(self.d, "bronze_new"))[0]
        report.rows_in, report.dropped_missing = int(rows_in), int(missing or 0)
        report.dropped_out_of_range = int(out_of_range or 0)
        fresh = e.materialize("silver_new", sql.clean_sql(self.d, "bronze_new"))
        months = sorted((int(y), int(m)) for y, m in e.rows(
            f"SELECT DISTINCT {q('year')}, {q('month')} FROM {q('silver_new')}"))
        if not months:
            self.progress("silver: no valid row in the new bronze data")
            return
        report.partitions = [f"{y:04d}-{m:02d}" for y, m in months]
        union, existing = self._union_with_existing(months)
        merged = e.materialize("silver_merged", sql.dedup_sql(self.d, union))
        report.duplicates = fresh + existing - merged
        self.progress(f"silver: writing {len(months)} month partition(s) "
                      f"({', '.join(report.partitions)})")
        self._write(report, months)

    def _union_with_existing(self, months: list[Month]) -> tuple[str, int]:
        """The new rows plus the existing rows of their months, and how many of those exist."""
        q = self.d.quote
        columns = ", ".join(q(c) for c in sql.cleaned_columns(self.d))
        union = f"SELECT {columns} FROM {q('silver_new')}"
        files = list(delta_files(self.storage, CLEANED, months))
        if not files:
            return union, 0
        self.engine.register("silver_existing", files)
        existing = self.engine.materialize("silver_old", sql.existing_sql(self.d,
                                                                          "silver_existing"))
        return f"{union} UNION ALL SELECT {columns} FROM {q('silver_old')}", existing

    def _write(self, report: SilverReport, months: list[Month]) -> None:
        """Every dataset's months replaced, one commit per dataset."""
        staging = f"{STAGING}/{uuid.uuid4().hex[:12]}"
        plan = {
            CLEANED: (f"SELECT * FROM {self.d.quote('silver_merged')}", ("city", "timestamp")),
            DAILY: (sql.daily_sql(self.d, "silver_merged"), ("city", "date")),
            HOURLY: (sql.hourly_sql(self.d, "silver_merged"), ("city", "date", "hour")),
        }
        rows = {}
        try:
            for dataset, (query, order) in plan.items():
                name = dataset.split("/", 1)[1]
                rows[dataset] = self.engine.write_delta(query, dataset, months,
                                                        f"{staging}/{name}", order)
        finally:
            self.storage.delete_dir(staging)
        report.rows_out, report.daily_rows, report.hourly_rows = (rows[CLEANED], rows[DAILY],
                                                                  rows[HOURLY])

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
