"""Batch export: what ``lakestream export`` does, feed by feed.

- Streams **append** what is new since the last export through the streaming
  ingest's own exactly-once path: an ingest run in the ingest's consumer group
  until the topics are drained. The lake is the record of what was exported
  (the Delta log's application transactions), so an export and a running
  ``lakestream ingest`` never land a record twice. With ``--runner beam`` the
  append is an Apache Beam pipeline writing through the same sink
  (``batchload/beam.py``).
- ``--stream S --date D`` appends, then **rebuilds** day D from the source
  (Kafka, or ksqlDB when configured) and replaces it atomically: one commit on
  the Delta dataset (``rebuild/delta.py``).
- Tables write a **new version** (from Kafka's changelog or a ksqlDB pull query).

Each export is logged in ``<dataset>/_exports.json`` (the last one and a
short history): when, how, from where, how many records, which offsets.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pyarrow as pa

from lakestream.batchload.beam import BeamExport, BeamReport
from lakestream.batchload.tables import (
    export_table_from_kafka,
    export_table_rows,
    ksqldb_table_rows,
)
from lakestream.config import Settings
from lakestream.decode.schemas import arrow_schema
from lakestream.errors import FeedError, UsageError
from lakestream.feeds import Feed, FeedRegistry
from lakestream.ingest.engine import IngestEngine, IngestReport
from lakestream.kafka import client
from lakestream.kafka.consumer import ConsumeOptions
from lakestream.kafka.scan import KafkaScan
from lakestream.lake.dead_letters import dead_letter_table
from lakestream.lake.delta import DeltaDataset, is_delta_table
from lakestream.lake.delta_metadata import kafka_offsets, snapshot_files
from lakestream.lake.report import EXPORT_LOG, read_export_log
from lakestream.lake.storage import Storage
from lakestream.rebuild.day import DayRebuild, RebuildReport
from lakestream.rebuild.readers import KafkaDayReader, KsqlDbDayReader
from lakestream.sources.ksqldb import KsqlDbClient

HISTORY = 20
Source = Literal["auto", "kafka", "ksqldb"]
Runner = Literal["builtin", "beam"]


@dataclass
class ExportResult:
    """What one export did to one feed."""

    feed: str
    kind: str
    mode: str  # append | day | version
    source: str
    records: int = 0
    version: str | None = None
    rebuild: RebuildReport | None = None
    offsets: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


class ExportService:
    """Exports feeds from Kafka or ksqlDB into the lake.

    Args:
        settings: The configuration.
        storage: The lake.
        registry: The feed registry.
        bootstrap: Returns the Kafka bootstrap servers (called only when Kafka is needed).
        idle_timeout_s: An append stops once no record arrived for this long.
        runner: Who runs stream appends: the ingest's consumer (``builtin``) or an
            Apache Beam pipeline (``beam``, see ``batchload/beam.py``).
        beam_options: Beam pipeline options as ``KEY=VALUE``.
    """

    def __init__(self, settings: Settings, storage: Storage, registry: FeedRegistry,
                 bootstrap: Callable[[], str], idle_timeout_s: float = 2.0,
                 runner: Runner = "builtin", beam_options: tuple[str, ...] = ()) -> None:
        self.settings = settings
        self.storage = storage
        self.registry = registry
        self.bootstrap = bootstrap
        self.idle_timeout_s = idle_timeout_s
        self.runner = runner
        self.beam_options = beam_options

    # -- entry points -----------------------------------------------------------------------

    def export_all(self, pipeline: str | None = None, source: Source = "auto",
                   on_feed: Callable[[int], None] | None = None) -> list[ExportResult]:
        """Every enabled feed: streams append, tables write a new version."""
        feeds = self.registry.select(pipeline)
        if not feeds:
            raise FeedError("no enabled feed to export", "see `lakestream feeds list`")
        streams = [f for f in feeds if f.kind == "stream"]
        results = self._append(streams) if streams else []
        if on_feed and streams:
            on_feed(len(streams))
        for feed in (f for f in feeds if f.kind == "table"):
            results.append(self._table(feed, source))
            if on_feed:
                on_feed(1)
        return results

    def export_stream(self, name: str, day: dt.date | None = None,
                      source: Source = "auto") -> list[ExportResult]:
        """Append a stream's new records; with ``day``, then rebuild that day from the source."""
        feed = self._feed(name, "stream")
        results = self._append([feed])
        if day is not None:
            results.append(self._rebuild(feed, day, source))
        return results

    def rebuild_day(self, name: str, day: dt.date, source: Source = "auto") -> ExportResult:
        """Rebuild one day of a stream from the source without appending first.

        The day then covers the offsets the lake already holds (see ``rebuild/day.py``).
        """
        return self._rebuild(self._feed(name, "stream"), day, source)

    def export_table(self, name: str, source: Source = "auto") -> ExportResult:
        """Write a new version of a table feed."""
        return self._table(self._feed(name, "table"), source)

    # -- the work ---------------------------------------------------------------------------

    def _feed(self, name: str, kind: str) -> Feed:
        feed = self.registry.select(feed=name)[0]
        if feed.kind != kind:
            option = "--table" if feed.kind == "table" else "--stream"
            raise UsageError(f"'{name}' is a {feed.kind}, not a {kind}",
                             f"lakestream export {option} {name}")
        return feed

    def _source(self, source: Source) -> str:
        if source == "auto":
            return "ksqldb" if self.settings.ksqldb_url else "kafka"
        if source == "ksqldb" and not self.settings.ksqldb_url:
            raise UsageError("--source ksqldb needs a ksqlDB server",
                             "set ksqldb_url in lakestream.yaml or $LAKESTREAM_KSQLDB_URL")
        return source

    def _ksqldb(self) -> KsqlDbClient:
        assert self.settings.ksqldb_url
        return KsqlDbClient(self.settings.ksqldb_url)

    def _append(self, feeds: list[Feed]) -> list[ExportResult]:
        started = time.monotonic()
        bootstrap = self.bootstrap()
        client.ensure_configured_topics(self.settings, bootstrap, [f.topic for f in feeds])
        report: IngestReport | BeamReport
        if self.runner == "beam":
            report = BeamExport(self.settings, self.storage, bootstrap, self.beam_options,
                                grace_s=self.idle_timeout_s).run(feeds)
        else:
            lake = self.settings.lake
            options = ConsumeOptions(group_id=self.settings.kafka.group_id, until_idle=True,
                                     idle_timeout_s=self.idle_timeout_s,
                                     flush_interval_s=lake.flush_interval_s,
                                     max_batch_records=lake.max_batch_records,
                                     max_batch_bytes=lake.max_batch_bytes)
            report = IngestEngine(self.settings, bootstrap, self.storage, feeds, options).run()
        results = []
        for feed in feeds:
            offsets = feed_offsets(self.storage, feed)
            result = ExportResult(feed.name, "stream", "append", "kafka",
                                  report.per_feed[feed.name].records, offsets=offsets,
                                  seconds=time.monotonic() - started)
            self._log(feed, result)
            results.append(result)
        return results

    def _rebuild(self, feed: Feed, day: dt.date, source: Source) -> ExportResult:
        started = time.monotonic()
        chosen = self._source(source)
        rebuild = DayRebuild(self.storage, feed, day)
        reader: KafkaDayReader | KsqlDbDayReader
        if chosen == "ksqldb":
            schema = feed_schema(feed)
            reader = KsqlDbDayReader(self._ksqldb(), feed, schema)
        else:
            scan = KafkaScan(client.base_config(self.settings, self.bootstrap()), feed.topic)
            reader = KafkaDayReader(scan, day, skip_older=not feed.dedupe_source)
        report = rebuild.run(reader, chosen)
        result = ExportResult(feed.name, "stream", "day", chosen, report.records_after,
                              rebuild=report, offsets=report.offsets,
                              seconds=time.monotonic() - started)
        self._log(feed, result)
        return result

    def _table(self, feed: Feed, source: Source) -> ExportResult:
        started = time.monotonic()
        chosen = self._source(source)
        keep = self.settings.lake.table_versions
        if chosen == "ksqldb":
            rows = ksqldb_table_rows(self._ksqldb(), feed, feed_schema(feed))
            version = export_table_rows(self.storage, feed, keep, rows)
        else:
            bootstrap = self.bootstrap()
            client.ensure_configured_topics(self.settings, bootstrap, tables=[feed.topic])
            scan = KafkaScan(client.base_config(self.settings, bootstrap), feed.topic)
            version = export_table_from_kafka(self.storage, feed, keep, scan,
                                              client.topic_partitions(bootstrap, feed.topic))
        result = ExportResult(feed.name, "table", "version", chosen, version.rows,
                              version=version.name, offsets=dict(version.offsets),
                              seconds=time.monotonic() - started)
        self._log(feed, result)
        return result

    def _log(self, feed: Feed, result: ExportResult) -> None:
        entry = {k: v for k, v in asdict(result).items() if k not in ("rebuild", "feed")}
        entry["at"] = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        if result.rebuild is not None:
            b = result.rebuild
            entry.update(date=b.date, records_before=b.records_before, read=b.read,
                         dead_letters=b.dead_letters, new_dead_letters=b.new_dead_letters)
        previous = read_export_log(self.storage, feed.dataset)
        history = [entry, *previous.get("history", [])][:HISTORY]
        self.storage.write_atomic(f"{feed.dataset}/{EXPORT_LOG}", json.dumps(
            {"last_export": entry, "history": history}, indent=2).encode())


def feed_offsets(storage: Storage, feed: Feed) -> dict[str, Any]:
    """``"topic:p"`` → ``first``/``last`` offset the lake holds of a stream feed, from the
    Delta log (application transactions); empty before the dataset's first commit."""
    if not is_delta_table(storage, feed.dataset):
        return {}
    data, dlq = DeltaDataset(storage, feed.dataset), dead_letter_table(storage, feed.name)
    return kafka_offsets(data, dlq, feed.topic, snapshot_files(data), snapshot_files(dlq))


def feed_schema(feed: Feed) -> pa.Schema:
    """The feed's declared Arrow schema (names and struct fields to restore ksqlDB's case)."""
    return arrow_schema(feed.schema_spec, feed.time_field)
