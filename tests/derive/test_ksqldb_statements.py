"""The shipped ksqlDB statements, read as a ksqlDB user reads them (``sql/ksqldb/``), name the
topics and columns `lakestream process` always published (an independent, textual check of
what tests/derive/statements/test_shipped_statements.py checks on the compiled plan)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.derive.statements.test_shipped_statements import TODAYS_STREAMS, TODAYS_TABLES

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


def test_the_folder_ksqldb_users_read_holds_the_files_the_processor_compiles() -> None:
    from lakestream.derive.shipped import shipped_files

    assert sorted(p.name for p in STATEMENTS.glob("*.sql")) == [f.name for f in shipped_files()]
    for path in STATEMENTS.glob("*.sql"):
        assert path.read_text() == next(f for f in shipped_files()
                                        if f.name == path.name).read_text()


def test_each_derived_stream_has_the_processors_columns_in_order() -> None:
    statements = _statements()
    for stream, columns in TODAYS_STREAMS.items():
        kind, topic, found = statements[stream]
        assert (kind, topic) == ("STREAM", stream)
        assert found == list(columns), stream


def test_each_table_has_the_processors_key_and_value_columns() -> None:
    statements = _statements()
    for table, (key, values) in TODAYS_TABLES.items():
        kind, topic, found = statements[table]
        assert (kind, topic) == ("TABLE", table)
        assert found == [*key, *values], table


def test_the_parser_of_this_test_sees_aliases_and_nested_fields() -> None:
    assert _columns(" a, ROUND(x * y, 6) AS b, t.`user`->user_id AS c, f.d ") == ["a", "b", "c",
                                                                                   "d"]
