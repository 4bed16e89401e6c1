"""Statements files → a validated :class:`.Plan`: the catalog of names, checked in order.

Files are read in order and may use the streams and tables of the files before
them, and of a ``base`` plan (a pipeline's registered files build on the
shipped ones). A name is created once; two outputs never write one topic, and
no output writes a topic a source reads.
"""

from __future__ import annotations

from collections.abc import Sequence

from lakestream.derive.statements import ast
from lakestream.derive.statements.errors import StatementError
from lakestream.derive.statements.parser import parse_statements
from lakestream.derive.statements.plan import (
    Plan,
    Relation,
    SourcePlan,
    StreamPlan,
    TablePlan,
)
from lakestream.derive.statements.properties import check_setting
from lakestream.derive.statements.sources import plan_source
from lakestream.derive.statements.streams import plan_insert, plan_stream
from lakestream.derive.statements.tables import plan_table


def compile_statements(text: str, source: str | None = None, base: Plan | None = None) -> Plan:
    """Parse, validate and plan one statements file (on top of ``base``)."""
    return plan_statements([parse_statements(text, source)], base)


def plan_statements(files: Sequence[ast.StatementFile], base: Plan | None = None) -> Plan:
    """Validate and plan parsed files, in order; raise :class:`StatementError` at the first
    refusal, located in its file."""
    builder = _Builder(base)
    for statements in files:
        for statement in statements.statements:
            try:
                builder.add(statement, statements.source)
            except StatementError as exc:
                raise exc.in_file(statements.source) from None
    return builder.plan()


class _Builder:
    def __init__(self, base: Plan | None) -> None:
        self.settings: list[tuple[str, str]] = list(base.settings) if base else []
        self.relations: dict[str, Relation] = dict(base.relations) if base else {}
        self.outputs: list[StreamPlan | TablePlan] = list(base.outputs) if base else []

    def plan(self) -> Plan:
        return Plan(tuple(self.settings), dict(self.relations), tuple(self.outputs))

    def add(self, statement: ast.Statement, source: str | None) -> None:
        if isinstance(statement, ast.SetProperty):
            check_setting(statement)
            self.settings.append((statement.name, statement.value))
        elif isinstance(statement, ast.CreateSource):
            self._name_is_new(statement.name, statement.line)
            planned = plan_source(statement, source)
            self._topic_is_free(planned, statement.line)
            self.relations[planned.name] = planned
        elif isinstance(statement, ast.CreateAs):
            self._name_is_new(statement.name, statement.line)
            output = (plan_stream(statement, self.relations, source) if statement.kind == "STREAM"
                      else plan_table(statement, self.relations, source))
            self._topic_is_free(output, statement.line)
            self.relations[output.name] = output
            self.outputs.append(output)
        elif isinstance(statement, ast.InsertInto):
            self.outputs.append(plan_insert(statement, self.relations, source))

    def _name_is_new(self, name: str, line: int) -> None:
        found = self.relations.get(name)
        if found is not None:
            where = f"{found.source}, line {found.line}" if found.source else f"line {found.line}"
            raise StatementError(line, f"{name} already exists ({found.kind.lower()} created at "
                                       f"{where})")

    def _topic_is_free(self, planned: Relation, line: int) -> None:
        for other in self.relations.values():
            if other.topic != planned.topic:
                continue
            both_sources = isinstance(other, SourcePlan) and isinstance(planned, SourcePlan)
            if both_sources and other.kind == planned.kind == "STREAM":
                continue  # two declarations of one input topic only read it
            raise StatementError(line, f"{planned.name} would use the topic {planned.topic}, "
                                       f"which {other.name} already uses")
