"""Local lake storage: atomic writes, hidden temporary files, errors a user can act on."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

import lakestream.lake.storage as storage_module
from lakestream.config import S3Settings
from lakestream.errors import (
    ConfigError,
    StorageError,
    StorageFullError,
    StorageLayoutError,
    StoragePermissionError,
    StorageUnavailableError,
    TerminalError,
    TransientError,
)
from lakestream.lake.storage import Storage, open_storage


@pytest.fixture
def lake(tmp_path: Path) -> Storage:
    return open_storage(str(tmp_path / "lake"), S3Settings())


def all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_a_local_root_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    storage = open_storage("rel/lake", S3Settings())
    assert storage.is_local
    assert storage.url("streams/x") == f"{tmp_path}/rel/lake/streams/x"
    assert open_storage(f"file://{tmp_path}/l2", S3Settings()).url("") == f"{tmp_path}/l2"


@pytest.mark.parametrize(
    ("root", "words"), [("gs://bucket/lake", "unsupported scheme"), ("s3:///lake", "bucket")]
)
def test_an_unusable_lake_root_is_a_config_error(root: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        open_storage(root, S3Settings())


def test_write_read_exists_and_overwrite(lake: Storage) -> None:
    lake.write_atomic("streams/x/a.bin", b"first")
    assert lake.exists("streams/x/a.bin")
    assert lake.read("streams/x/a.bin") == b"first"
    lake.write_atomic("streams/x/a.bin", memoryview(b"second"))
    assert lake.read("streams/x/a.bin") == b"second"
    assert not lake.exists("streams/x/missing.bin")
    with pytest.raises(FileNotFoundError):
        lake.read("streams/x/missing.bin")


def test_a_write_appears_whole_by_one_rename_of_a_hidden_file(
    lake: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    real_replace = os.replace

    def observing_replace(src: str, dst: str) -> None:
        # just before the file becomes visible: the data is complete, under a hidden name
        seen["tmp_name"] = os.path.basename(src)
        seen["same_folder"] = os.path.dirname(src) == os.path.dirname(dst)
        seen["tmp_content"] = Path(src).read_bytes()
        seen["final_visible"] = os.path.exists(dst)
        seen["listed"] = [f.path for f in lake.list_files("streams")]
        real_replace(src, dst)

    monkeypatch.setattr(storage_module.os, "replace", observing_replace)
    lake.write_atomic("streams/x/day=1/f.parquet", b"x" * 100_000)
    assert seen["tmp_name"].startswith(".")
    assert seen["same_folder"]  # a rename within one folder is atomic
    assert seen["tmp_content"] == b"x" * 100_000
    assert seen["final_visible"] is False
    assert seen["listed"] == []  # list_files never shows the temporary file
    assert lake.read("streams/x/day=1/f.parquet") == b"x" * 100_000


def test_a_failed_write_leaves_neither_a_partial_nor_a_temporary_file(
    lake: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake.write_atomic("streams/x/f.parquet", b"old complete content")

    def failing_replace(src: str, dst: str) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(storage_module.os, "replace", failing_replace)
    with pytest.raises(StorageUnavailableError) as err:
        lake.write_atomic("streams/x/f.parquet", b"new content")
    assert "cannot write" in err.value.message and "f.parquet" in err.value.message
    assert isinstance(err.value, TransientError)  # may go away: retried with backoff
    assert isinstance(err.value, StorageError) and not isinstance(err.value, TerminalError)
    assert all_files(tmp_path / "lake") == ["streams/x/f.parquet"]  # no .tmp- left
    assert lake.read("streams/x/f.parquet") == b"old complete content"


def failing_writes(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    """Every file opened for writing fails with ``code`` (as the OS would: root runs the
    tests, so a chmod would not make it refuse)."""

    def failing_open(path: str, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if "w" in mode:
            raise OSError(code, os.strerror(code), path)
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(storage_module, "open", failing_open, raising=False)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_or_quota_is_a_terminal_storage_full_error(
    lake: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    failing_writes(monkeypatch, code)
    with pytest.raises(StorageFullError) as err:
        lake.write_atomic("streams/x/f.parquet", b"data")
    assert isinstance(err.value, TerminalError)  # retrying cannot help: tell the user
    assert not isinstance(err.value, TransientError)
    assert os.strerror(code) in err.value.message
    assert err.value.hint is not None and "free space" in err.value.hint
    assert all_files(tmp_path / "lake") == []


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM])
def test_a_refused_permission_names_the_path_and_the_fix_not_a_full_disk(
    lake: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    failing_writes(monkeypatch, code)
    with pytest.raises(StoragePermissionError) as err:
        lake.write_atomic("streams/x/f.parquet", b"data")
    assert isinstance(err.value, TerminalError) and not isinstance(err.value, StorageFullError)
    folder = str(tmp_path / "lake" / "streams" / "x")  # where the temporary file was refused
    assert os.strerror(code) in err.value.message and folder in err.value.message
    assert ".tmp-" not in err.value.message
    hint = err.value.hint or ""
    assert folder in hint and "chown/chmod" in hint and "lake.root" in hint
    assert "free space" not in hint
    assert all_files(tmp_path / "lake") == []


def test_a_read_only_file_system_says_remount(
    lake: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing_writes(monkeypatch, errno.EROFS)
    with pytest.raises(StoragePermissionError) as err:
        lake.write_atomic("streams/x/f.parquet", b"data")
    assert isinstance(err.value, TerminalError)
    assert os.strerror(errno.EROFS) in err.value.message
    assert err.value.hint is not None and "read-only" in err.value.hint
    assert "remount" in err.value.hint


@pytest.mark.parametrize("code", [errno.ENOTDIR, errno.EISDIR])
def test_a_file_where_a_folder_must_be_is_a_layout_error_with_its_own_message(
    lake: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    failing_writes(monkeypatch, code)
    with pytest.raises(StorageLayoutError) as err:
        lake.write_atomic("streams/x/f.parquet", b"data")
    assert isinstance(err.value, TerminalError)
    assert not isinstance(err.value, StorageFullError | StoragePermissionError)
    assert os.strerror(code) in err.value.message
    assert err.value.hint == ("a file stands where the lake needs a folder (or the reverse): "
                              "move it away")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_a_readonly_directory_is_a_storage_permission_error(lake: Storage, tmp_path: Path) -> None:
    folder = tmp_path / "lake" / "streams"
    folder.mkdir(parents=True)
    folder.chmod(0o555)
    try:
        with pytest.raises(StoragePermissionError) as err:
            lake.write_atomic("streams/f.parquet", b"data")
        assert err.value.hint is not None and str(folder) in err.value.hint
    finally:
        folder.chmod(0o755)


def test_list_files_skips_temporary_files_and_returns_sorted_relative_paths(
    lake: Storage, tmp_path: Path
) -> None:
    lake.write_atomic("streams/x/year=2025/b.parquet", b"bb")
    lake.write_atomic("streams/x/year=2024/a.parquet", b"a")
    stray = tmp_path / "lake" / "streams" / "x" / ".tmp-0123abcd"
    stray.write_bytes(b"half a file")
    files = lake.list_files("streams/x")
    assert [f.path for f in files] == [
        "streams/x/year=2024/a.parquet",
        "streams/x/year=2025/b.parquet",
    ]
    assert [f.size for f in files] == [1, 2]
    assert all(f.mtime > 0 for f in files)
    assert [f.path for f in lake.list_files("streams/x", recursive=False)] == []
    assert lake.list_files("nothing/here") == []


def test_list_dirs_move_and_delete(lake: Storage) -> None:
    lake.write_atomic("_staging/s/f", b"1")
    lake.move("_staging/s/f", "streams/x/year=2025/f")
    assert not lake.exists("_staging/s/f") and lake.read("streams/x/year=2025/f") == b"1"
    assert lake.list_dirs("streams") == ["x"] and lake.list_dirs("missing") == []
    lake.delete("streams/x/year=2025/f")
    lake.delete("streams/x/year=2025/f")  # deleting a missing file is fine
    assert not lake.exists("streams/x/year=2025/f")
    lake.write_atomic("streams/y/a/b", b"2")
    lake.delete_dir("streams/y")
    lake.delete_dir("streams/y")
    assert lake.list_dirs("streams") == ["x"]


# -- a root that cannot be the lake: one error before anything else --------------------------


def test_a_missing_local_root_is_a_new_empty_lake(tmp_path: Path) -> None:
    lake = open_storage(str(tmp_path / "not-yet"), S3Settings())
    assert lake.list_dirs("streams") == [] and not (tmp_path / "not-yet").exists()
    lake.write_atomic("streams/x/f", b"1")  # the first write makes it
    assert lake.read("streams/x/f") == b"1"


def test_a_root_that_is_a_file_fails_every_operation_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "lake").write_text("not a folder")
    lake = open_storage(str(tmp_path / "lake"), S3Settings())
    operations = [lambda: lake.list_dirs("streams"), lambda: lake.list_files("streams/x"),
                  lambda: lake.exists("streams/x/f"), lambda: lake.read("streams/x/f"),
                  lambda: lake.write_atomic("streams/x/f", b"1"), lambda: lake.delete("a")]
    for operation in operations:
        with pytest.raises(ConfigError) as err:
            operation()
        assert err.value.message == f"lake.root {tmp_path / 'lake'} is a file, not a folder"
        assert err.value.hint is not None and "LAKESTREAM_LAKE__ROOT" in err.value.hint
    assert (tmp_path / "lake").read_text() == "not a folder"


def test_a_root_below_a_file_is_a_terminal_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    lake = open_storage(str(tmp_path / "file" / "lake"), S3Settings())
    with pytest.raises(StorageLayoutError) as err:
        lake.list_dirs("streams")
    assert isinstance(err.value, TerminalError)
    assert "Not a directory" in err.value.message
    assert err.value.hint is not None and "a file stands where the lake needs a folder" in \
        err.value.hint


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders whatever their mode")
def test_an_unreadable_root_is_a_config_error(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    root.mkdir()
    root.chmod(0o000)
    try:
        with pytest.raises(ConfigError) as err:
            open_storage(str(root), S3Settings()).list_dirs("streams")
        assert err.value.message == f"lake.root {root} cannot be read: permission denied"
    finally:
        root.chmod(0o755)
