"""What each task of the built-in pipelines reads and writes, for its lineage events.

A task declares its datasets as :class:`Ref` values (a topic, a lake path, a
gold or warehouse table); :mod:`.resolve` turns them into OpenLineage
datasets of this configuration (the cluster, the lake root, the databases).
The weather pipeline's tasks are those of its DAG (``run weather``, the
demo's run); the transactions pipeline's follow its feeds.

A task's row counts say how many rows it read and wrote in total; they are
a dataset's statistics only where they belong to one dataset
(``first_input_rows`` / ``first_output_rows``). Retention deletes rows: its
counts are no rows written, so its outputs carry none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from lakestream.feeds import FeedRegistry
from lakestream.medallion.gold_schema import GOLD_TABLES, data_quality_results
from lakestream.medallion.silver import CLEANED, DAILY, HOURLY
from lakestream.warehouse.lake_source import FLATTENED_STREAM
from lakestream.warehouse.schema import DIMENSION_TABLES, FACT_TABLES, FACTS

Kind = Literal["topic", "lake", "gold", "warehouse"]
WEATHER_FEED = "weather"
TRANSACTIONS = "transactions"


@dataclass(frozen=True, order=True)
class Ref:
    """A dataset as a task knows it: a topic, a lake path, a gold or warehouse table."""

    kind: Kind
    name: str


Refs = Callable[[FeedRegistry], list[Ref]]


def _none(_feeds: FeedRegistry) -> list[Ref]:
    return []


@dataclass(frozen=True)
class TaskSpec:
    """The datasets one task reads and writes.

    Attributes:
        inputs: The datasets it reads (from the feed registry).
        outputs: The datasets it writes.
        first_input_rows: Its ``rows_in`` are the rows it read of its first input.
        first_output_rows: Its ``rows_out`` are the rows it wrote to its first output.
        checks: Its quality results are assertions on the datasets they name.
    """

    inputs: Refs = _none
    outputs: Refs = _none
    first_input_rows: bool = False
    first_output_rows: bool = False
    checks: bool = False


def _fixed(*refs: Ref) -> Refs:
    return lambda _feeds: list(refs)


# -- weather ---------------------------------------------------------------------------------


def _weather_topic(feeds: FeedRegistry) -> list[Ref]:
    return [Ref("topic", feeds.get(WEATHER_FEED).topic)]


def _bronze(feeds: FeedRegistry) -> list[Ref]:
    return [Ref("lake", feeds.get(WEATHER_FEED).dataset)]


SILVER = (Ref("lake", CLEANED), Ref("lake", DAILY), Ref("lake", HOURLY))
GOLD = tuple(Ref("gold", t.name) for t in GOLD_TABLES)


def _weather_layers(feeds: FeedRegistry) -> list[Ref]:
    return [*_bronze(feeds), *SILVER, *GOLD]


WEATHER: dict[str, TaskSpec] = {
    "ingest_data": TaskSpec(outputs=_weather_topic, first_output_rows=True),
    "consume_to_s3": TaskSpec(_weather_topic, _bronze, True, True),
    "process_silver": TaskSpec(_bronze, _fixed(*SILVER), True, True),
    "load_gold": TaskSpec(_fixed(*SILVER), _fixed(*GOLD)),
    "quality_check": TaskSpec(lambda feeds: [*_bronze(feeds), SILVER[0]],
                              _fixed(Ref("gold", data_quality_results.name)), checks=True),
    "cleanup_old_data": TaskSpec(outputs=_weather_layers),
}


# -- transactions ----------------------------------------------------------------------------


def _feeds_of(feeds: FeedRegistry, kind: str | None = None) -> list[Ref]:
    return [Ref("lake", f.dataset) for f in feeds.select(TRANSACTIONS, None)
            if kind is None or f.kind == kind]


def _topics_of(feeds: FeedRegistry, kind: str | None = None) -> list[Ref]:
    return [Ref("topic", f.topic) for f in feeds.select(TRANSACTIONS, None)
            if kind is None or f.kind == kind]


def _processed(_feeds: FeedRegistry) -> list[Ref]:
    from lakestream.derive.processor import STREAMS
    from lakestream.derive.shipped import TABLES

    return [Ref("topic", name) for name in (*STREAMS, *TABLES)]


def _processor_input(_feeds: FeedRegistry) -> list[Ref]:
    from lakestream.derive.processor import INPUT_TOPIC

    return [Ref("topic", INPUT_TOPIC)]


def _synced_from(_feeds: FeedRegistry) -> list[Ref]:
    return [*(Ref("lake", f"tables/{f.lake_table}") for f in FACTS),
            Ref("lake", FLATTENED_STREAM)]


WAREHOUSE = tuple(Ref("warehouse", t.name) for t in (*DIMENSION_TABLES, *FACT_TABLES))

TRANSACTION_TASKS: dict[str, TaskSpec] = {
    "process": TaskSpec(_processor_input, _processed, first_input_rows=True),
    "ingest": TaskSpec(_topics_of, _feeds_of),
    "export_tables": TaskSpec(lambda feeds: _topics_of(feeds, "table"),
                              lambda feeds: _feeds_of(feeds, "table")),
    "sync": TaskSpec(_synced_from, _fixed(*WAREHOUSE)),
    "quality": TaskSpec(_fixed(*WAREHOUSE), checks=True),
    "retention": TaskSpec(outputs=_feeds_of),
}

PIPELINES: dict[str, dict[str, TaskSpec]] = {"weather": WEATHER, TRANSACTIONS: TRANSACTION_TASKS}


def task_spec(pipeline: str, task: str) -> TaskSpec:
    """The datasets of ``pipeline``'s ``task`` (none for a task Lakestream does not know)."""
    return PIPELINES.get(pipeline, {}).get(task, TaskSpec())
