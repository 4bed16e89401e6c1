"""The offset ledger: the lake, not the broker, knows which offsets it holds.

Each Kafka partition of a dataset has a ledger folder. A batch commits by
writing one manifest (atomically) that lists its files and the offsets they
cover, *after* its files are written to staging and *before* they are moved
into the dataset. So at any crash:

- no manifest yet → the staged files are orphans, deleted on recovery, and the
  offsets are consumed again;
- a manifest → the batch is committed; recovery finishes moving its files.

Only the newest manifest of a partition matters; older ones are deleted once
the newer one's files are in place. The manifest also carries the partition's
running totals, from which ``_metadata.json`` is rebuilt.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from lakestream.decode.contract import contract_schema, merge_committed
from lakestream.errors import FencedError
from lakestream.lake.layout import ledger_path, manifest_name, staging_path
from lakestream.lake.storage import Storage

log = logging.getLogger(__name__)


@dataclass
class StagedFile:
    """A data or DLQ file of a batch: where it waits and where it goes."""

    staging: str
    final: str
    records: int
    bytes: int
    date: str
    kind: str = "data"  # data | dlq


@dataclass
class Totals:
    """Running totals of one Kafka partition of a dataset."""

    records: int = 0
    rejected: int = 0
    bytes: int = 0
    files: int = 0
    first_offset: int | None = None
    dates: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    max_source_offset: int | None = None

    def add(self, start: int, files: list[StagedFile], duplicates: int = 0,
            max_source_offset: int | None = None) -> Totals:
        """New totals with a batch starting at ``start`` added."""
        dates = dict(self.dates)
        for f in files:
            if f.kind == "data":
                dates[f.date] = dates.get(f.date, 0) + f.records
        return Totals(
            records=self.records + sum(f.records for f in files if f.kind == "data"),
            rejected=self.rejected + sum(f.records for f in files if f.kind == "dlq"),
            bytes=self.bytes + sum(f.bytes for f in files),
            files=self.files + len(files),
            first_offset=start if self.first_offset is None else self.first_offset,
            dates=dates,
            duplicates=self.duplicates + duplicates,
            max_source_offset=self.max_source_offset if max_source_offset is None
            else max_source_offset,
        )


@dataclass
class Manifest:
    """One committed batch of one Kafka partition."""

    dataset: str
    topic: str
    partition: int
    start_offset: int
    end_offset: int
    files: list[StagedFile]
    totals: Totals
    committed_at: str
    schema: list[dict[str, str]] = field(default_factory=list)
    contract: dict[str, Any] = field(default_factory=dict)
    """The types the dataset's data committed so far, in the feeds' schema notation."""

    def to_json(self) -> bytes:
        """Serialized form."""
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        """Parse a manifest written by :meth:`to_json`."""
        data: dict[str, Any] = json.loads(raw)
        data["files"] = [StagedFile(**f) for f in data["files"]]
        data["totals"] = Totals(**data["totals"])
        return cls(**data)


class OffsetLedger:
    """Commit protocol of one dataset on one storage."""

    def __init__(self, storage: Storage, dataset: str) -> None:
        self.storage = storage
        self.dataset = dataset

    def latest(self, topic: str, partition: int) -> Manifest | None:
        """The newest manifest of a partition, or ``None`` when nothing was committed."""
        files = self.storage.list_files(
            ledger_path(self.dataset, topic, partition), recursive=False
        )
        manifests = [f for f in files if f.path.endswith(".json")]
        if not manifests:
            return None
        return Manifest.from_json(self.storage.read(manifests[-1].path))

    def all_latest(self) -> list[Manifest]:
        """The newest manifest of every partition of the dataset."""
        root = f"{self.dataset}/_ledger"
        latest: dict[str, str] = {}
        for f in self.storage.list_files(root):
            if f.path.endswith(".json"):
                folder = f.path.rsplit("/", 1)[0]
                latest[folder] = max(latest.get(folder, ""), f.path)
        return [Manifest.from_json(self.storage.read(p)) for p in sorted(latest.values())]

    def committed_schema(self) -> pa.Schema:
        """The types the dataset's committed data established (every partition's, first wins)."""
        manifests = sorted(self.all_latest(), key=lambda m: m.committed_at)
        return merge_committed(contract_schema(m.contract) for m in manifests if m.contract)

    def recover(self, topic: str, partition: int, delete_orphans: bool = True) -> int | None:
        """Finish or undo whatever a crash left for this partition.

        Args:
            topic: The Kafka topic.
            partition: The Kafka partition.
            delete_orphans: Delete staged files no manifest names. Only the
                partition's one owner may: for a writer that shares it (``export
                --runner beam`` next to an ingest), they may be a batch in flight.

        Returns:
            The next offset to consume (``None``: nothing committed yet).
        """
        manifest = self.latest(topic, partition)
        keep: set[str] = set()
        if manifest is not None:
            self._settle(manifest)
            keep = {f.staging for f in manifest.files}
        staged = (self.storage.list_files(staging_path(self.dataset, topic, partition))
                  if delete_orphans else [])
        for orphan in staged:
            if orphan.path not in keep:
                log.info("recovery: deleting uncommitted file %s", orphan.path)
                self.storage.delete(orphan.path)
        self._prune(topic, partition)
        return None if manifest is None else manifest.end_offset + 1

    def commit(self, manifest: Manifest, expected_next: int | None) -> None:
        """Make a batch durable and visible.

        Args:
            manifest: The batch; its files are already written to staging.
            expected_next: The next offset this writer believes the ledger holds
                (``None`` when empty). A mismatch means another consumer took the
                partition over: :class:`FencedError`, nothing committed.
        """
        current = self.latest(manifest.topic, manifest.partition)
        current_next = None if current is None else current.end_offset + 1
        if current is not None and (current.start_offset, current.end_offset) == (
                manifest.start_offset, manifest.end_offset):
            # A retry of this very batch: an earlier try wrote the manifest, then failed
            # (a lost PUT response, or moving its files). The batch is committed; finish it.
            self._settle(current)
            self._prune(manifest.topic, manifest.partition)
            return
        if current_next != expected_next:
            raise FencedError(
                f"{self.dataset} {manifest.topic}[{manifest.partition}]: ledger is at "
                f"{current_next}, this consumer expected {expected_next}; another consumer owns it"
            )
        folder = ledger_path(self.dataset, manifest.topic, manifest.partition)
        self.storage.write_atomic(
            f"{folder}/{manifest_name(manifest.end_offset)}", manifest.to_json()
        )
        self._settle(manifest)
        self._prune(manifest.topic, manifest.partition)

    def _settle(self, manifest: Manifest) -> None:
        for f in manifest.files:
            if self.storage.exists(f.staging):
                self.storage.move(f.staging, f.final)
            elif not self.storage.exists(f.final):
                log.warning("committed file %s is missing from the lake", f.final)

    def _prune(self, topic: str, partition: int) -> None:
        files = self.storage.list_files(
            ledger_path(self.dataset, topic, partition), recursive=False
        )
        for old in [f for f in files if f.path.endswith(".json")][:-1]:
            self.storage.delete(old.path)
