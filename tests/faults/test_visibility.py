"""The fault suite's visibility checker: a store that cannot serve a read now is not a partial file.

Fast and local (no marker): the checker must still catch a visible file that is
not whole, or it proves nothing in the S3 outage scenario.
"""

from __future__ import annotations

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


def test_server_errors_are_read_again_not_counted_as_partial(tmp_path: Path) -> None:
    whole_file(tmp_path / "day=07" / "a.parquet")
    whole_file(tmp_path / "day=08" / "b.parquet")
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
    checker = RestartingStore(tmp_path, failures=2)  # the store also fails now and then

    checker.finish(patience_s=10)

    assert [path for path, _ in checker.broken] == [str(tmp_path / "day=07" / "partial.parquet")]
    assert "not a whole Parquet file" in checker.broken[0][1]


def test_a_parquet_file_cut_anywhere_is_caught(tmp_path: Path) -> None:
    data = whole_file(tmp_path / "whole.parquet", rows=500)
    for cut in (0, 4, len(data) // 3, len(data) - 9, len(data) - 1):
        (tmp_path / f"cut-{cut:06d}.parquet").write_bytes(data[:cut])
    checker = RestartingStore(tmp_path, failures=0)

    checker.finish(patience_s=1)

    assert len(checker.broken) == 5
    assert str(tmp_path / "whole.parquet") not in {path for path, _ in checker.broken}


def test_a_file_the_store_never_serves_is_reported(tmp_path: Path) -> None:
    whole_file(tmp_path / "a.parquet")
    checker = RestartingStore(tmp_path, failures=10**6)

    checker.finish(patience_s=0.5)

    assert [path for path, _ in checker.broken] == [str(tmp_path / "a.parquet")]
    assert "never served" in checker.broken[0][1]


def test_a_listed_file_that_is_gone_is_reported(tmp_path: Path) -> None:
    class Vanishing(VisibilityChecker):
        def fetch(self, path: str) -> bytes:
            raise FileNotFoundError(path)

    whole_file(tmp_path / "a.parquet")
    checker = Vanishing(pafs.LocalFileSystem(), str(tmp_path))

    checker.finish(patience_s=1)

    assert [path for path, _ in checker.broken] == [str(tmp_path / "a.parquet")]
