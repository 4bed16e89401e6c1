"""The feed registry's lifecycle: add, update, enable, disable, archive, restore, delete.

The end-to-end test runs the real CLI against the session broker: a new JSON
topic is declared with ``feeds add``, landed by ``ingest``, skipped once
disabled, archived, restored and deleted with its data; each step also meets
bad input and must answer with one clear line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lakestream.cli import main
from lakestream.errors import FeedError
from lakestream.feeds import FeedRegistry
from tests.conftest import unique_topic
from tests.ingest.helpers import generated, send


def _fails(args: list[str], capsys: pytest.CaptureFixture[str], expected: str,
           code: int = 1) -> str:
    assert main(args) == code, args
    err = capsys.readouterr().err
    assert expected in err, err
    assert "Traceback" not in err and err.count("error:") <= 1
    return err


def _ok(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(args) == 0, capsys.readouterr().err
    return capsys.readouterr().out


# -- the registry itself ---------------------------------------------------------------------


def test_add_validates_before_writing(tmp_path: Path) -> None:
    registry = FeedRegistry(tmp_path)
    with pytest.raises(FeedError, match="unknown key 'time_feild'") as err:
        registry.add({"name": "clicks", "topic": "web.clicks", "time_feild": "at"})
    assert err.value.hint == "did you mean 'time_field'?"
    with pytest.raises(FeedError, match="not a valid Kafka topic name"):
        registry.add({"name": "clicks", "topic": "web clicks!"})
    with pytest.raises(FeedError, match="'name'"):
        registry.add({"name": "Clicks", "topic": "web.clicks"})
    with pytest.raises(FeedError, match="unknown type 'text'"):
        registry.add({"name": "clicks", "topic": "c", "schema": {"a": "text"}})
    assert not (tmp_path / "active").exists()


def test_name_clashes_are_refused_with_a_way_out(tmp_path: Path) -> None:
    registry = FeedRegistry(tmp_path)
    registry.add({"name": "clicks", "topic": "web.clicks"})
    with pytest.raises(FeedError, match="a feed named 'clicks' already exists") as err:
        registry.add({"name": "clicks", "topic": "other"})
    assert err.value.hint and "feeds update clicks" in err.value.hint
    with pytest.raises(FeedError, match="'transaction_stream' is a built-in feed"):
        registry.add({"name": "transaction_stream", "topic": "t"})
    registry.archive("clicks")
    with pytest.raises(FeedError, match="an archived feed is named 'clicks'"):
        FeedRegistry(tmp_path).add({"name": "clicks", "topic": "web.clicks"})


def test_update_of_a_builtin_writes_an_override_and_delete_brings_it_back(tmp_path: Path) -> None:
    registry = FeedRegistry(tmp_path)
    registry.set_enabled("transaction_stream", False)
    assert not FeedRegistry(tmp_path).get("transaction_stream").enabled
    assert FeedRegistry(tmp_path).get("transaction_stream").topic == "transactions"
    with pytest.raises(FeedError, match="cannot be renamed"):
        registry.update("transaction_stream", {"name": "tx"})
    with pytest.raises(FeedError, match="built-in feed and cannot be archived"):
        registry.archive("transaction_stream")
    registry.remove("transaction_stream")
    assert FeedRegistry(tmp_path).get("transaction_stream").enabled


def test_a_table_is_keyed_and_lives_in_tables(tmp_path: Path) -> None:
    registry = FeedRegistry(tmp_path)
    with pytest.raises(FeedError) as err:
        registry.update("transaction_stream", {"kind": "table"})
    assert err.value.message == (
        "feed 'transaction_stream': a table feed needs layer 'tables' and the key columns a row "
        "is the latest value of (it has layer 'streams', key [])")
    with pytest.raises(FeedError, match="layer 'tables' holds table feeds, not streams"):
        registry.add({"name": "clicks", "topic": "web.clicks", "layer": "tables"})
    assert not (tmp_path / "active").exists()
    registry.add({"name": "totals", "topic": "t", "kind": "table", "layer": "tables",
                  "key": ["id"]})


def test_restore_refuses_to_overwrite_an_active_feed(tmp_path: Path) -> None:
    registry = FeedRegistry(tmp_path)
    registry.add({"name": "clicks", "topic": "web.clicks"})
    registry.archive("clicks")
    with pytest.raises(FeedError, match="no archived feed is named 'clics'"):
        registry.restore("clics")
    (tmp_path / "active" / "other.yaml").write_text(yaml.safe_dump(
        {"name": "clicks", "topic": "again"}))
    with pytest.raises(FeedError, match="an active feed is already named 'clicks'"):
        FeedRegistry(tmp_path).restore("clicks")


# -- end to end, through the CLI and the broker ------------------------------------------------


@pytest.mark.integration
def test_feed_lifecycle_end_to_end(workdir: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workdir)
    topic = unique_topic("views")
    views = [(b"u1", json.dumps({"page": f"/p{i}", "viewed_at": "2025-02-01T09:00:00Z",
                                 "user": {"id": "u1"}}).encode()) for i in range(25)]
    config = yaml.safe_load((workdir / "lakestream.yaml").read_text())
    send(config["kafka"]["bootstrap_servers"], topic, views)
    ingest = ["ingest", "--feed", "page_views", "--until-idle", "--idle-timeout", "1"]

    # add: bad inputs first, then the real one
    _fails(["feeds", "add", "page_views", "--topic", "bad topic"], capsys,
           "not a valid Kafka topic name")
    _fails(["feeds", "add", "page_views", "--topic", topic, "--set", "time_feild=viewed_at"],
           capsys, "unknown key 'time_feild'")
    _fails(["feeds", "add", "page_views", "--topic", topic, "--set", "oops"], capsys,
           "'oops' is not KEY=VALUE", code=2)
    _ok(["feeds", "add", "page_views", "--topic", topic, "--time-field", "viewed_at",
         "--required", "page", "--set", "schema={page: string, user: {id: string}}"], capsys)
    _fails(["feeds", "add", "page_views", "--topic", topic], capsys, "already exists")

    # ingest lands it
    assert "ingested 25 records" in _ok(ingest, capsys)
    assert _ok(["query", "SELECT count(*) AS n FROM page_views", "--format", "json"],
               capsys).count('"n": 25') == 1

    # disable: ingest and export skip it
    _fails(["feeds", "disable", "page_view"], capsys, "did you mean 'page_views'?", code=2)
    _ok(["feeds", "disable", "page_views"], capsys)
    _fails(ingest, capsys, "feed 'page_views' is disabled")
    _fails(["export", "--stream", "page_views"], capsys, "feed 'page_views' is disabled")
    _ok(["feeds", "update", "page_views", "--set", "retention_days=30"], capsys)
    _fails(["feeds", "update", "page_views", "--set", "retention_days=-1"], capsys,
           "'retention_days'")

    # archive, restore
    _ok(["feeds", "archive", "page_views"], capsys)
    assert "page_views" not in _ok(["feeds", "list", "--format", "json"], capsys)
    assert "archived" in _ok(["feeds", "list", "--archived"], capsys)
    _fails(["feeds", "archive", "page_views"], capsys, "unknown feed 'page_views'", code=2)
    _ok(["feeds", "restore", "page_views"], capsys)
    _fails(["feeds", "restore", "page_views"], capsys, "no archived feed is named 'page_views'",
           code=2)
    assert json.loads(_ok(["feeds", "show", "page_views"], capsys))["feed"]["enabled"] is False

    # delete: refused while data exists, then purged
    _fails(["feeds", "delete", "page_views"], capsys, "still has")
    assert (workdir / "lake/streams/page_views").exists()
    assert "removed" in _ok(["feeds", "delete", "page_views", "--purge"], capsys)
    assert not (workdir / "lake/streams/page_views").exists()
    assert not (workdir / "feeds/active/page_views.yaml").exists()
    _fails(["feeds", "delete", "page_views"], capsys, "unknown feed 'page_views'", code=2)
    _fails(["feeds", "delete", "transaction_stream"], capsys, "built-in feed")


@pytest.mark.integration
def test_feed_changes_that_the_lake_contradicts_are_refused(
        workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--set kind=table` used to be accepted, and the next ingest died (ArrowTypeError)."""
    monkeypatch.chdir(workdir)
    topic = unique_topic("tx")
    bootstrap = yaml.safe_load((workdir / "lakestream.yaml").read_text())["kafka"][
        "bootstrap_servers"]
    ingest = ["ingest", "--feed", "transaction_stream", "--until-idle", "--idle-timeout", "1"]
    update = ["feeds", "update", "transaction_stream"]
    _ok([*update, "--set", f"topic={topic}"], capsys)  # no data yet: anything goes
    send(bootstrap, topic, generated(40, seed=15))
    assert "ingested 40 records" in _ok(ingest, capsys)
    override = workdir / "feeds" / "active" / "transaction_stream.yaml"
    before = override.read_text()

    err = _fails([*update, "--set", "kind=table"], capsys, "a table feed needs layer 'tables'")
    err = _fails([*update, "--set", "kind=table", "--set", "layer=tables", "--set",
                  "key=[transaction_id]", "--keep-existing-data"], capsys, "")
    assert err.splitlines()[0].startswith(
        "error: feeds update transaction_stream: kind 'stream' -> 'table' contradicts the data: "
        "streams/transaction_stream holds 40 records in ")
    assert err.splitlines()[1].startswith("  hint: a table is a new dataset: declare it as a new "
                                          "feed (lakestream feeds add NAME --topic")
    err = _fails([*update, "--set", "topic=tx.v2"], capsys, "")
    assert err.splitlines()[0] == (
        f"error: feeds update transaction_stream: topic '{topic}' -> 'tx.v2' contradicts the "
        f"data: streams/transaction_stream holds 40 records in "
        f"{len(list((workdir / 'lake/streams/transaction_stream').rglob('*.parquet')))} file(s) "
        f"from '{topic}'")
    _fails([*update, "--set", "time_field="], capsys,
           "time_field 'event_time' -> '_kafka_timestamp' contradicts the data")
    _fails([*update, "--set", "schema={transaction_id: string, event_time: timestamp, "
            "amount: string}"], capsys, "declaring amount: string contradicts the data: column "
           "'amount' is double in ")
    assert override.read_text() == before  # nothing refused was written

    # a lossless widening is no contradiction; a kept contradiction says what happens
    assert _ok([*update, "--set", "schema={transaction_id: string, event_time: timestamp, "
                "amount: double, quantity: double}"], capsys) == "updated feed transaction_stream\n"
    days = sorted({"{}-{}-{}".format(*(part.split("=")[1] for part in folder.parts[-3:]))
                   for folder in (workdir / "lake/streams/transaction_stream").glob("year=*/*/*")})
    more = f" (and {len(days) - 1} more day(s))" if len(days) > 1 else ""
    out = _ok([*update, "--set", "time_field=", "--keep-existing-data"], capsys)
    assert out.splitlines() == [
        "updated feed transaction_stream",
        "  existing data: existing days stay partitioned by 'event_time' until their days are "
        f"rebuilt: lakestream export --stream transaction_stream --date {days[0]}{more}; new "
        "records go by '_kafka_timestamp'"]

    # and the feed still lands its topic
    send(bootstrap, topic, generated(10, seed=16))
    assert "ingested 10 records" in _ok(ingest, capsys)
