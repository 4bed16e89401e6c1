"""`lakestream statements add|list|show|remove`: users' statement files, validated on add.

Every refusal is one line naming the file and the line (exit 2) and writes nothing;
a registered file's outputs become feeds of its pipeline; removing it archives them.
The same program run by `process` across kill -9: ``tests/faults/test_user_statements.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lakestream.cli import main
from tests.conftest import clear_settings_environment
from tests.derive.user_program import USER_FILE

REVENUE = """\
CREATE TABLE revenue_per_currency AS SELECT currency, SUM(amount_usd) AS revenue
FROM transaction_flattened WHERE status = 'completed' GROUP BY currency EMIT CHANGES;
"""
READS_REVENUE = """\
CREATE STREAM big_spenders AS SELECT t.user_id AS user_id, t.amount_usd AS amount_usd
FROM transaction_flattened t WHERE t.amount_usd > 1000 EMIT CHANGES;
CREATE TABLE big_spender_counts AS SELECT user_id, COUNT(*) AS n FROM big_spenders
GROUP BY user_id EMIT CHANGES;
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder (no broker needed: nothing here consumes)."""
    clear_settings_environment(monkeypatch)
    (tmp_path / "lakestream.yaml").write_text(yaml.safe_dump({
        "data_dir": str(tmp_path / "data"), "feeds_dir": str(tmp_path / "feeds"),
        "lake": {"root": str(tmp_path / "lake")}}))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def ok(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(args) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def refused(args: list[str], capsys: pytest.CaptureFixture[str], expected: str,
            code: int = 2) -> str:
    assert main(args) == code, args
    err = capsys.readouterr().err
    assert expected in err, err
    assert "Traceback" not in err and err.lower().count("error:") == 1, err
    return err


def feeds_json(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, dict[str, str]]:
    return {f["name"]: f for f in json.loads(ok(["feeds", "list", "--format", "json", *extra],
                                                capsys))}


def test_a_file_registered_lists_shows_and_its_outputs_become_feeds(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "mine.sql").write_text(USER_FILE)
    out = ok(["statements", "add", "mine.sql", "--pipeline", "finance"], capsys)
    assert "registered statements/finance/mine.sql: 4 output(s)" in out
    assert "table  hourly_revenue → topic hourly_revenue key (currency, window_start, " \
           "window_end)" in out
    assert (project / "feeds" / "statements" / "finance" / "mine.sql").read_text() == USER_FILE

    feeds = feeds_json(capsys)
    assert {n: (f["pipeline"], f["kind"]) for n, f in feeds.items() if f["pipeline"] ==
            "finance"} == {"big_purchases": ("finance", "stream"),
                           "amounts_in_eur": ("finance", "stream"),
                           "hourly_revenue": ("finance", "table"),
                           "busy_users": ("finance", "table")}
    busy = json.loads(ok(["feeds", "show", "busy_users"], capsys))["feed"]
    assert busy["key"] == ["user_id", "windowstart", "windowend"]
    assert busy["layer"] == "tables" and busy["schema"]["events"] == "int64"
    big = json.loads(ok(["feeds", "show", "big_purchases"], capsys))["feed"]
    assert big["dedupe_source"] is True and big["kind"] == "stream"

    listed = json.loads(ok(["statements", "list", "--format", "json"], capsys))
    assert [(e["name"], e["pipeline"], e["outputs"]) for e in listed] == [
        ("mine", "finance", ["big_purchases", "amounts_in_eur", "hourly_revenue", "busy_users"])]
    shown = ok(["statements", "show", "mine"], capsys)
    assert USER_FILE.strip() in shown
    assert "TABLE hourly_revenue: topic hourly_revenue, from transaction_flattened" in shown
    assert "TABLE payment_method_totals" not in shown  # only what this file defines
    whole = ok(["statements", "show"], capsys)
    assert "TABLE payment_method_totals" in whole and "TABLE busy_users" in whole

    out = ok(["statements", "remove", "mine"], capsys)
    assert "archived feeds" in out and "busy_users" in out
    assert not (project / "feeds" / "statements" / "finance" / "mine.sql").exists()
    assert json.loads(ok(["statements", "list", "--format", "json"], capsys)) == []
    assert "big_purchases" not in feeds_json(capsys)
    assert feeds_json(capsys, "--archived")["big_purchases"]["enabled"] == "archived"
    # the same outputs again: the archived feeds are in the way, and the message says so
    refused(["statements", "add", "mine.sql"], capsys, "an archived feed is named big_purchases")


def test_a_dry_run_validates_and_registers_nothing(project: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (project / "revenue.sql").write_text(REVENUE)
    out = ok(["statements", "add", "revenue.sql", "--dry-run"], capsys)
    assert "would register statements/transactions/revenue.sql: 1 output(s)" in out
    assert not (project / "feeds").exists()


def test_statements_from_standard_input_need_a_name(
        project: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    monkeypatch.setattr("sys.stdin", io.StringIO(REVENUE))
    refused(["statements", "add", "-"], capsys, "need --name")
    monkeypatch.setattr("sys.stdin", io.StringIO(REVENUE))
    assert "registered statements/transactions/revenue.sql" in ok(
        ["statements", "add", "-", "--name", "revenue"], capsys)


BAD = [
    ("syntax", "CREATE STREAM x AS SELEC transaction_id FROM transaction_flattened;",
     "bad.sql, line 1"),
    ("stream-stream-join", "CREATE STREAM x AS SELECT a.transaction_id FROM transaction_stream a"
     "\nJOIN transaction_flattened b WITHIN 1 HOUR ON a.transaction_id = b.transaction_id;",
     "line 2: a stream-stream join"),
    ("session-window", "CREATE TABLE x AS SELECT currency, COUNT(*) AS n\n"
     "FROM transaction_flattened WINDOW SESSION (5 MINUTES) GROUP BY currency;",
     "SESSION windows are not supported"),
    ("emit-final", "CREATE TABLE x AS SELECT currency, COUNT(*) AS n FROM transaction_flattened\n"
     "WINDOW TUMBLING (SIZE 1 HOUR) GROUP BY currency EMIT FINAL;", "EMIT FINAL"),
    ("udf", "CREATE STREAM x AS SELECT MY_UDF(currency) AS c FROM transaction_flattened;",
     "unknown function MY_UDF"),
    ("pull-query", "SELECT * FROM transaction_flattened WHERE currency = 'EUR';",
     "pull queries"),
    ("unknown-source", "CREATE STREAM x AS SELECT a FROM no_such_stream;", "no_such_stream"),
    ("unfed-table-join", "CREATE TABLE vip (user_id VARCHAR PRIMARY KEY, tier VARCHAR)\n"
     "WITH (KAFKA_TOPIC='vip_users', VALUE_FORMAT='JSON');\n"
     "CREATE STREAM x AS SELECT t.user_id AS user_id, v.tier AS tier\n"
     "FROM transaction_flattened t JOIN vip v ON t.user_id = v.user_id;", "vip_users"),
    ("feed-name-taken", "CREATE STREAM weather AS SELECT transaction_id FROM "
     "transaction_flattened;", "weather is already the name of feed 'weather'"),
    ("feed-topic-taken", "CREATE STREAM copy WITH (KAFKA_TOPIC='weather-data') AS SELECT "
     "transaction_id FROM transaction_flattened;", "which feed 'weather' lands"),
    ("shipped-name", "CREATE STREAM transaction_flattened AS SELECT transaction_id FROM "
     "transaction_stream;", "transaction_flattened already exists"),
    ("no-output", "CREATE STREAM clicks (id VARCHAR) WITH (KAFKA_TOPIC='clicks', "
     "VALUE_FORMAT='JSON');", "defines no stream or table"),
    ("empty", "", "defines no stream or table"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_a_bad_file_is_refused_in_one_line_and_nothing_is_written(
        project: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str) -> None:
    (project / "bad.sql").write_text(text)
    code = 1 if expected == "vip_users" else 2  # a program `process` cannot feed: config
    refused(["statements", "add", "bad.sql"], capsys, expected, code)
    assert not (project / "feeds" / "statements").exists()
    assert not (project / "feeds" / "active").exists()


def test_bad_names_files_and_unknown_names_are_refused(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "revenue.sql").write_text(REVENUE)
    refused(["statements", "add", "missing.sql"], capsys,
            "cannot read missing.sql: No such file or directory")
    (project / "binary.sql").write_bytes(b"\xff\xfe\x00")
    refused(["statements", "add", "binary.sql"], capsys, "cannot read binary.sql: it is not UTF-8")
    refused(["statements", "add", "revenue.sql", "--name", "Bad-Name"], capsys,
            "'Bad-Name' is not a valid name")
    refused(["statements", "add", "revenue.sql", "--pipeline", "9x"], capsys,
            "'9x' is not a valid pipeline")
    ok(["statements", "add", "revenue.sql"], capsys)
    refused(["statements", "add", "revenue.sql"], capsys,
            "a statements file is already registered as 'revenue'")
    refused(["statements", "show", "revnue"], capsys,
            "no statements file is registered as 'revnue'")
    refused(["statements", "remove", "nope"], capsys, "no statements file is registered")


def test_a_file_others_read_cannot_be_removed_until_they_are(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "spenders.sql").write_text(READS_REVENUE.split(";")[0] + ";")
    (project / "counts.sql").write_text(READS_REVENUE.split(";", 1)[1])
    ok(["statements", "add", "spenders.sql"], capsys)
    ok(["statements", "add", "counts.sql"], capsys)
    refused(["statements", "remove", "spenders"], capsys,
            "'spenders' cannot be removed: without it")
    ok(["statements", "remove", "counts"], capsys)
    ok(["statements", "remove", "spenders"], capsys)


def test_a_registered_file_that_no_longer_compiles_is_named(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "revenue.sql").write_text(REVENUE)
    ok(["statements", "add", "revenue.sql"], capsys)
    (project / "feeds" / "statements" / "transactions" / "revenue.sql").write_text(
        "CREATE TABLE revenue_per_currency AS SELECT nope FROM transaction_flattened;")
    refused(["statements", "show"], capsys, "statements/transactions/revenue.sql, line 1")
    (project / "feeds" / "statements" / "index.yaml").write_text("- {name: [broken")
    refused(["statements", "list"], capsys, "index.yaml: cannot be read", 1)


def test_an_add_killed_before_its_index_was_written_completes_when_run_again(
        project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
        ) -> None:
    """The index is written last: a kill before it leaves the file's feeds, owned by no
    registered file. Adding the same file again takes them over; another file may not."""
    from lakestream.derive.programs import StatementRegistry

    (project / "revenue.sql").write_text(REVENUE)
    original = StatementRegistry._save

    def killed(self: StatementRegistry, entries: object) -> None:
        raise KeyboardInterrupt  # the process dies here (as under kill -9: nothing cleaned)

    monkeypatch.setattr(StatementRegistry, "_save", killed)
    assert main(["statements", "add", "revenue.sql"]) != 0  # the CLI says "aborted"
    capsys.readouterr()
    monkeypatch.setattr(StatementRegistry, "_save", original)
    assert "revenue_per_currency" in feeds_json(capsys)  # left behind, and no file registered
    assert json.loads(ok(["statements", "list", "--format", "json"], capsys)) == []

    (project / "other.sql").write_text(REVENUE)  # the same output, another file: still refused
    refused(["statements", "add", "other.sql"], capsys,
            "revenue_per_currency is already the name of feed 'revenue_per_currency'")
    out = ok(["statements", "add", "revenue.sql"], capsys)
    assert "registered statements/transactions/revenue.sql: 1 output(s)" in out
    listed = json.loads(ok(["statements", "list", "--format", "json"], capsys))
    assert [(e["name"], e["outputs"]) for e in listed] == [("revenue", ["revenue_per_currency"])]
    assert feeds_json(capsys)["revenue_per_currency"]["pipeline"] == "transactions"
