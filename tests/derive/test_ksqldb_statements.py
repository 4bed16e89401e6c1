"""The shipped ksqlDB statements produce the topics and columns `lakestream process` writes."""

from __future__ import annotations

import re
from pathlib import Path

from lakestream.derive.sql import (
    ANONYMIZED_COLUMNS,
    BLACKLISTED_COLUMNS,
    FLATTENED_COLUMNS,
    TABLES,
)

STATEMENTS = Path(__file__).resolve().parents[2] / "sql" / "ksqldb"
CREATE = re.compile(
    r"CREATE (STREAM|TABLE) (\w+) WITH \((.*?)\) AS SELECT(.*?)\bFROM\b", re.S | re.I)


def _columns(select: str) -> list[str]:
    depth, current, items = 0, "", []
    for ch in select:
        depth += ch in "("
        depth -= ch in ")"
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += ch
    items.append(current)
    names = []
    for item in (i.strip() for i in items if i.strip()):
        alias = re.search(r"\bAS\s+(\w+)\s*$", item, re.I)
        names.append(alias.group(1) if alias else item.split(".")[-1].split("->")[-1])
    return [n.strip("`").lower() for n in names]


def _statements() -> dict[str, tuple[str, str, list[str]]]:
    text = "\n".join(p.read_text() for p in sorted(STATEMENTS.glob("*.sql")))
    text = re.sub(r"--[^\n]*", "", text)
    found = {}
    for kind, name, options, select in CREATE.findall(text):
        topic = re.search(r"KAFKA_TOPIC\s*=\s*'([^']+)'", options)
        assert topic, f"{name} names no topic"
        found[name.lower()] = (kind.upper(), topic.group(1), _columns(select))
    return found


def test_each_derived_stream_has_the_processors_columns_in_order() -> None:
    statements = _statements()
    expected = {"transaction_flattened": FLATTENED_COLUMNS,
                "transaction_stream_anonymized": ANONYMIZED_COLUMNS,
                "transaction_stream_blacklisted": BLACKLISTED_COLUMNS}
    for stream, columns in expected.items():
        kind, topic, found = statements[stream]
        assert (kind, topic) == ("STREAM", stream)
        assert found == list(columns), stream


def test_each_table_has_the_processors_key_and_value_columns() -> None:
    statements = _statements()
    for table, (key, values) in TABLES.items():
        kind, topic, found = statements[table]
        assert (kind, topic) == ("TABLE", table)
        assert found == [*key, *values], table


def test_the_parser_of_this_test_sees_aliases_and_nested_fields() -> None:
    assert _columns(" a, ROUND(x * y, 6) AS b, t.`user`->user_id AS c, f.d ") == ["a", "b", "c",
                                                                                   "d"]
