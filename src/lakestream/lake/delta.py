"""Delta Lake tables: the lake's one commit path, with Kafka offsets in the log (issue #16).

Every dataset is a Delta table (``deltalake``, delta-rs): the data files stay
hive-partitioned Parquet, and ``_delta_log/`` beside them decides which files
are live, so every Delta reader (Spark, Trino, DuckDB's delta extension,
polars) sees whole commits only.

**Offsets in the log.** A commit that lands Kafka records carries one
application transaction per (topic, partition) it covers: app id
``lakestream/<topic>/<partition>``, version = the last offset landed. The
consumer resumes each partition at that version + 1: the table, not Kafka, is
the truth, so any consumer group landing into the same table goes on from
where the table is.

**Fencing (why no duplicate and no gap is ever visible).** delta-rs accepts
two commits carrying the same app id (delta-rs #2580), so it cannot stop a
writer that lost its partition — killed, or frozen past its session timeout
and woken with a stale batch — from landing that batch again after the new
owner did. Lakestream makes each commit a compare-and-swap on the whole log:

1. A writer remembers, per partition, the transaction version it expects the
   table to hold: the one it read when it was given the partition, then the
   one of its own last commit.
2. To commit, it reads the latest table version ``V`` and checks that every
   partition of the batch still holds the expected transaction version. If
   one does not, another writer landed that partition since: the batch is
   dropped (:class:`~lakestream.errors.FencedError`) and nothing is written
   to the log.
3. It commits as version ``V + 1`` with ``max_commit_retries=0``. The log's
   next entry is created only if absent (a rename that never replaces
   locally; a conditional put on S3, ``aws_conditional_put: etag``), so if
   any other commit took ``V + 1`` in between, this one fails instead of
   being rebased on top, and the writer goes back to step 2 with the newer
   log.

So between the check of step 2 and the log entry of step 3 no other commit
can have happened, and a commit lands offsets ``a..b`` of a partition only if
the table held exactly ``a - 1`` for it: each offset lands at most once, and
the consumer's resume point (version + 1) makes it at least once. Data files
of a refused commit are never referenced by the log: no reader sees them, and
``vacuum`` deletes them after the grace period.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa

from lakestream.errors import (
    ConfigError,
    FencedError,
    StorageConflictError,
    StorageFullError,
    StoragePermissionError,
    StorageUnavailableError,
)
from lakestream.lake.storage import Storage

log = logging.getLogger(__name__)

COMMIT_ATTEMPTS = 50
CHECKPOINT_INTERVAL = 100  # delta-rs's default ``delta.checkpointInterval``
TABLE_CONFIGURATION: Mapping[str, str | None] = {"delta.checkpointInterval": "25"}
"""Properties of the tables Lakestream creates. A checkpoint every 25 commits rather
than 100: a writer or reader loading the table replays at most 24 commit files, which
kept a 10-record append at 20-29 ms over 300 commits (22-52 ms at 100; measured here)."""
DELTA_LOG = "_delta_log"


def app_id(topic: str, partition: int) -> str:
    """The application-transaction id of one Kafka partition."""
    return f"lakestream/{topic}/{partition}"


def is_delta_table(storage: Storage, rel: str) -> bool:
    """Whether the dataset at ``rel`` is a Delta table: its log holds a first commit, or a
    checkpoint once old log entries were cleaned up (a log folder holding only a crashed
    writer's temporary file is not a table)."""
    storage.check_root()
    return any(storage.exists(f"{rel}/{DELTA_LOG}/{name}")
               for name in (f"{0:020d}.json", "_last_checkpoint"))


def check_not_legacy(storage: Storage, rel: str) -> None:
    """Refuse a dataset written before the lake was kept as Delta tables.

    Such a dataset has files but no Delta log (a Delta table's log exists
    before its first data file, :meth:`DeltaDataset.ensure`).

    Raises:
        ConfigError: ``rel`` holds files but is not a Delta table.
    """
    if is_delta_table(storage, rel):
        return
    if any(d != DELTA_LOG for d in storage.list_dirs(rel)) \
            or storage.list_files(rel, recursive=False):
        raise ConfigError(f"{storage.url(rel)} was written before Lakestream kept the lake as "
                          "Delta tables",
                          "run `lakestream lake upgrade` (--dry-run shows what it does)")


def new_datasets_are_delta() -> bool:
    """Whether a dataset that does not exist yet is created as a Delta table: yes.

    The switch of the move to Delta (issue #16): every writer that may create a
    dataset (ingest, export, Beam, the medallion) asks it; a dataset written
    before keeps its format until ``lakestream lake upgrade`` turns it into a
    Delta table.
    """
    return True


def writes_delta(storage: Storage, rel: str) -> bool:
    """Whether a writer of the dataset at ``rel`` writes Delta: it is a Delta table, or it
    does not exist yet and new datasets are Delta (:func:`new_datasets_are_delta`).

    Files without a log are a dataset of the protocols before Delta: a Delta table's
    log is created before its first data file (:meth:`DeltaDataset.ensure`)."""
    if is_delta_table(storage, rel):
        return True
    if not new_datasets_are_delta():
        return False
    return not storage.list_dirs(rel) and not storage.list_files(rel, recursive=False)


def storage_options(storage: Storage) -> dict[str, str] | None:
    """What delta-rs needs to open the lake's object store (``None`` for a local lake).

    ``aws_conditional_put: etag`` makes every log entry a put-if-absent: AWS
    S3, MinIO and SeaweedFS honour it; a store that does not must be given a
    locking provider instead (see docs/lake.md).
    """
    if storage.is_local:
        return None
    s3 = storage.s3
    # delta-rs retries a failing request on its own for up to 3 minutes, silently; give
    # up after 10 s so the caller's retry (which says it is waiting) takes over
    options = {"aws_conditional_put": "etag", "max_retries": "3", "retry_timeout": "10s",
               "connect_timeout": "5s"}
    if s3 is None:
        return options
    options["AWS_REGION"] = s3.region
    if s3.endpoint:
        endpoint = s3.endpoint if "://" in s3.endpoint else f"http://{s3.endpoint}"
        options["AWS_ENDPOINT_URL"] = endpoint
        if urlparse(endpoint).scheme == "http":
            options["AWS_ALLOW_HTTP"] = "true"
    if s3.access_key and s3.secret_key:
        options["AWS_ACCESS_KEY_ID"] = s3.access_key.get_secret_value()
        options["AWS_SECRET_ACCESS_KEY"] = s3.secret_key.get_secret_value()
    return options


REWRITES = "rewrite:"
"""Topic of the application transaction that a dead-letter replay and a day rebuild move on
a dataset they add rows to (``rewrite:`` is no Kafka topic name). Each commits only if the
transaction still holds what it read: the two never land the same record twice."""


def rewrite_range(held: int | None) -> OffsetRange:
    """The rewrite transaction moved on from ``held`` (what the writer read)."""
    return OffsetRange(REWRITES, 0, held, (held or 0) + 1)


REWRITE_APP = app_id(REWRITES, 0)
"""The application-transaction id of :data:`REWRITES`."""


@dataclass(frozen=True)
class OffsetRange:
    """Offsets ``first..last`` of one partition, landed on top of ``expected`` (``None``: none)."""

    topic: str
    partition: int
    expected: int | None
    last: int

    @property
    def app_id(self) -> str:
        """The partition's application-transaction id."""
        return app_id(self.topic, self.partition)


class DeltaDataset:
    """One dataset of the lake as a Delta table.

    Args:
        storage: The lake.
        rel: The dataset's folder below the lake root (``streams/transaction_stream``).
        partition_by: Partition columns (zero-padded strings give ``year=2026/`` folders).
    """

    def __init__(self, storage: Storage, rel: str, partition_by: Sequence[str] = ()) -> None:
        self.storage = storage
        self.rel = rel
        self.partition_by = list(partition_by)
        self.uri = storage.url(rel)
        self.options = storage_options(storage)
        self._table: Any = None
        self._loaded = -1  # the version the handle was loaded at

    # -- reading the log --------------------------------------------------------------------

    def table(self, refresh: bool = True) -> Any:
        """The table at its latest version (``None`` before the first commit)."""
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        if self._table is not None and not refresh:
            return self._table
        if self._table is not None:
            with delta_errors(f"read the log of {self.uri}", self.uri):
                self._table.update_incremental()
            if not self._past_checkpoint():
                return self._table
        try:
            with delta_errors(f"open {self.uri}", self.uri):
                self._table = DeltaTable(self.uri, storage_options=self.options)
        except TableNotFoundError:
            return None
        self._loaded = int(self._table.version())
        return self._table

    def _past_checkpoint(self) -> bool:
        """Whether the log passed a checkpoint since the handle was loaded.

        delta-rs's handle, brought up to date commit by commit, replays every
        commit since it was loaded on each write: a long-lived writer's commit
        took 24 ms after 40 commits and 136 ms after 300 (measured here). A
        handle loaded afresh starts from the newest checkpoint instead, which
        every delta-rs writer leaves each ``delta.checkpointInterval`` commits.
        """
        with delta_errors(f"read the log of {self.uri}", self.uri):
            config = self._table.metadata().configuration or {}
        try:
            every = max(1, int(config.get("delta.checkpointInterval", CHECKPOINT_INTERVAL)))
        except ValueError:
            every = CHECKPOINT_INTERVAL
        return int(self._table.version()) // every > self._loaded // every

    def transaction_versions(self, app_ids: Iterable[str]) -> dict[str, int | None]:
        """The version each application transaction holds in the latest log."""
        table = self.table()
        if table is None:
            return dict.fromkeys(app_ids)
        with delta_errors(f"read the log of {self.uri}", self.uri):
            return {a: table.transaction_version(a) for a in app_ids}

    def next_offset(self, topic: str, partition: int) -> int | None:
        """Where a consumer resumes ``topic[partition]`` (``None``: nothing landed yet)."""
        version = self.transaction_versions([app_id(topic, partition)])[app_id(topic, partition)]
        return None if version is None else version + 1

    # -- committing -------------------------------------------------------------------------

    def ensure(self, schema: pa.Schema) -> Any:
        """The table, created empty with ``schema`` (every column nullable) if it does not
        exist yet.

        A table's log exists before its first data file: data files without a log
        are then always a dataset of the protocols before Delta (``lake upgrade``),
        never the remains of a first commit that died before its log entry.
        """
        from deltalake import DeltaTable

        table = self.table()
        if table is not None:
            return table
        check_not_legacy(self.storage, self.rel)
        nullable = pa.schema([f.with_nullable(True) for f in schema])
        try:
            with delta_errors(f"create {self.uri}", self.uri):
                DeltaTable.create(self.uri, schema=nullable, mode="ignore",
                                  partition_by=self.partition_by or None,
                                  configuration=dict(TABLE_CONFIGURATION),
                                  storage_options=self.options)
        except Exception:
            if self.table() is None:
                raise
        return self.table()

    def append(self, data: pa.Table, ranges: Sequence[OffsetRange] = (),
               metadata: Mapping[str, Any] | None = None) -> int:
        """Commit ``data`` and its offsets as one new version; returns that version.

        Raises:
            FencedError: A partition of ``ranges`` no longer holds its expected
                version: another writer landed it (nothing was committed).
        """
        return self._commit(data, "append", None, ranges, metadata)

    def overwrite(self, data: pa.Table, predicate: str, ranges: Sequence[OffsetRange] = (),
                  metadata: Mapping[str, Any] | None = None) -> int:
        """Replace the rows matching ``predicate`` by ``data`` in one fenced commit.

        The commit removes every live file the predicate matches and adds
        ``data``'s files, with ``ranges`` as application transactions; it is
        the same compare-and-swap on the log as :meth:`append` (a table
        version's snapshot and the removal of the version past the kept ones
        are this one commit). Every row of ``data`` must match ``predicate``.

        Raises:
            FencedError: A partition of ``ranges`` no longer holds its expected
                version: another writer committed it (nothing was committed).
        """
        return self._commit(data, "overwrite", predicate, ranges, metadata)

    def _commit(self, data: pa.Table, mode: str, predicate: str | None,
                ranges: Sequence[OffsetRange], metadata: Mapping[str, Any] | None) -> int:
        """The compare-and-swap loop of the module docstring; the committed version."""
        from deltalake import CommitProperties, Transaction, write_deltalake
        from deltalake.exceptions import CommitFailedError

        txns = [Transaction(r.app_id, r.last) for r in ranges]
        write: Any = write_deltalake  # one call for both modes (its overloads split them)
        extra = {"predicate": predicate} if predicate is not None else {}
        self.ensure(data.schema)
        for attempt in range(COMMIT_ATTEMPTS):
            table = self.table()
            self.check_fence(table, ranges)
            props = CommitProperties(app_transactions=txns or None, max_commit_retries=0,
                                     custom_metadata=dict(metadata) if metadata else None)
            try:
                with delta_errors(f"commit to {self.uri}", self.uri):
                    write(table, data, mode=mode, **extra,
                          partition_by=self.partition_by or None, schema_mode="merge",
                          storage_options=self.options, commit_properties=props)
            except CommitFailedError as exc:  # another commit took the next version: re-check
                log.debug("%s: %s raced (%s), attempt %d", self.uri, mode, exc, attempt + 1)
                time.sleep(min(0.01 * 2 ** attempt, 0.5))
                continue
            return int(self.table().version())
        raise StorageConflictError(f"{self.uri}: {COMMIT_ATTEMPTS} commits in a row lost the "
                                   "race for the next log version",
                                   "retry; is something rewriting the table?", dataset=self.uri)

    def check_fence(self, table: Any, ranges: Sequence[OffsetRange]) -> None:
        """Raise :class:`FencedError` unless every range's partition holds its expected
        version in ``table`` (the step 2 of the module docstring)."""
        if not ranges:
            return
        with delta_errors(f"read the log of {self.uri}", self.uri):
            current = ({r.app_id: None for r in ranges} if table is None
                       else {r.app_id: table.transaction_version(r.app_id) for r in ranges})
        stale = [r for r in ranges if current[r.app_id] != r.expected]
        if stale:
            raise FencedError(self.fenced_message(stale[0], current[stale[0].app_id]),
                              dataset=self.uri, topic=stale[0].topic,
                              partition=stale[0].partition)

    def fenced_message(self, stale: OffsetRange, held: int | None) -> str:
        """Why a batch of ``stale``'s partition is dropped: the table holds ``held``."""
        return (f"{stale.topic}[{stale.partition}] was landed by another consumer in "
                f"{self.rel} (the table holds offset {held}, this batch expected "
                f"{stale.expected}): this consumer's batch is dropped")

    def append_partitions(self, parts: Mapping[int, PartitionRows],
                          prepare: Callable[[list[pa.Table]], pa.Table]) -> SharedCommit:
        """Commit the rows of several Kafka partitions as one version, each fenced on its own.

        ``prepare`` turns the rows of the partitions still in the commit into the
        table to append. When a partition no longer holds its expected version,
        only that partition leaves the commit and the others are committed
        without it (the compare-and-swap of the module docstring, per partition):

        - it holds the batch's own last offset: the batch is in the table already
          (a retry whose first commit landed although the writer saw a failure,
          or another writer landed exactly the same offsets) — *landed*;
        - it holds anything else: another writer took the partition — *fenced*.
        """
        pending = dict(parts)
        outcome = SharedCommit()
        for _ in range(len(parts) + COMMIT_ATTEMPTS):
            if not pending:
                return outcome
            ranges = [r for part in pending.values() for r in part.ranges]
            data = prepare([part.rows for part in pending.values() if part.rows is not None])
            try:
                self.append(data, ranges)
            except FencedError:
                held = self.transaction_versions([r.app_id for r in ranges])
                for key, part in list(pending.items()):
                    if all(held[r.app_id] == r.expected for r in part.ranges):
                        continue
                    del pending[key]
                    own = part.ranges[0]
                    if held[own.app_id] == own.last:
                        outcome.landed.append(key)
                    else:
                        outcome.fenced[key] = self.fenced_message(own, held[own.app_id])
                continue
            outcome.committed.extend(pending)
            return outcome
        raise StorageConflictError(f"{self.uri}: the partitions' offsets kept moving under the "
                                   "commit", "retry; is another consumer landing the same topic?",
                                   dataset=self.uri)


@dataclass(frozen=True)
class PartitionRows:
    """What one Kafka partition adds to a commit shared with others: its rows (``None``:
    none) and its offset ranges, its own first (a derived stream adds its source's)."""

    rows: pa.Table | None
    ranges: Sequence[OffsetRange]


@dataclass
class SharedCommit:
    """Which partitions of :meth:`DeltaDataset.append_partitions` went where."""

    committed: list[int] = field(default_factory=list)
    landed: list[int] = field(default_factory=list)
    fenced: dict[int, str] = field(default_factory=dict)


@contextmanager
def delta_errors(what: str, dataset: str | None = None) -> Iterator[None]:
    """Turns delta-rs I/O failures into the lake's errors (transient or terminal).

    Commit races and a missing table pass through: the callers handle them.

    Args:
        what: What was being done, for the message ("commit to <uri>").
        dataset: The URI of the dataset concerned (the errors' ``dataset``).
    """
    from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

    try:
        yield
    except (CommitFailedError, TableNotFoundError):
        raise
    except (OSError, DeltaError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        code = exc.errno if isinstance(exc, OSError) else None
        if code in (errno.ENOSPC, errno.EDQUOT) or "No space left" in message:
            raise StorageFullError(f"cannot {what}: {message}",
                                   "free space on the lake's storage, then run again",
                                   dataset=dataset) from exc
        if code == errno.EROFS or "Read-only file system" in message:
            raise StoragePermissionError(
                f"cannot {what}: {message}",
                "the lake's file system is read-only: remount it read-write, or point "
                "lake.root elsewhere", dataset=dataset) from exc
        if code in (errno.EACCES, errno.EPERM) or "Permission denied" in message:
            raise StoragePermissionError(
                f"cannot {what}: {message}",
                "give the user running Lakestream access to the dataset's folder "
                "(chown/chmod), or point lake.root elsewhere", dataset=dataset) from exc
        if isinstance(exc, DeltaError) and not _is_io(message):
            raise
        raise StorageUnavailableError(f"cannot {what}: {message}", dataset=dataset) from exc


def _is_io(message: str) -> bool:
    lowered = message.lower()
    return any(word in lowered for word in ("generic", "error sending request", "connection",
                                            "timed out", "timeout", "i/o", "io error",
                                            "object store", "s3", "dispatch failure"))
