"""The statement level of a statements file: a recursive-descent parser into :mod:`.ast`.

Statements (``SET``, ``CREATE STREAM|TABLE``, ``CREATE … AS SELECT``,
``INSERT INTO … SELECT``) and the clauses of a query follow ksqlDB's grammar and
order; expressions go to :mod:`.expressions`. Whatever ksqlDB accepts but
Lakestream does not run is refused here when the syntax alone says so (``EMIT
FINAL``, ``SESSION`` windows, ``WITHIN`` joins, ``LIMIT``, ``DROP``…), and by
the planner when it needs the catalog (a join to a stream, an unknown column).
Stream and table names are case-insensitive (stored lower-cased unless quoted).
"""

from __future__ import annotations

from lakestream.derive.statements import ast
from lakestream.derive.statements.cursor import Cursor
from lakestream.derive.statements.errors import StatementError
from lakestream.derive.statements.expressions import parse_expression
from lakestream.derive.statements.tokens import EOF, IDENT, NUMBER, QUOTED, STRING, tokenize
from lakestream.derive.statements.typesyntax import parse_type
from lakestream.derive.statements.windows import parse_window

_INTERACTIVE = "is an interactive command, not a statement Lakestream runs"
_COMMANDS = {
    "DROP": "DROP is not supported in a statements file: `lakestream statements remove` the "
            "file that creates it",
    "TERMINATE": "TERMINATE is not supported: Lakestream runs every statement of the "
                 "registered files (`lakestream statements remove` stops them)",
    "PAUSE": "PAUSE is not supported: Lakestream runs every statement of the registered files",
    "RESUME": "RESUME is not supported: Lakestream runs every statement of the registered files",
    "PRINT": f"PRINT {_INTERACTIVE}", "DESCRIBE": f"DESCRIBE {_INTERACTIVE}",
    "SHOW": f"SHOW {_INTERACTIVE}", "LIST": f"LIST {_INTERACTIVE}",
    "EXPLAIN": f"EXPLAIN {_INTERACTIVE} (`lakestream statements show` describes the plan)",
    "DEFINE": "DEFINE (variables) is not supported: Lakestream substitutes no variables",
    "UNDEFINE": "UNDEFINE (variables) is not supported: Lakestream substitutes no variables",
    "UNSET": "UNSET is not supported (SET 'auto.offset.reset' is the one property that counts)",
    "ALTER": "ALTER is not supported: declare every column in CREATE STREAM/TABLE",
    "ASSERT": "ASSERT is not supported",
    "RUN": "RUN SCRIPT is not supported: register each file with `lakestream statements add`",
}
_CLAUSE_ENDS = ("FROM",)


def parse_statements(text: str, source: str | None = None) -> ast.StatementFile:
    """Parse a statements file; raise :class:`StatementError` at the first refusal.

    Args:
        text: The file's content.
        source: The file's name, for messages (``revenue.sql, line 3: …``).
    """
    try:
        cur = Cursor(tokenize(text))
        statements: list[ast.Statement] = []
        while cur.current.kind != EOF:
            if not cur.accept_op(";"):
                statements.append(_statement(cur))
        return ast.StatementFile(source, tuple(statements))
    except StatementError as exc:
        raise exc.in_file(source) from None


def _statement(cur: Cursor) -> ast.Statement:
    token = cur.current
    word = token.text.upper() if token.kind == IDENT else ""
    if word == "SET":
        return _set(cur)
    if word == "CREATE":
        return _create(cur)
    if word == "INSERT":
        return _insert(cur)
    if word == "SELECT":
        query = _query(cur)
        if query.emit_changes:
            cur.fail("transient push queries (SELECT … EMIT CHANGES outside CREATE or INSERT "
                     "INTO) are not supported: make it a CREATE STREAM/TABLE … AS SELECT", token)
        cur.fail("pull queries (SELECT without EMIT CHANGES / CREATE) are not supported", token)
    if word in _COMMANDS:
        cur.fail(_COMMANDS[word])
    cur.fail(f"expected a statement (CREATE, INSERT INTO or SET), found {token.describe()}")


def _end(cur: Cursor) -> None:
    if not cur.at_op(";"):
        found = cur.current
        if found.is_word("LIMIT"):
            cur.fail("LIMIT is not supported (a Lakestream stream or table is never truncated)")
        if found.is_word("ORDER"):
            cur.fail("ORDER BY is not supported (streams keep their input order)")
        if found.is_word("UNION"):
            cur.fail("UNION is not supported: write one INSERT INTO per query")
        if found.is_word("WITHIN"):
            cur.fail("WITHIN belongs to stream-stream joins, which are not supported")
        cur.fail(f"expected ';' at the end of the statement, found {found.describe()}")
    cur.advance()


def _set(cur: Cursor) -> ast.Statement:
    line = cur.advance().line
    if cur.current.kind != STRING:
        cur.fail("SET takes 'property' = 'value'")
    name = cur.advance().text
    cur.expect_op("=", f"after SET '{name}'")
    if cur.current.kind != STRING:
        cur.fail(f"SET '{name}' needs a quoted value")
    value = cur.advance().text
    _end(cur)
    return ast.SetProperty(line, name, value)


def relation_name(cur: Cursor, what: str) -> str:
    """A stream or table name: unquoted names are case-insensitive (lower-cased)."""
    token = cur.current
    name = cur.identifier(what)
    return name.lower() if token.kind == IDENT else name


def _create(cur: Cursor) -> ast.Statement:
    line = cur.advance().line
    if cur.at_word("OR"):
        cur.fail("CREATE OR REPLACE is not supported: `lakestream statements remove` the file, "
                 "then add the new one")
    if cur.accept_word("SOURCE", "SINK"):
        if cur.at_word("CONNECTOR"):
            cur.fail("connectors (CREATE SOURCE/SINK CONNECTOR) are not supported: Lakestream "
                     "reads and writes Kafka topics")
        cur.fail("CREATE SOURCE STREAM/TABLE is not supported: use CREATE STREAM/TABLE")
    if cur.at_word("TYPE"):
        cur.fail("CREATE TYPE is not supported: write the STRUCT<…> type out in full")
    if cur.at_word("CONNECTOR"):
        cur.fail("connectors are not supported: Lakestream reads and writes Kafka topics")
    if not cur.at_word("STREAM", "TABLE"):
        cur.fail(f"expected STREAM or TABLE after CREATE, found {cur.current.describe()}")
    kind = cur.advance().text.upper()
    if cur.at_word("IF"):
        cur.fail("IF NOT EXISTS is not supported: a name is created once, by one file")
    name = relation_name(cur, f"the {kind.lower()}'s name")
    if cur.at_op("("):
        columns = _columns(cur, kind)
        properties = _properties(cur) if cur.accept_word("WITH") else ()
        _end(cur)
        return ast.CreateSource(line, kind, name, columns, properties)
    properties = _properties(cur) if cur.accept_word("WITH") else ()
    if not cur.at_word("AS"):
        cur.fail(f"expected the columns (…) or AS SELECT after CREATE {kind} {name}")
    cur.advance()
    query = _query(cur)
    _end(cur)
    return ast.CreateAs(line, kind, name, properties, query)


def _insert(cur: Cursor) -> ast.Statement:
    line = cur.advance().line
    cur.expect_word("INTO", "after INSERT")
    target = relation_name(cur, "the stream to insert into")
    if cur.at_word("VALUES") or cur.at_op("("):
        cur.fail("INSERT INTO … VALUES is not supported: produce the events to the topic")
    if cur.at_word("WITH"):
        cur.fail("INSERT INTO … WITH (…) is not supported")
    query = _query(cur)
    _end(cur)
    return ast.InsertInto(line, target, query)


def _columns(cur: Cursor, kind: str) -> tuple[ast.ColumnDef, ...]:
    cur.expect_op("(", "")
    columns: list[ast.ColumnDef] = []
    seen: set[str] = set()
    while True:
        token = cur.current
        name = cur.identifier("a column name")
        if name.lower() in seen:
            cur.fail(f"the column {name} is declared twice", token)
        seen.add(name.lower())
        column_type = parse_type(cur)
        primary = cur.accept_word("PRIMARY") is not None
        key = cur.accept_word("KEY") is not None
        if primary and not key:
            cur.fail("expected KEY after PRIMARY")
        if cur.at_word("HEADERS", "HEADER"):
            cur.fail("HEADERS columns are not supported (Lakestream reads the value and key)")
        if primary and kind == "STREAM":
            cur.fail("a stream's key column is declared KEY, not PRIMARY KEY", token)
        if key and not primary and kind == "TABLE":
            cur.fail("a table's key column is declared PRIMARY KEY", token)
        columns.append(ast.ColumnDef(token.line, name, column_type, key=key and not primary,
                                     primary_key=primary))
        if not cur.accept_op(","):
            break
    cur.expect_op(")", "to close the column list")
    return tuple(columns)


def _properties(cur: Cursor) -> tuple[ast.Property, ...]:
    cur.expect_op("(", "after WITH")
    properties: list[ast.Property] = []
    while True:
        token = cur.current
        if token.kind not in (IDENT, QUOTED, STRING):
            cur.fail(f"expected a property name, found {token.describe()}")
        cur.advance()
        cur.expect_op("=", f"after {token.text}")
        value = cur.current
        if value.kind not in (STRING, NUMBER, IDENT):
            cur.fail(f"expected a value for {token.text}, found {value.describe()}")
        cur.advance()
        properties.append(ast.Property(token.line, token.text.upper(), value.text))
        if not cur.accept_op(","):
            break
    cur.expect_op(")", "to close WITH (…)")
    return tuple(properties)


def _query(cur: Cursor) -> ast.Query:
    line = cur.expect_word("SELECT", "").line
    items = _select_items(cur)
    cur.expect_word("FROM", "after the SELECT list")
    source = _relation(cur)
    joins = _joins(cur)
    window = parse_window(cur) if cur.at_word("WINDOW") else None
    where = parse_expression(cur) if cur.accept_word("WHERE") else None
    group_by = _expression_list(cur) if _accept_pair(cur, "GROUP") else ()
    partition_by = _expression_list(cur) if _accept_pair(cur, "PARTITION") else ()
    having = parse_expression(cur) if cur.accept_word("HAVING") else None
    emit_changes = False
    if token := cur.accept_word("EMIT"):
        if cur.at_word("FINAL"):
            cur.fail("EMIT FINAL is not supported (only EMIT CHANGES)", token)
        cur.expect_word("CHANGES", "after EMIT")
        emit_changes = True
    return ast.Query(line, items, source, joins, window, where, group_by, partition_by, having,
                     emit_changes)


def _accept_pair(cur: Cursor, first: str) -> bool:
    """Consume ``GROUP BY`` / ``PARTITION BY``."""
    if not cur.at_word(first):
        return False
    cur.advance()
    cur.expect_word("BY", f"after {first}")
    return True


def _select_items(cur: Cursor) -> tuple[ast.SelectItem, ...]:
    items = [_select_item(cur)]
    while cur.accept_op(","):
        items.append(_select_item(cur))
    return tuple(items)


def _select_item(cur: Cursor) -> ast.SelectItem:
    token = cur.current
    if cur.accept_op("*"):
        return ast.SelectItem(token.line, None, star=True)
    if token.kind in (IDENT, QUOTED) and cur.peek().is_op(".") and cur.peek(2).is_op("*"):
        qualifier = relation_name(cur, "a source name")
        cur.advance()
        cur.advance()
        return ast.SelectItem(token.line, None, star=True, star_qualifier=qualifier)
    expr = parse_expression(cur)
    alias = None
    if cur.accept_word("AS") or (cur.current.kind in (IDENT, QUOTED)
                                 and not cur.at_word(*_CLAUSE_ENDS)):
        alias = cur.identifier("an alias after AS")
    return ast.SelectItem(token.line, expr, alias)


def _relation(cur: Cursor) -> ast.Relation:
    token = cur.current
    if token.is_op("("):
        cur.fail("subqueries (FROM (SELECT …)) are not supported")
    name = relation_name(cur, "a stream or table name")
    alias = None
    if cur.accept_word("AS") or cur.current.kind == QUOTED or (
            cur.current.kind == IDENT and not _is_clause_word(cur)):
        alias = relation_name(cur, "an alias")
    return ast.Relation(token.line, name, alias)


_CLAUSE_WORDS = ("JOIN", "INNER", "LEFT", "RIGHT", "FULL", "CROSS", "OUTER", "WINDOW", "WHERE",
                 "GROUP", "PARTITION", "HAVING", "EMIT", "LIMIT", "ORDER", "UNION", "ON",
                 "WITHIN")


def _is_clause_word(cur: Cursor) -> bool:
    return cur.at_word(*_CLAUSE_WORDS)


def _joins(cur: Cursor) -> tuple[ast.Join, ...]:
    joins: list[ast.Join] = []
    while cur.at_word("JOIN", "INNER", "LEFT", "RIGHT", "FULL", "CROSS", "OUTER"):
        token = cur.advance()
        word = token.text.upper()
        if word in ("RIGHT", "FULL", "CROSS", "OUTER"):
            what = "FULL OUTER" if word == "OUTER" else word
            cur.fail(f"{what} JOIN is not supported (JOIN or LEFT JOIN a stream to a table)",
                     token)
        if word in ("INNER", "LEFT"):
            if word == "LEFT":
                cur.accept_word("OUTER")
            cur.expect_word("JOIN", f"after {word}")
        relation = _relation(cur)
        if cur.at_word("WITHIN"):
            cur.fail(f"a stream-stream join (JOIN {relation.name} WITHIN …) is not supported: "
                     "join a stream to a table keyed by the join column")
        cur.expect_word("ON", f"after JOIN {relation.name}")
        joins.append(ast.Join(token.line, "LEFT" if word == "LEFT" else "INNER", relation,
                              parse_expression(cur)))
    return tuple(joins)


def _expression_list(cur: Cursor) -> tuple[ast.Expr, ...]:
    """``a, b`` or ksqlDB's parenthesized ``(a, b)``."""
    if cur.at_op("(") and cur.peek().is_op(")"):
        cur.fail("an empty expression list is not supported")
    start = cur.pos
    if cur.accept_op("("):
        items = _comma_list(cur)
        if cur.accept_op(")") and (cur.at_op(";") or cur.at_word(*_CLAUSE_WORDS, "EMIT")):
            return items
        cur.pos = start  # a parenthesized expression, not a list
    return _comma_list(cur)


def _comma_list(cur: Cursor) -> tuple[ast.Expr, ...]:
    items = [parse_expression(cur)]
    while cur.accept_op(","):
        items.append(parse_expression(cur))
    return tuple(items)
