"""What the lake holds, per dataset: ``lakestream metadata report|stats|export-csv``.

Counts come from the files themselves (a Delta log's statistics, else the
Parquet footers), not from the
``_metadata.json`` summaries, so the report is right after a rebuild, a
compaction or a retention run too; the summaries add what files cannot tell:
the schema, the Kafka offsets covered, the current table version, and (from
``_exports.json``) the last export.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow.parquet as pq

from lakestream.lake.layout import DLQ, TABLES, parse_date_partition
from lakestream.lake.metadata import read_metadata
from lakestream.lake.reader import Dataset, discover
from lakestream.lake.snapshot import live_files
from lakestream.lake.storage import FileInfo, Storage

EXPORT_LOG = "_exports.json"
STATS_FIELDS = ("name", "kind", "path", "records", "bytes", "files", "partitions", "first_date",
                "last_date", "versions", "current_version", "last_export", "freshness_s")


@dataclass
class PartitionStats:
    """One partition folder (a day, a month, a table version)."""

    partition: str
    date: str | None
    records: int = 0
    bytes: int = 0
    files: int = 0


@dataclass
class DatasetStats:
    """Everything the report says about one dataset."""

    name: str
    kind: str
    path: str
    records: int = 0
    bytes: int = 0
    files: int = 0
    partitions: int = 0
    first_date: str | None = None
    last_date: str | None = None
    versions: int = 0
    current_version: str | None = None
    last_export: str | None = None
    freshness_s: float | None = None
    schema: list[dict[str, str]] = field(default_factory=list)
    kafka_offsets: dict[str, Any] = field(default_factory=dict)
    partition_detail: list[PartitionStats] = field(default_factory=list)


@dataclass
class LakeReport:
    """The whole lake."""

    lake: str
    generated_at: str
    datasets: list[DatasetStats]

    def totals(self) -> dict[str, int]:
        """Datasets, records, bytes and files over the lake."""
        return {"datasets": len(self.datasets), "records": sum(d.records for d in self.datasets),
                "bytes": sum(d.bytes for d in self.datasets),
                "files": sum(d.files for d in self.datasets)}


def read_export_log(storage: Storage, dataset: str) -> dict[str, Any]:
    """A dataset's export log (``{}`` before its first export)."""
    try:
        data = json.loads(storage.read(f"{dataset}/{EXPORT_LOG}"))
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def lake_report(storage: Storage, expected: Iterable[Dataset] = (),
                on_dataset: Callable[[int], None] | None = None) -> LakeReport:
    """Statistics of every dataset of the lake (plus ``expected`` ones not written yet)."""
    found = {d.path: d for d in discover(storage)}
    for d in expected:
        found.setdefault(d.path, d)
    now = dt.datetime.now(dt.UTC)
    datasets = []
    for ds in sorted(found.values(), key=lambda d: (d.area, d.name)):
        datasets.append(dataset_stats(storage, ds, now))
        if on_dataset:
            on_dataset(1)
    return LakeReport(storage.uri, now.isoformat(timespec="seconds"), datasets)


def dataset_stats(storage: Storage, ds: Dataset, now: dt.datetime) -> DatasetStats:
    """Statistics of one dataset, from its files and its summaries."""
    kind = {TABLES: "table", DLQ: "dlq"}.get(ds.area, "stream" if ds.area == "streams" else ds.area)
    stats = DatasetStats(ds.name, kind, ds.path)
    files = [f for f in live_files(storage, ds.path) if f.path.endswith(".parquet")
             and "/_" not in f"/{f.path[len(ds.path) + 1:]}"]
    rows = _row_counts(storage, files)
    by_folder: dict[str, PartitionStats] = {}
    for f in files:
        folder = f.path[len(ds.path) + 1:].rpartition("/")[0]
        part = by_folder.setdefault(folder, PartitionStats(folder, _date_of(folder)))
        part.records, part.bytes, part.files = (part.records + rows[f.path],
                                                part.bytes + f.size, part.files + 1)
    stats.partition_detail = [by_folder[k] for k in sorted(by_folder)]
    stats.bytes, stats.files = sum(f.size for f in files), len(files)
    stats.partitions = len(by_folder)
    dates = sorted(p.date for p in by_folder.values() if p.date)
    stats.first_date, stats.last_date = (dates[0], dates[-1]) if dates else (None, None)
    if files:
        newest = max(f.mtime for f in files)
        stats.freshness_s = round(now.timestamp() - newest, 1)
    _add_summaries(storage, ds, stats)
    stats.records = _records(stats)
    return stats


def _add_summaries(storage: Storage, ds: Dataset, stats: DatasetStats) -> None:
    meta = read_metadata(storage, ds.path) or {}
    stats.schema = list(meta.get("schema", []))
    stats.kafka_offsets = dict(meta.get("kafka_offsets", {}))
    stats.current_version = meta.get("current_version")
    stats.versions = len(meta.get("versions", [])) or (
        stats.partitions if ds.area == TABLES else 0)
    exported = read_export_log(storage, ds.path).get("last_export", {}).get("at")
    stamps = [s for s in (meta.get("last_export"), exported) if s]
    stats.last_export = max(stamps) if stamps else None
    if not stats.schema and stats.files:
        newest = max(stats.partition_detail, key=lambda p: p.partition).partition
        path = f"{ds.path}/{newest}" if newest else ds.path
        sample = next(f for f in live_files(storage, path) if f.path.endswith(".parquet"))
        with storage.fs.open_input_file(storage.full(sample.path)) as handle:
            schema = pq.read_schema(handle)
        stats.schema = [{"name": f.name, "type": str(f.type)} for f in schema]


def _records(stats: DatasetStats) -> int:
    """A table holds its current version's rows; any other dataset, all of its rows."""
    if stats.kind == "table" and stats.current_version:
        current = f"version={stats.current_version}"
        return sum(p.records for p in stats.partition_detail if p.partition == current)
    return sum(p.records for p in stats.partition_detail)


def _date_of(folder: str) -> str | None:
    day = parse_date_partition(folder)
    if day is not None:
        return day.isoformat()
    parts = dict(p.split("=", 1) for p in folder.split("/") if "=" in p)
    if "year" in parts and "month" in parts:
        return f"{int(parts['year']):04d}-{int(parts['month']):02d}"
    return None


def _row_counts(storage: Storage, files: list[FileInfo]) -> dict[str, int]:
    def count(f: FileInfo) -> tuple[str, int]:
        if f.records is not None:  # the Delta log's statistics
            return f.path, f.records
        with storage.fs.open_input_file(storage.full(f.path)) as handle:
            return f.path, pq.ParquetFile(handle).metadata.num_rows

    if len(files) < 8:
        return dict(count(f) for f in files)
    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(count, files))


# -- output forms ----------------------------------------------------------------------------


def stats_json(report: LakeReport) -> dict[str, Any]:
    """The exact form of ``lakestream metadata stats --format json`` (scripts rely on it)."""
    return {
        "lake": report.lake,
        "generated_at": report.generated_at,
        "datasets": [{k: getattr(d, k) for k in STATS_FIELDS} for d in report.datasets],
        "totals": report.totals(),
    }


def report_json(report: LakeReport, partitions: bool) -> dict[str, Any]:
    """Everything, for ``lakestream metadata report --format json``."""
    datasets = []
    for d in report.datasets:
        item = asdict(d)
        detail = item.pop("partition_detail")
        if partitions:
            item["partition_detail"] = detail
        datasets.append(item)
    return {"lake": report.lake, "generated_at": report.generated_at, "datasets": datasets,
            "totals": report.totals()}


def report_csv(report: LakeReport, partitions: bool) -> str:
    """One CSV row per dataset (or per partition of each dataset with ``partitions``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if partitions:
        writer.writerow(["dataset", "kind", "partition", "date", "records", "bytes", "files"])
        for d in report.datasets:
            for p in d.partition_detail:
                writer.writerow([d.name, d.kind, p.partition, p.date or "", p.records, p.bytes,
                                 p.files])
        return out.getvalue()
    writer.writerow([*STATS_FIELDS, "columns"])
    for d in report.datasets:
        values = ["" if getattr(d, k) is None else getattr(d, k) for k in STATS_FIELDS]
        writer.writerow([*values, len(d.schema)])
    return out.getvalue()
