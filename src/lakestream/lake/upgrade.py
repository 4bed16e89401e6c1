"""``lakestream lake upgrade``: turn a lake written before Delta into Delta tables, in place.

Each dataset becomes a Delta table that references its live Parquet files
where they are (no data is copied): one ``CREATE TABLE`` commit holds the
schema, an add action per file (with its ``numRecords`` and min/max/null
statistics from the Parquet footer) and the Kafka offsets as application
transactions, so a Delta reader, and the Delta sink resuming each partition at
its transaction version + 1, continue exactly where the legacy lake was.
Which files are live, and the offsets, come from the legacy bookkeeping
(:mod:`lakestream.lake.upgrade_plan`).

**Types.** The table's schema is the union of the files' (a column a later
batch added is null in earlier files, as Delta's schema evolution has it). A
column stored with different types in different files (``int64`` here,
``double`` there, from before the type contract) takes the type both convert
to, and the files that hold the other type are rewritten in place (same name,
same rows, the column cast); types with no common one (``string`` and
``int64``) stop the upgrade of that dataset with the files named. Timestamps
without a time zone become UTC ones the same way (a zone-less timestamp would
need a table feature older readers lack).

**Crash safety.** Every step can be re-run: (1) committed files a crashed
writer left in ``_staging/`` are moved to their place, as the legacy recovery
did; (2) conflicting files are rewritten atomically; (3) the one commit makes
the dataset a Delta table (before it, the legacy lake is intact; a
``_delta_log/`` with no commit in it is the debris of a crash and is removed);
(4) then files no legacy manifest kept live, the staging leftovers,
``_day.json``, ``_retention.json`` and ``_metadata.json`` are cleaned up and
rewritten, and the ledger goes last. A dataset that is Delta but still has
legacy bookkeeping is finished; one that is Delta and clean is skipped.
Dead-letter datasets go first: their offsets are in their feed's ledger.
Run it with ingest, process and export stopped.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from lakestream.errors import LakeDataError
from lakestream.lake.delta import DELTA_LOG, delta_errors, storage_options
from lakestream.lake.delta_metadata import delta_metadata
from lakestream.lake.layout import LEDGER, METADATA
from lakestream.lake.storage import Storage
from lakestream.lake.table_versions import write_delta_metadata
from lakestream.lake.upgrade_plan import (
    DatasetPlan,
    LiveFile,
    datasets,
    file_info,
    plan_dataset,
)

if TYPE_CHECKING:
    from lakestream.feeds import Feed

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
PARQUET_OPTIONS = {"compression": "snappy", "use_dictionary": True, "write_statistics": True}


@dataclass
class FileFacts:
    """What the footer of one live file says."""

    file: LiveFile
    schema: pa.Schema
    rows: int
    stats: dict[str, Any]


@dataclass
class DatasetUpgrade:
    """One dataset's upgrade: the plan, and what it found in the files."""

    plan: DatasetPlan
    facts: list[FileFacts] = field(default_factory=list)
    schema: pa.Schema | None = None
    rewrite: dict[str, str] = field(default_factory=dict)  # path -> why
    done: bool = False

    @property
    def rows(self) -> int:
        """Rows of the live files."""
        return sum(f.rows for f in self.facts)

    @property
    def bytes(self) -> int:
        """Bytes of the live files."""
        return sum(f.file.size for f in self.facts)


def upgrade_lake(storage: Storage, feeds: Iterable[Feed], dry_run: bool = False,
                 progress: Progress | None = None,
                 pending: Iterable[tuple[str, str]] = ()) -> list[DatasetUpgrade]:
    """Upgrade every legacy dataset of the lake (``dry_run``: only say what would happen).

    ``pending``: ``(staging, final)`` of dead letters the processor committed in its
    state but had not moved into the lake yet (they are moved, as its recovery did).
    """
    pending = list(pending)
    say = progress or (lambda _m: None)
    by_name = {f.name: f for f in feeds}
    topics = {name: f.topic for name, f in by_name.items()}
    found = []
    found_rels = datasets(storage)
    waiting = ["/".join(final.split("/")[:2]) for _, final in pending]
    for rel in dict.fromkeys([*(w for w in waiting if w not in found_rels), *found_rels]):
        plan = plan_dataset(storage, rel, topics, pending)
        if plan is None:
            continue
        upgrade = DatasetUpgrade(plan)
        if not plan.finish:
            say(f"{rel}: reading {len(plan.files)} file footer(s)")
            inspect(storage, upgrade)
        found.append(upgrade)
        if dry_run:
            continue
        say(f"{rel}: {'finishing' if plan.finish else 'committing'}")
        apply(storage, upgrade, by_name.get(plan.feed or ""), say)
        say(f"{rel}: done")
    return found


# -- reading the files -----------------------------------------------------------------------


def inspect(storage: Storage, upgrade: DatasetUpgrade) -> None:
    """Read every live file's footer; work out the table schema and the files to rewrite."""
    upgrade.facts = [_facts(storage, f) for f in upgrade.plan.files]
    upgrade.schema, upgrade.rewrite = table_schema(upgrade.plan, upgrade.facts)


def _facts(storage: Storage, file: LiveFile) -> FileFacts:
    with storage.fs.open_input_file(storage.full(file.source)) as handle:
        meta = pq.read_metadata(handle)
    schema = meta.schema.to_arrow_schema()
    return FileFacts(file, schema, meta.num_rows, file_stats(meta, schema))


def table_schema(plan: DatasetPlan, facts: list[FileFacts]) -> tuple[pa.Schema, dict[str, str]]:
    """The union of the files' schemas plus the partition columns, and the files whose
    types differ from it (they are rewritten)."""
    types: dict[str, pa.DataType] = {}
    for fact in facts:
        for column in fact.schema:
            if column.name in plan.partition_by:
                raise LakeDataError(
                    f"{fact.file.path} holds a column '{column.name}', which is also a "
                    "partition folder of the dataset", "rename the column or move the file")
            wanted = _zoned(column.type)
            types[column.name] = wanted if column.name not in types \
                else _common(plan, column.name, types[column.name], wanted, fact)
    rewrite = {}
    for fact in facts:
        odd = [f"{c.name}: {c.type} -> {types[c.name]}" for c in fact.schema
               if c.type != types[c.name]]
        if odd:
            rewrite[fact.file.path] = "; ".join(odd)
    fields = [pa.field(n, t) for n, t in types.items()]
    if not fields:  # no file: the columns the writers add come with the first commit
        fields = [pa.field("_kafka_partition", pa.int32()), pa.field("_kafka_offset", pa.int64())]
    return pa.schema([*fields, *(pa.field(p, pa.string()) for p in plan.partition_by)]), rewrite


def _zoned(kind: pa.DataType) -> pa.DataType:
    if pa.types.is_timestamp(kind) and kind.tz is None:
        return pa.timestamp(kind.unit, tz="UTC")
    return kind


def _common(plan: DatasetPlan, name: str, a: pa.DataType, b: pa.DataType,
            fact: FileFacts) -> pa.DataType:
    if a == b:
        return a
    try:
        merged = pa.unify_schemas([pa.schema([(name, a)]), pa.schema([(name, b)])],
                                  promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        raise LakeDataError(
            f"{plan.rel}: column '{name}' is {a} in some files and {b} in {fact.file.path}; "
            "no type holds both", "rewrite the odd files with the column cast (or the rows "
            "dropped) and run `lakestream lake upgrade` again") from None
    return merged.field(name).type


def file_stats(meta: pq.FileMetaData, schema: pa.Schema) -> dict[str, Any]:
    """Delta statistics of a file from its footer: ``numRecords``, and min/max/null counts
    of its top-level primitive columns where every row group has them."""
    lows: dict[str, Any] = {}
    highs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    if meta.num_row_groups:
        for index in range(meta.num_columns):
            name = meta.schema.column(index).path
            if "." in name or name not in schema.names:
                continue
            _column_stats(meta, index, name, lows, highs, nulls)
    stats: dict[str, Any] = {"numRecords": meta.num_rows}
    if lows:
        stats["minValues"], stats["maxValues"] = lows, highs
    if nulls:
        stats["nullCount"] = nulls
    return stats


def _column_stats(meta: pq.FileMetaData, index: int, name: str, lows: dict[str, Any],
                  highs: dict[str, Any], nulls: dict[str, int]) -> None:
    chunks = [meta.row_group(g).column(index).statistics for g in range(meta.num_row_groups)]
    if any(c is None for c in chunks):
        return
    if all(c.has_null_count for c in chunks):
        nulls[name] = sum(int(c.null_count) for c in chunks)
    if not all(c.has_min_max for c in chunks):
        return
    low = [_json_value(c.min) for c in chunks]
    high = [_json_value(c.max) for c in chunks]
    if any(v is None for v in (*low, *high)):
        return
    lows[name], highs[name] = min(low), max(high)


def _json_value(value: Any) -> Any:
    """A statistics value as the Delta log writes it (``None``: not kept)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | str):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    return None


# -- changing the lake ------------------------------------------------------------------------


def apply(storage: Storage, upgrade: DatasetUpgrade, feed: Feed | None,
          say: Progress = lambda _m: None) -> None:
    """Settle, rewrite, commit and clean up one dataset (each step safe to repeat)."""
    plan = upgrade.plan
    if not plan.finish:
        for fact in upgrade.facts:
            if fact.file.staged is not None and storage.exists(fact.file.staged):
                storage.move(fact.file.staged, fact.file.path)
        for path, why in upgrade.rewrite.items():
            log.info("upgrade: rewriting %s (%s)", path, why)
            _rewrite(storage, upgrade, path)
        _commit(storage, upgrade)
        say(f"{plan.rel}: committed; cleaning up")
    _clean_up(storage, plan)
    _write_metadata(storage, plan, feed)
    for path in plan.bookkeeping:  # the ledger last: while it is there, the upgrade is unfinished
        if path.endswith(f"/{LEDGER}"):
            storage.delete_dir(path)
    upgrade.done = True


def _rewrite(storage: Storage, upgrade: DatasetUpgrade, path: str) -> None:
    assert upgrade.schema is not None
    with storage.fs.open_input_file(storage.full(path)) as handle:
        data = pq.read_table(handle)
    target = pa.schema([upgrade.schema.field(c.name) for c in data.schema])
    try:
        data = data.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise LakeDataError(f"{path}: cannot convert to the dataset's types: {exc}",
                            "fix or remove the file, then run the upgrade again") from None
    sink = pa.BufferOutputStream()
    pq.write_table(data, sink, **PARQUET_OPTIONS)
    storage.write_atomic(path, memoryview(sink.getvalue()))
    index = next(i for i, f in enumerate(upgrade.facts) if f.file.path == path)
    info = file_info(storage, path)
    assert info is not None
    upgrade.facts[index] = _facts(storage, LiveFile(path, info.size, info.mtime,
                                                    upgrade.facts[index].file.partition))


def _commit(storage: Storage, upgrade: DatasetUpgrade) -> None:
    from deltalake import CommitProperties, Schema, Transaction
    from deltalake.transaction import AddAction, create_table_with_add_actions

    plan = upgrade.plan
    assert upgrade.schema is not None
    storage.delete_dir(f"{plan.rel}/{DELTA_LOG}")  # only the debris of a crashed commit
    rel_start = len(plan.rel) + 1
    adds = [AddAction(f.file.path[rel_start:], f.file.size, f.file.partition,
                      int(f.file.mtime * 1000), True, json.dumps(f.stats))
            for f in upgrade.facts]
    txns = [Transaction(a, v) for a, v in sorted(plan.offsets.items())]
    with delta_errors(f"create the Delta table {storage.url(plan.rel)}"):
        try:
            schema = Schema.from_arrow(upgrade.schema)
        except Exception as exc:  # delta-rs refuses the type (its errors have no common base)
            raise LakeDataError(f"{plan.rel}: a column type has no Delta equivalent: {exc}",
                                "rewrite the files without it") from None
        create_table_with_add_actions(
            storage.url(plan.rel), schema, adds, mode="error",
            partition_by=plan.partition_by or None, storage_options=storage_options(storage),
            commit_properties=CommitProperties(
                app_transactions=txns or None,
                custom_metadata={"lakestream.operation": "lake upgrade", **plan.commit_info}))


def _clean_up(storage: Storage, plan: DatasetPlan) -> None:
    for path in plan.drop:
        storage.delete(path)
    for path in plan.bookkeeping:
        if path.endswith(f"/{LEDGER}"):
            continue
        if file_info(storage, path) is not None:
            storage.delete(path)
        else:
            storage.delete_dir(path)


def _write_metadata(storage: Storage, plan: DatasetPlan, feed: Feed | None) -> None:
    if plan.kind == "dlq":
        return  # summarized in its feed's _metadata.json
    if plan.kind == "stream" and feed is not None and feed.dataset == plan.rel:
        delta_metadata(storage, feed)
        return
    if plan.kind == "table" and feed is not None and feed.dataset == plan.rel:
        write_delta_metadata(storage, feed.name, plan.rel, feed.topic, feed.layer, feed.key)
        return
    summary = table_summary(storage, plan)
    if summary is not None:
        storage.write_atomic(f"{plan.rel}/{METADATA}", json.dumps(summary, indent=2).encode())


def table_summary(storage: Storage, plan: DatasetPlan) -> dict[str, Any] | None:
    """``_metadata.json`` of a dataset with no stream feed (tables, silver), from its log."""
    from lakestream.decode.schemas import schema_as_json
    from lakestream.lake.delta import DeltaDataset
    from lakestream.lake.delta_metadata import snapshot_files

    data = DeltaDataset(storage, plan.rel)
    table = data.table()
    if table is None:
        return None
    files = snapshot_files(data)
    parts = table.metadata().partition_columns
    schema = pa.schema([f for f in pa.schema(table.schema().to_arrow()) if f.name not in parts])
    offsets = {key.removeprefix("lakestream/"): version
               for key, version in data.transaction_versions(
                   _app_ids(plan)).items() if version is not None}
    meta: dict[str, Any] = {
        "dataset": plan.feed, "kind": "table" if plan.kind == "table" else "dataset",
        "layer": plan.rel.split("/", 1)[0], "path": storage.url(plan.rel), "format": "delta",
        "compression": "snappy", "partitioning": list(parts),
        "updated_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "records": sum(files.column("num_records").to_pylist()) if files.num_rows else 0,
        "bytes": sum(files.column("size_bytes").to_pylist()) if files.num_rows else 0,
        "files": files.num_rows, "schema": schema_as_json(schema),
        "kafka_offsets": {k: {"last": v} for k, v in offsets.items()},
        "delta": {"version": table.version()},
    }
    if plan.topic is not None:
        meta["source"] = {"type": "kafka", "topic": plan.topic}
    if plan.kind == "table" and files.num_rows:
        rows: dict[str, int] = {}
        for version, n in zip(files.column("partition.version").to_pylist(),
                              files.column("num_records").to_pylist(), strict=True):
            rows[version] = rows.get(version, 0) + int(n or 0)
        ordered = sorted(rows, key=lambda v: int(v[1:]) if v[1:].isdigit() else -1)
        meta["current_version"] = ordered[-1]
        meta["records"] = rows[ordered[-1]]
        meta["versions"] = [{"version": v, "rows": rows[v]} for v in ordered]
    return meta


def _app_ids(plan: DatasetPlan) -> list[str]:
    return list(plan.offsets)


# -- saying what it does ----------------------------------------------------------------------


def describe(upgrade: DatasetUpgrade, dry_run: bool) -> list[str]:
    """Lines saying what the upgrade of one dataset does (or would do): every file,
    offset and clean-up, so a dry run lists exactly what the real run changes."""
    plan, verb = upgrade.plan, ("would " if dry_run else "")
    if plan.finish:
        lines = [f"{plan.rel}: Delta already; {verb}finish the clean-up"]
    else:
        parts = "/".join(plan.partition_by) or "none"
        lines = [f"{plan.rel}: {plan.kind} -> Delta table, {len(upgrade.facts)} file(s), "
                 f"{upgrade.rows:,} row(s), {upgrade.bytes:,} bytes, partitions {parts}"]
        lines += [f"  offset {app} = {version}" for app, version in sorted(plan.offsets.items())]
        for fact in upgrade.facts:
            moved = f" (moved from {fact.file.staged})" if fact.file.staged else ""
            lines.append(f"  file {fact.file.path} ({fact.rows:,} rows){moved}")
        lines += [f"  {verb}rewrite {p}: {why}" for p, why in upgrade.rewrite.items()]
    lines += [f"  {verb}delete {p} (not live)" for p in plan.drop]
    lines += [f"  {verb}remove {p}" for p in plan.bookkeeping]
    if plan.kind != "dlq":
        lines.append(f"  {verb}rewrite {plan.rel}/{METADATA} from the log")
    return lines


def as_json(upgrade: DatasetUpgrade) -> dict[str, Any]:
    """One dataset's upgrade as JSON (``lake upgrade --format json``)."""
    plan = upgrade.plan
    return {"dataset": plan.rel, "kind": plan.kind, "finish": plan.finish, "done": upgrade.done,
            "partition_by": plan.partition_by, "offsets": dict(sorted(plan.offsets.items())),
            "rows": upgrade.rows, "bytes": upgrade.bytes,
            "files": [{"path": f.file.path, "rows": f.rows, "bytes": f.file.size,
                       "moved_from": f.file.staged} for f in upgrade.facts],
            "rewrite": upgrade.rewrite, "delete": plan.drop, "remove": plan.bookkeeping}
