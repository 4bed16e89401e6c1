"""A plan as text for people (``lakestream statements show``)."""

from __future__ import annotations

from lakestream.derive.statements.compiler import Column
from lakestream.derive.statements.plan import Plan, SourcePlan, StreamPlan, TablePlan
from lakestream.derive.statements.properties import NO_EFFECT_SETTINGS


def describe_plan(plan: Plan) -> str:
    """Settings, sources, then each output in the order it runs."""
    lines: list[str] = []
    for name, value in plan.settings:
        effect = " (no effect in Lakestream)" if name in NO_EFFECT_SETTINGS else ""
        lines.append(f"SET '{name}' = '{value}'{effect}")
    for source in plan.sources:
        lines += ["", *_source(source)]
    for output in plan.outputs:
        lines += ["", *(_stream(output) if isinstance(output, StreamPlan) else _table(output))]
    return "\n".join(lines).strip() + "\n"


def _columns(columns: tuple[Column, ...]) -> list[str]:
    return [f"    {c.name} {c.type}" for c in columns]


def _source(source: SourcePlan) -> list[str]:
    keys = ", ".join(source.key_columns) or "none"
    head = f"{source.kind} {source.name}: topic {source.topic} (JSON, key {keys}"
    head += f", {source.key_format})" if source.key_columns else ")"
    lines = [head, *_columns(source.columns)]
    if source.kind == "STREAM":
        lines.append(f"  event time: {source.event_time.describe()}")
    return lines


def _joins(tables: tuple[str, ...], kinds: tuple[str, ...]) -> str:
    return "".join(f" {kind} {table}" for kind, table in zip(kinds, tables, strict=True))


def _key(columns: tuple[str, ...], key_format: str) -> str:
    return f"  key: {', '.join(columns)} ({key_format})" if columns else "  key: none"


def _stream(stream: StreamPlan) -> list[str]:
    verb = f"INSERT INTO {stream.name}" if stream.insert else f"STREAM {stream.name}"
    joins = _joins(stream.tables, stream.join_kinds)
    lines = [f"{verb}: topic {stream.topic}, from {stream.reads}{joins}",
             _key(stream.key_columns, stream.key_format),
             f"  event time: {stream.event_time.describe()}", "  columns:",
             *_columns(stream.columns)]
    return lines


def _table(table: TablePlan) -> list[str]:
    joins = _joins(table.tables, table.join_kinds)
    lines = [f"TABLE {table.name}: topic {table.topic}, from {table.reads}{joins}",
             _key(table.key_columns, table.key_format)]
    if table.window is not None:
        lines.append(f"  window: {table.window.describe()}; later events go to the dead "
                     "letters")
    lines += ["  columns:", *_columns(table.columns), "  aggregates:"]
    lines += [f"    {spec.describe()}" for spec in table.aggregates]
    if table.having:
        lines.append("  HAVING: a key that stops matching is deleted (tombstone)")
    return lines
