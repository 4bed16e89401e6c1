"""A lake root that cannot be the lake is one error line in every command that touches it.

A bucket that does not exist used to look like an empty lake (`metadata stats`,
`retention` and `compact` exited 0 reporting zeros). Each case runs the real
CLI against a real SeaweedFS server (or a local root that is a regular file)
and expects exit 1, one `error:` line naming the root, a hint with the fix,
and no traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lakestream.cli import main
from lakestream.config import S3Settings
from lakestream.errors import ConfigError, StorageError, TransientError
from lakestream.kafka.broker import EmbeddedBroker
from lakestream.lake.storage import open_storage
from tests.conftest import clear_settings_environment, s3_env
from tests.support.seaweedfs import SeaweedFS

pytestmark = pytest.mark.integration

# every command here reads or writes the lake and needs nothing else (no Kafka, no warehouse)
LAKE_COMMANDS = {
    "metadata-stats": ["metadata", "stats"],
    "metadata-report": ["metadata", "report"],
    "metadata-csv": ["metadata", "export-csv"],
    "retention-dry-run": ["retention", "--dry-run"],
    "retention": ["retention"],
    "compact": ["compact"],
    "query": ["query", "SELECT 1 AS one"],
    "query-dataset": ["query", "SELECT count(*) FROM transaction_stream"],
    "feeds-show": ["feeds", "show", "transaction_stream"],
    "medallion-silver": ["medallion", "silver"],
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with no config file and no LAKESTREAM_* from the shell."""
    clear_settings_environment(monkeypatch)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAKESTREAM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LAKESTREAM_FEEDS_DIR", str(tmp_path / "feeds"))
    return tmp_path


def use_s3(monkeypatch: pytest.MonkeyPatch, server: SeaweedFS, root: str, **env: str) -> None:
    for var, value in {**s3_env(server), "LAKESTREAM_LAKE_ROOT": root, **env}.items():
        monkeypatch.setenv(var, value)


def fails_with(args: list[str], capsys: pytest.CaptureFixture[str], error: str,
               hint: str) -> None:
    assert main(args) == 1, args
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert "Traceback" not in captured.err
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == [f"error: {error}"], captured.err
    assert lines[lines.index(errors[0]) + 1] == f"  hint: {hint}", captured.err
    assert "0 partition" not in captured.out and "(1 row)" not in captured.out


@pytest.mark.parametrize("args", LAKE_COMMANDS.values(), ids=LAKE_COMMANDS.keys())
def test_a_missing_bucket_is_one_error_line(
    args: list[str], project: Path, seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_s3(monkeypatch, seaweedfs, "s3://nosuchbucket/lake")
    fails_with(args, capsys, "bucket 'nosuchbucket' of lake.root s3://nosuchbucket/lake "
               "does not exist", "create the bucket, or fix lake.root (LAKESTREAM_LAKE__ROOT)")


@pytest.mark.parametrize("args", LAKE_COMMANDS.values(), ids=LAKE_COMMANDS.keys())
def test_a_wrong_secret_key_is_one_error_line(
    args: list[str], project: Path, seaweedfs: SeaweedFS, s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    use_s3(monkeypatch, seaweedfs, f"s3://{s3_bucket}/lake",
           LAKESTREAM_S3_SECRET_KEY="not-the-secret")
    fails_with(args, capsys, f"the object store refused access to bucket '{s3_bucket}' of "
               f"lake.root s3://{s3_bucket}/lake: wrong S3 keys, or keys without access to it",
               "check LAKESTREAM_S3__ACCESS_KEY and LAKESTREAM_S3__SECRET_KEY")


@pytest.mark.parametrize("args", LAKE_COMMANDS.values(), ids=LAKE_COMMANDS.keys())
def test_a_local_root_that_is_a_file_is_one_error_line(
    args: list[str], project: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (project / "lake").write_text("a file, not the lake")
    monkeypatch.setenv("LAKESTREAM_LAKE_ROOT", str(project / "lake"))
    fails_with(args, capsys, f"lake.root {project / 'lake'} is a file, not a folder",
               "point lake.root (LAKESTREAM_LAKE__ROOT) at a folder, or move the file")
    assert (project / "lake").read_text() == "a file, not the lake"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders whatever their mode "
                    "(the file-instead-of-folder cases above cover a root that cannot be read)")
@pytest.mark.parametrize("args", LAKE_COMMANDS.values(), ids=LAKE_COMMANDS.keys())
def test_an_unreadable_local_root_is_one_error_line(
    args: list[str], project: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = project / "lake"
    root.mkdir()
    root.chmod(0o000)
    monkeypatch.setenv("LAKESTREAM_LAKE_ROOT", str(root))
    try:
        fails_with(args, capsys, f"lake.root {root} cannot be read: permission denied",
                   "give this user read access (chmod u+rx), or point lake.root elsewhere")
    finally:
        root.chmod(0o755)


@pytest.mark.parametrize("args", [
    ["ingest", "--feed", "transaction_stream", "--until-idle", "--idle-timeout", "1"],
    ["export", "--stream", "transaction_stream", "--idle-timeout", "1"],
], ids=["ingest", "export"])
def test_kafka_commands_stop_at_a_missing_bucket(
    args: list[str], project: Path, seaweedfs: SeaweedFS, broker: EmbeddedBroker,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    use_s3(monkeypatch, seaweedfs, "s3://nosuchbucket/lake",
           LAKESTREAM_KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers)
    fails_with(args, capsys, "bucket 'nosuchbucket' of lake.root s3://nosuchbucket/lake "
               "does not exist", "create the bucket, or fix lake.root (LAKESTREAM_LAKE__ROOT)")


def test_an_existing_bucket_without_a_lake_yet_is_an_empty_lake(
    project: Path, seaweedfs: SeaweedFS, s3_bucket: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_s3(monkeypatch, seaweedfs, f"s3://{s3_bucket}/lake")
    assert main(["retention", "--dry-run"]) == 0
    assert "would delete 0 partition(s)" in capsys.readouterr().out


def test_an_object_store_outage_stays_transient_and_is_checked_again(tmp_path: Path) -> None:
    with SeaweedFS(tmp_path / "s3") as server:
        server.create_bucket("lake")
        settings = S3Settings.model_validate({
            "endpoint": server.endpoint_url, "access_key": server.access_key,
            "secret_key": server.secret_key})
        lake = open_storage("s3://lake/root", settings)
        server.stop()
        with pytest.raises(StorageError) as err:  # retried with backoff by the loops
            lake.list_dirs("streams")
        assert isinstance(err.value, TransientError)
        assert not isinstance(err.value, ConfigError)
        server.start()
        lake.write_atomic("streams/x/f", b"1")  # checked again: the bucket is there
        assert lake.list_dirs("streams") == ["x"]
