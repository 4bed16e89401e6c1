"""Exports from ksqlDB (``--source ksqldb``), against a local server replaying ksqlDB's format.

No ksqlDB server can run here; every test that talks HTTP says so in its name
(``test_ksqldb_replay_server_...``). The client itself: tests/sources/test_ksqldb.py.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakestream.cli import main
from tests.batchload.helpers import api_for, bootstrap
from tests.conftest import unique_topic, write_feed
from tests.ingest.helpers import event, send
from tests.support.ksqldb_replay import ReplayServer, Reply

HEADER = {"queryId": "query_1712", "columnNames": ["USER_ID", "TOTAL"],
          "columnTypes": ["STRING", "DOUBLE"]}


@pytest.fixture
def ksqldb() -> Iterator[ReplayServer]:
    with ReplayServer().running() as server:
        yield server


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
