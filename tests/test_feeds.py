"""The feed registry: built-in feeds, feed files, and clear errors for bad ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakestream.cli import main
from lakestream.errors import FeedError
from lakestream.feeds import BUILTIN_FEEDS, FeedRegistry, load_feed_file
from tests.conftest import clear_settings_environment

BUILTIN = {f.name for f in BUILTIN_FEEDS}


def feed_file(
    feeds_dir: Path, name: str, body: dict[str, Any] | str, suffix: str = ".yaml"
) -> Path:
    path = feeds_dir / "active" / f"{name}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(body, str):
        path.write_text(body)
    elif suffix == ".json":
        path.write_text(json.dumps(body))
    else:
        path.write_text(yaml.safe_dump(body))
    return path


PAGE_VIEWS = {
    "name": "page_views",
    "topic": "web.page_views",
    "time_field": "viewed_at",
    "required": ["page", "viewed_at"],
    "schema": {"page": "string", "viewed_at": "timestamp", "user": {"id": "string"}},
}


def test_the_builtin_transactions_feed_exists_without_any_file(tmp_path: Path) -> None:
    registry = FeedRegistry(tmp_path / "no-such-folder")
    feed = registry.get("transaction_stream")
    assert feed.topic == "transactions"
    assert feed.pipeline == "transactions"
    assert feed.dataset == "streams/transaction_stream"
    assert feed.partition_field == "event_time"
    assert "user.user_id" in feed.required
    assert "transaction_stream" in {f.name for f in registry.select(pipeline="transactions")}
    assert {f.name for f in registry} == BUILTIN


def test_a_feed_file_in_active_adds_a_feed(tmp_path: Path) -> None:
    feed_file(tmp_path, "page_views", PAGE_VIEWS)
    registry = FeedRegistry(tmp_path)
    feed = registry.get("page_views")
    assert feed.topic == "web.page_views"
    assert feed.required == ("page", "viewed_at")
    assert feed.schema_spec == PAGE_VIEWS["schema"]
    assert feed.pipeline == "custom" and feed.enabled
    assert {f.name for f in registry} == BUILTIN | {"page_views"}


def test_json_feed_files_work_and_archived_or_other_files_are_ignored(tmp_path: Path) -> None:
    feed_file(tmp_path, "clicks", {"name": "clicks", "topic": "clicks"}, ".json")
    feed_file(tmp_path, "notes", "this is not a feed", ".txt")
    archived = tmp_path / "archived" / "old.yaml"
    archived.parent.mkdir()
    archived.write_text(yaml.safe_dump({"name": "old", "topic": "old"}))
    names = {f.name for f in FeedRegistry(tmp_path)}
    assert names == BUILTIN | {"clicks"}


def test_a_feed_without_time_field_partitions_by_kafka_time(tmp_path: Path) -> None:
    feed_file(tmp_path, "clicks", {"name": "clicks", "topic": "clicks"})
    assert FeedRegistry(tmp_path).get("clicks").partition_field == "_kafka_timestamp"


def test_the_override_file_named_after_a_builtin_feed_changes_it(tmp_path: Path) -> None:
    feed_file(tmp_path, "transaction_stream", {"name": "transaction_stream", "topic": "tx.v2"})
    assert FeedRegistry(tmp_path).get("transaction_stream").topic == "tx.v2"


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_file_may_not_shadow_a_builtin_feed(
    tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = feed_file(tmp_path, "x1", {"name": "transaction_stream", "topic": "tx.v2"}, suffix)
    with pytest.raises(FeedError) as err:
        FeedRegistry(tmp_path)
    assert err.value.message == \
        f"{path}: declares 'transaction_stream', a built-in feed; a file may not shadow it"
    # every command that reads the registry says so, in one line, exit 1
    clear_settings_environment(monkeypatch)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAKESTREAM_FEEDS_DIR", str(tmp_path))
    assert main(["feeds", "list"]) == 1
    err_lines = capsys.readouterr().err.splitlines()
    assert err_lines == [
        f"error: {err.value.message}",
        "  hint: delete the file; change the built-in with `lakestream feeds update "
        "transaction_stream --set key=value` (it writes "
        f"{tmp_path / 'active' / 'transaction_stream.yaml'})",
    ]
    assert main(["feeds", "add", "transaction_stream", "--topic", "t"]) == 1
    assert str(path) in capsys.readouterr().err


def test_two_files_may_not_declare_one_feed(tmp_path: Path) -> None:
    first = feed_file(tmp_path, "a_clicks", {"name": "clicks", "topic": "web.clicks"})
    second = feed_file(tmp_path, "b_clicks", {"name": "clicks", "topic": "other"})
    with pytest.raises(FeedError) as err:
        FeedRegistry(tmp_path)
    assert err.value.message == \
        f"{second}: declares feed 'clicks', which {first} already declares"


# -- bad feed files ------------------------------------------------------------------------


def load_error(tmp_path: Path, body: dict[str, Any] | str, suffix: str = ".yaml") -> FeedError:
    path = feed_file(tmp_path, "bad", body, suffix)
    with pytest.raises(FeedError) as err:
        FeedRegistry(tmp_path)
    assert str(path) in err.value.message, "the message names the file"
    return err.value


def test_an_unknown_key_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    err = load_error(tmp_path, {**PAGE_VIEWS, "time_feild": "viewed_at"})
    assert "unknown key 'time_feild'" in err.message
    assert err.hint == "did you mean 'time_field'?"


@pytest.mark.parametrize("topic", ["has space", "émoji", "a/b", "x" * 250, "..", ""])
def test_a_bad_topic_name_is_refused(tmp_path: Path, topic: str) -> None:
    err = load_error(tmp_path, {"name": "ok", "topic": topic})
    assert "'topic'" in err.message


@pytest.mark.parametrize("name", ["Page-Views", "9lives", "with space", "", "a" * 64])
def test_a_bad_feed_name_is_refused(tmp_path: Path, name: str) -> None:
    err = load_error(tmp_path, {"name": name, "topic": "ok"})
    assert "'name'" in err.message


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"enabled": "sometimes"}, "enabled"),
        ({"retention_days": "forever"}, "retention_days"),
        ({"retention_days": 0}, "retention_days"),
        ({"required": "page"}, "required"),
        ({"kind": "view"}, "kind"),
        ({"sensitivity": "public"}, "sensitivity"),
    ],
)
def test_a_bad_value_type_is_refused_naming_the_key(
    tmp_path: Path, extra: dict[str, Any], key: str
) -> None:
    err = load_error(tmp_path, {"name": "ok", "topic": "ok", **extra})
    assert f"'{key}'" in err.message


def test_an_unknown_schema_type_is_refused_when_the_file_is_read(tmp_path: Path) -> None:
    err = load_error(tmp_path, {"name": "ok", "topic": "ok", "schema": {"page": "strng"}})
    assert "schema field 'page'" in err.message and "strng" in err.message
    assert err.hint is not None and "string" in err.hint


def test_an_unknown_builtin_schema_name_is_refused(tmp_path: Path) -> None:
    err = load_error(tmp_path, {"name": "ok", "topic": "ok", "schema": "transaktions"})
    assert "transaktions" in err.message


def test_a_missing_topic_is_refused(tmp_path: Path) -> None:
    err = load_error(tmp_path, {"name": "ok"})
    assert "'topic'" in err.message


def test_unparseable_and_non_mapping_files_are_refused(tmp_path: Path) -> None:
    assert "cannot be parsed" in load_error(tmp_path, "name: [oops\n").message
    (tmp_path / "active" / "bad.yaml").unlink()
    assert "one mapping" in load_error(tmp_path, "- a\n- b\n").message
    (tmp_path / "active" / "bad.yaml").unlink()
    assert "cannot be parsed" in load_error(tmp_path, "{not json", ".json").message


def test_load_feed_file_returns_the_feed(tmp_path: Path) -> None:
    path = feed_file(tmp_path, "page_views", PAGE_VIEWS)
    assert load_feed_file(path).name == "page_views"


# -- selecting feeds -----------------------------------------------------------------------


def test_an_unknown_feed_suggests_the_closest_name(tmp_path: Path) -> None:
    with pytest.raises(FeedError) as err:
        FeedRegistry(tmp_path).select(feed="transaction_streams")
    assert err.value.message == "unknown feed 'transaction_streams'"
    assert err.value.hint == "did you mean 'transaction_stream'?"


def test_an_unknown_feed_without_a_close_name_lists_the_known_ones(tmp_path: Path) -> None:
    feed_file(tmp_path, "page_views", PAGE_VIEWS)
    with pytest.raises(FeedError) as err:
        FeedRegistry(tmp_path).get("zzz")
    assert err.value.hint is not None
    assert "transaction_stream" in err.value.hint and "page_views" in err.value.hint


def test_a_disabled_feed_is_refused_by_name_and_skipped_by_pipeline(tmp_path: Path) -> None:
    feed_file(tmp_path, "page_views", {**PAGE_VIEWS, "pipeline": "web", "enabled": False})
    feed_file(tmp_path, "clicks", {"name": "clicks", "topic": "clicks", "pipeline": "web"})
    registry = FeedRegistry(tmp_path)
    with pytest.raises(FeedError) as err:
        registry.select(feed="page_views")
    assert "disabled" in err.value.message
    assert err.value.hint is not None and "enable page_views" in err.value.hint
    assert [f.name for f in registry.select(pipeline="web")] == ["clicks"]
    assert "page_views" not in {f.name for f in registry.select()}


def test_an_unknown_pipeline_lists_the_known_ones(tmp_path: Path) -> None:
    feed_file(tmp_path, "clicks", {"name": "clicks", "topic": "clicks", "pipeline": "web"})
    with pytest.raises(FeedError) as err:
        FeedRegistry(tmp_path).select(pipeline="wheather")
    assert err.value.message == "unknown pipeline 'wheather'"
    known = {f.pipeline for f in BUILTIN_FEEDS} | {"web"}
    assert err.value.hint == f"known: {', '.join(sorted(known))}"
