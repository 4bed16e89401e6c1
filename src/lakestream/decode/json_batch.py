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
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

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


@dataclass
class _StrictReads:
    """Whether recent batches suited the strict read (it is skipped for a while after a miss)."""

    paused: int = 0


@dataclass(frozen=True)
class JsonDecoder:
    """Decodes JSON messages against a feed's schema.

    Args:
        schema: Explicit types for known fields; unknown fields are inferred.
        required: Dotted paths (``user.user_id``) that must be present and non-null.
    """

    schema: pa.Schema
    required: tuple[str, ...] = ()
    _strict: _StrictReads = field(default_factory=_StrictReads, compare=False, repr=False)

    def decode(self, values: Sequence[bytes | None]) -> DecodeResult:
        """Decode ``values``; never raises for bad input, rejects it instead."""
        rejected: list[tuple[int, str]] = []
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
        table, indices = self._combine(values, blocks, rejected)
        if table is not None and self.required:
            table, indices = self._check_required(table, indices, rejected)
        rejected.sort()
        return DecodeResult(table, indices, rejected)

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
        rejected: list[tuple[int, str]],
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
        rejected: list[tuple[int, str]],
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

    def _read(self, values: Sequence[bytes | None]) -> pa.Table:
        data = _joined(values)
        options = pajson.ParseOptions(
            explicit_schema=self.schema, unexpected_field_behavior="infer"
        )
        read_options = pajson.ReadOptions(block_size=max(1 << 20, min(len(data) + 1, 1 << 28)))
        return pajson.read_json(io.BytesIO(data), read_options=read_options, parse_options=options)

    def _read_strict(self, values: Sequence[bytes | None]) -> pa.Table | None:
        """The whole batch when every record fits the explicit schema exactly, else ``None``.

        With no unexpected field (``"error"``) no type is inferred, so reading in
        several slices and blocks gives the same table as :meth:`_read` in one block.
        """
        if self._strict.paused:
            self._strict.paused -= 1
            return None
        if not values or not len(self.schema):
            return None
        options = pajson.ParseOptions(
            explicit_schema=self.schema, unexpected_field_behavior="error"
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
        rejected: list[tuple[int, str]],
    ) -> tuple[pa.Table | None, pa.Array]:
        blocks.sort(key=lambda b: b[0])
        if not blocks:
            return None, pa.array([], pa.int64())
        try:
            table = pa.concat_tables([t for _, t in blocks], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            blocks = self._drop_conflicts(values, blocks, rejected)
            if not blocks:
                return None, pa.array([], pa.int64())
            table = pa.concat_tables([t for _, t in blocks], promote_options="permissive")
        indices = pa.concat_arrays([_arange(start, t.num_rows) for start, t in blocks])
        return table, indices

    def _drop_conflicts(
        self,
        values: Sequence[bytes | None],
        blocks: list[tuple[int, pa.Table]],
        rejected: list[tuple[int, str]],
    ) -> list[tuple[int, pa.Table]]:
        # A field inferred with different types in different blocks: keep the first
        # type; bisect a conflicting block until the records that carry the other
        # type stand alone, so the rest of the block is kept.
        kept: list[tuple[int, pa.Table]] = []
        schema: pa.Schema | None = None
        pending = list(reversed(blocks))
        while pending:
            start, table = pending.pop()
            try:
                merged = (
                    table.schema
                    if schema is None
                    else pa.unify_schemas([schema, table.schema], promote_options="permissive")
                )
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                if table.num_rows == 1:
                    rejected.append((start, f"type conflicts with earlier records: {_reason(exc)}"))
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

    def _check_required(
        self, table: pa.Table, indices: pa.Array, rejected: list[tuple[int, str]]
    ) -> tuple[pa.Table | None, pa.Array]:
        bad = pa.array([False] * table.num_rows)
        for path in self.required:
            column = _column(table, path)
            missing = pa.array([True] * table.num_rows) if column is None else pc.is_null(column)
            if pc.any(missing).as_py():
                newly = pc.and_(missing, pc.invert(bad))
                for pos in pc.indices_nonzero(newly).to_pylist():
                    rejected.append((indices[pos].as_py(), f"missing required field '{path}'"))
                bad = pc.or_(bad, missing)
        if not pc.any(bad).as_py():
            return table, indices
        keep = pc.invert(bad)
        kept = table.filter(keep)
        return (kept if kept.num_rows else None), indices.filter(keep)


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


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = text.replace(" in row 0", "")
    if text.startswith("JSON parse error: Column() changed from object to"):
        text = "not a JSON object: the message is a JSON" + text.rsplit(" to", 1)[1]
    return text[:_MAX_REASON]
