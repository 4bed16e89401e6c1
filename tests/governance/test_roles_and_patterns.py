"""Grants a person can live with: roles assigned by name, folder and layer patterns,
the admin role, and ``permissions explain``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from .conftest import api_for, run
from .lakebuild import build_silver

pytestmark = pytest.mark.usefixtures("project")


def readable(project: Path, principal: str) -> set[str]:
    return set(api_for(project).governance.gate.readable(principal))


def test_assign_makes_a_principal_a_member_of_a_role(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert readable(project, "alice") == set()
    assert run(project, "permissions", "assign", "alice", "analyst") == 0
    assert capsys.readouterr().out == "alice is now a member of role analyst\n"
    assert {"events_anon", "totals"} <= readable(project, "alice")
    assert "events" not in readable(project, "alice")
    assert run(project, "permissions", "revoke", "alice", "role:analyst") == 0
    assert capsys.readouterr().out == "revoked alice's grant on role:analyst\n"
    assert readable(project, "alice") == set()


def test_assigning_an_unknown_role_is_a_usage_error(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(project, "permissions", "assign", "alice", "analsyt") == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: unknown role 'analsyt'", "  hint: did you mean 'analyst'?"]
    api_for(project).governance.grant("auditors", "totals", "read", actor="tests")
    assert run(project, "permissions", "assign", "carol", "auditors") == 0
    assert readable(project, "carol") == {"totals"}


def test_the_admin_role_reads_everything(project: Path) -> None:
    everything = set(api_for(project).governance.catalog())
    assert len(everything) >= 6
    assert readable(project, "admin") == everything  # the role itself
    assert readable(project, "root") == set()
    api_for(project).governance.assign("root", "admin", actor="tests")
    assert readable(project, "root") == everything
    assert api_for(project).governance.check("root", "dlq_events").level == "admin"


def test_folder_and_layer_patterns(project: Path) -> None:
    build_silver(api_for(project).storage, dt.datetime.now(dt.UTC).date(), months=1)
    governance = api_for(project).governance
    assert "silver_weather_cleaned" in governance.catalog()
    streams = {n for n, info in governance.catalog().items() if info.path.startswith("streams/")}
    assert {"events", "events_anon"} <= streams
    governance.grant("streamer", "streams/*", "read", actor="tests")
    assert readable(project, "streamer") == streams
    governance.grant("forecaster", "weather_*", "read", actor="tests")
    assert readable(project, "forecaster") == {"silver_weather_cleaned"}
    governance.grant("tabler", "tables/totals", "read", actor="tests")
    assert readable(project, "tabler") == {"totals", "totals_history"}
    # a name pattern still means view names: it does not reach the dead letters
    governance.grant("eventer", "events*", "read", actor="tests")
    assert readable(project, "eventer") == {"events", "events_anon"}


def test_explain_names_the_grant_or_role_that_decides(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    governance = api_for(project).governance
    governance.assign("alice", "analyst", actor="tests")
    governance.grant("alice", "streams/*", "write", actor="tests")
    assert run(project, "permissions", "explain", "alice", "events_anon") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "alice may read events_anon: level write, from the grant on streams/*"
    assert lines[1] == "  roles of alice: analyst"
    assert lines[3:5] == ["    write  grant on streams/*",
                          "    read   default for shared datasets via role analyst"]

    assert run(project, "permissions", "explain", "alice", "dlq_events") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("alice may not read dlq_events: no grant of alice or of its roles "
                        "covers it")
    assert "dlq_events is restricted: only an explicit grant (or the admin role) opens it" in \
        lines[2]
    assert "    write  grant on streams/*" in lines

    governance.assign("root", "admin", actor="tests")
    assert run(project, "permissions", "explain", "root", "events") == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "root may read events: level admin, from the default of the admin role (every "
        "dataset) via role admin")


def test_explain_refuses_unknown_datasets_and_patterns(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(project, "permissions", "explain", "alice", "event") == 2
    assert "did you mean 'events'?" in capsys.readouterr().err
    assert run(project, "permissions", "explain", "alice", "events*") == 2
    assert "one dataset name at a time" in capsys.readouterr().err
