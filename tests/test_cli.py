"""The command line as a user meets it: help, exit statuses, one-line errors, query output."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pyarrow as pa
import pytest
import yaml

from lakestream.cli import cli, main
from lakestream.config import S3Settings, is_settings_variable
from lakestream.errors import LakestreamError, UsageError
from lakestream.lake.delta import DeltaDataset
from lakestream.lake.storage import open_storage
from tests.conftest import clear_settings_environment

LAKESTREAM_BIN = Path(sys.executable).with_name("lakestream")


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from command_paths(command, (*prefix, name))


def resolve(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with its own config file and no LAKESTREAM_* from the shell."""
    clear_settings_environment(monkeypatch)
    monkeypatch.chdir(tmp_path)
    config = {
        "data_dir": str(tmp_path / "data"),
        "feeds_dir": str(tmp_path / "feeds"),
        "lake": {"root": str(tmp_path / "lake")},
    }
    (tmp_path / "project.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def run(project: Path, *args: str) -> int:
    return main(["--config", str(project / "project.yaml"), *args])


@pytest.fixture
def tiny_lake(project: Path) -> Path:
    """One dataset, ``x`` (a Delta table), with two rows of 2025-01-02."""
    table = pa.table(
        {
            "id": ["a", "b"],
            "amount": [1.5, 20.25],
            "note": ["comma, inside", None],
            "event_time": pa.array(
                [dt.datetime(2025, 1, 2, 8, tzinfo=dt.UTC)] * 2, pa.timestamp("ms", tz="UTC")
            ),
        }
    )
    table = table.append_column("year", pa.array(["2025"] * 2)).append_column(
        "month", pa.array(["01"] * 2)).append_column("day", pa.array(["02"] * 2))
    storage = open_storage(str(project / "lake"), S3Settings())
    DeltaDataset(storage, "streams/x", ["year", "month", "day"]).append(table)
    return project


# -- help ------------------------------------------------------------------------------------


def test_root_help_teaches_the_quick_start(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage: lakestream" in out
    assert "Quick start" in out and "lakestream demo" in out
    for name in cli.commands:
        assert name in out
    for option in ("--config", "--debug", "--version"):
        assert option in out


@pytest.mark.parametrize("path", list(command_paths(cli)), ids=" ".join)
def test_every_command_and_group_has_help(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    command = resolve(path)
    assert main([*path, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"Usage: lakestream {' '.join(path)}" in out
    assert command.help, f"`lakestream {' '.join(path)}` has no help text"
    assert command.help.split("\n")[0].strip()[:40] in out
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.opts[-1] in out, f"{param.opts} is not in the help"
            assert param.help, f"{param.opts} has no help text"
    if isinstance(command, click.Group):
        assert "Commands:" in out
        for name in command.commands:
            assert name in out
    assert main([*path, "-h"]) == 0


def test_query_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "--help"]) == 0
    out = capsys.readouterr().out
    assert "Examples:" in out and 'lakestream query "SELECT' in out
    assert "table|csv|json" in out.replace(" ", "") or "[table|csv|json]" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("lakestream, version ")


# -- exit statuses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["no-such-command"], "No such command"),
        (["query"], "Missing argument 'SQL'"),
        (["query", "SELECT 1", "--format", "xml"], "'xml' is not one of"),
        (["produce", "transactions", "--messages", "0"], "0 is not in the range"),
        (["ingest", "--no-such-option"], "No such option"),
        (["broker", "restart"], "No such command 'restart'"),
    ],
)
def test_usage_errors_exit_2_and_say_what_is_wrong(
    args: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert words in err
    assert "Try 'lakestream" in err and "--help" in err


def test_a_lakestream_error_is_one_line_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / ("a-folder-with-a-long-name-" * 4) / "lakestream.yaml"
    assert main(["--config", str(missing), "query", "SELECT 1"]) == 1
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert lines[0] == f"error: config file {missing} does not exist"  # not wrapped
    assert lines[1:] == ["  hint: check the --config path"]
    assert "Traceback" not in captured.err and captured.out == ""


def test_debug_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["--debug", "--config", str(missing), "query", "SELECT 1"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "ConfigError" in err
    assert f"error: config file {missing} does not exist" in err


@pytest.fixture
def failing_command() -> Iterator[dict[str, BaseException]]:
    """A temporary `lakestream boom` that raises whatever the test puts in the dict."""
    raised: dict[str, BaseException] = {}

    @click.command("boom")
    def boom() -> None:
        raise raised["error"]

    cli.add_command(boom)
    yield raised
    cli.commands.pop("boom")


def test_a_usage_error_raised_by_a_command_exits_2(
    failing_command: dict[str, BaseException], capsys: pytest.CaptureFixture[str]
) -> None:
    failing_command["error"] = UsageError("give --stream or --all", "see --help")
    assert main(["boom"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: give --stream or --all",
        "  hint: see --help",
    ]


def test_an_unexpected_exception_is_one_line_unless_debug(
    failing_command: dict[str, BaseException], capsys: pytest.CaptureFixture[str]
) -> None:
    failing_command["error"] = RuntimeError("disk exploded")
    assert main(["boom"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "error: internal error: RuntimeError: disk exploded"
    assert "--debug" in err and "Traceback" not in err
    with pytest.raises(RuntimeError):
        main(["--debug", "boom"])


def test_lakestream_errors_from_commands_exit_1(
    failing_command: dict[str, BaseException], capsys: pytest.CaptureFixture[str]
) -> None:
    failing_command["error"] = LakestreamError("it broke")
    assert main(["boom"]) == 1
    assert capsys.readouterr().err == "error: it broke\n"


# -- query -----------------------------------------------------------------------------------


def test_an_empty_lake_has_the_declared_datasets_as_empty_views(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sql = ("SELECT count(*) AS n FROM transaction_stream "
           "JOIN dlq_transaction_stream USING (_kafka_offset)")
    assert run(project, "query", sql, "--format", "csv") == 0
    assert capsys.readouterr().out.splitlines() == ["n", "0"]
    assert run(project, "query", "SELECT * FROM nope") == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: ") and "nope" in err[0]
    assert err[1].startswith("  hint: datasets in this lake: none yet (run `lakestream ingest`); ")
    assert not (project / "lake").exists()  # a query creates nothing


def test_query_of_an_unknown_table_lists_the_datasets(
    tiny_lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tiny_lake, "query", "SELECT * FROM y") == 1
    hint = capsys.readouterr().err.splitlines()[1]
    assert hint.startswith("  hint: datasets in this lake: x; ")
    assert "more declared, empty until data arrives" in hint


def test_bad_sql_is_one_line(tiny_lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tiny_lake, "query", "SELEKT 1") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "syntax error" in err.lower()
    assert "Traceback" not in err


def test_query_as_csv_parses(tiny_lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sql = "SELECT id, amount, note, year, month, day FROM x ORDER BY id"
    assert run(tiny_lake, "query", sql, "--format", "csv") == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows == [
        ["id", "amount", "note", "year", "month", "day"],
        ["a", "1.5", "comma, inside", "2025", "1", "2"],
        ["b", "20.25", "", "2025", "1", "2"],
    ]


def test_query_as_json_parses(tiny_lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sql = "SELECT id, amount, note, event_time, year, month, day FROM x ORDER BY id"
    assert run(tiny_lake, "query", sql, "--format", "json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == ["a", "b"]
    assert rows[1]["amount"] == 20.25 and rows[1]["note"] is None
    assert (rows[0]["year"], rows[0]["month"], rows[0]["day"]) == (2025, 1, 2)
    when = dt.datetime.fromisoformat(rows[0]["event_time"])
    assert when == dt.datetime(2025, 1, 2, 8, tzinfo=dt.UTC)


def test_query_as_a_table_counts_rows(tiny_lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tiny_lake, "query", "SELECT count(*) AS n FROM x WHERE day = 2") == 0
    out = capsys.readouterr().out
    assert "n" in out and "2" in out and "(1 row)" in out


# -- ingest ----------------------------------------------------------------------------------


def test_ingest_of_an_unknown_feed_suggests_the_closest(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(project, "ingest", "--feed", "transaction_strem") == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: unknown feed 'transaction_strem'",
        "  hint: did you mean 'transaction_stream'?",
    ]


def test_ingest_of_an_unknown_pipeline_lists_the_known_ones(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(project, "ingest", "--pipeline", "wether") == 2
    err = capsys.readouterr().err
    assert "unknown pipeline 'wether'" in err and "transactions" in err


def test_ingest_without_kafka_or_broker_says_to_start_one(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(project, "ingest", "--pipeline", "transactions", "--until-idle") == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "error: no Kafka configured and no embedded broker running"
    assert "lakestream broker start" in err[1]


# -- the installed command, for real exit statuses --------------------------------------------


def run_bin(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not is_settings_variable(k)}
    return subprocess.run(
        [str(LAKESTREAM_BIN), "--config", str(project / "project.yaml"), *args],
        cwd=project, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_the_installed_command_exits_1_with_one_line_and_a_hint(project: Path) -> None:
    done = run_bin(project, "produce", "transactions", "--messages", "5")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error: no Kafka configured and no embedded broker running",
        "  hint: run `lakestream broker start`, or set LAKESTREAM_KAFKA__BOOTSTRAP_SERVERS",
    ]


def test_the_installed_command_exits_2_on_a_usage_error(project: Path) -> None:
    done = run_bin(project, "query")
    assert done.returncode == 2
    assert "Missing argument 'SQL'" in done.stderr and "Traceback" not in done.stderr


def test_broker_status_without_a_broker_exits_1(project: Path) -> None:
    done = run_bin(project, "broker", "status")
    assert done.returncode == 1
    assert "error: no embedded broker is running" in done.stderr
    assert "lakestream broker start" in done.stderr


@pytest.mark.integration
def test_broker_start_prints_the_pid_of_the_running_broker(tmp_path: Path) -> None:
    import re

    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKESTREAM_")}
    env["LAKESTREAM_DATA_DIR"] = str(tmp_path / "data")
    started = subprocess.run([str(LAKESTREAM_BIN), "broker", "start"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)
    try:
        assert started.returncode == 0, started.stderr
        found = re.search(r"\(pid (\d+)\)", started.stdout)
        assert found, started.stdout
        os.kill(int(found.group(1)), 0)  # that process is alive
        status = subprocess.run([str(LAKESTREAM_BIN), "broker", "status"], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=30)
        assert f"pid {found.group(1)}" in status.stdout
    finally:
        subprocess.run([str(LAKESTREAM_BIN), "broker", "stop"], cwd=tmp_path, env=env,
                       capture_output=True, timeout=60)
