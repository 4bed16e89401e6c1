"""The ksqlDB client, against a local server replaying ksqlDB's format.

No ksqlDB server can run here; every test that talks HTTP says so in its name
(``test_ksqldb_replay_server_...``). Exports from ksqlDB: tests/batchload/test_ksqldb_source.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest

from lakestream.errors import TerminalError, TransientError
from lakestream.kafka.broker import free_port
from lakestream.sources.ksqldb import (
    KsqlDbClient,
    KsqlDbError,
    KsqlDbUnavailableError,
    restore_case,
)
from tests.support.ksqldb_replay import ReplayServer, Reply

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


def test_upper_cased_names_get_the_feeds_case_back_in_structs_too() -> None:
    schema = pa.schema([("transactionId", pa.string()),
                        ("user", pa.struct([("userId", pa.string())]))])
    row = {"TRANSACTIONID": "t1", "USER": {"USERID": "U1"}, "ROWTIME": 5}
    assert restore_case(row, schema) == {"transactionId": "t1", "user": {"userId": "U1"},
                                         "rowtime": 5}
