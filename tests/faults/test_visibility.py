"""The fault suite's visibility checker: a store that cannot serve a read now is not a partial file.

Fast and local (no marker): the checker must still catch a file the Delta log
references that is not whole (and a log entry that is not whole), or it proves
nothing in the S3 outage scenario; a file no log entry references is invisible
to every Delta reader and must not be judged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from tests.faults.visibility import VisibilityChecker

SERVER_ERROR = ("AWS Error INTERNAL_FAILURE during GetObject operation: We encountered an "
                "internal error, please try again.")


class RestartingStore(VisibilityChecker):
    """A checker whose store fails its first ``failures`` GETs, as SeaweedFS after a restart."""

    def __init__(self, dataset: Path, failures: int) -> None:
        super().__init__(pafs.LocalFileSystem(), str(dataset))
        self.failures = failures

    def fetch(self, path: str) -> bytes:
        if self.failures > 0:
            self.failures -= 1
            raise OSError(SERVER_ERROR)
        return super().fetch(path)


def whole_file(path: Path, rows: int = 50) -> bytes:
    """Write a Parquet file of ``rows`` rows at ``path``; its bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"offset": list(range(rows))}), path)
    return path.read_bytes()


def commit(dataset: Path, *files: str) -> Path:
    """A Delta log entry adding ``files`` (paths relative to ``dataset``), the next version."""
    log = dataset / "_delta_log"
    log.mkdir(parents=True, exist_ok=True)
    entry = log / f"{len(list(log.glob('*.json'))):020d}.json"
    actions = [{"commitInfo": {"operation": "WRITE"}},
               *({"add": {"path": name.replace("=", "%3D"), "size": 1, "dataChange": True}}
                 for name in files)]
    entry.write_text("\n".join(json.dumps(a) for a in actions) + "\n")
    return entry


def test_server_errors_are_read_again_not_counted_as_partial(tmp_path: Path) -> None:
    whole_file(tmp_path / "day=07" / "a.parquet")
    whole_file(tmp_path / "day=08" / "b.parquet")
    commit(tmp_path, "day=07/a.parquet")
    commit(tmp_path, "day=08/b.parquet")
    checker = RestartingStore(tmp_path, failures=3)

    checker.check_all()
    assert checker.unreadable and not checker.read  # the store failed: nothing judged yet
    checker.finish(patience_s=10)

    assert not checker.broken
    assert checker.read == {str(tmp_path / "day=07" / "a.parquet"),
                            str(tmp_path / "day=08" / "b.parquet")}
    assert checker.store_errors == 3


def test_a_truncated_visible_file_is_caught(tmp_path: Path) -> None:
    data = whole_file(tmp_path / "day=07" / "whole.parquet")
    (tmp_path / "day=07" / "partial.parquet").write_bytes(data[: len(data) // 2])
    commit(tmp_path, "day=07/whole.parquet", "day=07/partial.parquet")
    checker = RestartingStore(tmp_path, failures=2)  # the store also fails now and then

    checker.finish(patience_s=10)

    assert [path for path, _ in checker.broken] == [str(tmp_path / "day=07" / "partial.parquet")]
    assert "not a whole Parquet file" in checker.broken[0][1]


def test_a_parquet_file_cut_anywhere_is_caught(tmp_path: Path) -> None:
    data = whole_file(tmp_path / "whole.parquet", rows=500)
    cuts = [f"cut-{cut:06d}.parquet" for cut in (0, 4, len(data) // 3, len(data) - 9,
                                                  len(data) - 1)]
    for name in cuts:
        (tmp_path / name).write_bytes(data[:int(name[4:10])])
    commit(tmp_path, "whole.parquet", *cuts[:2])
    commit(tmp_path, *cuts[2:])
    checker = RestartingStore(tmp_path, failures=0)

    checker.finish(patience_s=1)

    assert len(checker.broken) == 5
    assert str(tmp_path / "whole.parquet") not in {path for path, _ in checker.broken}


def test_a_file_the_store_never_serves_is_reported(tmp_path: Path) -> None:
    whole_file(tmp_path / "a.parquet")
    commit(tmp_path, "a.parquet")
    checker = RestartingStore(tmp_path, failures=10**6)

    checker.finish(patience_s=0.5)

    # the log entry itself was never served: nothing it adds could even be listed
    assert [path for path, _ in checker.broken] == [
        str(tmp_path / "_delta_log" / f"{0:020d}.json")]
    assert "never served" in checker.broken[0][1]


def test_a_file_the_log_references_that_is_gone_is_reported(tmp_path: Path) -> None:
    whole_file(tmp_path / "a.parquet")
    commit(tmp_path, "a.parquet")

    class VanishingFile(VisibilityChecker):
        def fetch(self, path: str) -> bytes:
            if path.endswith(".parquet"):
                raise FileNotFoundError(path)
            return super().fetch(path)

    checker = VanishingFile(pafs.LocalFileSystem(), str(tmp_path))
    checker.finish(patience_s=1)

    assert [path for path, _ in checker.broken] == [str(tmp_path / "a.parquet")]
    assert "in the log, missing" in checker.broken[0][1]


def test_a_file_no_log_entry_references_is_invisible_and_not_judged(tmp_path: Path) -> None:
    data = whole_file(tmp_path / "day=07" / "live.parquet")
    commit(tmp_path, "day=07/live.parquet")
    # a commit that died after its data files, before its log entry: no reader sees them
    (tmp_path / "day=07" / "orphan.parquet").write_bytes(data[: len(data) // 2])
    checker = RestartingStore(tmp_path, failures=0)

    checker.finish(patience_s=1)

    assert not checker.broken
    assert checker.read == checker.logged() == {str(tmp_path / "day=07" / "live.parquet")}


def test_a_log_entry_that_is_not_whole_is_caught(tmp_path: Path) -> None:
    whole_file(tmp_path / "a.parquet")
    entry = commit(tmp_path, "a.parquet")
    text = entry.read_text()
    entry.write_text(text[: len(text) - 20])
    checker = RestartingStore(tmp_path, failures=0)

    checker.finish(patience_s=1)

    assert [path for path, _ in checker.broken] == [str(entry)]
    assert "not whole" in checker.broken[0][1]
