"""Bronze → silver for the weather pipeline: incremental, and atomic per partition.

Incremental: ``<lake>/silver/_state/weather.json`` lists the bronze files
already processed. A run reads only the new ones, cleans them (the rules of
:mod:`lakestream.medallion.sql`), and recomputes only the months they touch:
the new rows are merged with that month's existing ``weather_cleaned`` rows
and deduplicated again, which gives exactly what a full recomputation would
(the dedup keeps the same row whatever the order the rows arrived in). The
month's daily and hourly aggregates are then recomputed from the merged rows.

Atomic per partition: every touched partition of the three datasets is first
written to ``<lake>/_staging/silver/<run>/``, then swapped in, one file per
partition (``year=YYYY/month=MM/data.parquet``): a rename on a local lake, a
server-side copy onto the same key on S3, so a reader sees the old file or
the new one, never a mix. The state is saved last; a run that dies before
that is simply redone by the next one (re-merging the same rows changes
nothing). One silver run at a time per lake.

On Delta tables (:mod:`lakestream.medallion.delta_tables`; issue #16) bronze
and silver are read from their snapshots' file lists, and the touched months
of each silver dataset are replaced in one commit (DuckDB: a predicate
overwrite; Spark: its Parquet files committed with
``create_write_transaction``), instead of staged and swapped. Each dataset
keeps its format: a Delta table stays one, a folder of plain Parquet stays
one, and a dataset not created yet follows the lake's switch
(:func:`lakestream.lake.delta.writes_delta`).
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lakestream.lake.delta import is_delta_table
from lakestream.lake.storage import Storage
from lakestream.medallion import sql
from lakestream.medallion.delta_tables import Month, is_delta_dataset, snapshot_files
from lakestream.medallion.engines import PART_FILE, SqlEngine, StagedPartition

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


def bronze_files(storage: Storage) -> dict[str, int]:
    """Committed bronze data files (relative path → size); a Delta bronze's from its log."""
    if is_delta_table(storage, BRONZE):
        return snapshot_files(storage, BRONZE)
    return {f.path: f.size for f in storage.list_files(BRONZE)
            if f.path.endswith(".parquet") and "/_" not in f.path[len(BRONZE):]}


def dataset_files(storage: Storage, dataset: str) -> list[str]:
    """The partition files of a silver dataset; a Delta dataset's from its log."""
    if is_delta_table(storage, dataset):
        return list(snapshot_files(storage, dataset))
    return [f.path for f in storage.list_files(dataset)
            if f.path.endswith(".parquet") and "/_" not in f.path[len(dataset):]]


class SilverBuilder:
    """Runs the incremental bronze → silver step on one engine.

    Args:
        storage: The lake.
        engine: DuckDB or Spark (:func:`lakestream.medallion.engines.open_engine`).
        on_progress: Called with a short message at each stage.
        new_as_delta: Whether a silver dataset not created yet becomes a Delta
            table (``None``: the lake's switch, :func:`~lakestream.lake.delta.writes_delta`).
    """

    def __init__(self, storage: Storage, engine: SqlEngine,
                 on_progress: Progress | None = None, new_as_delta: bool | None = None) -> None:
        self.storage = storage
        self.engine = engine
        self.d = engine.dialect
        self.progress = on_progress or (lambda _m: None)
        self.new_as_delta = new_as_delta
        self.delta: dict[str, bool] = {}

    def run(self) -> SilverReport:
        """Process the bronze files not yet in silver; returns what it did."""
        started = time.monotonic()
        report = SilverReport(self.engine.name)
        state = self._load_state()
        current = bronze_files(self.storage)
        new = sorted(p for p in current if p not in state)
        report.bronze_files = len(new)
        if new:
            self.storage.delete_dir(STAGING)
            self.delta = {ds: is_delta_dataset(self.storage, ds, self.new_as_delta)
                          for ds in DATASETS}
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
        if self.delta[CLEANED]:
            files = list(snapshot_files(self.storage, CLEANED, months))
        else:
            wanted = {f"{CLEANED}/year={y:04d}/month={m:02d}/{PART_FILE}" for y, m in months}
            files = [f for f in dataset_files(self.storage, CLEANED) if f in wanted]
        if not files:
            return union, 0
        self.engine.register("silver_existing", files)
        existing = self.engine.materialize("silver_old", sql.existing_sql(self.d,
                                                                          "silver_existing"))
        return f"{union} UNION ALL SELECT {columns} FROM {q('silver_old')}", existing

    def _write(self, report: SilverReport, months: list[Month]) -> None:
        """Every dataset's months: Delta tables committed, plain folders staged and swapped."""
        staging = f"{STAGING}/{uuid.uuid4().hex[:12]}"
        plan = {
            CLEANED: (f"SELECT * FROM {self.d.quote('silver_merged')}", ("city", "timestamp")),
            DAILY: (sql.daily_sql(self.d, "silver_merged"), ("city", "date")),
            HOURLY: (sql.hourly_sql(self.d, "silver_merged"), ("city", "date", "hour")),
        }
        rows = self._stage_and_swap({ds: p for ds, p in plan.items() if not self.delta[ds]},
                                    staging)
        for dataset, (query, order) in plan.items():
            if self.delta[dataset]:
                name = dataset.split("/", 1)[1]
                rows[dataset] = self.engine.write_delta(query, dataset, months,
                                                        f"{staging}/{name}", order)
        self.storage.delete_dir(staging)
        report.rows_out, report.daily_rows, report.hourly_rows = (rows[CLEANED], rows[DAILY],
                                                                  rows[HOURLY])

    def _stage_and_swap(self, plan: dict[str, tuple[str, tuple[str, ...]]],
                        staging: str) -> dict[str, int]:
        staged: dict[str, list[StagedPartition]] = {}
        for dataset, (query, order) in plan.items():
            name = dataset.split("/", 1)[1]
            staged[dataset] = self.engine.write_partitions(query, f"{staging}/{name}", order)
        for dataset, parts in staged.items():
            for part in parts:
                self.storage.move(part.staged, f"{dataset}/{part.partition}/{PART_FILE}")
        return {dataset: sum(p.rows for p in parts) for dataset, parts in staged.items()}

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
