"""Users' own statement files, registered per pipeline: ``lakestream statements``.

The program ``lakestream process`` runs is the shipped statements
(:mod:`.shipped`) followed by every registered file, in the order they were
added; each file is compiled on top of everything before it, so it may read the
shipped streams (``transaction_flattened``…), the reference tables and the
outputs of files added earlier, or declare its own sources over other topics
(``CREATE STREAM … WITH (KAFKA_TOPIC=…)``).

Files live in ``<feeds_dir>/statements/<pipeline>/<name>.sql``; the order and
what each file publishes are kept in ``<feeds_dir>/statements/index.yaml``. A
file is validated when it is added (the whole program must compile with it, and
its outputs must not take the name or topic of an existing feed); each output
it defines becomes a feed of its pipeline (``feeds/active/<output>.yaml``), so
``ingest`` lands it: a derived stream as a stream (replays dropped by
``_source_offset``), an aggregate table as a table keyed by its key columns.
Removing a file archives its outputs' feeds (their data stays in the lake) and is
refused while a later file reads one of its outputs.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from lakestream.derive.executor import check_reference_tables
from lakestream.derive.reference import ReferenceStore
from lakestream.derive.rehearsal import rehearse
from lakestream.derive.shipped import shipped_plan
from lakestream.derive.statements import (
    Plan,
    StatementError,
    StreamPlan,
    TablePlan,
    parse_statements,
    plan_statements,
)
from lakestream.derive.statements.ast import StatementFile
from lakestream.errors import ConfigError, UnknownNameError, UsageError
from lakestream.feeds import Feed, FeedRegistry, validate_feed, write_file

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
INDEX = "index.yaml"


@dataclass(frozen=True)
class Registered:
    """One registered statements file.

    Attributes:
        name: Its name (``statements show NAME``).
        pipeline: The pipeline its outputs' feeds belong to.
        path: The file, under ``<feeds_dir>/statements``.
        outputs: The streams and tables it creates (its ``INSERT INTO``s are not outputs).
        added_at: When it was added (UTC, ISO-8601).
    """

    name: str
    pipeline: str
    path: Path
    outputs: tuple[str, ...]
    added_at: str

    @property
    def source(self) -> str:
        """How messages name the file: ``statements/<pipeline>/<name>.sql``."""
        return f"statements/{self.pipeline}/{self.path.name}"


@dataclass
class Added:
    """What :meth:`StatementRegistry.add` registered (or, dry, would register)."""

    entry: Registered
    plan: Plan  # the whole program with the file
    outputs: list[StreamPlan | TablePlan] = field(default_factory=list)
    feeds: list[dict[str, Any]] = field(default_factory=list)


class StatementRegistry:
    """The registered statement files of one feed registry folder.

    Args:
        feeds_dir: The feed registry folder (``feeds_dir``); files go to its
            ``statements/`` folder.
        data_dir: The data directory (its reference data, for the rehearsal on add).
    """

    def __init__(self, feeds_dir: Path, data_dir: Path) -> None:
        self.root = feeds_dir / "statements"
        self.index = self.root / INDEX
        self.data_dir = data_dir

    # -- reading -------------------------------------------------------------------------

    def entries(self) -> list[Registered]:
        """The registered files, in the order they were added (and run)."""
        if not self.index.exists():
            return []
        try:
            raw = yaml.safe_load(self.index.read_text(encoding="utf-8")) or []
            found = [Registered(str(e["name"]), str(e["pipeline"]), self.root / str(e["file"]),
                                tuple(str(o) for o in e.get("outputs") or ()),
                                str(e.get("added_at", ""))) for e in raw]
        except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.index}: cannot be read: {str(exc).splitlines()[0]}",
                              "restore it from a backup, or delete it and add the files "
                              "again with `lakestream statements add`") from None
        return found

    def get(self, name: str) -> Registered:
        """The registered file ``name``."""
        for entry in self.entries():
            if entry.name == name:
                return entry
        known = ", ".join(e.name for e in self.entries()) or "none (lakestream statements add)"
        raise UnknownNameError(f"no statements file is registered as '{name}'", f"known: {known}")

    def program(self, without: str | None = None) -> Plan:
        """The whole program: the shipped statements, then every registered file.

        Raises:
            StatementError: A registered file no longer compiles (it names the file).
        """
        return plan_statements(self._parsed(self.entries(), without), base=shipped_plan())

    def _parsed(self, entries: list[Registered], without: str | None = None
                ) -> list[StatementFile]:
        """The registered files, parsed (the shipped ones are :func:`shipped_plan`)."""
        files = []
        for entry in entries:
            if entry.name == without:
                continue
            try:
                text = entry.path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"{entry.source}: the registered statements file cannot be "
                                  f"read ({exc.strerror})",
                                  f"restore it, or `lakestream statements remove {entry.name}`"
                                  ) from None
            files.append(parse_statements(text, entry.source))
        return files

    # -- changing ------------------------------------------------------------------------

    def add(self, text: str, name: str, pipeline: str, feeds: FeedRegistry,
            dry_run: bool = False) -> Added:
        """Validate a statements file and register it under ``pipeline`` as ``name``.

        Nothing is written unless the whole program compiles with it and each of
        its outputs can become a feed. With ``dry_run`` nothing is written at all.

        Raises:
            StatementError: A statement outside the supported subset, or invalid (its
                file and line).
            UsageError: A bad name, a name already registered, a file with no output,
                or an output whose name or topic an existing feed has.
            ConfigError: DuckDB refused the program's SQL on sample records.
        """
        for what, value in (("name", name), ("pipeline", pipeline)):
            if not _NAME.match(value):
                raise UsageError(f"'{value}' is not a valid {what}: lowercase letters, digits "
                                 "and _, starting with a letter (at most 63)")
        entries = self.entries()
        if any(e.name == name for e in entries):
            raise UsageError(f"a statements file is already registered as '{name}'",
                             f"remove it first (lakestream statements remove {name}) or pick "
                             "another --name")
        path = self.root / pipeline / f"{name}.sql"
        entry = Registered(name, pipeline, path, (), _now())
        before = plan_statements(self._parsed(entries), base=shipped_plan())
        plan = plan_statements([parse_statements(text, entry.source)], base=before)
        new = [o for o in plan.outputs[len(before.outputs):]
               if not (isinstance(o, StreamPlan) and o.insert)]
        if not new:
            raise UsageError(f"{entry.source}: defines no stream or table (CREATE STREAM|TABLE "
                             "… AS SELECT)", "a file that only declares sources runs nothing")
        check_reference_tables(plan)  # what `process` would refuse, refused now
        inputs = {s.topic for s in plan.sources}
        specs = [_feed_spec(o, pipeline, name) for o in new]
        wanted = [validate_feed(spec, f"{entry.source}: the feed of {output.name}")
                  for output, spec in zip(new, specs, strict=True)]
        leftovers = _leftovers(wanted, feeds, entries)
        for output in new:
            if output.name not in leftovers:
                _check_output(output, feeds, inputs)
        # the generated SQL runs once on sample records: what DuckDB refuses is found now
        rehearse(plan, ReferenceStore(self.data_dir), entry.source)
        entry = Registered(name, pipeline, path, tuple(o.name for o in new), entry.added_at)
        added = Added(entry, plan, new, specs)
        if dry_run:
            return added
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file(path, text)
        for leftover in leftovers:  # written by an add of this file that was interrupted
            feeds.remove(leftover)
        try:
            for spec in specs:
                feeds.add(spec)
        except BaseException:
            for spec in specs:  # no feed of a file that is not registered
                if spec["name"] in {f.name for f in feeds}:
                    feeds.remove(spec["name"])
            path.unlink(missing_ok=True)
            raise
        self._save([*entries, entry])
        return added

    def remove(self, name: str, feeds: FeedRegistry) -> tuple[Registered, list[str]]:
        """Unregister a file; its outputs' feeds are archived (their data stays).

        Raises:
            UnknownNameError: No file is registered as ``name``.
            UsageError: A file added later reads one of its outputs.
        """
        entry = self.get(name)
        try:
            self.program(without=name)
        except StatementError as exc:
            raise UsageError(f"'{name}' cannot be removed: without it, {exc}",
                             "remove the files that read its outputs first") from None
        archived = []
        active = {f.name for f in feeds}  # an active feed is never archived too
        for output in entry.outputs:
            if output in active:
                feeds.archive(output)
                archived.append(output)
        self._save([e for e in self.entries() if e.name != name])
        entry.path.unlink(missing_ok=True)
        return entry, archived

    def _save(self, entries: list[Registered]) -> None:
        rows = [{"name": e.name, "pipeline": e.pipeline,
                 "file": str(e.path.relative_to(self.root)), "outputs": list(e.outputs),
                 "added_at": e.added_at} for e in entries]
        self.root.mkdir(parents=True, exist_ok=True)
        write_file(self.index, "# lakestream statements: the registered files, in run order "
                           "(written by `lakestream statements add|remove`)\n"
               + yaml.safe_dump(rows, sort_keys=False))


def outputs_of(plan: Plan, entry: Registered) -> Plan:
    """The part of ``plan`` one registered file defines (for ``statements show``)."""
    names = set(entry.outputs)
    outputs = tuple(o for o in plan.outputs if o.source == entry.source or o.name in names)
    sources = {n: r for n, r in plan.relations.items()
               if getattr(r, "source", None) == entry.source}
    return Plan((), {**sources, **{o.name: o for o in outputs if not
                                   (isinstance(o, StreamPlan) and o.insert)}}, outputs)


def _leftovers(wanted: list[Feed], feeds: FeedRegistry, entries: list[Registered]) -> set[str]:
    """Feeds an interrupted ``add`` of the same file left: the very feeds it would write,
    owned by no registered file (the index is written last, so a kill before it leaves
    them). Adding the file again replaces them rather than refusing their names."""
    owned = {o for e in entries for o in e.outputs}
    known = {f.name: f for f in feeds}
    return {f.name for f in wanted if f.name not in owned and known.get(f.name) == f}


def _check_output(output: StreamPlan | TablePlan, feeds: FeedRegistry,
                  inputs: set[str]) -> None:
    """An output becomes a feed: its name and topic must be free."""
    where = f"{output.source}, line {output.line}"
    known = {f.name: f for f in feeds}
    if output.name in known:
        raise UsageError(f"{where}: {output.name} is already the name of feed "
                         f"'{output.name}' (topic {known[output.name].topic})",
                         "give the stream or table another name")
    if output.name in feeds.archived():
        raise UsageError(f"{where}: an archived feed is named {output.name}",
                         f"`lakestream feeds restore {output.name}` and delete it, or pick "
                         "another name")
    taken = [f.name for f in feeds if f.topic == output.topic]
    if taken:
        raise UsageError(f"{where}: {output.name} would publish to topic {output.topic}, "
                         f"which feed '{taken[0]}' lands", "set another KAFKA_TOPIC")
    if output.topic in inputs:
        raise UsageError(f"{where}: {output.name} would publish to topic {output.topic}, "
                         "which the program reads", "set another KAFKA_TOPIC")


def _feed_spec(output: StreamPlan | TablePlan, pipeline: str, name: str) -> dict[str, Any]:
    """The feed that lands one output (a mapping as a feed file holds it)."""
    schema = {c.name: kind for c in output.columns
              if (kind := _feed_type(c.type.arrow())) is not None}
    spec: dict[str, Any] = {
        "name": output.name, "topic": output.topic, "pipeline": pipeline,
        "schema": schema, "sensitivity": "restricted",
        "description": f"{output.kind.lower()} {output.name} of the statements file '{name}' "
                       f"(lakestream statements show {name})"}
    if isinstance(output, TablePlan):
        spec.update(kind="table", layer="tables", key=list(output.key_columns))
    else:
        spec["dedupe_source"] = True
        column, fmt = output.event_time.column, output.event_time.format
        iso = fmt is not None and fmt.java.startswith("yyyy-MM-dd'T'HH:mm:ss")
        if column is not None and (schema.get(column) == "timestamp"
                                   or (schema.get(column) == "string" and iso)):
            spec["time_field"] = column  # lands by event time, as the shipped streams do
            schema[column] = "timestamp"  # ingest parses it (ISO-8601)
    return spec


_FEED_TYPES = {pa.string(): "string", pa.int64(): "int64", pa.int32(): "int32",
               pa.float64(): "float64", pa.bool_(): "bool", pa.date32(): "date"}


def _feed_type(kind: pa.DataType) -> Any:
    """A feed schema's name of an Arrow type; ``None``: left to the decoder to infer
    (decimals, maps, times: the feed schema has no name for them)."""
    if pa.types.is_timestamp(kind):
        return "timestamp"
    if pa.types.is_list(kind):
        item = _feed_type(kind.value_type)
        return None if item is None else [item]
    if pa.types.is_struct(kind):
        fields = {f.name: _feed_type(f.type) for f in kind}
        return None if any(v is None for v in fields.values()) else fields
    if pa.types.is_integer(kind):
        return "int32" if kind.bit_width <= 32 else "int64"
    return _FEED_TYPES.get(kind)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
