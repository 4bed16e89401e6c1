"""Permissions: grant, revoke, list, check; roles and defaults; folder modes; every backend."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import pytest

from lakestream.governance.modes import prepare_feed_folders

from .conftest import api_for, run
from .lakebuild import build_stream, build_table

pytestmark = pytest.mark.usefixtures("project")


def test_grant_check_revoke_with_exit_statuses(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(project, "permissions", "check", "bob", "events") == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: bob may not read events: has no access (no grant; restricted dataset)"]
    assert run(project, "permissions", "grant", "bob", "events", "--level", "write") == 0
    assert capsys.readouterr().out == "granted write on events to bob\n"
    assert run(project, "permissions", "check", "bob", "events") == 0
    assert run(project, "permissions", "check", "bob", "events", "--level", "write") == 0
    assert run(project, "permissions", "check", "bob", "events", "--level", "admin") == 1
    capsys.readouterr()
    assert run(project, "permissions", "revoke", "bob", "events") == 0
    assert capsys.readouterr().out == "revoked bob's grant on events\n"
    assert run(project, "permissions", "revoke", "bob", "events") == 0
    assert "nothing changed" in capsys.readouterr().out
    assert run(project, "permissions", "check", "bob", "events") == 1


def test_grants_and_revokes_are_audited(project: Path) -> None:
    governance = api_for(project).governance
    governance.grant("bob", "events", "read", actor="alice")
    governance.revoke("bob", "events", actor="alice")
    entries = governance.audit_entries(principal="alice")
    assert [(e.action, e.dataset, e.detail) for e in entries] == [
        ("revoke", "events", {"principal": "bob"}),
        ("grant", "events", {"principal": "bob", "level": "read"}),
    ]


def test_mistakes_are_usage_errors_with_a_suggestion(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(project, "permissions", "grant", "bob", "event") == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: unknown dataset 'event'", "  hint: did you mean 'events'?"]
    assert run(project, "permissions", "grant", "bad name!", "events") == 2
    assert run(project, "permissions", "grant", "bob", "events", "--level", "owner") == 2
    assert run(project, "permissions", "check", "bob", "nope") == 2


def test_role_members_get_the_roles_grants_and_the_analyst_defaults(project: Path) -> None:
    governance = api_for(project).governance
    assert not governance.check("alice", "events_anon").allows()
    governance.grant("alice", "role:analyst", "read", actor="admin")
    access = governance.check("alice", "events_anon")
    assert access.allows() and "via role analyst" in access.via
    assert not governance.check("alice", "events").allows()  # restricted: no default
    governance.grant("analyst", "events", "read", actor="admin")
    assert governance.check("alice", "events").allows()
    governance.revoke("alice", "role:analyst", actor="admin")
    assert not governance.check("alice", "events_anon").allows()


def test_patterns_and_levels(project: Path) -> None:
    governance = api_for(project).governance
    governance.grant("ops", "events*", "admin", actor="admin")
    assert governance.check("ops", "events").level == "admin"
    assert governance.check("ops", "events_anon").allows("write")
    assert not governance.check("ops", "totals").allows()


def test_list_shows_grants_and_defaults(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    api_for(project).governance.grant("bob", "events", "read", actor="alice")
    assert run(project, "permissions", "list", "--format", "json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"principal": "bob", "dataset": "events", "level": "read", "source": "grant",
            "granted_by": "alice"}.items() <= rows[-1].items()
    defaults = {r["dataset"] for r in rows if r["source"].startswith("default")}
    assert {"events_anon", "totals", "transaction_stream_anonymized"} <= defaults
    assert "events" not in defaults and "transaction_stream" not in defaults
    assert run(project, "permissions", "list", "--no-defaults", "--format", "json") == 0
    assert len(json.loads(capsys.readouterr().out)) == 1


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_apply_modes_by_sensitivity(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    api = api_for(project)
    feeds = {f.name: f for f in api.feeds}
    build_stream(api.storage, feeds["events"], dt.date(2025, 1, 20), 60)
    build_stream(api.storage, feeds["events_anon"], dt.date(2025, 1, 20), 2)
    build_table(api.storage, feeds["totals"], versions=1)
    lake = project / "lake"
    (lake / "_staging" / "silver").mkdir(parents=True)  # a Spark silver run's files in flight
    assert run(project, "permissions", "apply-modes") == 0
    assert mode(lake / "streams" / "events") == 0o750
    assert mode(lake / "_dlq" / "events") == 0o750
    assert mode(lake / "streams" / "events_anon") == 0o755
    assert mode(lake / "tables" / "totals") == 0o755
    assert mode(lake / "streams") == 0o755 and mode(lake / "_staging") == 0o750
    restricted = next((lake / "streams" / "events").rglob("*.parquet"))
    shared = next((lake / "streams" / "events_anon").rglob("*.parquet"))
    assert mode(restricted) == 0o640 and mode(restricted.parent) == 0o750
    assert mode(shared) == 0o644
    assert "0750  events" in capsys.readouterr().out


def test_new_feed_folders_are_created_with_their_mode(project: Path) -> None:
    api = api_for(project)
    prepare_feed_folders(api.storage, list(api.feeds))
    assert mode(project / "lake" / "streams" / "events") == 0o750
    assert mode(project / "lake" / "streams" / "events_anon") == 0o755
    assert mode(project / "lake" / "_dlq" / "events_anon") == 0o750
    views = set(api.datasets())  # declared datasets are views before their first file
    assert {"events", "events_anon", "dlq_events_anon", "totals", "totals_history"} <= views
    assert api.query("SELECT count(*) FROM events")[1] == [(0,)]


def test_governance_tables_on_every_backend(project: Path, database_url: str) -> None:
    governance = api_for(project, LAKESTREAM_WAREHOUSE_URL=database_url).governance
    governance.grant("bob", "events", "read", actor="alice")
    governance.grant("bob", "events", "admin", actor="alice")  # replaces
    assert [(g.principal, g.level) for g in governance.grants(defaults=False)] == [
        ("bob", "admin")]
    assert governance.check("bob", "events").level == "admin"
    token = governance.tokens.issue("bob")
    assert governance.tokens.principal_for(token) == "bob"
    assert governance.tokens.principal_for(token + "x") is None
    assert governance.revoke("bob", "events", actor="alice")
    actions = [e.action for e in governance.audit_entries(principal="alice")]
    assert actions == ["revoke", "grant", "grant"]
    governance.warehouse.close()


def test_grants_on_the_views_of_a_clean_lake_work(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for view in ("dlq_events", "totals_history"):
        assert run(project, "permissions", "grant", "bob", view) == 0
        assert capsys.readouterr().out == f"granted read on {view} to bob\n"
    sql = "SELECT (SELECT count(*) FROM dlq_events) + (SELECT count(*) FROM totals_history) AS n"
    assert run(project, "query", sql, "--as", "bob", "--format", "csv") == 0
    assert capsys.readouterr().out.splitlines() == ["n", "0"]
    assert run(project, "query", "SELECT count(*) FROM events", "--as", "bob") == 1
    assert "may not read 'events'" in capsys.readouterr().err
