"""The atomic day replacement: folder swap locally, day manifest on S3 (or without renameat2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lakestream.errors import StorageError
from lakestream.lake.swap import DayReplace, exchange_supported, maintenance_lock, visible_files
from tests.lake.lakegen import local_lake

DAY = "streams/x/year=2025/month=01/day=15"


def _lake(root: Path, *names: str) -> None:
    for name in names:
        path = root / DAY / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode())


def _live(root: Path) -> dict[str, bytes]:
    storage = local_lake(root)
    return {f.path.rsplit("/", 1)[1]: (root / f.path).read_bytes()
            for f in visible_files(storage, "streams/x")}


def test_renameat2_exchange_works_on_this_filesystem(tmp_path: Path) -> None:
    assert exchange_supported(local_lake(tmp_path))


@pytest.mark.parametrize("swap", [True, False], ids=["swap", "manifest"])
def test_a_replacement_writes_keeps_and_drops_in_one_step(tmp_path: Path, swap: bool) -> None:
    _lake(tmp_path, "a.parquet", "b.parquet", "c.parquet")
    replace = DayReplace(local_lake(tmp_path), DAY, swap=swap)
    replace.write("new.parquet", b"new")
    replace.keep("a.parquet")
    assert set(_live(tmp_path)) == {"a.parquet", "b.parquet", "c.parquet"}, "nothing visible yet"
    replace.commit()
    live = _live(tmp_path)
    assert live == {"a.parquet": b"a.parquet",
                    ("new.parquet" if swap else "g000001~new.parquet"): b"new"}
    assert not list((tmp_path / "_staging").rglob("*.parquet"))


@pytest.mark.parametrize("swap", [True, False], ids=["swap", "manifest"])
def test_files_committed_during_a_replacement_are_carried_over(tmp_path: Path, swap: bool) -> None:
    _lake(tmp_path, "old.parquet")
    replace = DayReplace(local_lake(tmp_path), DAY, swap=swap)
    replace.write("rebuilt.parquet", b"r")
    _lake(tmp_path, "ingest-late.parquet", "skip-me.parquet")  # an ingest commits meanwhile
    replace.commit(carry=lambda name: name.startswith("ingest"))
    assert sorted(_live(tmp_path)) == sorted(
        ["ingest-late.parquet", "rebuilt.parquet" if swap else "g000001~rebuilt.parquet"])


def test_exact_names_replace_a_file_in_place_in_manifest_mode(tmp_path: Path) -> None:
    _lake(tmp_path, "ledger-named.parquet", "old.parquet")
    replace = DayReplace(local_lake(tmp_path), DAY, swap=False)
    replace.write("ledger-named.parquet", b"same records", exact=True)
    replace.commit()
    assert _live(tmp_path) == {"ledger-named.parquet": b"same records"}
    state = json.loads((tmp_path / DAY / "_day.json").read_text())
    assert state == {"generation": 1, "superseded": ["old.parquet"]}


def test_an_aborted_or_crashed_replacement_leaves_the_day_as_it_was(tmp_path: Path) -> None:
    _lake(tmp_path, "a.parquet")
    storage = local_lake(tmp_path)
    aborted = DayReplace(storage, DAY, swap=False)
    aborted.write("x.parquet", b"x")
    aborted.abort()
    crashed = DayReplace(storage, DAY, swap=False)
    crashed.write("y.parquet", b"y")  # then the process dies: no commit, no abort
    assert _live(tmp_path) == {"a.parquet": b"a.parquet"}
    assert _live(tmp_path) == {"a.parquet": b"a.parquet"}
    next_one = DayReplace(storage, DAY, swap=False)  # cleans the hidden leftovers
    assert not (tmp_path / DAY / "g000001~y.parquet").exists()
    next_one.keep("a.parquet")
    next_one.commit()
    assert _live(tmp_path) == {"a.parquet": b"a.parquet"}


def test_a_day_that_did_not_exist_appears_whole(tmp_path: Path) -> None:
    replace = DayReplace(local_lake(tmp_path), DAY)
    replace.write("first.parquet", b"1")
    replace.commit()
    assert _live(tmp_path) == {"first.parquet": b"1"}


def test_two_maintenance_runs_on_one_dataset_are_refused(tmp_path: Path) -> None:
    storage = local_lake(tmp_path)
    with maintenance_lock(storage, "streams/x"), pytest.raises(StorageError, match="running"), \
            maintenance_lock(storage, "streams/x"):
        pass
    with maintenance_lock(storage, "streams/x"):
        pass
