"""What the lake holds, per dataset: totals, freshness, partitions, files, schema, DLQ.

Totals come from each dataset's ``_metadata.json`` (a summary of its Delta
log, rewritten after commits) when there is one; other datasets are summed
from their snapshot's Parquet footers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow.parquet as pq

from lakestream.errors import LakestreamError
from lakestream.feeds import Feed, FeedRegistry
from lakestream.lake import browse
from lakestream.lake.layout import DLQ
from lakestream.lake.metadata import read_metadata
from lakestream.lake.reader import Dataset, discover
from lakestream.lake.storage import Storage
from lakestream.observe.jsonable import plain
from lakestream.observe.models import (
    DatasetDetail,
    DatasetSummary,
    DeadLetterGroup,
    FileEntry,
    PartitionDetail,
    PartitionSummary,
)

STALE_AFTER_S = 2 * 3600  # where the weather freshness check warns (docs/weather.md)


class UnknownDatasetError(LakestreamError):
    """No dataset of that name in the lake or the feed registry."""


class LakeCatalog:
    """The datasets of one lake, with the feeds that write them."""

    def __init__(self, storage: Storage, feeds: FeedRegistry) -> None:
        self.storage = storage
        self.feeds = feeds

    def datasets(self) -> dict[str, tuple[Dataset, Feed | None]]:
        """Every dataset by name: those in the lake and the feeds that have no data yet."""
        by_path = {f.dataset: f for f in self.feeds}
        found = {d.name: (d, by_path.get(d.path)) for d in discover(self.storage)}
        for feed in self.feeds:
            if not any(d.path == feed.dataset for d, _ in found.values()):
                name = feed.name if feed.layer in ("streams", "tables") else \
                    f"{feed.layer}_{feed.name}"
                found[name] = (Dataset(name, feed.dataset, feed.layer), feed)
        return dict(sorted(found.items()))

    def get(self, name: str) -> tuple[Dataset, Feed | None]:
        """The dataset called ``name``.

        Raises:
            UnknownDatasetError: No such dataset.
        """
        known = self.datasets()
        if name not in known:
            raise UnknownDatasetError(f"unknown dataset '{name}'",
                                      "GET /api/datasets lists those you may read")
        return known[name]

    def summary(self, ds: Dataset, feed: Feed | None, now: dt.datetime) -> DatasetSummary:
        """Totals and freshness of one dataset."""
        meta = read_metadata(self.storage, ds.path) if ds.area != DLQ else None
        parts = browse.partitions(self.storage, ds)
        out = DatasetSummary(name=ds.name, path=ds.path, area=ds.area,
                             kind=_kind(ds, feed, meta))
        if feed is not None:
            out.feed, out.pipeline, out.topic = feed.name, feed.pipeline, feed.topic
            out.enabled = feed.enabled
        out.files = sum(len(p.files) for p in parts)
        out.bytes = sum(p.bytes for p in parts)
        out.partitions = len(parts)
        if meta:
            _fill_from_metadata(out, meta)
        else:
            out.records = _footer_rows(self.storage, [f.path for p in parts for f in p.files])
            newest = max((f.mtime for p in parts for f in p.files), default=None)
            out.last_commit = _iso(newest)
        if feed is not None and ds.area != DLQ:
            out.dlq_records = out.dlq_records or self._dlq_records(feed)
        out.freshness_s, out.status = _status(out, now)
        return out

    def detail(self, ds: Dataset, feed: Feed | None, now: dt.datetime) -> DatasetDetail:
        """Everything the dataset page shows."""
        meta = read_metadata(self.storage, ds.path) or {}
        records = {p["date"]: p["records"] for p in meta.get("partitions", [])}
        versions = {v["version"]: v for v in meta.get("versions", [])}
        parts = [PartitionSummary(
            partition=p.name, path=p.path, files=len(p.files), bytes=p.bytes,
            records=records.get(p.name, versions.get(p.name, {}).get("rows"))
            if meta else _footer_rows(self.storage, [f.path for f in p.files]),
            file_sizes=[f.size for f in p.files])
            for p in browse.partitions(self.storage, ds)]
        schema = meta.get("schema") or self._file_schema(ds)
        return DatasetDetail(summary=self.summary(ds, feed, now), schema=plain(schema),
                             partitions=parts, versions=plain(list(meta.get("versions", []))),
                             kafka_offsets=plain(dict(meta.get("kafka_offsets", {}))))

    def partition(self, ds: Dataset, name: str) -> PartitionDetail:
        """One partition's files and sizes.

        Raises:
            UnknownDatasetError: The dataset has no such partition.
        """
        for p in browse.partitions(self.storage, ds):
            if p.name == name:
                files = [FileEntry(name=f.path.rsplit("/", 1)[1], bytes=f.size,
                                   records=_footer_rows(self.storage, [f.path]),
                                   modified=_iso(f.mtime)) for f in p.files]
                return PartitionDetail(dataset=ds.name, partition=p.name, path=p.path,
                                       bytes=p.bytes, records=sum(f.records for f in files),
                                       files=files)
        raise UnknownDatasetError(f"dataset '{ds.name}' has no partition '{name}'",
                                  "see its page for the partitions it has")

    def dlq_samples(self, feed: Feed, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """How many records of ``feed`` went to the DLQ, and the first ``limit`` of them."""
        ds = Dataset(f"dlq_{feed.name}", f"{DLQ}/{feed.name}", DLQ)
        page = browse.read_rows(self.storage, ds, None, None, limit, 0)
        return page.total, [plain(dict(zip(page.columns, r, strict=True))) for r in page.rows]

    def dlq_reasons(self, feed: Feed) -> list[DeadLetterGroup]:
        """``feed``'s dead letters grouped by reason (``lakestream dlq list``'s groups)."""
        from lakestream.lake.dead_letter_report import reason_groups
        from lakestream.lake.dead_letters import dead_letter_table

        table = dead_letter_table(self.storage, feed.name)
        return [DeadLetterGroup.model_validate(g.as_json())
                for g in reason_groups(self.storage, table)]

    def _dlq_records(self, feed: Feed) -> int:
        ds = Dataset(f"dlq_{feed.name}", f"{DLQ}/{feed.name}", DLQ)
        return sum(_footer_rows(self.storage, [f.path for f in p.files])
                   for p in browse.partitions(self.storage, ds))

    def _file_schema(self, ds: Dataset) -> list[dict[str, str]]:
        parts = browse.partitions(self.storage, ds)
        if not parts:
            return []
        with self.storage.fs.open_input_file(self.storage.full(parts[-1].files[-1].path)) as f:
            schema = pq.read_schema(f)
        return [{"name": n, "type": str(t)} for n, t in zip(schema.names, schema.types,
                                                            strict=True)]


def _kind(ds: Dataset, feed: Feed | None, meta: dict[str, Any] | None) -> str:
    if ds.area == DLQ:
        return "dlq"
    if feed is not None:
        return feed.kind
    return str((meta or {}).get("kind") or ds.area)


def _fill_from_metadata(out: DatasetSummary, meta: dict[str, Any]) -> None:
    out.records = int(meta.get("records") or 0)
    out.dlq_records = int(meta.get("rejected_records") or 0)
    out.current_version = meta.get("current_version")
    out.last_commit = meta.get("last_export") or meta.get("updated_at")


def _footer_rows(storage: Storage, paths: list[str]) -> int:
    total = 0
    for path in paths:
        with storage.fs.open_input_file(storage.full(path)) as f:
            total += pq.ParquetFile(f).metadata.num_rows
    return total


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds")


def _status(out: DatasetSummary, now: dt.datetime) -> tuple[float | None, str]:
    if not out.enabled:
        age = _age(out.last_commit, now)
        return age, "disabled"
    if not out.files:
        return None, "empty"
    age = _age(out.last_commit, now)
    if age is None:
        return None, "ok"
    return age, "stale" if age > STALE_AFTER_S else "ok"


def _age(stamp: str | None, now: dt.datetime) -> float | None:
    if not stamp:
        return None
    try:
        moment = dt.datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return max((now - moment).total_seconds(), 0.0)
