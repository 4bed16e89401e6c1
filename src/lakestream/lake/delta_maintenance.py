"""Maintenance of Delta datasets: compaction (CLI and in-band), partition deletes, vacuum.

Every operation here is one or more Delta commits, so every reader sees the
snapshot before or the one after, never a mix (docs/lake.md):

- **Compaction** is delta-rs's ``optimize.compact``, one commit per day
  partition. It removes exactly the small files it read and adds the merged
  ones; a concurrent append only adds files, which optimize's conflict check
  lets through (it rebases onto the appends), and an append that loses the
  race for a log version re-checks its fence and commits on top
  (:meth:`DeltaDataset.append`): no row is dropped or landed twice, and the
  application transactions (the Kafka offsets) are carried over untouched.
  The plan (:func:`compaction_plan`) replays delta-rs's planner on the
  snapshot's add actions, so ``--dry-run`` names the files a real run rewrites.
- **Deleting partitions** (retention) is one ``DeltaTable.delete`` commit on
  the partition columns: files are removed whole, no deletion vector is
  written, the protocol stays reader 1 / writer 2. It is a compare-and-swap
  like an append: it commits only on top of the version whose files it
  checked (``max_commit_retries=0``), so a file that arrived in a planned
  partition since the plan is never removed unseen; such a partition is left
  for the next run.
- **Vacuum** deletes files no snapshot of the last ``grace_hours`` refers to.
  A reader that opened an older snapshot keeps its files for that long.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from lakestream.errors import StorageConflictError
from lakestream.lake.delta import COMMIT_ATTEMPTS, DeltaDataset, delta_errors

log = logging.getLogger(__name__)

DEFAULT_MIN_FILES = 32
DEFAULT_TARGET_BYTES = 128 * 1024 * 1024
DEFAULT_GRACE_HOURS = 24
OPTIMIZE_RETRIES = 100  # optimize rebases onto concurrent appends; appends never conflict

Partition = tuple[str, ...]
"""A partition's values in the table's partition-column order: ``("2026", "12", "04")``."""


@dataclass(frozen=True)
class DataFile:
    """One live file of the snapshot (``path`` relative to the table)."""

    path: str
    size: int
    records: int


@dataclass
class PartitionCompaction:
    """What compacting one partition did (or, in a dry run, would do)."""

    partition: Partition
    files_before: int
    rewritten: list[str]
    files_after: int
    bytes_before: int
    bytes_after: int
    records: int
    version: int | None = None
    """The commit's table version (``None``: dry run, or nothing committed)."""


@dataclass
class InBandResult:
    """What one in-band compaction pass did."""

    partitions: list[PartitionCompaction] = field(default_factory=list)
    skipped: list[Partition] = field(default_factory=list)
    """Partitions over the threshold left alone: being written, or lost a race."""

    @property
    def files_removed(self) -> int:
        """Small files merged away over the pass."""
        return sum(len(p.rewritten) for p in self.partitions)


# -- the snapshot ----------------------------------------------------------------------------


def partition_files(dataset: DeltaDataset) -> dict[Partition, list[DataFile]]:
    """The snapshot's live files per partition, in the log's own order."""
    table = dataset.table()
    if table is None:
        return {}
    columns = partition_columns(dataset)
    with delta_errors(f"read the log of {dataset.uri}", dataset.uri):
        actions = pa.table(table.get_add_actions(flatten=True))
    values = [actions.column(f"partition.{c}").to_pylist() for c in columns]
    found: dict[Partition, list[DataFile]] = {}
    for i, (path, size, records) in enumerate(zip(
            actions.column("path").to_pylist(), actions.column("size_bytes").to_pylist(),
            actions.column("num_records").to_pylist(), strict=True)):
        key = tuple(str(v[i]) for v in values)
        found.setdefault(key, []).append(DataFile(path, int(size), int(records or 0)))
    return found


def partition_columns(dataset: DeltaDataset) -> list[str]:
    """The table's partition columns, from its metadata."""
    table = dataset.table(refresh=False)
    if table is None:
        return list(dataset.partition_by)
    return list(table.metadata().partition_columns)


def _filters(columns: Sequence[str], partition: Partition) -> list[tuple[str, str, str]]:
    return [(c, "=", v) for c, v in zip(columns, partition, strict=True)]


def partition_predicate(columns: Sequence[str], partition: Partition) -> str:
    """SQL predicate of one partition: ``year = '2026' AND month = '12' AND day = '04'``."""
    return " AND ".join(f"{c} = '{_quote(v)}'" for c, v in zip(columns, partition, strict=True))


def _quote(value: str) -> str:
    return value.replace("'", "''")


# -- compaction ------------------------------------------------------------------------------


def compaction_plan(files: Sequence[DataFile], target_bytes: int) -> list[list[DataFile]]:
    """The groups of one partition's files that ``optimize.compact`` merges, each into one.

    delta-rs 1.6's planner, replayed: files in snapshot order; a file larger
    than the target is skipped and breaks the run; consecutive small files
    are packed while the group stays within the target; groups of one file
    are left as they are.
    """
    groups: list[list[DataFile]] = []
    current: list[DataFile] = []
    size = 0
    contiguous = False
    for f in files:
        if f.size > target_bytes:
            contiguous = False
            continue
        if current and contiguous and size + f.size <= target_bytes:
            current.append(f)
            size += f.size
        else:
            if current:
                groups.append(current)
            current, size = [f], f.size
        contiguous = True
    if current:
        groups.append(current)
    return [g for g in groups if len(g) > 1]


def compact_partition(dataset: DeltaDataset, partition: Partition, target_bytes: int,
                      dry_run: bool = False) -> PartitionCompaction | None:
    """Merge one partition's small files in one commit (``None``: nothing to merge)."""
    files = partition_files(dataset).get(partition, [])
    groups = compaction_plan(files, target_bytes)
    if not groups:
        return None
    rewritten = [f.path for g in groups for f in g]
    result = PartitionCompaction(partition, len(files), rewritten,
                                 len(files) - len(rewritten) + len(groups),
                                 sum(f.size for f in files), 0, sum(f.records for f in files))
    if dry_run:
        return result
    from deltalake import CommitProperties, WriterProperties

    table = dataset.table()
    columns = partition_columns(dataset)
    with delta_errors(f"compact {dataset.uri} {'/'.join(partition)}", dataset.uri):
        table.optimize.compact(
            partition_filters=_filters(columns, partition), target_size=target_bytes,
            writer_properties=WriterProperties(compression="SNAPPY"),
            commit_properties=CommitProperties(max_commit_retries=OPTIMIZE_RETRIES))
    after = partition_files(dataset)
    result.version = int(dataset.table(refresh=False).version())
    kept = {f.path for f in after.get(partition, [])}
    # files appended meanwhile are counted too: the report is the partition as it is now
    result.files_after = len(kept)
    result.bytes_after = sum(f.size for f in after.get(partition, []))
    log.info("compacted %s %s: %d files -> %d", dataset.rel, "/".join(partition),
             result.files_before, result.files_after)
    return result


def compact_small_files(dataset: DeltaDataset, min_files: int = DEFAULT_MIN_FILES,
                        target_bytes: int = DEFAULT_TARGET_BYTES,
                        skip: Iterable[Partition] = ()) -> InBandResult:
    """In-band compaction: merge every partition holding more than ``min_files`` small files.

    A file is small below ``target_bytes``. Partitions in ``skip`` (the ones
    the caller is writing right now, as values in partition-column order:
    ``("2026", "12", "04")``) are left alone, and so is a partition another
    compaction changed meanwhile (its commit conflicts; the next pass takes
    it). Each partition is its own commit; appends committed meanwhile, to
    any partition, are kept (see the module docstring).

    Give it a :class:`DeltaDataset` of its own (not the one a writer appends
    through from another thread): each instance holds one open table. A pass
    reads the snapshot's add actions once, so run it every so often (tens of
    seconds), not after every flush.
    """
    from deltalake.exceptions import CommitFailedError

    skipped = set(skip)
    result = InBandResult()
    if dataset.table() is None:
        return result
    for partition, files in sorted(partition_files(dataset).items()):
        small = sum(1 for f in files if f.size < target_bytes)
        if small <= min_files:
            continue
        if partition in skipped:
            result.skipped.append(partition)
            continue
        try:
            done = compact_partition(dataset, partition, target_bytes)
        except CommitFailedError as exc:  # another compaction or a delete took these files
            log.info("in-band compaction of %s %s gave way: %s", dataset.rel,
                     "/".join(partition), str(exc).splitlines()[0])
            result.skipped.append(partition)
            continue
        if done is not None:
            result.partitions.append(done)
    return result


# -- deleting partitions ---------------------------------------------------------------------


@dataclass
class PartitionDelete:
    """What one delete commit removed from the snapshot."""

    partitions: list[Partition]
    files: list[str]
    bytes: int
    records: int
    version: int | None
    changed: list[Partition] = field(default_factory=list)
    """Planned partitions left alone: their files changed since the plan."""


def delete_partitions(dataset: DeltaDataset, planned: Mapping[Partition, Iterable[str]]
                      ) -> PartitionDelete:
    """Remove the planned partitions from the snapshot in ONE commit (files stay for vacuum).

    ``planned`` maps each partition to the files the plan saw in it. A
    partition whose live files are no longer exactly those (a late event
    landed, a compaction rewrote it) is left for the next run, so the commit
    removes exactly files the plan listed.
    """
    from deltalake import CommitProperties
    from deltalake.exceptions import CommitFailedError

    expected = {p: set(files) for p, files in planned.items()}
    for attempt in range(COMMIT_ATTEMPTS):
        table = dataset.table()
        live = partition_files(dataset) if table is not None else {}
        chosen = [p for p in sorted(expected) if {f.path for f in live.get(p, [])} == expected[p]
                  and expected[p]]
        changed = [p for p in sorted(expected) if p not in chosen and expected[p]]
        gone = [f for p in chosen for f in live[p]]
        result = PartitionDelete(chosen, [f.path for f in gone], sum(f.size for f in gone),
                                 sum(f.records for f in gone), None, changed)
        if not chosen:
            return result
        columns = partition_columns(dataset)
        predicate = " OR ".join(f"({partition_predicate(columns, p)})" for p in chosen)
        try:
            with delta_errors(f"delete partitions of {dataset.uri}", dataset.uri):
                table.delete(predicate, commit_properties=CommitProperties(
                    max_commit_retries=0,
                    custom_metadata={"lakestream.operation": "retention"}))
        except CommitFailedError as exc:  # a commit came in between: check the files again
            log.debug("%s: delete raced (%s), attempt %d", dataset.uri, exc, attempt + 1)
            time.sleep(min(0.01 * 2 ** attempt, 0.5))
            continue
        result.version = int(dataset.table().version())
        for p in changed:
            log.warning("retention: %s %s changed since the plan; left for the next run",
                        dataset.rel, "/".join(p))
        return result
    raise StorageConflictError(f"{dataset.uri}: {COMMIT_ATTEMPTS} deletes in a row lost the "
                               "race for the next log version",
                               "retry; is something rewriting the table?", dataset=dataset.uri)


# -- vacuum ----------------------------------------------------------------------------------


def vacuum_candidates(dataset: DeltaDataset, grace_hours: int) -> list[str]:
    """Files (relative to the table) that no snapshot of the last ``grace_hours`` refers to."""
    table = dataset.table()
    if table is None:
        return []
    with delta_errors(f"list what vacuum would delete in {dataset.uri}", dataset.uri):
        found = table.vacuum(retention_hours=grace_hours, dry_run=True,
                             enforce_retention_duration=False)
    return sorted(_relative(dataset, f) for f in found)


def vacuum_files(dataset: DeltaDataset, planned: Iterable[str], grace_hours: int) -> list[str]:
    """Delete the ``planned`` files (a dry run's list) that are still unreferenced; returns them.

    A file goes only if it is in ``planned`` AND vacuum, asked now with the
    same grace period, would delete it: a real run deletes nothing its dry
    run did not list, and never a file a snapshot of the grace period needs.
    """
    allowed = set(vacuum_candidates(dataset, grace_hours))
    chosen = sorted(set(planned) & allowed)
    for rel in chosen:
        dataset.storage.delete(f"{dataset.rel}/{rel}")
    return chosen


def _relative(dataset: DeltaDataset, path: str) -> str:
    """A path vacuum returned, relative to the table (it may give absolute URIs)."""
    for prefix in (dataset.uri.rstrip("/") + "/", dataset.storage.full(dataset.rel) + "/",
                   "file://" + dataset.storage.full(dataset.rel) + "/"):
        if path.startswith(prefix):
            return path[len(prefix):]
    return path


def protocol_of(dataset: DeltaDataset) -> tuple[int, int, Any, Any]:
    """``(reader, writer, reader features, writer features)`` of the table's protocol."""
    p = dataset.table().protocol()
    return (p.min_reader_version, p.min_writer_version, p.reader_features, p.writer_features)


# -- widening a column -------------------------------------------------------------------------


def widen_columns(dataset: DeltaDataset, batch: pa.Schema) -> int | None:
    """Rewrite the table with ``int64`` columns widened to ``double`` where ``batch`` has them
    as ``double`` (the type contract's one widening); the commit's version, or ``None``.

    A Delta column's type cannot change in place without a table feature not every
    reader supports, and appending ``2.5`` to an ``int64`` column would cast it to
    ``2``. So the first fraction in an integer column rewrites the table once, in one
    commit (every reader sees the old snapshot or the widened one; the application
    transactions, i.e. the Kafka offsets, are table state and stay), then the batch is
    appended as usual. The rewrite is a compare-and-swap like every commit: a commit
    that lands meanwhile makes it read the table again.
    """
    from deltalake import CommitProperties, write_deltalake
    from deltalake.exceptions import CommitFailedError

    from lakestream.lake.snapshot import snapshot_dataset

    for attempt in range(COMMIT_ATTEMPTS):
        table = dataset.table()
        if table is None:
            return None
        current = pa.schema(table.schema().to_arrow())
        target = pa.schema([_widened(f, batch) for f in current])
        if target.equals(current):
            return None
        data = snapshot_dataset(dataset.storage, table).to_table().cast(target)
        props = CommitProperties(max_commit_retries=0)
        try:
            with delta_errors(f"widen columns of {dataset.uri}", dataset.uri):
                write_deltalake(table, data, mode="overwrite", schema_mode="overwrite",
                                partition_by=dataset.partition_by or None,
                                storage_options=dataset.options, commit_properties=props)
        except CommitFailedError:
            log.debug("%s: widening raced, attempt %d", dataset.uri, attempt + 1)
            continue
        log.info("%s: int64 columns widened to double (%s)", dataset.uri,
                 ", ".join(f.name for f in target if f not in current))
        return int(dataset.table().version())
    raise StorageConflictError(f"{dataset.uri}: widening lost the race {COMMIT_ATTEMPTS} times",
                               "retry", dataset=dataset.uri)


def _widened(field: pa.Field, batch: pa.Schema) -> pa.Field:
    if field.name not in batch.names:
        return field
    return field.with_type(_widen_type(field.type, batch.field(field.name).type))


def _widen_type(old: pa.DataType, new: pa.DataType) -> pa.DataType:
    if old == pa.int64() and new == pa.float64():
        return new
    if pa.types.is_struct(old) and pa.types.is_struct(new):
        inner = pa.schema([new.field(i) for i in range(new.num_fields)])
        return pa.struct([_widened(old.field(i), inner) for i in range(old.num_fields)])
    if pa.types.is_list(old) and pa.types.is_list(new):
        return pa.list_(old.value_field.with_type(_widen_type(old.value_type, new.value_type)))
    return old
