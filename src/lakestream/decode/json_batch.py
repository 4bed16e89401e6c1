"""Decode a batch of JSON messages into one Arrow table, fast, isolating bad records.

The fast path hands all messages, newline-joined, to Arrow's C++ JSON reader
with the feed's explicit schema. When that fails (malformed JSON, a wrong
type, an unparseable time, a non-object), the batch is bisected until each bad
message stands alone and its parser error becomes its reason; the good halves
still go through the fast reader. Required fields are checked on the result
with vectorized null tests.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

_MAX_REASON = 300


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


@dataclass(frozen=True)
class JsonDecoder:
    """Decodes JSON messages against a feed's schema.

    Args:
        schema: Explicit types for known fields; unknown fields are inferred.
        required: Dotted paths (``user.user_id``) that must be present and non-null.
    """

    schema: pa.Schema
    required: tuple[str, ...] = ()

    def decode(self, values: Sequence[bytes | None]) -> DecodeResult:
        """Decode ``values``; never raises for bad input, rejects it instead."""
        rejected: list[tuple[int, str]] = []
        blocks: list[tuple[int, pa.Table]] = []
        usable = [i for i, v in enumerate(values) if v and not v.isspace()]
        if len(usable) != len(values):
            rejected.extend(
                (i, "empty message") for i, v in enumerate(values) if not v or v.isspace()
            )
            self._parse_indices(values, usable, blocks, rejected)
        else:
            self._parse_range(values, 0, len(values), blocks, rejected)
        table, indices = self._combine(values, blocks, rejected)
        if table is not None and self.required:
            table, indices = self._check_required(table, indices, rejected)
        rejected.sort()
        return DecodeResult(table, indices, rejected)

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
            try:
                table = self._read(values[lo:hi])
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                if hi - lo == 1:
                    rejected.append((lo, _reason(exc)))
                    continue
                mid = (lo + hi) // 2
                stack.extend([(mid, hi), (lo, mid)])
                continue
            if table.num_rows != hi - lo:
                if hi - lo == 1:
                    rejected.append((lo, "not exactly one JSON object in the message"))
                    continue
                mid = (lo + hi) // 2
                stack.extend([(mid, hi), (lo, mid)])
                continue
            blocks.append((lo, table))

    def _read(self, values: Sequence[bytes | None]) -> pa.Table:
        data = b"\n".join(values)  # type: ignore[arg-type]
        if data.count(b"\n") != len(values) - 1 or b"\r" in data:
            # pretty-printed JSON: raw newlines can only be whitespace between tokens
            data = b"\n".join(v.replace(b"\r", b" ").replace(b"\n", b" ") for v in values if v)
        options = pajson.ParseOptions(
            explicit_schema=self.schema, unexpected_field_behavior="infer"
        )
        read_options = pajson.ReadOptions(block_size=max(1 << 20, min(len(data) + 1, 1 << 28)))
        return pajson.read_json(io.BytesIO(data), read_options=read_options, parse_options=options)

    def _combine(
        self,
        values: Sequence[bytes | None],
        blocks: list[tuple[int, pa.Table]],
        rejected: list[tuple[int, str]],
    ) -> tuple[pa.Table | None, pa.Array]:
        blocks.sort(key=lambda b: b[0])
        if not blocks:
            return None, pa.array([], pa.int64())
        indices = pa.concat_arrays(
            [pa.array(range(start, start + t.num_rows), pa.int64()) for start, t in blocks]
        )
        try:
            return pa.concat_tables([t for _, t in blocks], promote_options="permissive"), indices
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return self._combine_slowly(blocks, rejected)

    @staticmethod
    def _combine_slowly(
        blocks: list[tuple[int, pa.Table]], rejected: list[tuple[int, str]]
    ) -> tuple[pa.Table | None, pa.Array]:
        # a field inferred with different types in different blocks: keep the first type
        kept: list[pa.Table] = []
        idx: list[int] = []
        for start, table in blocks:
            for row in range(table.num_rows):
                one = table.slice(row, 1)
                try:
                    pa.concat_tables([*kept[:1], one], promote_options="permissive")
                except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                    rejected.append(
                        (start + row, f"type conflicts with earlier records: {_reason(exc)}")
                    )
                    continue
                kept.append(one)
                idx.append(start + row)
        if not kept:
            return None, pa.array([], pa.int64())
        return pa.concat_tables(kept, promote_options="permissive"), pa.array(idx, pa.int64())

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


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = text.replace(" in row 0", "")
    if text.startswith("JSON parse error: Column() changed from object to"):
        text = "not a JSON object: the message is a JSON" + text.rsplit(" to", 1)[1]
    return text[:_MAX_REASON]
