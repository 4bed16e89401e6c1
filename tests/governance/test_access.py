"""`query --as`: every way around a missing grant is refused, by each layer on its own.

bob may read `events_anon` (a grant) and not `events` (restricted). READS are
queries that reach `events` through joins, subqueries, CTEs, lake paths,
comments and quoting: refused until bob gets a grant on `events`, then allowed.
NEVER are statements that are not a read at all (ATTACH, COPY, INSTALL/LOAD,
SET, CREATE, several statements, functions reaching outside the views): they
stay refused after the grant.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakestream.errors import QueryError
from lakestream.governance.sqlguard import AccessDeniedError, statement_refs
from lakestream.lake.delta import is_delta_table
from lakestream.lake.reader import LakeReader

from .conftest import api_for, run

READS = {
    "join": "SELECT count(*) FROM events_anon a JOIN events e ON a.id = e.id",
    "subquery": "SELECT count(*) FROM events_anon WHERE id NOT IN (SELECT id FROM events)",
    "scalar-subquery": "SELECT (SELECT count(*) FROM events) AS n",
    "exists": "SELECT 1 AS x WHERE EXISTS (SELECT 1 FROM (SELECT * FROM events) s)",
    "cte": "WITH x AS (SELECT * FROM events) SELECT count(*) FROM x",
    "cte-shadowing": "SELECT count(*) FROM events, (WITH events AS (SELECT 1 AS i) "
                     "SELECT * FROM events) t",
    "cte-self-reference": "WITH events AS (SELECT * FROM events) SELECT count(*) FROM events",
    "union": "SELECT id FROM events_anon UNION ALL SELECT id FROM events",
    "lateral": "SELECT count(*) FROM events_anon a, LATERAL (SELECT * FROM events e "
               "WHERE e.id = a.id) l",
    "from-first": "FROM events SELECT count(*)",
    "read_parquet": "SELECT count(*) FROM read_parquet('{lake}/streams/events/**/*.parquet')",
    "read_parquet-list": "SELECT count(*) FROM read_parquet(['{lake}/streams/events/year=2025/"
                         "month=01/day=02/part.parquet'])",
    "read_parquet-dotdot": "SELECT count(*) FROM read_parquet("
                           "'{lake}/streams/events_anon/../events/**/*.parquet')",
    "parquet_scan": "SELECT count(*) FROM parquet_scan('{lake}/streams/events/**/*.parquet')",
    "path-as-table": "SELECT count(*) FROM '{lake}/streams/events/**/*.parquet'",
    "comment-hides-join": "SELECT count(*) FROM events_anon /* harmless */ , -- x\n events",
    "quoted-upper": 'SELECT count(*) FROM "EVENTS"',
    "qualified": 'SELECT count(*) FROM main."events"',
    "fully-qualified": "SELECT count(*) FROM memory.main.events",
}

NEVER = {
    "attach-warehouse": "ATTACH '{project}/data/warehouse.db' AS w",
    "copy-to": "COPY (SELECT * FROM events_anon) TO '{project}/out.csv'",
    "copy-table": "COPY events TO '{project}/out.csv'",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "two-statements": "SELECT count(*) FROM events_anon; SELECT count(*) FROM events",
    "statement-after-comment": "SELECT 1 AS x; -- just a comment\nCOPY events TO '{project}/o.csv'",
    "set": "SET enable_external_access = true",
    "create-view": "CREATE VIEW v AS SELECT * FROM events",
    "query-function": "SELECT * FROM query('SELECT * FROM events')",
    "read_text": "SELECT content FROM read_text('{lake}/streams/events/_metadata.json')",
    "glob": "SELECT * FROM glob('{lake}/**')",
    "read_csv-outside": "SELECT * FROM read_csv('/etc/passwd')",
    "path-outside-lake": "SELECT * FROM '{project}/project.yaml'",
    "serialized-sql": "SELECT * FROM json_execute_serialized_sql("
                      "json_serialize_sql('SELECT * FROM events'))",
    "pivot-statement": "PIVOT events ON email USING count(*)",
}


@pytest.fixture
def lake_project(project: Path) -> Path:
    """Two datasets: restricted `events`, shared `events_anon`; bob may read the latter.

    Each is one ``part.parquet`` (a name the bypass statements use) committed to a Delta
    table by ``lake upgrade``, which makes a table of files in place."""
    for name in ("events", "events_anon"):
        folder = project / "lake" / "streams" / name / "year=2025" / "month=01" / "day=02"
        folder.mkdir(parents=True)
        when = dt.datetime(2025, 1, 2, 12, tzinfo=dt.UTC)
        table = pa.table({"id": ["a", "b", "c"], "ts": [when] * 3, "email": ["x@y.z"] * 3})
        pq.write_table(table, folder / "part.parquet")
    api = api_for(project)
    api.upgrade_lake()
    assert all(is_delta_table(api.storage, f"streams/{n}") for n in ("events", "events_anon"))
    api.governance.grant("bob", "events_anon", "read", actor="admin")
    return project


def fill(sql: str, project: Path) -> str:
    return sql.format(lake=project / "lake", project=project)


def folders(project: Path) -> dict[str, str]:
    return {n: str(project / "lake" / "streams" / n) for n in ("events", "events_anon")}


# -- layer one alone: the statement check --------------------------------------------------


@pytest.mark.parametrize("sql", READS.values(), ids=READS.keys())
def test_the_statement_check_sees_the_restricted_dataset(sql: str, lake_project: Path) -> None:
    refs = statement_refs(fill(sql, lake_project), folders(lake_project))
    assert "events" in refs.datasets


@pytest.mark.parametrize("sql", NEVER.values(), ids=NEVER.keys())
def test_the_statement_check_refuses_what_is_not_a_read(sql: str, lake_project: Path) -> None:
    with pytest.raises(AccessDeniedError):
        statement_refs(fill(sql, lake_project), folders(lake_project))


@pytest.mark.parametrize("sql", [
    "", "-- only a comment", "SELEKT 1", "SELECT * FROM read_parquet(concat('/', 'x'))",
    "SELECT * FROM information_schema.tables",
], ids=["empty", "comment", "unparsable", "computed-path", "other-schema"])
def test_the_statement_check_fails_closed(sql: str, lake_project: Path) -> None:
    with pytest.raises(AccessDeniedError):
        statement_refs(sql, folders(lake_project))


def test_a_cte_only_shadows_after_its_definition(lake_project: Path) -> None:
    sql = "WITH a AS (SELECT * FROM events), events AS (SELECT 1 AS i) SELECT * FROM a, events"
    assert statement_refs(sql, folders(lake_project)).datasets == {"events"}
    sql = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) "
           "SELECT * FROM n, events_anon")
    assert statement_refs(sql, folders(lake_project)).datasets == {"events_anon"}


def test_ctes_and_plain_queries_pass_the_statement_check(lake_project: Path) -> None:
    sql = "WITH recent AS (SELECT * FROM events_anon) SELECT count(*) FROM recent, range(3)"
    refs = statement_refs(sql, folders(lake_project))
    assert refs.datasets == {"events_anon"} and refs.unknown == frozenset()


# -- layer two alone: the locked-down connection ---------------------------------------------


@pytest.mark.parametrize("sql", [*READS.values(), *NEVER.values()],
                         ids=[*READS.keys(), *NEVER.keys()])
def test_the_locked_connection_refuses_every_bypass(sql: str, lake_project: Path) -> None:
    reader = LakeReader(api_for(lake_project).storage, only=["events_anon"])
    try:
        with pytest.raises(QueryError):
            reader.query(fill(sql, lake_project))
        assert reader.query("SELECT count(*) FROM events_anon")[1] == [(3,)]
    finally:
        reader.close()
    assert not (lake_project / "out.csv").exists() and not (lake_project / "o.csv").exists()


@pytest.mark.parametrize("sql", READS.values(), ids=READS.keys())
def test_the_locked_connection_runs_the_reads_once_permitted(sql: str, lake_project: Path) -> None:
    reader = LakeReader(api_for(lake_project).storage, only=["events_anon", "events"])
    try:
        _columns, rows = reader.query(fill(sql, lake_project))
    finally:
        reader.close()
    assert rows


# -- both layers, as users meet them ---------------------------------------------------------


@pytest.mark.parametrize("sql", READS.values(), ids=READS.keys())
def test_reads_are_refused_without_a_grant_and_allowed_after_it(
    sql: str, lake_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = fill(sql, lake_project)
    assert run(lake_project, "query", text, "--as", "bob") == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "error: principal 'bob' may not read 'events'"
    assert "lakestream permissions grant bob events --level read" in err[1]
    assert run(lake_project, "permissions", "grant", "bob", "events", "--level", "read") == 0
    assert run(lake_project, "query", text, "--as", "bob", "--format", "json") == 0
    audit = api_for(lake_project).governance.audit_entries(principal="bob", dataset="events")
    assert [e.action for e in audit] == ["read", "read_denied"]
    assert audit[0].detail["via"] == "query" and "rows" in audit[0].detail


@pytest.mark.parametrize("sql", NEVER.values(), ids=NEVER.keys())
def test_statements_that_are_not_reads_stay_refused_after_a_grant(
    sql: str, lake_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = fill(sql, lake_project)
    assert run(lake_project, "query", text, "--as", "bob") == 1
    api_for(lake_project).governance.grant("bob", "events", "admin", actor="admin")
    assert run(lake_project, "query", text, "--as", "bob") == 1
    err = capsys.readouterr().err
    assert err.count("error: ") == 2 and "Traceback" not in err
    assert not (lake_project / "out.csv").exists() and not (lake_project / "o.csv").exists()
    denied = api_for(lake_project).governance.audit_entries(principal="bob",
                                                            action="read_denied")
    assert len(denied) == 2


def test_an_unknown_dataset_lists_what_the_principal_may_read(
    lake_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(lake_project, "query", "SELECT * FROM nope", "--as", "bob") == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: unknown dataset 'nope'",
        "  hint: 'bob' may read: events_anon",
    ]


def test_the_analyst_role_reads_shared_datasets_by_default(lake_project: Path) -> None:
    api = api_for(lake_project)
    _columns, rows = api.query("SELECT count(*) AS n FROM events_anon", principal="analyst")
    assert rows == [(3,)]
    with pytest.raises(AccessDeniedError):
        api.query("SELECT count(*) FROM events", principal="analyst")
    api.governance.grant("carol", "role:analyst", "read", actor="admin")
    assert api.query("SELECT count(*) FROM events_anon", principal="carol")[1] == [(3,)]


def test_without_as_the_operator_query_is_unchanged(lake_project: Path) -> None:
    _columns, rows = api_for(lake_project).query("SELECT count(*) FROM events")
    assert rows == [(3,)]


def test_api_reads_go_through_the_same_check_and_audit(lake_project: Path) -> None:
    governance = api_for(lake_project).governance
    assert governance.authorize_read("bob", "events_anon", via="api").allows("read")
    with pytest.raises(AccessDeniedError):
        governance.authorize_read("bob", "events", via="api")
    entries = governance.audit_entries(principal="bob")
    assert [(e.action, e.dataset, e.detail["via"]) for e in entries[:2]] == [
        ("read_denied", "events", "api"), ("read", "events_anon", "api")]


@pytest.mark.parametrize("path", [
    "lake/streams/{name}/**/*.parquet",
    "./lake/streams/{name}/**/*.parquet",
    "lake/streams/events_anon/../{name}/**/*.parquet",
], ids=["relative", "dot-relative", "relative-dotdot"])
def test_a_relative_lake_path_reads_like_the_absolute_one(
    path: str, lake_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README writes lake paths relative to the project; DuckDB resolves them from there."""
    assert Path.cwd() == lake_project
    for source in ("read_parquet('{path}')", "'{path}'"):
        sql = "SELECT count(*) AS n FROM " + source.format(path=path)
        allowed = sql.format(name="events_anon")
        assert run(lake_project, "query", allowed, "--as", "bob", "--format", "json") == 0, \
            capsys.readouterr().err
        assert json.loads(capsys.readouterr().out) == [{"n": 3}]
        assert run(lake_project, "query", sql.format(name="events"), "--as", "bob") == 1
        assert capsys.readouterr().err.splitlines()[0] == \
            "error: principal 'bob' may not read 'events'"


def test_a_relative_path_outside_the_lake_stays_refused(
    lake_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (lake_project / "elsewhere").mkdir()
    pq.write_table(pa.table({"id": ["x"]}), lake_project / "elsewhere" / "x.parquet")
    for path in ("elsewhere/x.parquet", "lake/../elsewhere/x.parquet"):
        sql = f"SELECT count(*) FROM read_parquet('{path}')"
        assert run(lake_project, "query", sql, "--as", "bob") == 1
        assert capsys.readouterr().err.splitlines()[0] == \
            f"error: read_parquet('{path}') is outside the lake's datasets"
