"""Each scalar function and operator against a value computed by hand from ksqlDB's rules.

ksqlDB's rules are those of its source (``ksqldb-engine/…/function/udf``): Java's
``Math.round``, ``BigDecimal`` rounding, ``String.trim``/``replace``/``replaceAll``,
``Integer.parseInt``, ``Double.toString``, Guava's ``Splitter``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from lakestream.derive.statements import StreamPlan, compile_statements, register_pseudonyms
from lakestream.errors import ConfigError
from tests.derive.statements.helpers import ANON_KEY, connect, frozen_case

SOURCE = """CREATE STREAM s (s VARCHAR, n INT, b BIGINT, d DOUBLE, m DECIMAL(10, 3),
  ts TIMESTAMP, flag BOOLEAN, tags ARRAY<VARCHAR>, attrs MAP<STRING, INT>,
  rec STRUCT<name VARCHAR, age INT>) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON');
"""
EPOCH_MS = 1736944496789  # 2025-01-15T12:34:56.789Z


def evaluate(expression: str, key: bytes | None = ANON_KEY, **values: Any) -> Any:
    """The value of ``expression`` over one row of ``s`` holding ``values`` (others NULL)."""
    plan = compile_statements(SOURCE + f"CREATE STREAM o AS SELECT {expression} AS v FROM s;")
    source = plan.sources[0]
    columns = {c.name: pa.array([values.get(c.name)], c.type.arrow()) for c in source.columns}
    columns.update(_source_partition=pa.array([0], pa.int32()),
                   _source_offset=pa.array([0], pa.int64()),
                   _event_time=pa.array([EPOCH_MS], pa.int64()))
    con = connect()
    con.register("s", pa.table(columns))
    output = plan.output("o")
    assert isinstance(output, StreamPlan)
    register_pseudonyms(con, output.pseudonym_inputs_sql, key)
    return con.execute(output.sql).fetchall()[0][0]


CASES: list[tuple[str, dict[str, Any], Any]] = [
    # ROUND: Math.round (half toward +inf) and BigDecimal.valueOf(x) HALF_UP / HALF_DOWN (< 0)
    ("ROUND(d)", {"d": 2.5}, 3), ("ROUND(d)", {"d": -2.5}, -2),
    ("ROUND(d)", {"d": 0.49999999999999994}, 0), ("ROUND(d)", {"d": float("nan")}, 0),
    ("ROUND(d, 2)", {"d": 2.675}, 2.68), ("ROUND(d, 2)", {"d": -2.675}, -2.67),
    ("ROUND(d, 6)", {"d": 1.0000005}, 1.000001), ("ROUND(d, 0)", {"d": -0.5}, -0.0),
    ("ROUND(d, 2)", {"d": 1e300}, 1e300), ("ROUND(n)", {"n": 7}, 7),
    ("ROUND(m, 2)", {"m": Decimal("2.345")}, Decimal("2.350")),
    ("ROUND(m, 2)", {"m": Decimal("-2.345")}, Decimal("-2.340")),
    ("ROUND(m)", {"m": Decimal("2.5")}, Decimal("3")),
    ("ABS(n)", {"n": -3}, 3), ("ABS(d)", {"d": -2.5}, 2.5),
    ("CEIL(d)", {"d": 1.2}, 2.0), ("FLOOR(d)", {"d": -1.2}, -2.0), ("CEIL(n)", {"n": 5}, 5),
    ("CEIL(m)", {"m": Decimal("1.234")}, Decimal("2.000")),
    ("SQRT(n)", {"n": 16}, 4.0), ("LN(n)", {"n": 1}, 0.0), ("EXP(n)", {"n": 0}, 1.0),
    ("POWER(n, 10)", {"n": 2}, 1024.0),
    # strings
    ("UCASE(s)", {"s": "abc"}, "ABC"), ("LCASE(s)", {"s": "AbC"}, "abc"),
    ("TRIM(s)", {"s": "\t ab c \n\x01"}, "ab c"), ("LEN(s)", {"s": "héllo"}, 5),
    ("SUBSTRING(s, 2)", {"s": "hello"}, "ello"), ("SUBSTRING(s, 2, 3)", {"s": "hello"}, "ell"),
    ("SUBSTRING(s, 0, 2)", {"s": "hello"}, "he"), ("SUBSTRING(s, -3)", {"s": "hello"}, "llo"),
    ("SUBSTRING(s, -3, 2)", {"s": "hello"}, "ll"), ("SUBSTRING(s, 10)", {"s": "hello"}, ""),
    ("SUBSTRING(s, 2, -1)", {"s": "hello"}, ""), ("SUBSTRING(s, -9, 2)", {"s": "hello"}, "he"),
    ("CONCAT(s, NULL, 'b')", {"s": "a"}, "ab"), ("CONCAT(s)", {}, ""),
    ("CONCAT_WS('-', s, NULL, 'b')", {"s": "a"}, "a-b"), ("CONCAT_WS(s, 'a')", {}, None),
    ("REPLACE(s, 'an', 'AN')", {"s": "banana"}, "bANANa"),
    ("REPLACE(s, '', '-')", {"s": "abc"}, "-a-b-c-"), ("REPLACE(s, '', '-')", {"s": ""}, "-"),
    (r"REGEXP_REPLACE(s, '^(\d+\.\d+\.\d+)\.\d+$', '$1.0/24')", {"s": "203.0.113.7"},
     "203.0.113.0/24"),
    ("REGEXP_REPLACE(s, 'a', 'b')", {"s": "aaa"}, "bbb"),
    ("REGEXP_REPLACE(s, '(a)(b)', '$2$1')", {"s": "xab"}, "xba"),
    (r"REGEXP_REPLACE(s, '\.', '\$')", {"s": "a.b"}, "a$b"),
    (r"REGEXP_REPLACE(s, 'a', '\\')", {"s": "ab"}, "\\b"),
    (r"REGEXP_EXTRACT('(\d+)-(\d+)', s, 2)", {"s": "10-20"}, "20"),
    (r"REGEXP_EXTRACT('\d+', s)", {"s": "ab12cd34"}, "12"),
    (r"REGEXP_EXTRACT('x(\d)', s)", {"s": "abc"}, None),
    (r"REGEXP_EXTRACT('(\d)', s, 3)", {"s": "a1"}, None),
    ("SPLIT(s, ',')", {"s": "a,b,,c,"}, ["a", "b", "", "c", ""]),
    ("SPLIT(s, ',')", {"s": ""}, [""]), ("SPLIT(s, '')", {"s": "abc"}, ["a", "b", "c"]),
    ("SPLIT(s, '')", {"s": ""}, [""]),
    # nulls
    ("COALESCE(s, 'x')", {}, "x"), ("COALESCE(n, d)", {"d": 2.5}, 2.5),
    ("IFNULL(s, 'default')", {}, "default"), ("NULLIF(s, 'a')", {"s": "a"}, None),
    ("NULLIF(s, 'b')", {"s": "a"}, "a"),
    # CAST (CastEvaluator)
    ("CAST(d AS INT)", {"d": 2.7}, 2), ("CAST(d AS BIGINT)", {"d": -2.7}, -2),
    ("CAST(m AS INT)", {"m": Decimal("-9.999")}, -9),
    ("CAST(s AS INT)", {"s": " 12 "}, 12), ("CAST(s AS INT)", {"s": "1.5"}, None),
    ("CAST(s AS INT)", {"s": "99999999999"}, None), ("CAST(s AS DOUBLE)", {"s": "1e3"}, 1000.0),
    ("CAST(s AS BOOLEAN)", {"s": "YeS"}, True), ("CAST(s AS BOOLEAN)", {"s": " t "}, True),
    ("CAST(s AS BOOLEAN)", {"s": "no"}, False), ("CAST(s AS BOOLEAN)", {"s": ""}, False),
    ("CAST(d AS STRING)", {"d": 1e7}, "1.0E7"), ("CAST(d AS STRING)", {"d": 0.1}, "0.1"),
    ("CAST(d AS STRING)", {"d": 1.5e-5}, "1.5E-5"), ("CAST(d AS STRING)", {"d": 100.0}, "100.0"),
    ("CAST(n AS STRING)", {"n": 5}, "5"), ("CAST(flag AS STRING)", {"flag": True}, "true"),
    ("CAST(m AS STRING)", {"m": Decimal("1.500")}, "1.500"),
    ("CAST(ts AS STRING)", {"ts": datetime(2025, 1, 15, 12, 34, 56, 789000)},
     "2025-01-15T12:34:56.789"),
    ("CAST(n AS DECIMAL(5, 2))", {"n": 7}, Decimal("7.00")),
    # CASE, predicates, operators
    ("CASE WHEN n > 3 THEN 'big' ELSE 'small' END", {"n": 5}, "big"),
    ("CASE n WHEN 1 THEN 'one' WHEN 5 THEN 'five' END", {"n": 5}, "five"),
    ("CASE n WHEN 1 THEN 'one' END", {"n": 5}, None),
    ("CASE WHEN flag THEN n ELSE d END", {"flag": True, "n": 2, "d": 0.5}, 2.0),
    ("s LIKE 'he%'", {"s": "hello"}, True), (r"s LIKE 'a\_c' ESCAPE '\'", {"s": "abc"}, False),
    ("s NOT LIKE 'x%'", {"s": "hello"}, True), ("n IN (1, 5)", {"n": 5}, True),
    ("n NOT IN (1, 5)", {"n": 5}, False), ("n BETWEEN 1 AND 5", {"n": 5}, True),
    ("s IS NULL", {}, True), ("s IS NOT NULL", {}, False),
    ("n IS DISTINCT FROM NULL", {"n": 1}, True), ("NOT flag", {"flag": False}, True),
    ("flag AND n > 1 OR s = 'x'", {"flag": True, "n": 2}, True),
    ("'blacklisted user ' + s", {"s": "U00013"}, "blacklisted user U00013"),
    ("'x' + s", {}, None), ("s || '!'", {"s": "hey"}, "hey!"),
    ("n / 2", {"n": 7}, 3), ("n / 2", {"n": -7}, -3), ("n % -3", {"n": 7}, 1),
    ("n / 0", {"n": 7}, None), ("n % 0", {"n": 7}, None), ("d / 0", {"d": 1.0}, float("inf")),
    ("d / 2", {"d": 2.5}, 1.25), ("n * b", {"n": 3, "b": 2**40}, 3 * 2**40),
    ("d % 2", {"d": -7.5}, -1.5), ("m + 1.5", {"m": Decimal("2.345")}, Decimal("3.845")),
    ("m * 2", {"m": Decimal("1.005")}, Decimal("2.010")), ("-n", {"n": 4}, -4),
    # times (UTC)
    ("TIMESTAMPTOSTRING(b, 'yyyy-MM-dd''T''HH:mm:ss.SSSX')", {"b": EPOCH_MS},
     "2025-01-15T12:34:56.789Z"),
    ("TIMESTAMPTOSTRING(b, 'd/M/yy h:mm a', 'UTC')", {"b": EPOCH_MS}, "15/1/25 12:34 PM"),
    ("STRINGTOTIMESTAMP(s, 'yyyy-MM-dd''T''HH:mm:ss.SSSX')", {"s": "2025-01-15T12:34:56.789Z"},
     EPOCH_MS),
    ("STRINGTOTIMESTAMP(s, 'yyyy-MM-dd''T''HH:mm:ss.SSSXXX')",
     {"s": "2025-01-15T13:34:56.789+01:00"}, EPOCH_MS),
    ("STRINGTOTIMESTAMP(s, 'yyyy-MM-dd')", {"s": "15/01/2025"}, None),
    ("PARSE_TIMESTAMP(s, 'yyyy-MM-dd HH:mm')", {"s": "2025-01-15 12:34"},
     datetime(2025, 1, 15, 12, 34)),
    ("FORMAT_TIMESTAMP(ts, 'dd/MM/yyyy HH:mm:ss.SSS')",
     {"ts": datetime(2025, 1, 15, 12, 34, 56, 789000)}, "15/01/2025 12:34:56.789"),
    ("UNIX_TIMESTAMP(ts)", {"ts": datetime(2025, 1, 15, 12, 34, 56, 789000)}, EPOCH_MS),
    ("ROWTIME", {}, EPOCH_MS),
    # structs, arrays, maps
    ("rec->name", {"rec": {"name": "Ann", "age": 3}}, "Ann"),
    ("rec->AGE + 1", {"rec": {"name": "Ann", "age": 3}}, 4),
    ("tags[1]", {"tags": ["a", "b"]}, "a"), ("tags[-1]", {"tags": ["a", "b"]}, "b"),
    ("tags[5]", {"tags": ["a", "b"]}, None), ("attrs['k']", {"attrs": [("k", 7)]}, 7),
    ("attrs['missing']", {"attrs": [("k", 7)]}, None),
]


@pytest.mark.parametrize(("expression", "values", "expected"), CASES,
                         ids=[f"{c[0]}|{c[1]}" for c in CASES])
def test_each_function_gives_ksqldbs_value(expression: str, values: dict[str, Any],
                                           expected: Any) -> None:
    got = evaluate(expression, **values)
    assert got == expected and type(got) is type(expected), (got, expected)


def test_unix_timestamp_without_argument_is_the_current_time_in_ms() -> None:
    before = int(time.time() * 1000)
    got = evaluate("UNIX_TIMESTAMP()")
    assert before - 1000 <= got <= int(time.time() * 1000) + 1000


def test_hmac_sha256_is_todays_pseudonym_of_the_value() -> None:
    got = evaluate("HMAC_SHA256(s, '${LAKESTREAM_ANON_KEY}')", s="U00042")
    assert got == hmac.new(ANON_KEY, b"U00042", hashlib.sha256).hexdigest()
    _, _, today = frozen_case("spec_examples")  # U00042 is the first event's user
    assert got == today["transaction_stream_anonymized"][0]["user_id"]
    assert evaluate("HMAC_SHA256(s, '${LAKESTREAM_ANON_KEY}')") is None


def test_hmac_sha256_without_a_key_in_the_environment_is_refused() -> None:
    with pytest.raises(ConfigError, match="LAKESTREAM_ANON_KEY is not set"):
        evaluate("HMAC_SHA256(s, '${LAKESTREAM_ANON_KEY}')", key=None, s="U00042")


def test_the_key_appears_in_no_sql() -> None:
    plan = compile_statements(SOURCE + "CREATE STREAM o AS SELECT HMAC_SHA256(s, "
                                       "'${LAKESTREAM_ANON_KEY}') AS v FROM s;")
    output = plan.output("o")
    assert isinstance(output, StreamPlan)
    assert "LAKESTREAM_ANON_KEY" not in output.sql
    assert plan.needs_anon_key
    assert not compile_statements(SOURCE).needs_anon_key


def test_output_types_follow_ksqldbs_rules() -> None:
    plan = compile_statements(SOURCE + """CREATE STREAM o AS SELECT ROUND(d) AS r0,
      ROUND(d, 2) AS r2, ROUND(m) AS rm, n / 2 AS q, n * b AS p, m + 1.5 AS dm, LEN(s) AS l,
      SPLIT(s, ',') AS parts, CAST(n AS DECIMAL(5, 2)) AS c, ROWTIME AS t FROM s;""")
    types = {c.name: str(c.type) for c in plan.output("o").columns}
    assert types == {"r0": "BIGINT", "r2": "DOUBLE", "rm": "DECIMAL(8, 0)", "q": "INTEGER",
                     "p": "BIGINT", "dm": "DECIMAL(11, 3)", "l": "INTEGER",
                     "parts": "ARRAY<STRING>", "c": "DECIMAL(5, 2)", "t": "BIGINT"}


def test_every_supported_function_is_checked_here() -> None:
    import re

    from lakestream.derive.statements import supported_functions

    called = {name for expression, _, _ in CASES
              for name in re.findall(r"\b([A-Z_0-9]+)\(", expression)}
    called |= {"HMAC_SHA256", "UNIX_TIMESTAMP"}  # tested on their own below
    assert set(supported_functions()) <= called
    assert set(supported_functions()) == {
        "ABS", "CEIL", "CONCAT", "CONCAT_WS", "COALESCE", "EXP", "FLOOR", "FORMAT_TIMESTAMP",
        "HMAC_SHA256", "IFNULL", "LCASE", "LEN", "LN", "NULLIF", "PARSE_TIMESTAMP", "POWER",
        "REGEXP_EXTRACT", "REGEXP_REPLACE", "REPLACE", "ROUND", "SPLIT", "SQRT",
        "STRINGTOTIMESTAMP", "SUBSTRING", "TIMESTAMPTOSTRING", "TRIM", "UCASE",
        "UNIX_TIMESTAMP"}
