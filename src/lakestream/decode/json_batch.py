"""Decode a batch of JSON messages into one Arrow table, fast, isolating bad records.

The fast path hands all messages, newline-joined, to Arrow's C++ JSON reader
with the feed's explicit schema. When that fails (malformed JSON, a wrong
type, an unparseable time, a non-object), the batch is bisected until each bad
message stands alone and its parser error becomes its reason; the good halves
still go through the fast reader. Required fields are checked on the result
with vectorized null tests.

The common batch (every record matches the explicit schema, no unknown field)
takes a stricter and faster read first: slices of about 16 MiB of messages, each
parsed in blocks of 4 MiB, which keeps the parser's working set in the CPU
cache, lets the blocks parse on Arrow's thread pool and bounds the extra
memory. Anything else about the batch makes that read fail, and the batch then
takes the exact path above, so the result never depends on which read
succeeded. (Inference across several blocks is not used: Arrow types an
inferred field per block, so it may reject what one block accepts.)

Types follow the feed's contract (:mod:`lakestream.decode.contract`): the reader
is told every type the contract knows, strings Arrow would infer as times stay
strings, and the blocks are merged in input order against the contract, so a
record is judged against the records landed before it, whatever the batch.
Records missing a required field are removed before their block's types count.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from lakestream.decode.contract import TypeContract
from lakestream.decode.schemas import storable

_MAX_REASON = 300
_STRICT_BLOCK = 4 << 20  # bytes per parse block of the strict read
_STRICT_SLICE = 16 << 20  # about this many message bytes are joined and read at a time
_STRICT_PAUSE = 8  # batches read the exact way after a strict read failed
# Arrow's reader crashes the process on JSON nested about 10,000+ levels deep, and its
# kernels (filter, concat) from a few thousand on: deeper messages are rejected, never read.
_MAX_DEPTH = 64  # levels of objects/arrays kept (no event needs more)
_FEW_BRACKETS = 1000  # a message with at most this many '{' and '[' cannot crash the reader


@dataclass
class DecodeResult:
    """What a batch decoded into.

    Attributes:
        table: The good records, in input order.
        indices: For each row of ``table``, its index in the input batch.
        rejected: ``(index, reason)`` for every record that went to the DLQ.
    """

    table: pa.Table | None
    indices: pa.Array
    rejected: list[tuple[int, str]] = field(default_factory=list)


class _Rejected(list[tuple[int, str]]):
    """``(index, reason)`` of rejected messages, and which reasons are still the reader's."""

    def __init__(self) -> None:
        super().__init__()
        self.unexplained: set[int] = set()


@dataclass
class _StrictReads:
    """Whether recent batches suited the strict read (it is skipped for a while after a miss)."""

    paused: int = 0


@dataclass(frozen=True)
class JsonDecoder:
    """Decodes JSON messages against a feed's type contract.

    Args:
        schema: The declared types (fixed); other fields are inferred.
        required: Dotted paths (``user.user_id``) that must be present and non-null.
        committed: Types the dataset's committed data established for the fields
            ``schema`` does not declare (see :class:`~lakestream.decode.contract.TypeContract`).
    """

    schema: pa.Schema
    required: tuple[str, ...] = ()
    committed: pa.Schema = field(default_factory=lambda: pa.schema([]))
    _strict: _StrictReads = field(default_factory=_StrictReads, compare=False, repr=False)

    @cached_property
    def contract(self) -> TypeContract:
        """The declared and committed types every record must fit."""
        return TypeContract(self.schema, self.committed)

    def decode(self, values: Sequence[bytes | None]) -> DecodeResult:
        """Decode ``values``; never raises for bad input, rejects it instead."""
        rejected = _Rejected()
        blocks: list[tuple[int, pa.Table]] = []
        usable = [i for i, v in enumerate(values)
                  if v and v[:1] == b"{" and (len(v) <= _FEW_BRACKETS or not _too_deep(v))]
        if len(usable) != len(values):
            usable = self._screen(values, rejected)
            self._parse_indices(values, usable, blocks, rejected)
        elif (strict := self._read_strict(values)) is not None:
            blocks.append((0, strict))
        else:
            self._parse_range(values, 0, len(values), blocks, rejected)
        if self.required:
            blocks = self._require(values, blocks, rejected)
        table, indices = self._combine(values, blocks, rejected)
        rejected.sort()
        return DecodeResult(table, indices, list(rejected))

    @staticmethod
    def _screen(values: Sequence[bytes | None], rejected: list[tuple[int, str]]) -> list[int]:
        """Indices of the messages that may be JSON objects; reject the others.

        Only objects reach Arrow's reader: besides giving clear reasons, this keeps
        a JSON ``null`` away from it (pyarrow crashes on a block that starts with one).
        """
        usable: list[int] = []
        for i, v in enumerate(values):
            if v and _too_deep(v):
                rejected.append((i, f"JSON nested deeper than {_MAX_DEPTH} levels"))
            elif v and v.lstrip()[:1] == b"{":
                usable.append(i)
            else:
                rejected.append((i, _not_an_object(v)))
        return usable

    def _parse_indices(
        self,
        values: Sequence[bytes | None],
        usable: list[int],
        blocks: list[tuple[int, pa.Table]],
        rejected: _Rejected,
    ) -> None:
        # contiguous runs of usable indices are parsed as ranges
        start = prev = None
        for i in [*usable, None]:
            if i is not None and prev is not None and i == prev + 1:
                prev = i
                continue
            if start is not None and prev is not None:
                self._parse_range(values, start, prev + 1, blocks, rejected)
            start = prev = i

    def _parse_range(
        self,
        values: Sequence[bytes | None],
        lo: int,
        hi: int,
        blocks: list[tuple[int, pa.Table]],
        rejected: _Rejected,
    ) -> None:
        stack = [(lo, hi)]
        while stack:
            lo, hi = stack.pop()
            if hi <= lo:  # nothing to read (an empty batch): Arrow rejects empty input
                continue
            try:
                table = self._read(values[lo:hi])
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                if hi - lo == 1:
                    rejected.append((lo, _reason(exc)))
                    rejected.unexplained.add(lo)  # explained once the records before it are known
                    continue
                mid = (lo + hi) // 2
                stack.extend([(mid, hi), (lo, mid)])
                continue
            if table.num_rows != hi - lo or _type_depth(table.schema) > _MAX_DEPTH:
                if hi - lo == 1:
                    rejected.append((lo, "not exactly one JSON object in the message"
                                     if table.num_rows != 1
                                     else f"JSON nested deeper than {_MAX_DEPTH} levels"))
                    continue
                mid = (lo + hi) // 2
                stack.extend([(mid, hi), (lo, mid)])
                continue
            blocks.append((lo, table))

    def _explain(self, values: Sequence[bytes | None], kept: list[tuple[int, pa.Table]],
                 rejected: _Rejected) -> None:
        """Give each message the reader refused the reason a batch of its own would get.

        It is judged against the contract and the records landed before it: the
        first field, in the message's order, that does not fit, then a missing
        required field, then the reader's reason.
        """
        if not rejected.unexplained:
            return
        schema, blocks = self.contract.full, iter(sorted(kept, key=lambda b: b[0]))
        block = next(blocks, None)
        for at, (index, reason) in sorted(enumerate(rejected), key=lambda r: r[1][0]):
            if index not in rejected.unexplained:
                continue
            while block is not None and block[0] < index:
                schema = pa.unify_schemas([schema, block[1].schema], promote_options="permissive")
                block = next(blocks, None)
            rejected[at] = (index, self._why(values[index], reason, schema))

    def _why(self, value: bytes | None, reader_reason: str, schema: pa.Schema) -> str:
        mismatch = self.contract.mismatch(value, schema)
        if mismatch is not None:
            return mismatch
        try:
            record = json.loads(value or b"")
        except (ValueError, RecursionError):
            return reader_reason
        if isinstance(record, dict):
            for path in self.required:
                if _lookup(record, path) is None:
                    return f"missing required field '{path}'"
        return reader_reason

    def _read(self, values: Sequence[bytes | None]) -> pa.Table:
        data = _joined(values)
        read_options = pajson.ReadOptions(block_size=max(1 << 20, min(len(data) + 1, 1 << 28)))
        explicit = self.contract.explicit
        while True:
            options = pajson.ParseOptions(explicit_schema=explicit,
                                          unexpected_field_behavior="infer")
            table = pajson.read_json(io.BytesIO(data), read_options=read_options,
                                     parse_options=options)
            # Arrow types a new field timestamp only when every value of the block parses as
            # one: a cut-dependent guess. New fields holding text stay strings.
            times = _inferred_times(table.schema, explicit)
            if times is None:
                return table
            explicit = times

    def _read_strict(self, values: Sequence[bytes | None]) -> pa.Table | None:
        """The whole batch when every record fits the explicit schema exactly, else ``None``.

        With no unexpected field (``"error"``) no type is inferred, so reading in
        several slices and blocks gives the same table as :meth:`_read` in one block.
        """
        if self._strict.paused:
            self._strict.paused -= 1
            return None
        if not values or not len(self.contract.explicit):
            return None
        options = pajson.ParseOptions(
            explicit_schema=self.contract.explicit, unexpected_field_behavior="error"
        )
        read_options = pajson.ReadOptions(block_size=_STRICT_BLOCK)
        step = _slice_length(cast("Sequence[bytes]", values))
        try:
            table = pa.concat_tables(
                pajson.read_json(
                    io.BytesIO(_joined(values[lo : lo + step])),
                    read_options=read_options,
                    parse_options=options,
                )
                for lo in range(0, len(values), step)
            )
        except pa.ArrowException:
            table = None
        if table is None or table.num_rows != len(values):
            self._strict.paused = _STRICT_PAUSE
            return None
        return table

    def _combine(
        self,
        values: Sequence[bytes | None],
        blocks: list[tuple[int, pa.Table]],
        rejected: _Rejected,
    ) -> tuple[pa.Table | None, pa.Array]:
        # an object with no field (`{}`) or a field null in a whole block types nothing:
        # it must not conflict with the type a later block gives it (same in any cut)
        blocks = sorted(((start, storable(t)) for start, t in blocks), key=lambda b: b[0])
        try:
            pa.unify_schemas([self.contract.full, *(t.schema for _, t in blocks)],
                             promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            blocks = self._drop_conflicts(values, blocks, rejected)
        self._explain(values, blocks, rejected)
        if not blocks:
            return None, pa.array([], pa.int64())
        table = pa.concat_tables([t for _, t in blocks], promote_options="permissive")
        indices = pa.concat_arrays([_arange(start, t.num_rows) for start, t in blocks])
        ordered = self.contract.ordered(table.schema)
        if not ordered.equals(table.schema):
            table = table.select(ordered.names).cast(ordered)
        return table, indices

    def _drop_conflicts(
        self,
        values: Sequence[bytes | None],
        blocks: list[tuple[int, pa.Table]],
        rejected: _Rejected,
    ) -> list[tuple[int, pa.Table]]:
        # A block whose types conflict with the contract or with earlier blocks: the
        # earlier type stays; bisect the block until the records that carry the other
        # type stand alone, so the rest of the block is kept.
        kept: list[tuple[int, pa.Table]] = []
        schema = self.contract.full
        pending = list(reversed(blocks))
        while pending:
            start, table = pending.pop()
            try:
                merged = pa.unify_schemas([schema, table.schema], promote_options="permissive")
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                if table.num_rows == 1:
                    why = self.contract.mismatch(values[start], schema)
                    rejected.append((start, why or f"type conflicts with earlier records: "
                                                   f"{_reason(exc)}"))
                    continue
                mid = start + table.num_rows // 2
                halves: list[tuple[int, pa.Table]] = []
                self._parse_range(values, start, mid, halves, rejected)
                self._parse_range(values, mid, start + table.num_rows, halves, rejected)
                pending.extend(sorted(halves, key=lambda b: b[0], reverse=True))
                continue
            schema = merged
            kept.append((start, table))
        return kept

    def _require(
        self,
        values: Sequence[bytes | None],
        blocks: list[tuple[int, pa.Table]],
        rejected: _Rejected,
    ) -> list[tuple[int, pa.Table]]:
        """The blocks without their records that miss a required field.

        A record that does not land must not type a new field: a block that lost
        records and has inferred columns is read again without them.
        """
        kept: list[tuple[int, pa.Table]] = []
        for start, table in blocks:
            bad = self._missing(start, table, rejected)
            if bad is None:
                kept.append((start, table))
            elif _all_explicit(table.schema, self.contract.explicit):
                kept.extend((lo, table.slice(lo - start, hi - lo))
                            for lo, hi in _good_runs(start, bad))
            else:
                for lo, hi in _good_runs(start, bad):
                    self._parse_range(values, lo, hi, kept, rejected)
        return kept

    def _missing(self, start: int, table: pa.Table,
                 rejected: _Rejected) -> pa.Array | None:
        """Which rows of a block miss a required field (each rejected once); ``None``: none."""
        bad = pa.array([False] * table.num_rows)
        for path in self.required:
            column = _column(table, path)
            missing = pa.array([True] * table.num_rows) if column is None else pc.is_null(column)
            if pc.any(missing).as_py():
                newly = pc.and_(missing, pc.invert(bad))
                for pos in pc.indices_nonzero(newly).to_pylist():
                    rejected.append((start + pos, f"missing required field '{path}'"))
                    rejected.unexplained.add(start + pos)  # a wrong type would come first
                bad = pc.or_(bad, missing)
        return bad if pc.any(bad).as_py() else None


def _lookup(record: dict[str, object], path: str) -> object:
    """The value at a dotted path of a JSON object (``None``: absent or null)."""
    found: object = record
    for part in path.split("."):
        found = found.get(part) if isinstance(found, dict) else None
    return found


def _good_runs(start: int, bad: pa.Array) -> list[tuple[int, int]]:
    """``[lo, hi)`` input ranges of a block's rows that are not ``bad``."""
    runs, lo = [], start
    for pos in pc.indices_nonzero(bad).to_pylist():
        if start + pos > lo:
            runs.append((lo, start + pos))
        lo = start + pos + 1
    if start + len(bad) > lo:
        runs.append((lo, start + len(bad)))
    return runs


def _all_explicit(schema: pa.Schema, explicit: pa.Schema) -> bool:
    """Whether the reader inferred nothing in a block of ``schema``."""
    return all(explicit.get_field_index(f.name) >= 0 and explicit.field(f.name).type == f.type
               for f in schema)


def _inferred_times(schema: pa.Schema, explicit: pa.Schema) -> pa.Schema | None:
    """``explicit`` with every timestamp the reader inferred in ``schema`` typed string.

    ``None`` when the reader inferred no timestamp.
    """
    declared = {f.name: f.type for f in explicit}
    patched = dict(declared)
    for f in schema:
        kind = _times_as_text(f.type, declared.get(f.name))
        if kind is not None:
            patched[f.name] = kind
    if patched == declared:
        return None
    return pa.schema(list(patched.items()))


def _times_as_text(kind: pa.DataType, told: pa.DataType | None) -> pa.DataType | None:
    """What to tell the reader so that no inferred timestamp stays in ``kind`` (``None``: ok)."""
    if pa.types.is_timestamp(kind):
        return None if told is not None else pa.string()
    if pa.types.is_struct(kind):
        inner = {told.field(i).name: told.field(i) for i in range(told.num_fields)} \
            if told is not None and pa.types.is_struct(told) else {}
        changed = False
        for i in range(kind.num_fields):
            child = kind.field(i)
            before = inner.get(child.name)
            fixed = _times_as_text(child.type, before.type if before is not None else None)
            if fixed is not None:
                inner[child.name] = child.with_type(fixed)
                changed = True
        return pa.struct(list(inner.values())) if changed else None
    if pa.types.is_list(kind):
        item = _times_as_text(kind.value_type, told.value_type
                              if told is not None and pa.types.is_list(told) else None)
        return None if item is None else pa.list_(item)
    return None


def _joined(values: Sequence[bytes | None]) -> bytes:
    """The messages as newline-delimited JSON."""
    data = b"\n".join(values)  # type: ignore[arg-type]
    if data.count(b"\n") != len(values) - 1 or b"\r" in data:
        # pretty-printed JSON: raw newlines can only be whitespace between tokens
        data = b"\n".join(v.replace(b"\r", b" ").replace(b"\n", b" ") for v in values if v)
    return data


def _slice_length(values: Sequence[bytes]) -> int:
    """How many messages make about ``_STRICT_SLICE`` bytes."""
    return max(1, _STRICT_SLICE * len(values) // max(1, sum(map(len, values))))


def _arange(start: int, count: int) -> pa.Array:
    """``start, start + 1, …`` (``count`` int64 values), built in Arrow rather than Python."""
    positions = pc.indices_nonzero(pa.repeat(pa.scalar(True), count)).cast(pa.int64())
    return pc.add(positions, pa.scalar(start, pa.int64())) if start else positions


def _column(table: pa.Table, path: str) -> pa.ChunkedArray | None:
    head, *rest = path.split(".")
    if head not in table.column_names:
        return None
    column = table.column(head)
    for part in rest:
        if not pa.types.is_struct(column.type) or column.type.get_field_index(part) < 0:
            return None
        column = pc.struct_field(column, part)
    return column


_JSON_KINDS = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}


def _too_deep(value: bytes) -> bool:
    """Whether a message might nest deep enough to crash Arrow's reader (C-speed checks)."""
    if value.count(b"{") + value.count(b"[") <= _FEW_BRACKETS:
        return False
    try:
        json.loads(value.decode("utf-8", "replace"))
    except RecursionError:  # deeper than Python's parser goes (about 1,000 levels)
        return True
    except ValueError:
        return False  # malformed before it got deep: the reader stops there too
    return False


def _type_depth(schema: pa.Schema) -> int:
    """How many levels of structs and lists the schema nests (iteratively: it may be deep)."""
    deepest = 0
    stack = [(f.type, 0) for f in schema]
    while stack:
        kind, depth = stack.pop()
        deepest = max(deepest, depth)
        if pa.types.is_struct(kind):
            stack.extend((kind.field(i).type, depth + 1) for i in range(kind.num_fields))
        elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
            stack.append((kind.value_type, depth + 1))
    return deepest


def _not_an_object(value: bytes | None) -> str:
    """Why a message that does not start with ``{`` is rejected."""
    if not value or value.isspace():
        return "empty message"
    try:
        parsed = json.loads(value)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        return f"JSON parse error: {exc}"[:_MAX_REASON]
    except RecursionError:
        return "JSON parse error: nested too deeply"
    kind = "null" if parsed is None else _JSON_KINDS.get(type(parsed), type(parsed).__name__)
    return f"not a JSON object: the message is a JSON {kind}"


_CHANGED = re.compile(r"^JSON parse error: Column\((/[^)]*)\) changed from (\w+) to (\w+)$")


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = re.sub(r" in row \d+$", "", text)
    if text.startswith("JSON parse error: Column() changed from object to"):
        text = "not a JSON object: the message is a JSON" + text.rsplit(" to", 1)[1]
    elif (changed := _CHANGED.match(text)) is not None:
        # valid JSON whose field changes type within the record (an array of mixed items)
        path, before, after = changed.groups()
        text = f"field {_dotted(path)}: expected {before}, found {after}"
    return text[:_MAX_REASON]


def _dotted(pointer: str) -> str:
    """Arrow's ``/user/tags/[]`` as ``user.tags[]``."""
    return ".".join(p for p in pointer.strip("/").split("/")).replace(".[]", "[]")
