"""The executor: runs a compiled statements program on batches of its input partitions.

A batch of one input partition goes through two steps:

- :meth:`Executor.prepare` (no state, no lock): the batch's source view
  (:mod:`.inputs`: decoding, the topic's contract, the event time), the reference
  tables, then every output in dependency order — each derived stream's SQL (its
  result is the view later statements read; an ``INSERT INTO`` adds rows to its
  target's) and each table's pre-aggregation rows;
- :meth:`Executor.apply`, inside the store's transaction: the batch is trimmed to the
  offsets the store does not hold yet (a replay after a crash, or a zombie's batch,
  adds nothing twice); windowed tables drop the windows that closed (stream time per
  partition: the highest event time seen; an event past its window's grace period
  goes to the dead letters with that reason); each table's state is merged and its
  touched keys' values computed (:mod:`.aggregation`); the records to publish are
  returned with the partition's new position, which the caller commits with the
  state after the broker acknowledged the records.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

import duckdb

from lakestream.derive.aggregation import Message, TableRunner, key_sql
from lakestream.derive.contracts import CONTRACTS
from lakestream.derive.inputs import InputBatch, SourceReader
from lakestream.derive.reference import ReferenceStore, ip_prefix_problem
from lakestream.derive.state import StateStore, StoreTransaction
from lakestream.derive.statements import Plan, SourcePlan, StreamPlan, TablePlan
from lakestream.derive.statements.pseudonyms import register_pseudonyms
from lakestream.derive.statements.reference_views import REFERENCE_TABLES, reference_tables
from lakestream.derive.statements.types import quote
from lakestream.derive.statements.windows import duration_text
from lakestream.errors import ConfigError

log = logging.getLogger(__name__)

_PSEUDONYM_CACHE = 1_000_000
_STREAM_TIME = "_stream_time"


@dataclass
class PreparedBatch:
    """A batch after :meth:`Executor.prepare`: its records and what they were judged."""

    batch: InputBatch
    rejected: dict[int, str]
    valid: int


@dataclass
class BatchOutput:
    """What one batch publishes and commits.

    Attributes:
        streams: Per derived stream's topic, its records' keys and values, in source order.
        tables: Per table's topic, the new value (``None``: a tombstone) of each touched key.
        rejected: ``(index in the batch, reason)`` of the dead letters, late events included.
        late: How many events came too late for a window.
        processed: How many events passed the contract and reached the statements.
        records: How many records each output (by name) published.
        first: The index of the batch's first record not yet in the state.
        next_offset: The partition's next offset once the batch is committed.
        stream_time: The partition's stream time then.
    """

    streams: dict[str, tuple[list[bytes | None], list[bytes]]] = field(default_factory=dict)
    tables: dict[str, list[Message]] = field(default_factory=dict)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    late: int = 0
    processed: int = 0
    records: dict[str, int] = field(default_factory=dict)
    first: int = 0
    next_offset: int = 0
    stream_time: int | None = None


class Executor:
    """Runs ``plan`` on batches of its input topics.

    Args:
        plan: The compiled program.
        store: The state store (the program's tables are attached to it).
        reference: The reference data the program's reference tables come from.
        anon_key: ``LAKESTREAM_ANON_KEY``, for ``HMAC_SHA256`` (refused when needed and missing).
    """

    def __init__(self, plan: Plan, store: StateStore, reference: ReferenceStore,
                 anon_key: bytes | None) -> None:
        self.plan = plan
        self.reference = reference
        self.anon_key = anon_key
        self.outputs = ordered_outputs(plan)
        self.readers = {s.name: SourceReader(s, CONTRACTS.get(s.topic))
                        for s in input_streams(plan)}
        check_reference_tables(plan)
        # a state file of the format before the store never kept the USD→EUR rate: the
        # rate in force is what that processor published
        store.attach(plan.tables, reference.rates().usd_to_eur if store.legacy else None)
        self.tables = {t.name: TableRunner(t, store.layouts[t.name]) for t in plan.tables}
        self.con = duckdb.connect(":memory:", config={"threads": 1})  # small batches: less CPU
        self.con.execute("SET TimeZone = 'UTC'")
        self._reference_version: tuple[float, float] | None = None
        self._pseudonyms: dict[str, str] = {}

    @property
    def topics(self) -> list[str]:
        """The input topics (of the source streams the outputs read)."""
        return list(dict.fromkeys(r.source.topic for r in self.readers.values()))

    def close(self) -> None:
        """Release the DuckDB connection."""
        self.con.close()

    # -- step 1: no state ------------------------------------------------------------------

    def prepare(self, batch: InputBatch) -> PreparedBatch:
        """Decode and check the batch, run its streams and tables' pre-aggregation."""
        self._load_reference()
        rejected: dict[int, str] = {}
        for reader in self.readers.values():
            if reader.source.topic == batch.topic:
                rejected.update(reader.read(self.con, batch))
            else:
                reader.register_empty(self.con, batch.partition)
        for index, output in enumerate(self.outputs):
            if output.pseudonym_inputs_sql is not None:
                if len(self._pseudonyms) > _PSEUDONYM_CACHE:
                    self._pseudonyms.clear()
                register_pseudonyms(self.con, output.pseudonym_inputs_sql, self.anon_key,
                                    self._pseudonyms)
            if isinstance(output, TablePlan):
                self.con.execute(f"CREATE OR REPLACE TEMP TABLE {_pre(index)} AS "
                                 f"{output.pre_aggregation_sql}")
            elif output.insert:
                self.con.execute(f"INSERT INTO {quote(output.name)} {output.sql}")
            else:
                self.con.execute(f"CREATE OR REPLACE TEMP TABLE {quote(output.name)} AS "
                                 f"{output.sql}")
        return PreparedBatch(batch, rejected, len(batch.offsets) - len(rejected))

    # -- step 2: in the store's transaction -------------------------------------------------

    def apply(self, prepared: PreparedBatch, tx: StoreTransaction) -> BatchOutput | None:
        """Merge the batch into the state; what to publish, or ``None`` if the store holds
        the whole batch already."""
        batch = prepared.batch
        stored, stream_time = tx.position(batch.topic, batch.partition)
        offsets = batch.offsets
        cut = stored if stored is not None else offsets[0]
        if offsets[-1] < cut:
            return None
        first = next(i for i, o in enumerate(offsets) if o >= cut)
        out = BatchOutput(first=first, next_offset=offsets[-1] + 1)
        out.rejected = sorted((i, why) for i, why in prepared.rejected.items() if i >= first)
        source = self._source_of(batch.topic)
        out.processed = self._count(f"SELECT count(*) FROM {quote(source)} "
                                    f"WHERE _source_offset >= {cut}")
        out.stream_time = self._stream_times(source, cut, stream_time)
        late: dict[int, list[str]] = {}
        for index, output in enumerate(self.outputs):
            if isinstance(output, StreamPlan):
                if not output.insert:
                    keys, values = self._stream_records(output, cut)
                    out.streams[output.topic] = (keys, values)
                    out.records[output.name] = len(values)
                continue
            kept = self._kept_rows(index, output, cut, late)
            messages = self.tables[output.name].run(self.con, tx, batch.partition, kept)
            out.tables[output.topic] = messages
            out.records[output.name] = len(messages)
        if late:
            index_of = {o: i for i, o in enumerate(offsets)}
            reasons = dict(out.rejected)
            for offset, why in late.items():
                reasons[index_of[offset]] = "; ".join(why)
            out.rejected = sorted(reasons.items())
            out.late = len(late)
        return out

    def current_tables(self, tx: StoreTransaction) -> dict[str, list[Message]]:
        """Every table's current value of every key, as published (by table topic)."""
        return {t.topic: self.tables[t.name].current(self.con, tx) for t in self.plan.tables}

    def _source_of(self, topic: str) -> str:
        return next(name for name, r in self.readers.items() if r.source.topic == topic)

    def _count(self, sql: str) -> int:
        ((found,),) = self.con.execute(sql).fetchall()
        return int(found)

    def _stream_times(self, source: str, cut: int, stored: int | None) -> int | None:
        """Register each event's stream time (the highest event time up to it, the stored
        one included); the partition's stream time after the batch."""
        floor = "NULL" if stored is None else str(stored)
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE {_STREAM_TIME} AS SELECT _source_offset, "
            f"greatest(coalesce({floor}, _event_time), max(_event_time) OVER (ORDER BY "
            f"_source_offset ROWS UNBOUNDED PRECEDING)) AS stream_time FROM {quote(source)} "
            f"WHERE _source_offset >= {cut}")
        ((newest,),) = self.con.execute(f"SELECT max(stream_time) FROM {_STREAM_TIME}").fetchall()
        if newest is None:
            return stored
        return int(newest) if stored is None else max(int(newest), stored)

    def _stream_records(self, stream: StreamPlan, cut: int
                        ) -> tuple[list[bytes | None], list[bytes]]:
        """The stream's records past ``cut``: its writers' rows in source order (then statement
        order)."""
        columns = ", ".join(quote(c.name) for c in stream.columns)
        key = key_sql(((k, f"x.{quote(k)}") for k in stream.key_columns), stream.key_format)
        rows = self.con.sql(
            f"SELECT {key} AS k, encode(to_json(x)::VARCHAR) AS v FROM (SELECT {columns}, "
            f"_source_partition, _source_offset FROM {quote(stream.name)} "
            f"WHERE _source_offset >= {cut} ORDER BY _source_offset, rowid) AS x").to_arrow_table()
        return rows.column("k").to_pylist(), rows.column("v").to_pylist()

    def _kept_rows(self, index: int, table: TablePlan, cut: int,
                   late: dict[int, list[str]]) -> str:
        """The relation of the table's pre-aggregation rows to count: past ``cut``, and for a
        windowed table in a window still open (the others noted in ``late``)."""
        kept = f"_kept_{index}"
        rows = f"SELECT * FROM {_pre(index)} WHERE _source_offset >= {cut}"
        window = table.window
        if window is None:
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {kept} AS {rows}")
            return kept
        closes = f"p._window_start + {window.size_ms + window.grace_ms}"
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE {kept}_timed AS SELECT p.*, s.stream_time, "
            f"{closes} <= s.stream_time AS _late FROM ({rows}) AS p "
            f"JOIN {_STREAM_TIME} AS s USING (_source_offset)")
        for offset, start, end, now in self.con.execute(
                f"SELECT _source_offset, _window_start, _window_end, stream_time "
                f"FROM {kept}_timed WHERE _late ORDER BY _source_offset, _window_start"
        ).fetchall():
            late.setdefault(int(offset), []).append(
                f"late for {table.name}: its window {_time(start)} to {_time(end)} closed "
                f"(grace period {duration_text(window.grace_ms)}; stream time {_time(now)})")
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {kept} AS SELECT * EXCLUDE "
                         f"(stream_time, _late) FROM {kept}_timed WHERE NOT _late")
        return kept

    def _load_reference(self) -> None:
        version = self.reference.version()
        if version == self._reference_version:
            return
        blacklist = self.reference.blacklist()
        for value in blacklist.ip_prefixes:
            if (problem := ip_prefix_problem(value)) is not None:
                log.warning("blacklist: %s; it matches no event", problem)
        tables = reference_tables(self.reference.rates(), blacklist)
        for name, table in tables.items():
            self.con.register(name, table)
        self._reference_version = version


def _pre(index: int) -> str:
    return f"_pre_{index}"


def _time(ms: int) -> str:
    moment = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# -- what a program needs -------------------------------------------------------------------


def input_streams(plan: Plan) -> list[SourcePlan]:
    """The source streams some output reads (their topics are the processor's input)."""
    read = {o.reads for o in plan.outputs}
    return [s for s in plan.sources if s.kind == "STREAM" and s.name in read]


def check_reference_tables(plan: Plan) -> None:
    """Refuse a program joining a table over a topic that is not reference data, or
    publishing a stream fed from two input topics."""
    for stream in plan.streams:
        topics = _input_topics(plan, stream.name) if not stream.insert else set()
        if len(topics) > 1:
            raise ConfigError(
                f"{stream.source or 'the statements'}, line {stream.line}: stream "
                f"{stream.name} gets records of several input topics ({', '.join(sorted(topics))}"
                ", through INSERT INTO): `lakestream ingest` tells a replayed record by its "
                "source offset, which records of different topics share",
                "publish each input topic's records to a stream of its own")
    joined = {t for o in plan.outputs for t in o.tables}
    for source in plan.sources:
        if source.kind == "TABLE" and source.name in joined and source.name not in (
                REFERENCE_TABLES):
            raise ConfigError(
                f"the table {source.name} (topic {source.topic}) is joined, but `lakestream "
                f"process` provides only the reference tables {', '.join(REFERENCE_TABLES)}",
                "join one of those, or keep the statement for a ksqlDB server")


def _input_topics(plan: Plan, name: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """The input topics whose records reach the stream ``name`` (its writers' sources)."""
    relation = plan.relations[name]
    if isinstance(relation, SourcePlan):
        return {relation.topic}
    if name in seen:
        return set()
    writers = [relation, *(o for o in plan.streams if o.insert and o.name == name)]
    return set().union(*(_input_topics(plan, w.reads, seen | {name}) for w in writers))


def ordered_outputs(plan: Plan) -> list[StreamPlan | TablePlan]:
    """The outputs in an order where every writer of a stream runs before its readers
    (statement order otherwise); a loop of streams feeding each other is refused."""
    outputs = list(plan.outputs)
    writers: dict[str, list[int]] = {}
    for i, output in enumerate(outputs):
        writers.setdefault(output.name, []).append(i)
    needs = {i: {w for name in (o.reads, *o.tables) for w in writers.get(name, ()) if w != i}
             for i, o in enumerate(outputs)}
    for i, output in enumerate(outputs):
        if isinstance(output, StreamPlan) and output.insert:
            needs[i].add(writers[output.name][0])  # the CREATE makes the table it adds to
    done: list[int] = []
    while len(done) < len(outputs):
        ready = [i for i in range(len(outputs)) if i not in done and needs[i] <= set(done)]
        if not ready:
            loop = ", ".join(outputs[i].name for i in range(len(outputs)) if i not in done)
            raise ConfigError(f"the statements feed each other in a loop ({loop})",
                              "an INSERT INTO may not read a stream built from its target")
        done.append(ready[0])
    return [outputs[i] for i in done]


def plan_topics(plan: Plan) -> tuple[list[str], list[str]]:
    """``(derived stream topics, table topics)`` a program writes."""
    streams = [s.topic for s in plan.streams if not s.insert]
    return list(dict.fromkeys(streams)), [t.topic for t in plan.tables]
