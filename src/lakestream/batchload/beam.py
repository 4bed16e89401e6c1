"""``lakestream export --runner beam``: the stream append as an Apache Beam pipeline.

Beam's Python KafkaIO is a cross-language transform that needs a Java expansion
service, so Lakestream reads Kafka itself, as a bounded source:

1. **Plan** (in the launching process): one :class:`PartitionRange` per (feed,
   topic, partition), from the lake's next offset (the Delta log's application
   transaction + 1) to the partition's last offset. The last offset is found by
   reading until the broker has nothing more: watermarks only say where to start
   looking (Tansu's are wrong: docs/operations.md).
2. **Read**: each range with confluent-kafka, in batches of at most
   ``lake.max_batch_records`` records and ``lake.max_batch_bytes`` bytes.
3. **Write**: each batch through the ingest's own Delta sink, whose fenced
   commit makes it exactly once. A batch first drops what the lake already holds
   (a retried bundle, another writer that got there first); that is no lock,
   though: docs/operations.md says why not to run next to an ingest.
4. **Count**: records, dead letters, files and bytes per feed, as Beam metrics
   the launcher reads back for the export log.

Ranges are fixed when the pipeline is built; records produced later are left to
the next export. The workers need Lakestream installed and reach Kafka and the
lake with the launcher's settings (a local lake only works where they share its
folder, as the DirectRunner does).
"""

from __future__ import annotations

import difflib
import logging
import re
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from lakestream.config import S3Settings, Settings
from lakestream.errors import (
    ConfigError,
    FencedError,
    LakeDataError,
    LakestreamError,
    TerminalError,
    UsageError,
)
from lakestream.feeds import Feed
from lakestream.ingest.delta_sink import DeltaLakeSink
from lakestream.ingest.sink import FlushStats
from lakestream.kafka import client
from lakestream.kafka.buffer import PartitionBuffer
from lakestream.kafka.client import OFFSET_BEGINNING
from lakestream.kafka.scan import KafkaScan
from lakestream.lake.delta import DeltaDataset, app_id, writes_delta
from lakestream.lake.storage import Storage, open_storage

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'lakestream[beam]', best in its own virtualenv (Beam pins pyarrow<26)"
COUNTERS = "lakestream.batchload"
STATS = ("records", "rejected", "files", "bytes")
_OPTION = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class BeamPipelineError(LakestreamError, TerminalError):
    """The Apache Beam runner failed the export pipeline, or ended it another way than DONE."""


@dataclass(frozen=True)
class PartitionRange:
    """The offsets of one feed's Kafka partition that one export reads.

    Attributes:
        follows: The lake's next offset when planned (``None``: nothing landed).
        first: The first offset to read (``OFFSET_BEGINNING`` when nothing was committed).
        last: The last offset to read (inclusive), found by reading the partition.
    """

    feed: str
    topic: str
    partition: int
    follows: int | None
    first: int
    last: int


@dataclass
class Batch:
    """Consecutive messages of one range, committed to the lake as one batch.

    Attributes:
        follows: The lake's next offset this batch continues.
    """

    feed: str
    follows: int | None
    chunk: PartitionBuffer


@dataclass
class BeamReport:
    """What a Beam export wrote, per feed."""

    per_feed: dict[str, FlushStats] = field(default_factory=lambda: defaultdict(FlushStats))


# -- the steps, without Beam ------------------------------------------------------------------


def plan_ranges(storage: Storage, feeds: Sequence[Feed], kafka_config: dict[str, Any],
                partitions: dict[str, list[int]], grace_s: float) -> list[PartitionRange]:
    """Every (feed, topic, partition) with records after what the lake's log landed.

    Args:
        storage: The lake.
        feeds: The stream feeds to export.
        kafka_config: librdkafka settings (``bootstrap.servers`` and the user's extras).
        partitions: The partition ids of every feed's topic.
        grace_s: After the broker said a partition has nothing more, wait this long.
    """
    nexts: dict[tuple[str, int], dict[str, int | None]] = defaultdict(dict)
    for feed in feeds:
        for p, nxt in next_offsets(storage, feed, partitions[feed.topic]).items():
            nexts[(feed.topic, p)][feed.name] = nxt

    def last_offsets(topic: str) -> tuple[str, dict[int, int | None]]:
        starts = {p: min(_start(n) for n in by_feed.values())
                  for (t, p), by_feed in nexts.items() if t == topic}
        return topic, KafkaScan(kafka_config, topic, grace_s=grace_s).last_offsets(starts)

    topics = sorted({t for t, _ in nexts})
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(topics)))) as pool:
        lasts = dict(pool.map(last_offsets, topics))
    ranges = []
    for (topic, p), by_feed in sorted(nexts.items()):
        last = lasts[topic][p]
        ranges += [PartitionRange(name, topic, p, nxt, _start(nxt), last)
                   for name, nxt in sorted(by_feed.items())
                   if last is not None and last >= (nxt or 0)]
    return ranges


def next_offsets(storage: Storage, feed: Feed, partitions: list[int]) -> dict[int, int | None]:
    """Where the lake's dataset of ``feed`` continues each partition (``None``: the start):
    its Delta log's application transactions.

    Raises:
        TerminalError: The dataset was written before Delta (``lakestream lake upgrade``).
    """
    if not writes_delta(storage, feed.dataset):
        raise LakeDataError(
            f"{feed.dataset} was written before the lake moved to Delta tables (it has no "
            "_delta_log/): the export cannot append to it",
            "run `lakestream lake upgrade` (with ingest, process and export stopped)")
    ids = {p: app_id(feed.topic, p) for p in partitions}
    landed = DeltaDataset(storage, feed.dataset).transaction_versions(ids.values())
    return {p: None if (v := landed[a]) is None else v + 1 for p, a in ids.items()}


def _start(next_offset: int | None) -> int:
    return OFFSET_BEGINNING if next_offset is None else next_offset


def read_range(kafka_config: dict[str, Any], span: PartitionRange, max_records: int,
               max_bytes: int) -> Iterator[Batch]:
    """The range's messages in batches of at most ``max_records`` records and ``max_bytes``."""
    scan = KafkaScan(kafka_config, span.topic, chunk_size=max_records)
    follows = span.follows
    for chunk in scan.read({span.partition: span.first}, {span.partition: span.last}):
        for part in split_chunk(chunk, max_bytes):
            yield Batch(span.feed, follows, part)
            follows = part.offsets[-1] + 1


def split_chunk(chunk: PartitionBuffer, max_bytes: int) -> Iterator[PartitionBuffer]:
    """``chunk`` in pieces whose values hold at most ``max_bytes`` (one message at least)."""
    start, size = 0, 0
    for i, value in enumerate(chunk.values):
        n = len(value) if value else 0
        if i > start and size + n > max_bytes:
            yield chunk.slice(start, i)
            start, size = i, 0
        size += n
    yield chunk if start == 0 else chunk.slice(start, len(chunk))


def write_batch(sink: DeltaLakeSink, batch: Batch, attempts: int = 3) -> FlushStats:
    """Commit a batch through the sink, from where the lake's log stands.

    What the log already holds is dropped; a commit refused because another
    writer moved the log's offsets meanwhile is tried again from the new position.

    Raises:
        TerminalError: The lake is behind the batch (an earlier batch is missing).
        FencedError: Another writer kept moving the offsets for ``attempts`` tries.
    """
    chunk = batch.chunk
    for attempt in range(1, attempts + 1):
        held = sink.recover(chunk.topic, chunk.partition)
        ahead = held is not None and (batch.follows is None or held >= batch.follows)
        if not ahead and held != batch.follows:
            raise LakeDataError(
                f"{sink.feed.dataset} {chunk.topic}[{chunk.partition}]: the lake is at "
                f"{held}, a batch follows {batch.follows}: an earlier batch is not in the lake",
                "run the export again", dataset=sink.data.uri, topic=chunk.topic,
                partition=chunk.partition)
        cut = 0 if held is None else bisect_left(chunk.offsets, held)
        if cut == len(chunk):
            return FlushStats()
        try:
            return sink.write(chunk.topic, chunk.partition, chunk.values[cut:],
                              chunk.keys[cut:], chunk.offsets[cut:], chunk.timestamps[cut:])
        except FencedError:
            if attempt == attempts:
                raise
            log.info("%s %s[%d]: another writer moved the offsets; resuming", sink.feed.dataset,
                     chunk.topic, chunk.partition)
    raise AssertionError("unreachable")


def add_stats(stats: Iterable[FlushStats]) -> FlushStats:
    """The sum of several batches' stats."""
    total = FlushStats()
    for s in stats:
        total += s
    return total


# -- Beam ----------------------------------------------------------------------------------


def import_beam() -> Any:
    """The ``apache_beam`` module (its import-time chatter silenced).

    Raises:
        TerminalError: Apache Beam is not installed.
    """
    root = logging.getLogger()
    quiet = logging.Filter("lakestream")  # drops Beam's root-logger warnings on import
    root.addFilter(quiet)
    try:
        import apache_beam
    except ImportError:
        raise ConfigError("--runner beam needs Apache Beam", INSTALL_HINT) from None
    finally:
        root.removeFilter(quiet)
    return apache_beam


def pipeline_options(options: Sequence[str]) -> Any:
    """Beam ``PipelineOptions`` from ``KEY=VALUE`` strings (``KEY`` alone for a switch).

    Raises:
        TerminalError: Apache Beam is not installed.
        UsageError: A malformed or unknown option.
    """
    import_beam()
    from apache_beam.options.pipeline_options import PipelineOptions

    flags, keys = [], []
    for option in options:
        key, sep, value = option.partition("=")
        if not _OPTION.match(key):
            raise UsageError(f"--beam-option '{option}': expected KEY=VALUE",
                             "e.g. --beam-option runner=FlinkRunner")
        flags.append(f"--{key}={value}" if sep else f"--{key}")
        keys.append(key)
    parsed = PipelineOptions(flags)
    beam_log = logging.getLogger("apache_beam.options.pipeline_options")
    level = beam_log.level
    beam_log.setLevel(logging.ERROR)  # its "discarding unparseable args": refused below instead
    try:
        known = parsed.get_all_options()
    finally:
        beam_log.setLevel(level)
    for key in keys:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            raise UsageError(f"--beam-option {key}: Beam has no such pipeline option",
                             f"did you mean {close[0]}?" if close else
                             "see Beam's pipeline options reference")
    return parsed


def _transforms(beam: Any) -> tuple[Any, Any, Any]:
    """The DoFns (defined here: apache_beam is imported only when a Beam export runs)."""

    class ReadRange(beam.DoFn):
        """Reads one partition range in batches."""

        def __init__(self, kafka_config: dict[str, Any], max_records: int,
                     max_bytes: int) -> None:
            super().__init__()
            self.kafka_config = kafka_config
            self.max_records = max_records
            self.max_bytes = max_bytes

        def process(self, element: PartitionRange) -> Iterator[Batch]:
            yield from read_range(self.kafka_config, element, self.max_records, self.max_bytes)

    class WriteBatch(beam.DoFn):
        """Commits batches through each feed's Delta sink."""

        def __init__(self, lake_root: str, s3: S3Settings, feeds: dict[str, Feed]) -> None:
            super().__init__()
            self.lake_root = lake_root
            self.s3 = s3
            self.feeds = feeds
            self.sinks: dict[str, DeltaLakeSink] = {}

        def setup(self) -> None:
            storage = open_storage(self.lake_root, self.s3)
            self.sinks = {name: DeltaLakeSink(storage, feed) for name, feed in self.feeds.items()}

        def process(self, element: Batch) -> Iterator[tuple[str, FlushStats]]:
            yield element.feed, write_batch(self.sinks[element.feed], element)

    class Count(beam.DoFn):
        """Publishes a feed's totals as metrics."""

        def process(self, element: tuple[str, FlushStats]) -> Iterator[str]:
            from apache_beam.metrics.metric import Metrics

            name, stats = element
            for stat in STATS:
                Metrics.counter(COUNTERS, f"{name}.{stat}").inc(getattr(stats, stat))
            yield name

    return ReadRange, WriteBatch, Count


class BeamExport:
    """The stream append of ``lakestream export`` as an Apache Beam pipeline.

    Args:
        settings: The configuration (Kafka client settings, the lake, batch sizes).
        storage: The lake.
        bootstrap: The Kafka bootstrap servers.
        options: Beam pipeline options as ``KEY=VALUE`` (DirectRunner when none says).
        grace_s: Finding a partition's end, wait this long for more after the broker
            said it had nothing more.
    """

    def __init__(self, settings: Settings, storage: Storage, bootstrap: str,
                 options: Sequence[str] = (), grace_s: float = 2.0) -> None:
        self.settings = settings
        self.storage = storage
        self.bootstrap = bootstrap
        self.options = tuple(options)
        self.grace_s = grace_s

    def run(self, feeds: Sequence[Feed]) -> BeamReport:
        """Append every feed's new records; what was written, per feed."""
        beam = import_beam()
        options = pipeline_options(self.options)
        kafka = client.base_config(self.settings, self.bootstrap)
        topics = {f.topic: client.topic_partitions(self.bootstrap, f.topic) for f in feeds}
        ranges = plan_ranges(self.storage, feeds, kafka, topics, self.grace_s)
        log.info("beam export: %d partition ranges of %d feeds", len(ranges), len(feeds))
        read, write, count = _transforms(beam)
        lake = self.settings.lake
        pipeline = beam.Pipeline(options=options)
        _ = (pipeline
             | "Ranges" >> beam.Create(ranges)
             | "Spread" >> beam.Reshuffle()
             | "Read" >> beam.ParDo(read(kafka, lake.max_batch_records, lake.max_batch_bytes))
             | "Write" >> beam.ParDo(write(self.storage.uri, self.settings.s3,
                                           {f.name: f for f in feeds}))
             | "Sum" >> beam.CombinePerKey(add_stats)
             | "Count" >> beam.ParDo(count()))
        report = _counts(_run(pipeline), feeds)
        for feed in feeds:
            wrote = report.per_feed[feed.name]
            if wrote.files or wrote.records or wrote.rejected:
                DeltaLakeSink(self.storage, feed).publish_metadata()
        return report


def _run(pipeline: Any) -> Any:
    """Run the pipeline to its end; a failure becomes one line."""
    beam_log = logging.getLogger("apache_beam.runners.common")
    level = beam_log.level
    if not log.isEnabledFor(logging.DEBUG):
        beam_log.setLevel(logging.CRITICAL)  # the failing step's traceback: --debug shows it
    try:
        result = pipeline.run()
        state = result.wait_until_finish()
    except LakestreamError:
        raise
    except Exception as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
        raise BeamPipelineError(f"the Beam pipeline failed: {lines[-1][:300]}",
                                "run with --debug for the runner's log") from exc
    finally:
        beam_log.setLevel(level)
    if state != "DONE":  # a runner that reports a failed or cancelled job instead of raising
        raise BeamPipelineError(f"the Beam pipeline ended {state}", "see the runner's log")
    return result


def _counts(result: Any, feeds: Sequence[Feed]) -> BeamReport:
    from apache_beam.metrics.metric import MetricsFilter

    report = BeamReport()
    names = {f"{f.name}.{stat}": (f.name, stat) for f in feeds for stat in STATS}
    for counter in result.metrics().query(MetricsFilter().with_namespace(COUNTERS))["counters"]:
        known = names.get(counter.key.metric.name)
        if known is None:
            continue
        try:
            value = counter.committed
        except Exception:  # some portable runners only report attempted values
            value = None
        stats = report.per_feed[known[0]]
        setattr(stats, known[1], getattr(stats, known[1]) + int(value or counter.attempted or 0))
    return report
