"""Task datasets (:class:`~.tasks.Ref`) as the OpenLineage datasets of one configuration.

Names follow :mod:`.naming`; schemas are read once per run and cheaply (a
Delta table's log, a feed's declared schema, a table definition). Nothing
here may fail a run: a dataset that cannot be named is left out, a schema
that cannot be read is left off, and both are logged at debug level.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

from lakestream.config import Settings
from lakestream.decode.schemas import arrow_schema
from lakestream.feeds import FeedRegistry
from lakestream.lake.delta import DeltaDataset
from lakestream.lake.storage import Storage
from lakestream.lineage import facets
from lakestream.lineage.naming import DatasetId, kafka_topic, lake_table, sql_table
from lakestream.lineage.tasks import Ref
from lakestream.medallion.gold import gold_url
from lakestream.medallion.gold_schema import gold_metadata
from lakestream.warehouse.connection import warehouse_url
from lakestream.warehouse.schema import metadata as warehouse_metadata

log = logging.getLogger(__name__)

LAKE_AREAS = ("bronze/", "silver/", "gold/", "streams/", "tables/")
T = TypeVar("T")


def quietly(what: str, call: Callable[[], T]) -> T | None:
    """``call()``, or ``None`` (logged) when it fails: lineage never fails a run."""
    try:
        return call()
    except Exception as exc:
        log.debug("lineage: cannot %s: %s", what, exc)
        return None


class Resolver:
    """Names and schemas of one configuration's datasets.

    Args:
        settings: The configuration (gold and warehouse URLs).
        storage: The lake.
        feeds: The feed registry (topics and their declared schemas).
        bootstrap: The Kafka cluster of the run (``None``: topics are left out).
    """

    def __init__(self, settings: Settings, storage: Storage, feeds: FeedRegistry,
                 bootstrap: str | None) -> None:
        self.settings = settings
        self.storage = storage
        self.feeds = feeds
        self.bootstrap = bootstrap
        self._fields: dict[Ref, list[facets.Field] | None] = {}

    def dataset_id(self, ref: Ref) -> DatasetId | None:
        """The OpenLineage name of ``ref``, or ``None`` when it cannot be named."""
        return quietly(f"name {ref}", lambda: self._name(ref))

    def _name(self, ref: Ref) -> DatasetId | None:
        if ref.kind == "topic":
            return kafka_topic(self.bootstrap, ref.name) if self.bootstrap else None
        if ref.kind == "lake":
            return lake_table(self.storage, ref.name)
        table = self._table(ref)
        schema = table.schema if table is not None else None
        url = gold_url(self.settings) if ref.kind == "gold" else warehouse_url(self.settings)
        return sql_table(url, ref.name, schema)

    def fields(self, ref: Ref) -> list[facets.Field] | None:
        """The schema of ``ref`` (read once per resolver), or ``None`` when unknown."""
        if ref not in self._fields:
            self._fields[ref] = quietly(f"read the schema of {ref}", lambda: self._read(ref))
        return self._fields[ref]

    def _read(self, ref: Ref) -> list[facets.Field] | None:
        if ref.kind == "lake":
            table = DeltaDataset(self.storage, ref.name).table(refresh=False)
            return facets.delta_fields(table) if table is not None else None
        if ref.kind == "topic":
            feed = next((f for f in self.feeds if f.topic == ref.name), None)
            if feed is None:
                return None
            return facets.arrow_fields(arrow_schema(feed.schema_spec, feed.time_field)) or None
        table = self._table(ref)
        return facets.table_fields(table) if table is not None else None

    @staticmethod
    def _table(ref: Ref) -> sa.Table | None:
        tables = gold_metadata.tables if ref.kind == "gold" else warehouse_metadata.tables
        return tables.get(ref.name)

    @staticmethod
    def checked(dataset: str) -> Ref | None:
        """The dataset a quality result names (``bronze/weather``, ``gold_weather_detailed``)."""
        if dataset.startswith(LAKE_AREAS):
            return Ref("lake", dataset)
        if dataset in gold_metadata.tables:
            return Ref("gold", dataset)
        if dataset in warehouse_metadata.tables:
            return Ref("warehouse", dataset)
        return None
