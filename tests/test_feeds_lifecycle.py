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
from tests.ingest.helpers import send


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
    _fails(["feeds", "disable", "page_view"], capsys, "did you mean 'page_views'?")
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
    _fails(["feeds", "archive", "page_views"], capsys, "unknown feed 'page_views'")
    _ok(["feeds", "restore", "page_views"], capsys)
    _fails(["feeds", "restore", "page_views"], capsys, "no archived feed is named 'page_views'")
    assert json.loads(_ok(["feeds", "show", "page_views"], capsys))["feed"]["enabled"] is False

    # delete: refused while data exists, then purged
    _fails(["feeds", "delete", "page_views"], capsys, "still has")
    assert (workdir / "lake/streams/page_views").exists()
    assert "removed" in _ok(["feeds", "delete", "page_views", "--purge"], capsys)
    assert not (workdir / "lake/streams/page_views").exists()
    assert not (workdir / "feeds/active/page_views.yaml").exists()
    _fails(["feeds", "delete", "page_views"], capsys, "unknown feed 'page_views'")
    _fails(["feeds", "delete", "transaction_stream"], capsys, "built-in feed")
