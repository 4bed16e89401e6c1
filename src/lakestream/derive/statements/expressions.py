"""Expressions of ksqlDB's grammar, parsed by precedence climbing into :mod:`.ast` nodes.

Precedence, loosest first (as in ksqlDB's ``SqlBase.g4``): ``OR``, ``AND``,
``NOT``, predicates (comparisons, ``BETWEEN``, ``IN``, ``LIKE``, ``IS NULL``,
``IS DISTINCT FROM``), ``||``, ``+ -``, ``* / %``, unary ``- +``, then
primaries (literals, ``CASE``, ``CAST``, calls, columns, ``->``, ``[ ]``).
"""

from __future__ import annotations

from lakestream.derive.statements import ast
from lakestream.derive.statements.cursor import Cursor
from lakestream.derive.statements.tokens import IDENT, NUMBER, QUOTED, STRING, VARIABLE, Token
from lakestream.derive.statements.typesyntax import parse_type

_COMPARISONS = ("=", "<>", "!=", "<", "<=", ">", ">=")
_CONSTRUCTORS = {"ARRAY": "[", "MAP": "(", "STRUCT": "("}
_TYPE_LITERALS = ("TIMESTAMP", "DATE", "TIME", "INTERVAL")
ANON_KEY_VARIABLE = "LAKESTREAM_ANON_KEY"


def parse_expression(cur: Cursor) -> ast.Expr:
    """One boolean or value expression."""
    return _or(cur)


def _or(cur: Cursor) -> ast.Expr:
    left = _and(cur)
    while token := cur.accept_word("OR"):
        left = ast.Binary(token.line, "OR", left, _and(cur))
    return left


def _and(cur: Cursor) -> ast.Expr:
    left = _not(cur)
    while token := cur.accept_word("AND"):
        left = ast.Binary(token.line, "AND", left, _not(cur))
    return left


def _not(cur: Cursor) -> ast.Expr:
    if token := cur.accept_word("NOT"):
        return ast.Unary(token.line, "NOT", _not(cur))
    return _predicate(cur)


def _predicate(cur: Cursor) -> ast.Expr:
    value = _concat(cur)
    line = cur.current.line
    if token := cur.accept_op(*_COMPARISONS):
        op = "<>" if token.text == "!=" else token.text
        return ast.Binary(line, op, value, _concat(cur))
    if cur.accept_word("IS"):
        negated = cur.accept_word("NOT") is not None
        if cur.accept_word("NULL"):
            return ast.IsNull(line, value, negated)
        cur.expect_word("DISTINCT", "after IS")
        cur.expect_word("FROM", "after IS DISTINCT")
        op = "IS NOT DISTINCT FROM" if negated else "IS DISTINCT FROM"
        return ast.Binary(line, op, value, _concat(cur))
    negated = cur.at_word("NOT") and cur.peek().is_word("BETWEEN", "IN", "LIKE")
    if negated:
        cur.advance()
    if cur.accept_word("BETWEEN"):
        low = _concat(cur)
        cur.expect_word("AND", "in BETWEEN … AND …")
        return ast.Between(line, value, low, _concat(cur), negated)
    if cur.accept_word("IN"):
        return ast.InList(line, value, _in_items(cur), negated)
    if cur.accept_word("LIKE"):
        pattern = _concat(cur)
        escape = None
        if cur.accept_word("ESCAPE"):
            if cur.current.kind != STRING:
                cur.fail("ESCAPE takes a one-character string")
            escape = cur.advance().text
        return ast.Like(line, value, pattern, escape, negated)
    return value


def _in_items(cur: Cursor) -> tuple[ast.Expr, ...]:
    cur.expect_op("(", "after IN")
    if cur.at_word("SELECT"):
        cur.fail("subqueries (IN (SELECT …)) are not supported")
    items = [parse_expression(cur)]
    while cur.accept_op(","):
        items.append(parse_expression(cur))
    cur.expect_op(")", "to close IN (…)")
    return tuple(items)


def _concat(cur: Cursor) -> ast.Expr:
    left = _additive(cur)
    while token := cur.accept_op("||"):
        left = ast.Binary(token.line, "||", left, _additive(cur))
    return left


def _additive(cur: Cursor) -> ast.Expr:
    left = _multiplicative(cur)
    while token := cur.accept_op("+", "-"):
        left = ast.Binary(token.line, token.text, left, _multiplicative(cur))
    return left


def _multiplicative(cur: Cursor) -> ast.Expr:
    left = _unary(cur)
    while token := cur.accept_op("*", "/", "%"):
        left = ast.Binary(token.line, token.text, left, _unary(cur))
    return left


def _unary(cur: Cursor) -> ast.Expr:
    if token := cur.accept_op("-", "+"):
        return ast.Unary(token.line, token.text, _unary(cur))
    return _postfix(cur)


def _postfix(cur: Cursor) -> ast.Expr:
    expr = _primary(cur)
    while True:
        if token := cur.accept_op("->"):
            if cur.at_op("*"):
                cur.fail("struct expansion (->*) is not supported: name the fields")
            expr = ast.Dereference(token.line, expr, cur.identifier("a struct field name"))
        elif token := cur.accept_op("["):
            index = parse_expression(cur)
            cur.expect_op("]", "to close the subscript")
            expr = ast.Subscript(token.line, expr, index)
        elif cur.at_word("AT") and cur.peek().is_word("TIME"):
            cur.fail("AT TIME ZONE is not supported")
        else:
            return expr


def _primary(cur: Cursor) -> ast.Expr:
    token = cur.current
    if token.kind == NUMBER:
        cur.advance()
        return _number(token)
    if token.kind == STRING:
        cur.advance()
        return ast.Literal(token.line, "string", token.text)
    if token.kind == VARIABLE:
        cur.fail(f"the variable ${{{token.text}}} is not supported: Lakestream substitutes "
                 f"only '${{{ANON_KEY_VARIABLE}}}', as HMAC_SHA256's key")
    if token.is_op("("):
        return _parenthesized(cur)
    if token.kind == QUOTED:
        return _name(cur)
    if token.kind != IDENT:
        cur.fail(f"expected an expression, found {token.describe()}")
    return _keyword_primary(cur, token)


def _keyword_primary(cur: Cursor, token: Token) -> ast.Expr:
    word = token.text.upper()
    nxt = cur.peek()
    if word in ("NULL", "TRUE", "FALSE"):
        cur.advance()
        return ast.Literal(token.line, "null" if word == "NULL" else "boolean", word.lower())
    if word == "CASE":
        return _case(cur)
    if word == "CAST" and nxt.is_op("("):
        return _cast(cur)
    if word in _CONSTRUCTORS and nxt.is_op(_CONSTRUCTORS[word]):
        cur.fail(f"{word} constructors ({word}{_CONSTRUCTORS[word]}…) are not supported")
    if word in _TYPE_LITERALS and nxt.kind == STRING:
        cur.fail(f"{word} '…' literals are not supported: use PARSE_TIMESTAMP or CAST")
    if word == "SELECT":
        cur.fail("subqueries are not supported")
    if word == "EXISTS" and nxt.is_op("("):
        cur.fail("subqueries (EXISTS) are not supported")
    return _name(cur)


def _name(cur: Cursor) -> ast.Expr:
    token = cur.current
    name = cur.identifier("a column or function name")
    if token.kind == IDENT and cur.at_op("("):
        return _call(cur, token, name)
    if cur.at_op(".") and cur.peek().kind in (IDENT, QUOTED):
        cur.advance()
        return ast.ColumnRef(token.line, name, cur.identifier("a column name"))
    if cur.at_op(".") and cur.peek().is_op("*"):
        cur.fail(f"{name}.* is only allowed as a whole SELECT item")
    return ast.ColumnRef(token.line, None, name)


def _call(cur: Cursor, token: Token, name: str) -> ast.Expr:
    cur.expect_op("(", "after the function name")
    if cur.accept_op("*"):
        cur.expect_op(")", f"after {name.upper()}(*")
        return ast.FunctionCall(token.line, name.upper(), (), star=True)
    if cur.at_word("DISTINCT"):
        cur.fail(f"{name.upper()}(DISTINCT …) is not supported: use COUNT_DISTINCT(…)")
    args: list[ast.Expr] = []
    if not cur.at_op(")"):
        args.append(_argument(cur))
        while cur.accept_op(","):
            args.append(_argument(cur))
    cur.expect_op(")", f"to close {name.upper()}(…)")
    return ast.FunctionCall(token.line, name.upper(), tuple(args))


def _argument(cur: Cursor) -> ast.Expr:
    if _at_lambda(cur):
        cur.fail("lambda functions (x => …) are not supported")
    return parse_expression(cur)


def _at_lambda(cur: Cursor) -> bool:
    """Whether the tokens ahead are ``x =>`` or ``(x, y) =>``."""
    if cur.current.kind in (IDENT, QUOTED):
        return cur.peek().is_op("=>")
    if not cur.at_op("("):
        return False
    ahead = 1
    while cur.peek(ahead).kind in (IDENT, QUOTED) or cur.peek(ahead).is_op(","):
        ahead += 1
    return cur.peek(ahead).is_op(")") and cur.peek(ahead + 1).is_op("=>")


def _parenthesized(cur: Cursor) -> ast.Expr:
    cur.expect_op("(", "")
    if cur.at_word("SELECT"):
        cur.fail("subqueries are not supported")
    inner = parse_expression(cur)
    cur.expect_op(")", "to close the parenthesis")
    return inner


def _case(cur: Cursor) -> ast.Expr:
    line = cur.advance().line
    operand = None if cur.at_word("WHEN") else parse_expression(cur)
    whens = []
    while cur.accept_word("WHEN"):
        condition = parse_expression(cur)
        cur.expect_word("THEN", "after CASE … WHEN …")
        whens.append((condition, parse_expression(cur)))
    if not whens:
        cur.fail("CASE needs at least one WHEN … THEN …")
    default = parse_expression(cur) if cur.accept_word("ELSE") else None
    cur.expect_word("END", "to close CASE")
    return ast.Case(line, operand, tuple(whens), default)


def _cast(cur: Cursor) -> ast.Expr:
    line = cur.advance().line
    cur.expect_op("(", "after CAST")
    operand = parse_expression(cur)
    cur.expect_word("AS", "in CAST(… AS type)")
    target = parse_type(cur)
    cur.expect_op(")", "to close CAST(…)")
    return ast.Cast(line, operand, target)


def _number(token: Token) -> ast.Literal:
    text = token.text
    if "e" in text.lower():
        return ast.Literal(token.line, "double", text)
    if "." in text:
        return ast.Literal(token.line, "decimal", text)
    return ast.Literal(token.line, "integer", text)
