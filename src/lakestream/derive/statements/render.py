"""Expressions written back as ksqlDB text, for messages and ``statements show``."""

from __future__ import annotations

from lakestream.derive.statements import ast


def text(node: ast.Expr) -> str:
    """``node`` as a statement would write it (normalized spacing and case)."""
    if isinstance(node, ast.Literal):
        if node.kind == "string":
            return "'" + node.text.replace("'", "''") + "'"
        return node.text.upper() if node.kind in ("boolean", "null") else node.text
    if isinstance(node, ast.ColumnRef):
        return f"{node.qualifier}.{node.name}" if node.qualifier else node.name
    if isinstance(node, ast.Dereference):
        return f"{text(node.base)}->{node.field_name}"
    if isinstance(node, ast.Subscript):
        return f"{text(node.base)}[{text(node.index)}]"
    if isinstance(node, ast.FunctionCall):
        return f"{node.name}({'*' if node.star else ', '.join(text(a) for a in node.args)})"
    if isinstance(node, ast.Cast):
        return f"CAST({text(node.operand)} AS {node.target})"
    if isinstance(node, ast.Case):
        head = "CASE" if node.operand is None else f"CASE {text(node.operand)}"
        whens = " ".join(f"WHEN {text(c)} THEN {text(v)}" for c, v in node.whens)
        tail = f" ELSE {text(node.default)}" if node.default is not None else ""
        return f"{head} {whens}{tail} END"
    if isinstance(node, ast.Unary):
        return f"NOT {text(node.operand)}" if node.op == "NOT" else f"{node.op}{text(node.operand)}"
    if isinstance(node, ast.Binary):
        return f"{_operand(node.left)} {node.op} {_operand(node.right)}"
    return _predicate_text(node)


def _operand(node: ast.Expr) -> str:
    """An operator's operand, parenthesized when it is an operation itself."""
    nested = isinstance(node, ast.Binary | ast.Between | ast.InList | ast.Like | ast.IsNull)
    return f"({text(node)})" if nested else text(node)


def _predicate_text(node: ast.Expr) -> str:
    not_ = "NOT " if getattr(node, "negated", False) else ""
    if isinstance(node, ast.Between):
        return f"{text(node.operand)} {not_}BETWEEN {text(node.low)} AND {text(node.high)}"
    if isinstance(node, ast.InList):
        return f"{text(node.operand)} {not_}IN ({', '.join(text(i) for i in node.items)})"
    if isinstance(node, ast.Like):
        escape = f" ESCAPE '{node.escape}'" if node.escape is not None else ""
        return f"{text(node.operand)} {not_}LIKE {text(node.pattern)}{escape}"
    if isinstance(node, ast.IsNull):
        return f"{text(node.operand)} IS {'NOT ' if node.negated else ''}NULL"
    return type(node).__name__


def children(node: ast.Expr) -> list[ast.Expr]:
    """The direct sub-expressions of ``node``."""
    if isinstance(node, ast.Dereference):
        return [node.base]
    if isinstance(node, ast.Subscript):
        return [node.base, node.index]
    if isinstance(node, ast.FunctionCall):
        return list(node.args)
    if isinstance(node, ast.Cast | ast.Unary | ast.IsNull):
        return [node.operand]
    if isinstance(node, ast.Case):
        found = [] if node.operand is None else [node.operand]
        for condition, value in node.whens:
            found += [condition, value]
        return found + ([] if node.default is None else [node.default])
    if isinstance(node, ast.Binary):
        return [node.left, node.right]
    if isinstance(node, ast.Between):
        return [node.operand, node.low, node.high]
    if isinstance(node, ast.InList):
        return [node.operand, *node.items]
    if isinstance(node, ast.Like):
        return [node.operand, node.pattern]
    return []


def walk(node: ast.Expr) -> list[ast.Expr]:
    """``node`` and every expression inside it, outermost first."""
    found = [node]
    for child in children(node):
        found += walk(child)
    return found
