"""A Delta reader that proves no partial file of a dataset is ever visible.

What a Delta reader sees is what the table's log references: it lists the
dataset's ``_delta_log/`` again and again, reads each new log entry (a partial
or unparsable entry is reported), and judges every data file an entry adds on
its bytes: one GET of the whole object, then a Parquet parse of those bytes in
memory. Files no log entry references (the data files of a commit that died or
was fenced before its log entry) are invisible to every reader and not judged.
Every file any entry ever added is judged, also once a later compaction removed
it. Two outcomes are kept apart:

- *cannot read now*: the GET itself failed (connection refused or reset, a
  timeout, a server error such as SeaweedFS's ``INTERNAL_FAILURE`` while its
  volumes register again after a restart: the filer already lists objects the
  volume server cannot serve yet). That says nothing about the file; it is read
  again on a later pass;
- *read, and not whole*: the store served the object and its bytes are not a
  whole Parquet file with rows (truncated, garbage, empty), or the listed object
  is gone. That is a partial file a reader could see: it is reported.

A file the store never serves until :meth:`VisibilityChecker.finish` gives up
is reported too, so "cannot read now" cannot hide a broken object for good.
"""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq


def log_entries(fs: pafs.FileSystem, dataset: str) -> list[str]:
    """The dataset's Delta log entries (``_delta_log/<version>.json``), oldest first."""
    infos = fs.get_file_info(pafs.FileSelector(f"{dataset}/_delta_log", allow_not_found=True))
    return sorted(i.path for i in infos if i.type == pafs.FileType.File
                  and i.base_name.endswith(".json") and i.base_name[:-5].isdigit())


def added_files(dataset: str, entry: bytes) -> list[str]:
    """The data files a log entry adds (one JSON action a line), as paths in the store.

    Raises:
        ValueError: The entry is not whole (a line is not a JSON action; also KeyError or
            TypeError: an add action without its path).
    """
    paths = []
    for line in entry.decode().splitlines():
        if line.strip():
            action = json.loads(line)
            if "add" in action:
                paths.append(f"{dataset}/{unquote(action['add']['path'])}")
    return paths


def parquet_problem(data: bytes) -> str | None:
    """Why ``data`` is not a whole Parquet file with rows (``None``: it is one)."""
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as exc:  # in memory: no I/O error can be the store's
        return f"not a whole Parquet file ({len(data)} bytes): {exc}"
    if table.num_rows == 0:
        return f"a Parquet file without rows ({len(data)} bytes)"
    return None


class VisibilityChecker(threading.Thread):
    """Reads ``dataset``'s log every ``interval_s`` and each file it adds whole, in a thread.

    Attributes:
        read: Files judged (whole or broken).
        entries: Log entry → the data files it adds.
        broken: (path, why) of every visible file that was not whole.
        unreadable: path → last store error, for files the store has not served yet.
        store_errors: Reads the store failed (retried later, not counted as broken).
    """

    def __init__(self, fs: pafs.FileSystem, dataset: str, interval_s: float = 0.3) -> None:
        super().__init__(name="visibility-checker", daemon=True)
        self.fs, self.dataset, self.interval_s = fs, dataset, interval_s
        self.read: set[str] = set()
        self.entries: dict[str, list[str]] = {}
        self.broken: list[tuple[str, str]] = []
        self.unreadable: dict[str, str] = {}
        self.store_errors = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            try:
                self.check_all()
            except OSError:
                continue  # the listing failed: the store is down, nothing is visible

    def finish(self, patience_s: float = 60.0) -> None:
        """Stop the thread, then judge every listed file; wait up to ``patience_s`` for the store.

        A file the store still fails to serve after ``patience_s`` is counted as broken.
        """
        self._stop_event.set()
        if self.is_alive():
            self.join(30)
        deadline = time.monotonic() + patience_s
        while True:
            try:
                self.check_all()
                listed = True
            except OSError as exc:
                listed = False
                self.unreadable.setdefault(self.dataset, f"listing failed: {exc}")
            if listed and not self.unreadable:
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        for path, error in sorted(self.unreadable.items()):
            self.broken.append((path, f"the store never served it in {patience_s:.0f}s: {error}"))

    def check_all(self) -> None:
        """Read every log entry and every file they add not judged yet; stop the pass at the
        first store error."""
        self.unreadable.pop(self.dataset, None)
        for entry in log_entries(self.fs, self.dataset):
            if entry not in self.entries:
                try:
                    data = self.fetch(entry)
                except FileNotFoundError as exc:
                    self.entries[entry] = []
                    self._judge(entry, f"log entry listed, then missing: {exc}")
                    continue
                except OSError as exc:
                    self.store_errors += 1
                    self.unreadable[entry] = str(exc)
                    return
                try:
                    self.entries[entry] = added_files(self.dataset, data)
                except (ValueError, KeyError, TypeError) as exc:
                    self.entries[entry] = []
                    self._judge(entry, f"a log entry that is not whole: {exc}")
                self.unreadable.pop(entry, None)
            for path in self.entries[entry]:
                if path in self.read:
                    continue
                try:
                    data = self.fetch(path)
                except FileNotFoundError as exc:
                    self._judge(path, f"in the log, missing from the store: {exc}")
                    continue
                except OSError as exc:
                    self.store_errors += 1
                    self.unreadable[path] = str(exc)
                    return  # cannot read now: this file and the rest on a later pass
                self._judge(path, parquet_problem(data))

    def logged(self) -> set[str]:
        """Every data file the log entries read so far add."""
        return {path for paths in self.entries.values() for path in paths}

    def fetch(self, path: str) -> bytes:
        """The whole object at ``path``, as the store serves it."""
        with self.fs.open_input_stream(path) as stream:
            return bytes(stream.read())

    def _judge(self, path: str, problem: str | None) -> None:
        self.unreadable.pop(path, None)
        self.read.add(path)
        if problem is not None:
            self.broken.append((path, problem))
