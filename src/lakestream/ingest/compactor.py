"""In-band compaction: the ingest merges the small files of its day partitions as it runs.

A steady stream lands one small file per partition per flush (measured: 96
files of ~87 KB in one day after 2 minutes at 2,000 events/s). Every
``COMPACT_EVERY_S`` seconds a thread of its own merges the files of each day
partition that holds more than ``lake.compact_min_files`` small ones
(:func:`~lakestream.lake.delta_maintenance.compact_small_files`): the
flushes never wait for it.

Why it never conflicts with the appends: a compaction commit only replaces
files that were already committed, and an append only adds files; delta-rs
rebases one on the other (``lake/delta_maintenance.py`` tests appends and
compactions racing on the same partition, locally and on S3). Files of an
append in flight are not in any snapshot, so they are never compacted. A
compaction interrupted (kill -9, the process stopping) commits nothing; its
files are never referenced and ``retention`` vacuums them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from lakestream.errors import LakestreamError
from lakestream.lake.dead_letters import DATE_COLUMNS
from lakestream.lake.delta import DeltaDataset
from lakestream.lake.delta_maintenance import compact_small_files
from lakestream.lake.storage import Storage

log = logging.getLogger(__name__)

COMPACT_EVERY_S = 30.0


class InBandCompactor:
    """Compacts some Delta tables every ``every_s`` seconds, in its own thread.

    Args:
        storage: The lake.
        datasets: The tables' folders (each gets its own :class:`DeltaDataset`:
            the writers' instances belong to the flush thread).
        min_files: A day partition is compacted once it holds more small files.
        target_bytes: Size of a compacted file; smaller files are small.
    """

    def __init__(self, storage: Storage, datasets: Iterable[str], min_files: int,
                 target_bytes: int, every_s: float = COMPACT_EVERY_S) -> None:
        self.datasets = [DeltaDataset(storage, rel, DATE_COLUMNS) for rel in datasets]
        self.min_files, self.target_bytes, self.every_s = min_files, target_bytes, every_s
        self.merged = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lakestream-compact",
                                        daemon=True)

    def start(self) -> None:
        """Start compacting in the background."""
        if self.datasets:
            self._thread.start()

    def stop(self, wait_s: float = 5.0) -> None:
        """Stop; a compaction still running is abandoned uncommitted after ``wait_s``."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(wait_s)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.run_once()

    def run_once(self) -> int:
        """One pass over every table; the small files merged away. Failures are reported
        and left to the next pass: compaction never stops the ingest."""
        from deltalake.exceptions import DeltaError

        merged = 0
        for dataset in self.datasets:
            if self._stop.is_set():
                break
            try:
                done = compact_small_files(dataset, self.min_files, self.target_bytes)
            except (LakestreamError, DeltaError, OSError) as exc:
                log.warning("in-band compaction of %s left for later: %s", dataset.rel, exc)
                continue
            if done.partitions:
                log.info("%s: merged %d small files in %d day partitions", dataset.rel,
                         done.files_removed, len(done.partitions))
                merged += done.files_removed
        self.merged += merged
        return merged
