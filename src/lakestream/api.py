"""The one facade the CLI and the web app call (as sqlmesh's ``Context``).

Every user-facing operation is a method here; ``cli.py`` only parses
arguments, calls one of these, and prints the result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakestream.config import Settings
from lakestream.errors import ConfigError, FeedError, UsageError
from lakestream.feeds import Feed, FeedRegistry
from lakestream.governance.secrets import install_log_redaction
from lakestream.ingest.engine import IngestEngine, IngestReport
from lakestream.kafka import client
from lakestream.kafka.broker import EmbeddedBroker, read_state, write_state
from lakestream.kafka.consumer import ConsumeOptions
from lakestream.kafka.drain import expel_wait_s
from lakestream.kafka.producer import ProduceReport, produce
from lakestream.lake.reader import LakeReader
from lakestream.lake.storage import Storage, open_storage

if TYPE_CHECKING:
    from lakestream.batchload.batch import BatchService
    from lakestream.derive.processor import Processor
    from lakestream.derive.programs import StatementRegistry
    from lakestream.derive.reference import ReferenceStore
    from lakestream.governance.feed_changes import FeedUpdate
    from lakestream.governance.service import Governance
    from lakestream.ingest.dead_letters import DeadLetters
    from lakestream.lake.upgrade import DatasetUpgrade
    from lakestream.lineage import Lineage
    from lakestream.observe import Monitor
    from lakestream.observe.tokens import ApiTokens
    from lakestream.orchestrate.service import Orchestrator
    from lakestream.pipelines.weather import WeatherService
    from lakestream.quality import QualityReport
    from lakestream.quality.runs import QualityRun
    from lakestream.warehouse import WarehouseService
    from lakestream.warehouse.streaming import WarehouseStreamLoader

log = logging.getLogger(__name__)


class Lakestream:
    """Lakestream for one configuration."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        install_log_redaction(settings)  # no secret value reaches a log line

    @cached_property
    def storage(self) -> Storage:
        """The lake's storage (local folder or S3)."""
        return open_storage(self.settings.lake.root, self.settings.s3)

    @cached_property
    def feeds(self) -> FeedRegistry:
        """The feed registry."""
        return FeedRegistry(Path(self.settings.feeds_dir))

    @cached_property
    def batch(self) -> BatchService:
        """Batch loads, metadata reports, compaction and feed deletion (``batchload/``)."""
        from lakestream.batchload.batch import BatchService

        return BatchService(self.settings, self.storage, self.feeds, self.bootstrap)

    @cached_property
    def warehouse(self) -> WarehouseService:
        """The star-schema warehouse (imported on first use: SQLAlchemy is not cheap)."""
        from lakestream.warehouse import WarehouseService

        return WarehouseService(self.settings, storage=self.storage)

    @cached_property
    def governance(self) -> Governance:
        """Permissions, audited reads, retention, the audit log (``governance/``)."""
        from lakestream.governance.service import Governance

        return Governance(self.settings, self.storage, self.feeds, self.warehouse)

    @cached_property
    def weather(self) -> WeatherService:
        """The weather pipeline's steps (docs/weather.md): produce, bronze, silver, gold, quality.

        Its runs are the orchestrator's (``orchestrator.run("weather")``, or with options
        ``orchestrator.run(weather_dag(WeatherOptions(...)))``)."""
        from lakestream.pipelines.weather import WeatherService

        return WeatherService(self.settings, self.storage, self.feeds)

    @cached_property
    def orchestrator(self) -> Orchestrator:
        """DAG runs, the scheduler, the Airflow DAG writer (``orchestrate/``)."""
        from lakestream.orchestrate.service import Orchestrator

        return Orchestrator(self.settings, lambda: self.warehouse.engine, self,
                            lineage=self.lineage)

    @cached_property
    def lineage(self) -> Lineage:
        """OpenLineage events of the runs, and the graph they describe (docs/lineage.md)."""
        from lakestream.lineage import Lineage

        return Lineage(self.settings, self.storage, self.feeds)

    @property
    def data_dir(self) -> Path:
        """Home of embedded state."""
        return Path(self.settings.data_dir)

    def bootstrap(self) -> str:
        """Kafka bootstrap servers (configured, or the background embedded broker)."""
        return client.bootstrap_servers(self.settings)

    # -- broker -------------------------------------------------------------------------

    def broker_start(self, storage_engine: str = "memory://tansu/") -> dict[str, object]:
        """Start the embedded broker in the background and record it for other commands."""
        running = read_state(self.data_dir)
        if running is not None:
            return {**running, "already_running": True}
        broker = EmbeddedBroker(self.data_dir / "broker", storage_engine=storage_engine)
        broker.start()
        pid = broker.pid
        assert pid is not None
        write_state(self.data_dir, broker.bootstrap_servers, pid, storage_engine)
        broker.process = None  # keep it running after we return
        return {
            "bootstrap_servers": broker.bootstrap_servers,
            "pid": pid,
            "storage_engine": storage_engine,
            "already_running": False,
        }

    def broker_stop(self) -> dict[str, object] | None:
        """Stop the background embedded broker, if one runs."""
        import os
        import signal

        state = read_state(self.data_dir)
        if state is None:
            return None
        os.kill(int(str(state["pid"])), signal.SIGTERM)
        (self.data_dir / "broker.json").unlink(missing_ok=True)
        return state

    def broker_status(self) -> dict[str, object] | None:
        """The background embedded broker, or ``None``."""
        return read_state(self.data_dir)

    @contextmanager
    def embedded_kafka(self) -> Iterator[str]:
        """The configured Kafka, or a temporary embedded broker for the block's duration."""
        if self.settings.kafka.bootstrap_servers or read_state(self.data_dir):
            yield self.bootstrap()
            return
        with EmbeddedBroker(self.data_dir / "broker") as broker:
            yield broker.bootstrap_servers

    # -- produce ------------------------------------------------------------------------

    def produce_transactions(
        self,
        messages: int,
        rate: float = 0.0,
        seed: int | None = None,
        on_progress: Callable[[int], None] | None = None,
        bootstrap: str | None = None,
    ) -> ProduceReport:
        """Generate ``messages`` transaction events into the ``transactions`` topic."""
        from lakestream.sources.generator import TransactionGenerator

        bootstrap = bootstrap or self.bootstrap()
        feed = self.feeds.get("transaction_stream")
        client.ensure_configured_topics(self.settings, bootstrap, [feed.topic])
        generator = TransactionGenerator(seed=seed)
        config = client.producer_config(self.settings, bootstrap)
        return produce(config, feed.topic, generator.messages(messages), rate, on_progress)

    # -- ingest -------------------------------------------------------------------------

    def select_feeds(self, pipeline: str | None, feed: str | None) -> list[Feed]:
        """The enabled feeds to ingest."""
        feeds = self.feeds.select(pipeline, feed)
        if not feeds:
            raise FeedError("no enabled feed matches", "see `lakestream feeds list`")
        return feeds

    def lake_holdings(self, feeds: list[Feed]) -> tuple[int, int]:
        """Files and bytes the lake holds of ``feeds``: their datasets and dead letters.

        Counted by the code ``metadata report|stats`` counts with (table
        versions included), so the ingest summary and ``metadata`` agree.
        """
        import datetime as dt

        from lakestream.lake.layout import DLQ, dlq_path
        from lakestream.lake.reader import Dataset
        from lakestream.lake.report import dataset_stats

        now = dt.datetime.now(dt.UTC)
        datasets = [Dataset(f.name, f.dataset, f.layer) for f in feeds] + \
            [Dataset(f"dlq_{f.name}", dlq_path(f.name), DLQ) for f in feeds]
        stats = [dataset_stats(self.storage, ds, now) for ds in datasets]
        return sum(s.files for s in stats), sum(s.bytes for s in stats)

    def ingest_engine(
        self,
        feeds: list[Feed],
        until_idle: bool = False,
        idle_timeout_s: float = 3.0,
        group_id: str | None = None,
        progress: Callable[[IngestReport, dict[str, int]], None] | None = None,
        bootstrap: str | None = None,
        status: Callable[[str], None] | None = None,
        drain_timeout_s: float | None = None,
    ) -> IngestEngine:
        """An ingest engine for ``feeds`` (call ``run()``; ``stop()`` from a signal)."""
        bootstrap = bootstrap or self.bootstrap()
        client.ensure_configured_topics(self.settings, bootstrap,
                                        [f.topic for f in feeds if f.kind == "stream"],
                                        [f.topic for f in feeds if f.kind == "table"])
        options = self.consume_options(group_id or self.settings.kafka.group_id, until_idle,
                                       idle_timeout_s, progress, status, drain_timeout_s)
        tables = {f.topic: client.configured_topic_partitions(self.settings, bootstrap, f.topic)
                  for f in feeds if f.kind == "table"}
        from lakestream.governance.modes import prepare_feed_folders

        prepare_feed_folders(self.storage, feeds)  # 0750 restricted / 0755 shared
        return IngestEngine(self.settings, bootstrap, self.storage, feeds, options, tables)

    def warehouse_loader(self, until_idle: bool = False, idle_timeout_s: float = 3.0,
                         group_id: str | None = None,
                         progress: Callable[[Any, dict[str, int]], None] | None = None,
                         bootstrap: str | None = None,
                         status: Callable[[str], None] | None = None,
                         drain_timeout_s: float | None = None) -> WarehouseStreamLoader:
        """The streaming warehouse consumer (``ingest --sink warehouse``)."""
        from lakestream.warehouse.streaming import FLATTENED, TOPICS, WarehouseStreamLoader

        bootstrap = bootstrap or self.bootstrap()
        client.ensure_configured_topics(self.settings, bootstrap, [FLATTENED],
                                        [t for t in TOPICS if t != FLATTENED])
        self.warehouse.init()
        group = group_id or f"{self.settings.kafka.group_id}-warehouse"
        options = self.consume_options(group, until_idle, idle_timeout_s, progress, status,
                                       drain_timeout_s)
        return WarehouseStreamLoader(self.settings, bootstrap, self.warehouse, options)

    def consume_options(self, group_id: str, until_idle: bool, idle_timeout_s: float,
                        progress: Callable[[Any, dict[str, int]], None] | None,
                        status: Callable[[str], None] | None = None,
                        drain_timeout_s: float | None = None) -> ConsumeOptions:
        """Consumer-loop options from the lake and Kafka settings.

        Raises:
            UsageError: The drain timeout is too short to outwait a dead member's session.
        """
        lake, kafka = self.settings.lake, self.settings.kafka
        drain = drain_timeout_s if drain_timeout_s is not None else kafka.drain_timeout_s
        needed = idle_timeout_s + expel_wait_s(kafka.session_timeout_ms / 1000)
        if until_idle and drain <= needed:
            raise UsageError(
                f"--drain-timeout {drain:g}s is too short: the group needs up to {needed:g}s "
                "(idle timeout + session timeout + margin) to expel a dead member",
                f"use --drain-timeout {int(needed * 2) + 1} or more")
        return ConsumeOptions(group_id=group_id, until_idle=until_idle,
                              idle_timeout_s=idle_timeout_s, flush_interval_s=lake.flush_interval_s,
                              max_batch_records=lake.max_batch_records,
                              max_batch_bytes=lake.max_batch_bytes, progress=progress,
                              drain_timeout_s=drain, status=status)

    # -- process ------------------------------------------------------------------------

    def anon_key(self) -> bytes:
        """The anonymization key (``LAKESTREAM_ANON_KEY``); a missing key is an error."""
        if self.settings.anon_key is None or not self.settings.anon_key.get_secret_value():
            raise ConfigError(
                "LAKESTREAM_ANON_KEY is not set: the anonymized stream needs a secret key",
                "export LAKESTREAM_ANON_KEY=$(openssl rand -hex 32), or put it in .env",
            )
        return self.settings.anon_key.get_secret_value().encode()

    def processor(self, until_idle: bool = False, idle_timeout_s: float = 3.0,
                  progress: Callable[[Any, dict[str, int]], None] | None = None,
                  bootstrap: str | None = None,
                  status: Callable[[str], None] | None = None,
                  drain_timeout_s: float | None = None) -> Processor:
        """The ksqlDB-equivalent processor (call ``run()``; ``stop()`` from a signal)."""
        from lakestream.derive.executor import input_streams, plan_topics
        from lakestream.derive.outputs import OutputPublisher
        from lakestream.derive.processor import Processor

        plan = self.statements.program()  # the shipped statements, then the registered files
        key = self.anon_key()
        bootstrap = bootstrap or self.bootstrap()
        partitions = self.settings.kafka.partitions
        inputs = list(dict.fromkeys(s.topic for s in input_streams(plan)))
        client.ensure_configured_topics(self.settings, bootstrap, inputs)
        # a derived record goes to its source's partition: as many as the widest input
        widest = max((len(client.configured_topic_partitions(self.settings, bootstrap, topic))
                      for topic in inputs), default=0) or partitions
        streams, tables = plan_topics(plan)
        client.ensure_configured_topics(self.settings, bootstrap, streams, partitions=widest)
        client.ensure_configured_topics(self.settings, bootstrap, tables=tables)
        options = self.consume_options("lakestream-processor", until_idle, idle_timeout_s,
                                       progress, status, drain_timeout_s)
        publisher = OutputPublisher(client.producer_config(self.settings, bootstrap))
        return Processor(self.settings, bootstrap, self.storage, key, options, publisher, plan)

    @cached_property
    def statements(self) -> StatementRegistry:
        """The users' registered statement files (``lakestream statements``)."""
        from lakestream.derive.programs import StatementRegistry

        return StatementRegistry(Path(self.settings.feeds_dir), Path(self.settings.data_dir))

    def reference(self) -> ReferenceStore:
        """Exchange rates and blacklist of this data directory."""
        from lakestream.derive.reference import ReferenceStore

        return ReferenceStore(self.data_dir)

    def check_quality(self, pipeline: str, run_id: str | None = None) -> QualityReport:
        """Run a pipeline's data-quality checks over the lake; results stored under the run."""
        if pipeline == "weather":
            return self.weather.quality(run_id)
        from lakestream.quality import check_pipeline, save_results

        currencies = self.reference().rates().to_usd if pipeline == "transactions" else ()
        report = check_pipeline(pipeline, self.storage, self.settings.quality, run_id,
                                currencies=currencies)
        save_results(self.weather.gold_store, report)
        return report

    def quality_run(self, run_id: str | None = None) -> QualityRun:
        """The stored checks of a run (default: the latest), and its unpublished files, if kept."""
        from lakestream.quality.runs import quality_run

        return quality_run(self.weather.gold_store, self.storage, run_id)

    def update_feed(self, name: str, changes: dict[str, Any],
                    keep_existing_data: bool = False) -> FeedUpdate:
        """Change keys of a feed; refused when the lake's data of it contradicts the change."""
        from lakestream.governance.feed_changes import update_feed

        return update_feed(self.storage, self.feeds, name, changes, keep_existing_data)

    def dataset_metadata(self, feed: Feed) -> dict[str, Any] | None:
        """The ``_metadata.json`` of a feed's dataset (``None`` before its first commit)."""
        from lakestream.lake.metadata import read_metadata

        return read_metadata(self.storage, feed.dataset)

    def upgrade_lake(self, dry_run: bool = False,
                     progress: Callable[[str], None] | None = None) -> list[DatasetUpgrade]:
        """Turn the datasets of a lake written before Delta into Delta tables, in place
        (``lake upgrade``; ``dry_run``: say what would change, change nothing)."""
        from lakestream.derive.state import pending_dead_letters
        from lakestream.lake.upgrade import upgrade_lake

        # the processor's dead letters committed, not yet moved
        pending = pending_dead_letters(self.data_dir / "state" / "processor.sqlite")
        return upgrade_lake(self.storage, self.feeds, dry_run, progress, pending)

    # -- dead letters -------------------------------------------------------------------

    @cached_property
    def dead_letters(self) -> DeadLetters:
        """The feeds' dead letters: list, show, replay, purge (``dlq``)."""
        from lakestream.ingest.dead_letters import DeadLetters

        return DeadLetters(self.storage, self.feeds, lambda: self.governance.audit)

    # -- query --------------------------------------------------------------------------

    def query(self, sql: str, principal: str | None = None
              ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run DuckDB SQL over the lake's datasets (one view per dataset).

        With a ``principal`` (``query --as``), the statement must read only datasets
        they may read; it runs where only those views exist, and it is audited.
        """
        if principal is not None:
            result = self.governance.query(principal, sql)
            return result.columns, result.rows
        reader = LakeReader(self.storage, feeds=self.feeds)
        try:
            return reader.query(sql)
        finally:
            reader.close()

    def datasets(self) -> list[str]:
        """Names of the lake's datasets (the views ``query`` offers)."""
        reader = LakeReader(self.storage, feeds=self.feeds)
        try:
            return [d.name for d in reader.datasets]
        finally:
            reader.close()

    # -- dashboard, JSON API, metrics -------------------------------------------------------

    @cached_property
    def monitor(self) -> Monitor:
        """What the dashboard, the JSON API and ``/metrics`` show, checked per principal."""
        from lakestream.observe.wiring import build_monitor

        gov = self.governance
        return build_monitor(self.settings, self.storage, self.feeds, gov.gate, gov.audit)

    @cached_property
    def tokens(self) -> ApiTokens:
        """API tokens: shown once when created, stored hashed in the warehouse."""
        from lakestream.observe.tokens import ApiTokens

        gov = self.governance
        return ApiTokens(gov.db, gov.tokens, gov.audit)
