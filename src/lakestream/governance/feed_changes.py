"""A feed change checked against the data the lake already holds of the feed.

The registry (:mod:`lakestream.feeds`) validates a definition on its own: keys,
names, type names, a table's key. This module asks the other question: does
the data already landed for the feed contradict the change?

- ``kind`` or ``layer``: the dataset would become another one (a stream's day
  partitions cannot go on as a table's versions, and another layer is another
  folder). Refused while the dataset holds data: declare a new feed instead.
- ``topic``, ``time_field`` and declared column types: refused while data
  contradicts them, unless the user asks to keep the existing data as it is
  (``keep_existing_data``, the CLI's ``--keep-existing-data``). The change then
  applies to data landed from now on, and the outcome says, per contradiction,
  what that means for the data already there (which days a rebuild would fix).

A declared type that the existing data already fits is no contradiction: the
same type, a null column, or a lossless widening (``int32`` → ``int64``, an
integer → ``double``, a coarser timestamp → a finer one, a struct or list whose
items fit).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lakestream.decode.schemas import arrow_schema
from lakestream.errors import FeedError
from lakestream.feeds import Feed, FeedRegistry
from lakestream.lake.layout import LEDGER, parse_date_partition
from lakestream.lake.metadata import read_metadata
from lakestream.lake.storage import FileInfo, Storage

_TIME_UNITS = ("s", "ms", "us", "ns")


@dataclass(frozen=True)
class Contradiction:
    """One way the data a feed already has in the lake contradicts a change.

    Attributes:
        key: The feed key that changes (``kind``, ``topic``, ``schema.total`` ...).
        reason: What in the data contradicts it (one clause).
        keepable: Whether the change may still be applied, leaving the data as it is.
        consequence: What then happens to the existing data (or, when not
            keepable, what to do instead).
    """

    key: str
    reason: str
    keepable: bool
    consequence: str


@dataclass(frozen=True)
class FeedUpdate:
    """A feed change that was written, and the contradictions accepted with it."""

    feed: Feed
    kept: tuple[Contradiction, ...]


def update_feed(storage: Storage, registry: FeedRegistry, name: str, changes: dict[str, Any],
                keep_existing_data: bool = False) -> FeedUpdate:
    """Change keys of a feed unless the data the lake holds of it contradicts the change.

    Raises:
        FeedError: The definition is invalid, or the change contradicts the data
            (always for ``kind``/``layer``; for the rest unless ``keep_existing_data``).
    """
    current = registry.get(name)
    proposed = registry.proposed(name, changes)
    found = contradictions(storage, current, proposed)
    refused = [c for c in found if not (keep_existing_data and c.keepable)]
    if refused:
        raise _refusal(name, refused)
    return FeedUpdate(registry.update(name, changes), tuple(found))


def contradictions(storage: Storage, current: Feed, proposed: Feed) -> list[Contradiction]:
    """How the data of ``current`` in the lake contradicts turning it into ``proposed``."""
    files = [f for f in storage.list_files(current.dataset)
             if f.path.endswith(".parquet") and f"/{LEDGER}/" not in f.path]
    if not files:
        return []
    held = _Held.of(storage, current, files)
    if proposed.kind != held.kind or proposed.dataset != current.dataset:
        return [_moved(held, current, proposed)]  # nothing else matters: it is another dataset
    found = []
    if proposed.topic != held.topic:
        found.append(_new_topic(held, proposed))
    if held.kind == "stream" and proposed.partition_field != held.partition_field:
        found.append(_new_time_field(held, proposed))
    return found + _new_types(storage, held, current, proposed)


@dataclass(frozen=True)
class _Held:
    """What the lake holds of a feed: its files and what its ``_metadata.json`` says."""

    feed: Feed
    files: list[FileInfo]
    kind: str
    topic: str
    partition_field: str
    records: int | None
    columns: frozenset[str]

    @classmethod
    def of(cls, storage: Storage, feed: Feed, files: list[FileInfo]) -> _Held:
        meta = read_metadata(storage, feed.dataset) or {}
        source = meta["source"] if isinstance(meta.get("source"), dict) else {}
        records = meta.get("records")
        return cls(feed, files, str(meta.get("kind") or feed.kind),
                   str(source.get("topic") or feed.topic),
                   str(meta.get("partition_field") or feed.partition_field),
                   records if isinstance(records, int) else None,
                   frozenset(str(c.get("name")) for c in meta.get("schema", [])
                             if isinstance(c, dict)))

    @property
    def what(self) -> str:
        """``streams/x holds 1,200 records in 8 files``."""
        count = f"{self.records:,} records in " if self.records is not None else ""
        return f"{self.feed.dataset} holds {count}{len(self.files)} file(s)"

    def rebuild_hint(self, files: list[FileInfo]) -> str:
        """The command that rebuilds the days of ``files`` under the new definition."""
        days = sorted({d.isoformat() for f in files if (d := parse_date_partition(f.path))})
        if not days:
            return "until they are rebuilt"
        more = f" (and {len(days) - 1} more day(s))" if len(days) > 1 else ""
        return (f"until their days are rebuilt: lakestream export --stream {self.feed.name} "
                f"--date {days[0]}{more}")


def _moved(held: _Held, current: Feed, proposed: Feed) -> Contradiction:
    key = "kind" if proposed.kind != held.kind else "layer"
    old, new = (held.kind, proposed.kind) if key == "kind" else (current.layer, proposed.layer)
    return Contradiction(
        key, f"{key} '{old}' -> '{new}' contradicts the data: {held.what} written as a "
        f"{held.kind}, which a {proposed.kind} in {proposed.dataset} cannot continue",
        keepable=False,
        consequence=f"a {proposed.kind} is a new dataset: declare it as a new feed "
        f"(lakestream feeds add NAME --topic {proposed.topic} --set kind={proposed.kind} ...)")


def _new_topic(held: _Held, proposed: Feed) -> Contradiction:
    return Contradiction(
        "topic", f"topic '{held.topic}' -> '{proposed.topic}' contradicts the data: {held.what} "
        f"from '{held.topic}'", keepable=True,
        consequence=f"the data from '{held.topic}' stays; records of '{proposed.topic}' land "
        f"beside it, and a day rebuild (export --date) reads '{proposed.topic}' only")


def _new_time_field(held: _Held, proposed: Feed) -> Contradiction:
    new = proposed.partition_field
    missing = f", and '{new}' is not one of its columns" \
        if held.columns and new not in held.columns else ""
    return Contradiction(
        "time_field", f"time_field '{held.partition_field}' -> '{new}' contradicts the data: "
        f"{held.what} partitioned by the day of '{held.partition_field}'{missing}",
        keepable=True,
        consequence=f"existing days stay partitioned by '{held.partition_field}' "
        f"{held.rebuild_hint(held.files)}; new records go by '{new}'")


def _new_types(storage: Storage, held: _Held, current: Feed,
               proposed: Feed) -> list[Contradiction]:
    before = arrow_schema(current.schema_spec, current.time_field)
    after = arrow_schema(proposed.schema_spec, proposed.time_field)
    changed = [f for f in after
               if before.get_field_index(f.name) < 0 or before.field(f.name).type != f.type]
    if not changed:
        return []
    schemas = _file_schemas(storage, held.files)
    found = []
    for declared in changed:
        misfits = [(info, schema.field(declared.name).type) for info, schema in schemas
                   if schema.get_field_index(declared.name) >= 0
                   and not fits(schema.field(declared.name).type, declared.type)]
        if not misfits:
            continue
        types = ", ".join(sorted({_label(t) for _, t in misfits}))
        table = held.kind == "table"
        found.append(Contradiction(
            f"schema.{declared.name}",
            f"declaring {declared.name}: {_label(declared.type)} contradicts the data: column "
            f"'{declared.name}' is {types} in {len(misfits)} of {len(held.files)} file(s) of "
            f"{held.feed.dataset}", keepable=not table,
            consequence="a table's next version is built from its current one: declare the "
            "new type in a new feed" if table else
            f"those files keep {types} {held.rebuild_hint([i for i, _ in misfits])}"))
    return found


def _file_schemas(storage: Storage, files: list[FileInfo]) -> list[tuple[FileInfo, pa.Schema]]:
    """The Parquet schema of every file (footers only, read in parallel)."""
    def schema(info: FileInfo) -> tuple[FileInfo, pa.Schema]:
        with storage.fs.open_input_file(storage.full(info.path)) as handle:
            return info, pq.read_schema(handle)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(schema, files))


def fits(found: pa.DataType, declared: pa.DataType) -> bool:
    """Whether data stored as ``found`` reads as ``declared`` without losing anything."""
    if found == declared or pa.types.is_null(found):
        return True
    if pa.types.is_integer(found):
        return pa.types.is_floating(declared) or (
            pa.types.is_integer(declared) and declared.bit_width >= found.bit_width)
    if pa.types.is_floating(found) and pa.types.is_floating(declared):
        return bool(declared.bit_width >= found.bit_width)
    if pa.types.is_timestamp(found) and pa.types.is_timestamp(declared):
        return _TIME_UNITS.index(declared.unit) >= _TIME_UNITS.index(found.unit)
    if pa.types.is_struct(found) and pa.types.is_struct(declared):
        inner = {found.field(i).name: found.field(i).type for i in range(found.num_fields)}
        return all(fits(inner[child.name], child.type)
                   for child in (declared.field(i) for i in range(declared.num_fields))
                   if child.name in inner)
    if pa.types.is_list(found) and pa.types.is_list(declared):
        return fits(found.value_type, declared.value_type)
    return False


def _label(kind: pa.DataType) -> str:
    if pa.types.is_struct(kind):
        return "object"
    if pa.types.is_list(kind):
        return "array"
    return str(kind)


def _refusal(name: str, refused: list[Contradiction]) -> FeedError:
    reasons = "; ".join(c.reason for c in refused)
    blocking = [c for c in refused if not c.keepable]
    hint = blocking[0].consequence if blocking else (
        "to apply it to new data only and leave the existing data as it is, repeat with "
        "--keep-existing-data")
    return FeedError(f"feeds update {name}: {reasons}", hint)
