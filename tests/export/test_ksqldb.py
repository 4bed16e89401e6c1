"""The ksqlDB client and ksqlDB-sourced exports, against a local server replaying ksqlDB's format.

No ksqlDB server can run here; every test that talks HTTP says so in its name
(``test_ksqldb_replay_server_...``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakestream.cli import main
from lakestream.errors import TerminalError, TransientError
from lakestream.export.ksqldb import KsqlDbClient, KsqlDbError, KsqlDbUnavailableError
from lakestream.kafka.broker import free_port
from tests.conftest import unique_topic, write_feed
from tests.export.helpers import api_for, bootstrap
from tests.export.ksqldb_replay import ReplayServer, Reply
from tests.ingest.helpers import event, send

HEADER = {"queryId": "query_1712", "columnNames": ["USER_ID", "TOTAL"],
          "columnTypes": ["STRING", "DOUBLE"]}


@pytest.fixture
def ksqldb() -> Iterator[ReplayServer]:
    with ReplayServer().running() as server:
        yield server


def test_ksqldb_replay_server_pull_query_rows_come_back_by_column(ksqldb: ReplayServer) -> None:
    ksqldb.reply("FROM TOTALS", Reply(HEADER, [["U1", 10.5], ["U2", None]]))
    result = KsqlDbClient(ksqldb.url).pull("SELECT * FROM TOTALS;")
    assert result.query_id == "query_1712" and result.types == ["STRING", "DOUBLE"]
    assert result.rows == [{"USER_ID": "U1", "TOTAL": 10.5}, {"USER_ID": "U2", "TOTAL": None}]
    [request] = ksqldb.requests
    assert request["path"] == "/query-stream"
    assert request["accept"] == "application/vnd.ksqlapi.delimited.v1"
    assert request["body"] == {"sql": "SELECT * FROM TOTALS;", "properties": {}}


def test_ksqldb_replay_server_application_json_answer_is_read_too(ksqldb: ReplayServer) -> None:
    ksqldb.reply("FROM TOTALS", Reply(HEADER, [["U1", 1.0]], as_json=True))
    assert KsqlDbClient(ksqldb.url).pull("SELECT * FROM TOTALS;").rows == [
        {"USER_ID": "U1", "TOTAL": 1.0}]


def test_ksqldb_replay_server_error_response_is_one_clear_line(ksqldb: ReplayServer) -> None:
    ksqldb.reply("FROM NOPE", Reply(status=400, error={
        "@type": "statement_error", "error_code": 40001,
        "message": "NOPE does not exist.\nStatement: SELECT * FROM NOPE;"}))
    with pytest.raises(KsqlDbError) as err:
        KsqlDbClient(ksqldb.url).pull("SELECT * FROM NOPE;")
    assert err.value.message == ("ksqlDB error 40001 (statement_error): NOPE does not exist. "
                                 f"[at {ksqldb.url}]")
    assert isinstance(err.value, TerminalError) and err.value.url == ksqldb.url
    assert err.value.hint and "SHOW STREAMS" in err.value.hint
    assert len(ksqldb.requests) == 1, "a refused query is not retried"


def test_ksqldb_replay_server_error_in_the_middle_of_the_stream(ksqldb: ReplayServer) -> None:
    ksqldb.reply("FROM TOTALS", Reply(HEADER, [["U1", 1.0]], error={
        "@type": "generic_error", "error_code": 50000, "message": "store is rebalancing"}))
    with pytest.raises(KsqlDbError, match=r"50000 .*store is rebalancing"):
        KsqlDbClient(ksqldb.url).pull("SELECT * FROM TOTALS;")


def test_ksqldb_replay_server_dropped_connection_is_retried_then_reported(
        ksqldb: ReplayServer) -> None:
    ksqldb.reply("FROM TOTALS", Reply(HEADER, [["U1", 1.0], ["U2", 2.0]], drop_after=1))
    with pytest.raises(KsqlDbUnavailableError, match="dropped the connection after 1 rows"):
        KsqlDbClient(ksqldb.url, retries=1).pull("SELECT * FROM TOTALS;")
    assert len(ksqldb.requests) == 2


def test_ksqldb_replay_server_that_does_not_answer_times_out(ksqldb: ReplayServer) -> None:
    ksqldb.reply("FROM SLOW", Reply(HEADER, [], delay_s=1.5))
    with pytest.raises(KsqlDbUnavailableError, match=r"did not answer within 0\.3s"):
        KsqlDbClient(ksqldb.url, timeout_s=0.3, retries=0).pull("SELECT * FROM SLOW;")


def test_ksqldb_client_reports_an_unreachable_server() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(KsqlDbUnavailableError, match=f"cannot reach ksqlDB at {url}") as err:
        KsqlDbClient(url, retries=0).pull("SELECT 1;")
    assert isinstance(err.value, TransientError) and isinstance(err.value, KsqlDbError)


def test_ksqldb_errors_never_show_the_password_of_the_url() -> None:
    port = free_port()
    with pytest.raises(KsqlDbUnavailableError) as err:
        KsqlDbClient(f"http://etl:hunter2@127.0.0.1:{port}", retries=0).pull("SELECT 1;")
    assert "hunter2" not in str(err.value) and err.value.url == f"http://etl:***@127.0.0.1:{port}"
    assert f"cannot reach ksqlDB at http://etl:***@127.0.0.1:{port}" in err.value.message


@pytest.mark.integration
def test_ksqldb_replay_server_table_export_writes_a_version(
        workdir: Path, ksqldb: ReplayServer) -> None:
    write_feed(workdir / "feeds", "totals", unique_topic("t"), kind="table", layer="tables",
               schema={"user_id": "string", "total": "float64"}, key=["user_id"], required=[],
               time_field=None)
    ksqldb.reply("FROM TOTALS", Reply(HEADER, [["U1", 10.5], ["U2", 3.0]]))
    api = api_for(workdir, LAKESTREAM_KSQLDB_URL=ksqldb.url)

    [result] = api.batch.export(table="totals")

    assert (result.source, result.version, result.records) == ("ksqldb", "v1", 2)
    _, rows = api.query("SELECT user_id, total FROM totals ORDER BY 1")
    assert rows == [("U1", 10.5), ("U2", 3.0)]


@pytest.mark.integration
def test_ksqldb_replay_server_day_rebuild_matches_the_kafka_rows(
        workdir: Path, ksqldb: ReplayServer) -> None:
    topic = unique_topic()
    write_feed(workdir / "feeds", "feed", topic)
    messages = [event(f"t{i}", f"2025-01-1{5 + i % 2}T10:00:00.000Z", amount=float(i))
                for i in range(40)]
    send(bootstrap(workdir), topic, messages)
    api = api_for(workdir)
    api.batch.export(stream="feed")
    _, landed = api.query("SELECT transaction_id, amount, _kafka_partition, _kafka_offset "
                          "FROM feed WHERE day = 15 ORDER BY 1")
    by_id = {json.loads(v)["transaction_id"]: json.loads(v) for _, v in messages}
    header = {"queryId": "q", "columnNames": ["TRANSACTION_ID", "EVENT_TIME", "AMOUNT", "USER",
                                              "ROWPARTITION", "ROWOFFSET", "ROWTIME"],
              "columnTypes": ["STRING"] * 7}
    rows = [[tid, by_id[tid]["event_time"], amount, {"USER_ID": "U1", "NAME": "A"}, p, o,
             1736935200000] for tid, amount, p, o in landed]
    ksqldb.reply("FROM FEED", Reply(header, rows))
    api = api_for(workdir, LAKESTREAM_KSQLDB_URL=ksqldb.url)

    result = api.batch.exports.rebuild_day("feed", dt.date(2025, 1, 15))

    assert result.source == "ksqldb" and result.records == len(landed) == 20
    _, again = api.query("SELECT transaction_id, amount, _kafka_partition, _kafka_offset, "
                         "\"user\".user_id FROM feed WHERE day = 15 ORDER BY 1")
    assert [r[:4] for r in again] == landed and {r[4] for r in again} == {"U1"}
    assert "ROWPARTITION, ROWOFFSET" in ksqldb.requests[-1]["body"]["sql"]


@pytest.mark.integration
def test_ksqldb_replay_server_error_reaches_the_cli_as_one_line(
        workdir: Path, ksqldb: ReplayServer, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    write_feed(workdir / "feeds", "totals", unique_topic("t"), kind="table", layer="tables",
               schema={"user_id": "string"}, key=["user_id"], required=[], time_field=None)
    ksqldb.reply("FROM TOTALS", Reply(status=400, error={
        "@type": "statement_error", "error_code": 40001, "message": "TOTALS does not exist."}))
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("LAKESTREAM_KSQLDB_URL", ksqldb.url)
    assert main(["export", "--table", "totals"]) == 1
    err = capsys.readouterr().err
    assert "error: ksqlDB error 40001 (statement_error): TOTALS does not exist." in err
    assert "Traceback" not in err
