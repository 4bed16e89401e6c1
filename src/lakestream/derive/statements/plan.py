"""The plan of a statements program: what the executor runs, and what ``statements show`` prints.

The executor registers, for each batch of an input partition:

- a view per source stream, named as the stream, with the columns as declared
  (:meth:`SourcePlan.arrow_schema`) plus ``_source_partition`` (INTEGER),
  ``_source_offset`` (BIGINT) and ``_event_time`` (BIGINT epoch milliseconds,
  ``ROWTIME``: see :class:`EventTime`);
- a view per table over a topic (the reference tables), one row per key;
- for an output with ``pseudonym_inputs_sql`` (it calls ``HMAC_SHA256``), the
  pseudonyms of the batch's values (:func:`.pseudonyms.register_pseudonyms`).

Then, in :attr:`Plan.outputs` order, it runs each :class:`StreamPlan`'s SQL
(whose result becomes the view of that stream for the statements after it) and
each :class:`TablePlan`'s pre-aggregation and delta SQL (see :mod:`.aggregates`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from lakestream.derive.statements.aggregates import AggregateSpec
from lakestream.derive.statements.compiler import (
    EVENT_TIME,
    SOURCE_OFFSET,
    SOURCE_PARTITION,
    Column,
)
from lakestream.derive.statements.timeformat import TimeFormat
from lakestream.derive.statements.types import quote
from lakestream.derive.statements.windows import WindowSpec

AGGREGATED = "aggregated"  # the relation a table's output SQL reads
WINDOW_START = "_window_start"
WINDOW_END = "_window_end"
BATCH_COLUMNS = (SOURCE_PARTITION, SOURCE_OFFSET, EVENT_TIME)


@dataclass(frozen=True)
class EventTime:
    """Where a stream's event time (``ROWTIME``) comes from.

    Attributes:
        column: The column named by ``TIMESTAMP``, or ``None``: the Kafka record's timestamp.
        type: The column's type: ``TIMESTAMP``, ``BIGINT`` (epoch ms) or ``STRING``.
        format: For a ``STRING`` column, its ``TIMESTAMP_FORMAT``, translated.
    """

    column: str | None
    type: str | None = None
    format: TimeFormat | None = None

    @property
    def declared(self) -> bool:
        """Whether the statements name an event-time column (windows need one)."""
        return self.column is not None

    def sql(self, view: str) -> str | None:
        """SQL computing ``_event_time`` (epoch ms) from the declared columns of ``view``;
        ``None`` when it is the Kafka record's timestamp (the executor supplies it). A text
        that does not parse gives NULL: such an event has no event time."""
        if self.column is None:
            return None
        column = f"{quote(view)}.{quote(self.column)}"
        if self.type == "BIGINT":
            return column
        if self.format is not None:
            return f"epoch_ms({self.format.parse_sql(column)})"
        return f"epoch_ms(CAST({column} AS TIMESTAMP))"

    def describe(self) -> str:
        """One line for ``statements show``."""
        if self.column is None:
            return "the Kafka record timestamp (no TIMESTAMP column)"
        fmt = f", format '{self.format.java}'" if self.format else ""
        return f"{self.column} ({self.type}{fmt})"


@dataclass(frozen=True)
class SourcePlan:
    """A stream or table declared over an existing topic."""

    name: str
    kind: str  # STREAM or TABLE
    topic: str
    columns: tuple[Column, ...]
    key_columns: tuple[str, ...]
    event_time: EventTime
    key_format: str
    partitions: int | None
    line: int
    source: str | None

    def arrow_schema(self) -> pa.Schema:
        """The Arrow schema of the declared columns (the decoder's target)."""
        return _schema(self.columns)


@dataclass(frozen=True)
class StreamPlan:
    """A derived stream (``CREATE STREAM … AS SELECT``), or more rows for one (``INSERT INTO``).

    Attributes:
        sql: A DuckDB SELECT over the views of :attr:`reads` giving the output
            :attr:`columns` then ``_source_partition``, ``_source_offset``,
            ``_event_time``, in input order.
        key_columns: The output columns whose values form the record key (none: no key).
        key_format: ``KAFKA`` (one key column's value) or ``JSON`` (an object of the key
            columns); the source's unless ``KEY_FORMAT`` says.
        join_kinds: ``JOIN`` or ``LEFT JOIN`` for each of :attr:`tables`.
        insert: Whether this is an ``INSERT INTO`` (its rows go to :attr:`name`'s topic).
        pseudonym_inputs_sql: For an output calling ``HMAC_SHA256``: a SELECT of the values
            to pseudonymize in the batch, for :func:`.pseudonyms.register_pseudonyms`.
    """

    name: str
    topic: str
    reads: str
    tables: tuple[str, ...]
    columns: tuple[Column, ...]
    key_columns: tuple[str, ...]
    event_time: EventTime
    sql: str
    insert: bool
    line: int
    source: str | None
    pseudonym_inputs_sql: str | None = None
    key_format: str = "KAFKA"
    join_kinds: tuple[str, ...] = ()

    kind = "STREAM"

    def output_schema(self) -> pa.Schema:
        """The Arrow schema of the published columns (the output feed's)."""
        return _schema(self.columns)


@dataclass(frozen=True)
class TablePlan:
    """An aggregate table (``CREATE TABLE … AS SELECT … GROUP BY``).

    Attributes:
        key_columns: The output columns of the GROUP BY, in its order, then the
            window bounds of a windowed table.
        key_format: As for a stream; ``JSON`` by default for several GROUP BY columns.
        pre_aggregation_sql: A DuckDB SELECT over the batch views giving one row per
            input row (per window of it): the GROUP BY values under their output
            names, ``_window_start``/``_window_end`` (windowed tables), each
            aggregate's argument (``_arg0``…) and the three batch columns.
        delta_sql: A DuckDB SELECT over the pre-aggregation rows giving a batch's
            state delta per ``_source_partition``, key and window.
        distinct_sql: Per ``COUNT_DISTINCT``: a SELECT of its distinct values per
            partition, key and window.
        output_sql: A DuckDB SELECT over ``aggregated`` (the key columns, the window
            bounds and each finished aggregate ``_agg0``…) giving the published
            :attr:`columns`; a key it drops (HAVING) is published as a tombstone.
        pseudonym_inputs_sql: As for a stream (``HMAC_SHA256`` in GROUP BY, WHERE or an
            aggregate's argument).
    """

    name: str
    topic: str
    reads: str
    tables: tuple[str, ...]
    columns: tuple[Column, ...]
    key_columns: tuple[str, ...]
    group_columns: tuple[str, ...]
    window: WindowSpec | None
    aggregates: tuple[AggregateSpec, ...]
    pre_aggregation_sql: str
    delta_sql: str
    distinct_sql: tuple[tuple[str, str], ...]
    output_sql: str
    having: bool
    line: int
    source: str | None
    pseudonym_inputs_sql: str | None = None
    key_format: str = "KAFKA"
    join_kinds: tuple[str, ...] = ()

    kind = "TABLE"

    def output_schema(self) -> pa.Schema:
        """The Arrow schema of the published columns (the output feed's)."""
        return _schema(self.columns)


Relation = SourcePlan | StreamPlan | TablePlan


def _schema(columns: tuple[Column, ...]) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.type.arrow()) for c in columns])


@dataclass(frozen=True)
class Plan:
    """A validated program: the settings, sources and outputs of one or more files.

    Attributes:
        settings: ``SET`` properties, in order.
        relations: Every stream and table by name (sources, derived streams, tables).
        outputs: The derived streams, ``INSERT INTO``s and tables, in statement order.
    """

    settings: tuple[tuple[str, str], ...]
    relations: dict[str, Relation]
    outputs: tuple[StreamPlan | TablePlan, ...]

    @property
    def sources(self) -> tuple[SourcePlan, ...]:
        """The streams and tables declared over existing topics."""
        return tuple(r for r in self.relations.values() if isinstance(r, SourcePlan))

    @property
    def streams(self) -> tuple[StreamPlan, ...]:
        """The derived streams and INSERT INTOs."""
        return tuple(o for o in self.outputs if isinstance(o, StreamPlan))

    @property
    def tables(self) -> tuple[TablePlan, ...]:
        """The aggregate tables."""
        return tuple(o for o in self.outputs if isinstance(o, TablePlan))

    @property
    def needs_anon_key(self) -> bool:
        """Whether some output calls ``HMAC_SHA256`` (the executor then needs the key)."""
        return any(o.pseudonym_inputs_sql is not None for o in self.outputs)

    def output(self, name: str) -> StreamPlan | TablePlan:
        """The derived stream or table ``name`` (its CREATE, not an INSERT INTO)."""
        found = self.relations[name]
        assert not isinstance(found, SourcePlan), name
        return found

    def describe(self) -> str:
        """The plan as text a user reads (``lakestream statements show``)."""
        from lakestream.derive.statements.describe import describe_plan

        return describe_plan(self)
