"""The syntax tree of a statements file: the supported subset of ksqlDB, as frozen dataclasses.

Every node keeps the line it starts on. ``line`` takes no part in equality, so
two nodes are equal when they say the same thing wherever they are written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lakestream.derive.statements.types import SqlType

# -- expressions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Expr:
    """Base of every expression node."""

    line: int = field(compare=False)


@dataclass(frozen=True)
class Literal(Expr):
    """A constant: ``kind`` is ``string``, ``integer``, ``decimal``, ``double``,
    ``boolean`` or ``null``; ``text`` is its value as written (strings unescaped)."""

    kind: str
    text: str


@dataclass(frozen=True)
class ColumnRef(Expr):
    """``name`` or ``qualifier.name``; ``ROWTIME``, ``WINDOWSTART``… are column refs too."""

    qualifier: str | None
    name: str


@dataclass(frozen=True)
class Dereference(Expr):
    """``base->field``: a struct's field."""

    base: Expr
    field_name: str


@dataclass(frozen=True)
class Subscript(Expr):
    """``base[index]``: an array element (1-based) or a map value."""

    base: Expr
    index: Expr


@dataclass(frozen=True)
class FunctionCall(Expr):
    """``NAME(args)``, or ``NAME(*)`` when ``star`` (``COUNT(*)``)."""

    name: str
    args: tuple[Expr, ...]
    star: bool = False


@dataclass(frozen=True)
class Cast(Expr):
    """``CAST(operand AS target)``."""

    operand: Expr
    target: SqlType


@dataclass(frozen=True)
class Case(Expr):
    """``CASE [operand] WHEN … THEN … [ELSE default] END``."""

    operand: Expr | None
    whens: tuple[tuple[Expr, Expr], ...]
    default: Expr | None


@dataclass(frozen=True)
class Unary(Expr):
    """``-x``, ``+x`` or ``NOT x``."""

    op: str
    operand: Expr


@dataclass(frozen=True)
class Binary(Expr):
    """``left op right``: arithmetic, ``||``, comparison, ``AND``, ``OR``,
    ``IS DISTINCT FROM``, ``IS NOT DISTINCT FROM``."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Between(Expr):
    """``operand [NOT] BETWEEN low AND high``."""

    operand: Expr
    low: Expr
    high: Expr
    negated: bool


@dataclass(frozen=True)
class InList(Expr):
    """``operand [NOT] IN (items)``."""

    operand: Expr
    items: tuple[Expr, ...]
    negated: bool


@dataclass(frozen=True)
class Like(Expr):
    """``operand [NOT] LIKE pattern [ESCAPE escape]``."""

    operand: Expr
    pattern: Expr
    escape: str | None
    negated: bool


@dataclass(frozen=True)
class IsNull(Expr):
    """``operand IS [NOT] NULL``."""

    operand: Expr
    negated: bool


# -- the parts of a query ------------------------------------------------------------------


@dataclass(frozen=True)
class SelectItem:
    """One projection: an expression and its alias, or ``*`` / ``alias.*`` when ``star``."""

    line: int = field(compare=False)
    expr: Expr | None
    alias: str | None = None
    star: bool = False
    star_qualifier: str | None = None


@dataclass(frozen=True)
class Relation:
    """A stream or table named in FROM or JOIN, with its alias."""

    line: int = field(compare=False)
    name: str
    alias: str | None

    @property
    def reference(self) -> str:
        """The name the query uses for it: its alias, else its own name."""
        return self.alias or self.name


@dataclass(frozen=True)
class Join:
    """``[INNER|LEFT] JOIN relation ON condition``."""

    line: int = field(compare=False)
    kind: str  # INNER or LEFT
    relation: Relation
    condition: Expr


@dataclass(frozen=True)
class Window:
    """``WINDOW TUMBLING|HOPPING (SIZE …[, ADVANCE BY …][, RETENTION …][, GRACE PERIOD …])``.

    Durations are in milliseconds; ``None`` where the clause is absent.
    """

    line: int = field(compare=False)
    kind: str
    size_ms: int
    advance_ms: int | None
    retention_ms: int | None
    grace_ms: int | None


@dataclass(frozen=True)
class Query:
    """``SELECT … FROM … [JOIN …] [WINDOW …] [WHERE …] [GROUP BY …] [PARTITION BY …]
    [HAVING …] [EMIT CHANGES]``."""

    line: int = field(compare=False)
    items: tuple[SelectItem, ...]
    source: Relation
    joins: tuple[Join, ...] = ()
    window: Window | None = None
    where: Expr | None = None
    group_by: tuple[Expr, ...] = ()
    partition_by: tuple[Expr, ...] = ()
    having: Expr | None = None
    emit_changes: bool = False


# -- statements ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Property:
    """``NAME = value`` in a WITH clause; ``name`` upper-cased, ``value`` as written."""

    line: int = field(compare=False)
    name: str
    value: str


@dataclass(frozen=True)
class ColumnDef:
    """A declared column: ``name TYPE [KEY | PRIMARY KEY]``."""

    line: int = field(compare=False)
    name: str
    type: SqlType
    key: bool = False
    primary_key: bool = False


@dataclass(frozen=True)
class Statement:
    """Base of every statement."""

    line: int = field(compare=False)


@dataclass(frozen=True)
class SetProperty(Statement):
    """``SET 'name' = 'value';``."""

    name: str
    value: str


@dataclass(frozen=True)
class CreateSource(Statement):
    """``CREATE STREAM|TABLE name (columns) WITH (…)`` over an existing topic."""

    kind: str  # STREAM or TABLE
    name: str
    columns: tuple[ColumnDef, ...]
    properties: tuple[Property, ...]


@dataclass(frozen=True)
class CreateAs(Statement):
    """``CREATE STREAM|TABLE name [WITH (…)] AS SELECT …``."""

    kind: str
    name: str
    properties: tuple[Property, ...]
    query: Query


@dataclass(frozen=True)
class InsertInto(Statement):
    """``INSERT INTO stream SELECT …``: more rows for a stream made by ``CREATE STREAM AS``."""

    target: str
    query: Query


@dataclass(frozen=True)
class StatementFile:
    """The statements of one file, in order, and the file's name (for messages)."""

    source: str | None
    statements: tuple[Statement, ...]
