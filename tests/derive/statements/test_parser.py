"""Parsing statements files into the syntax tree, every node with its line."""

from __future__ import annotations

import pytest

from lakestream.derive.statements import ast, parse_statements, types
from lakestream.derive.statements.tokens import tokenize
from tests.derive.statements.helpers import SHIPPED


def _query(text: str) -> ast.Query:
    statement = parse_statements(text).statements[0]
    assert isinstance(statement, ast.CreateAs | ast.InsertInto)
    return statement.query


def test_the_shipped_files_parse_into_their_statements_at_their_lines() -> None:
    found = []
    for path in sorted(SHIPPED.glob("*.sql")):
        for statement in parse_statements(path.read_text(), path.name).statements:
            name = getattr(statement, "name", "")
            found.append((path.name[:2], type(statement).__name__, name, statement.line))
    assert found == [
        ("01", "SetProperty", "auto.offset.reset", 18),
        ("01", "CreateSource", "transaction_stream", 20),
        ("01", "CreateSource", "exchange_rates", 42),
        ("01", "CreateSource", "blacklist", 48),
        ("02", "CreateAs", "transaction_flattened", 3),
        ("02", "CreateAs", "transaction_stream_anonymized", 34),
        ("02", "CreateAs", "transaction_stream_blacklisted", 63),
        ("03", "CreateAs", "user_transaction_summary", 8),
        ("03", "CreateAs", "user_transaction_summary_eur", 21),
        ("03", "CreateAs", "payment_method_totals", 36),
        ("03", "CreateAs", "product_purchase_counts", 49),
    ]


def test_the_source_declaration_keeps_types_keys_and_properties() -> None:
    statement = parse_statements((SHIPPED / "01_source_and_reference.sql").read_text()
                                 ).statements[1]
    assert isinstance(statement, ast.CreateSource)
    user = statement.columns[7]
    assert (user.name, user.line) == ("user", 28)
    assert user.type.ksql() == ("STRUCT<user_id STRING, name STRING, email STRING, "
                                "country STRING, city STRING>")
    assert statement.columns[6].type == types.INTEGER
    properties = {p.name: p.value for p in statement.properties}
    assert properties["TIMESTAMP_FORMAT"] == "yyyy-MM-dd'T'HH:mm:ss.SSSX"
    assert properties["KAFKA_TOPIC"] == "transactions"


def test_expressions_keep_the_line_they_are_written_on() -> None:
    statements = parse_statements((SHIPPED / "02_derived_streams.sql").read_text()).statements
    anonymized, blacklisted = statements[1], statements[2]
    assert isinstance(anonymized, ast.CreateAs) and isinstance(blacklisted, ast.CreateAs)
    hmac_item, ip_item = anonymized.query.items[8], anonymized.query.items[19]
    assert isinstance(hmac_item.expr, ast.FunctionCall)
    assert (hmac_item.expr.name, hmac_item.expr.line, hmac_item.alias) == (
        "HMAC_SHA256", 45, "user_id")
    assert isinstance(ip_item.expr, ast.Binary) and ip_item.expr.line == 58
    assert isinstance(ip_item.expr.left, ast.FunctionCall)
    assert (ip_item.expr.left.name, ip_item.expr.left.line) == ("REGEXP_EXTRACT", 58)
    reason = blacklisted.query.items[-1].expr
    assert isinstance(reason, ast.FunctionCall) and (reason.name, reason.line) == ("CONCAT_WS", 89)
    country = reason.args[2]
    assert isinstance(country, ast.Case) and country.line == 91
    assert country.whens[0][1] == ast.Binary(
        0, "+", ast.Literal(0, "string", "blacklisted country "),
        ast.ColumnRef(0, "f", "user_country"))
    joins = [(j.kind, j.relation, j.line) for j in blacklisted.query.joins]
    assert joins[:2] == [("LEFT", ast.Relation(0, "blacklist", "bu"), 100),
                         ("LEFT", ast.Relation(0, "blacklist", "bc"), 101)]
    assert len(joins) == 7


def test_comments_strings_and_quotes_are_read_as_ksqldb_reads_them() -> None:
    text = ("/* a comment\n   on two lines */ CREATE STREAM \"Mixed Case\" -- a comment\n"
            "AS SELECT 'it''s -- not a comment' AS `Quoted Name`, x y FROM Source_S;")
    statement = parse_statements(text).statements[0]
    assert isinstance(statement, ast.CreateAs)
    assert (statement.name, statement.line) == ("Mixed Case", 2)
    first, second = statement.query.items
    assert first == ast.SelectItem(0, ast.Literal(0, "string", "it's -- not a comment"),
                                   "Quoted Name")
    assert first.line == 3
    assert second.alias == "y"
    assert statement.query.source.name == "source_s"


def test_types_nest() -> None:
    statement = parse_statements(
        "CREATE STREAM s (a DECIMAL(10, 2), b ARRAY<STRUCT<x INT, `y` MAP<STRING, "
        "ARRAY<BIGINT>>>>, c VARCHAR ARRAY, d DATE, e TIMESTAMP, f BOOLEAN) "
        "WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON');").statements[0]
    assert isinstance(statement, ast.CreateSource)
    assert [c.type.ksql() for c in statement.columns] == [
        "DECIMAL(10, 2)", "ARRAY<STRUCT<x INTEGER, y MAP<STRING, ARRAY<BIGINT>>>>",
        "ARRAY<STRING>", "DATE", "TIMESTAMP", "BOOLEAN"]
    assert statement.columns[1].type.duckdb() == 'STRUCT("x" INTEGER, "y" MAP(VARCHAR, BIGINT[]))[]'


def test_windows_read_their_durations_in_milliseconds() -> None:
    query = _query("CREATE TABLE t AS SELECT a, COUNT(*) AS n FROM s WINDOW HOPPING (SIZE 2 "
                   "HOURS, ADVANCE BY 30 MINUTES, RETENTION 7 DAYS, GRACE PERIOD 0 SECONDS) "
                   "WHERE a > 1 GROUP BY (a) HAVING COUNT(*) > 2 EMIT CHANGES;")
    assert query.window == ast.Window(0, "HOPPING", 7_200_000, 1_800_000, 604_800_000, 0)
    assert query.group_by == (ast.ColumnRef(0, None, "a"),)
    assert query.having is not None and query.emit_changes


def test_operator_precedence_follows_ksqldbs_grammar() -> None:
    query = _query("CREATE STREAM t AS SELECT a + b * -c AS v FROM s WHERE NOT x = 1 AND y "
                   "OR z IS NOT NULL;")
    a, b, c, x, y, z = (ast.ColumnRef(0, None, n) for n in "abcxyz")
    assert query.items[0].expr == ast.Binary(0, "+", a, ast.Binary(0, "*", b, ast.Unary(0, "-",
                                                                                          c)))
    assert query.where == ast.Binary(
        0, "OR", ast.Binary(0, "AND", ast.Unary(0, "NOT", ast.Binary(
            0, "=", x, ast.Literal(0, "integer", "1"))), y), ast.IsNull(0, z, True))


def test_insert_into_and_partition_by_parse() -> None:
    statement = parse_statements("INSERT INTO out SELECT a FROM s PARTITION BY a EMIT CHANGES;"
                                 ).statements[0]
    assert isinstance(statement, ast.InsertInto)
    assert (statement.target, statement.query.partition_by) == (
        "out", (ast.ColumnRef(0, None, "a"),))


@pytest.mark.parametrize(("text", "kinds"), [
    ("a->b", ["ident", "op", "ident"]),
    ("`user`", ["quoted"]),
    ("'${LAKESTREAM_ANON_KEY}'", ["string"]),
    ("${X}", ["variable"]),
    ("1.5e3 .5 42", ["number", "number", "number"]),
    ("a<>b||c", ["ident", "op", "ident", "op", "ident"]),
])
def test_tokens(text: str, kinds: list[str]) -> None:
    assert [t.kind for t in tokenize(text)][:-1] == kinds
