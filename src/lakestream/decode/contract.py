"""The type contract of a feed: one type per field; a value that does not fit is a dead letter.

Where a field's type comes from:

- **Declared** in the feed (``schema=``): fixed, whatever the data says.
- **Committed**: a field the feed does not declare takes the type of the first
  landed record that gives it a non-null value, and keeps it. The committed
  types travel with the dataset's commits (its Delta table's schema),
  so the next batch, the next process and a day rebuild all decode against them.

A new field is a new column, typed from its JSON value: a string is ``string``
(times stay text unless declared ``timestamp``), a number ``int64`` (``double``
when it has a fraction or exceeds int64), ``true``/``false`` ``bool``, an object
a struct, an array a list (an empty object ``{}``, like ``null``, types nothing:
no table can store a struct without fields). One widening is allowed because it
loses nothing a reader relies on: an ``int64`` that was inferred becomes
``double`` when a later record carries a fraction (a declared ``double``
accepts integers anyway; a declared ``int64`` never widens; a Delta table is
rewritten once with the column widened: ``lake/delta_maintenance.widen_columns``).
Anything else that does not fit (a string for a number, an object for a
string, …) is a dead letter naming the field, the expected and the found type.

Because a record is judged against the types of the records landed before it,
the outcome is the same however the stream is cut into batches.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pyarrow as pa
import pyarrow.json as pajson

from lakestream.decode.schemas import TIMESTAMP, arrow_type

_INT_RANGES = {pa.int64(): (-(2**63), 2**63 - 1), pa.int32(): (-(2**31), 2**31 - 1)}
_LABELS = {pa.float64(): "double", pa.bool_(): "bool", TIMESTAMP: "timestamp",
           pa.date32(): "date"}  # fmt: skip
_SPECS = {pa.string(): "string", pa.int64(): "int64", pa.int32(): "int32",
          pa.float64(): "double", pa.bool_(): "bool", TIMESTAMP: "timestamp",
          pa.date32(): "date", pa.null(): "null"}  # fmt: skip
_JSON_KINDS = {str: "string", bool: "boolean", int: "number", float: "number", dict: "object",
               list: "array", type(None): "null"}  # fmt: skip
_SHOWN = 60  # characters of a value quoted in a reason


@dataclass(frozen=True)
class TypeContract:
    """The declared and the committed types of one feed.

    Args:
        declared: The feed's declared schema (never widened).
        committed: Types the dataset's landed data established (see :meth:`absorb`).
    """

    declared: pa.Schema
    committed: pa.Schema = field(default_factory=lambda: pa.schema([]))

    @cached_property
    def full(self) -> pa.Schema:
        """Every known field's type: the declaration wins over what data committed."""
        return _merge_schemas(self.declared, self.committed, widen=False)

    @cached_property
    def explicit(self) -> pa.Schema:
        """What Arrow's reader is told.

        All of :attr:`full` except what the reader must still infer: an inferred
        ``int64`` (so a fraction shows and widens it), and arrays of items not
        typed yet (Arrow cannot be told "array of anything").
        """
        declared = {f.name: f.type for f in self.declared}
        kept = [f.with_type(t) for f in self.full
                if (t := _explicit(f.type, declared.get(f.name))) is not None]
        return pa.schema(kept)

    def absorb(self, landed: pa.Schema) -> TypeContract:
        """The contract once records of schema ``landed`` are committed.

        Fields only ever get added or widened (``int64`` → ``double``); a null
        column tells nothing and adds nothing.
        """
        known = pa.schema([f.with_type(t) for f in landed if (t := _known(f.type)) is not None])
        committed = _merge_schemas(self.committed, known, widen=True)
        return self if committed.equals(self.committed) else TypeContract(self.declared, committed)

    def ordered(self, schema: pa.Schema) -> pa.Schema:
        """``schema`` with its fields, and their struct fields, in the contract's order.

        The reader puts what it was told before what it inferred; without this a
        column's struct fields could come in another order in another batch.
        """
        return pa.schema(_in_order(list(schema), list(self.full)), schema.metadata)

    def mismatch(self, raw: bytes | None, against: pa.Schema | None = None) -> str | None:
        """Why the JSON object ``raw`` does not fit ``against`` (default: :attr:`full`).

        ``None`` when it fits, or is not a JSON object at all (the parser then
        gives the reason).
        """
        try:
            record = json.loads(raw or b"")
        except (ValueError, RecursionError):
            return None
        if not isinstance(record, dict):
            return None
        schema = self.full if against is None else against
        known = {f.name: f.type for f in schema}
        declared = {f.name: f.type for f in self.declared}
        for name, value in record.items():  # in the record's order: the same in every batch
            if name in known:
                why = _misfit(value, known[name], declared.get(name), name)
                if why is not None:
                    return why
        return None


# -- the notation the contract is kept in (the feeds' schema notation) ------------------------


def contract_spec(schema: pa.Schema) -> dict[str, Any]:
    """``schema`` in the feeds' notation (``{"total": "double", "customer": {"id": "string"}}``)."""
    out: dict[str, Any] = {}
    for f in schema:
        spec = _spec_of(f.type)
        if spec is not None:
            out[f.name] = spec
    return out


def contract_schema(spec: Mapping[str, Any]) -> pa.Schema:
    """The inverse of :func:`contract_spec`."""
    return pa.schema([pa.field(k, _type_of(v, k)) for k, v in spec.items()])


def merge_committed(schemas: Iterable[pa.Schema]) -> pa.Schema:
    """One committed schema from several writers' (in commit order: the first type wins)."""
    merged = pa.schema([])
    for schema in schemas:
        merged = _merge_schemas(merged, schema, widen=True)
    return merged


def _spec_of(kind: pa.DataType) -> Any:
    if pa.types.is_struct(kind):
        children = {name: _spec_of(child) for name, child in _children(kind).items()}
        return {k: v for k, v in children.items() if v is not None}
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        item = _spec_of(kind.value_type)
        return None if item is None else [item]
    return _SPECS.get(kind)


def _type_of(spec: Any, where: str) -> pa.DataType:
    if spec == "null":
        return pa.null()
    if isinstance(spec, list) and len(spec) == 1:
        return pa.list_(_type_of(spec[0], f"{where}[]"))
    if isinstance(spec, Mapping):
        return pa.struct([pa.field(k, _type_of(v, f"{where}.{k}")) for k, v in spec.items()])
    return arrow_type(spec, where)


# -- merging and pruning types ------------------------------------------------------------------


def _merge_schemas(old: pa.Schema, new: pa.Schema, widen: bool) -> pa.Schema:
    fields = {f.name: f for f in old}
    for f in new:
        before = fields.get(f.name)
        fields[f.name] = f if before is None else before.with_type(
            _merge(before.type, f.type, widen))
    return pa.schema(list(fields.values()))


def _merge(old: pa.DataType, new: pa.DataType, widen: bool) -> pa.DataType:
    """``old`` with what ``new`` adds: struct fields, list item types, and (``widen``)
    int64 → double. Where the two disagree otherwise, ``old`` stays."""
    if pa.types.is_struct(old) and pa.types.is_struct(new):
        children = {old.field(i).name: old.field(i) for i in range(old.num_fields)}
        for i in range(new.num_fields):
            child = new.field(i)
            before = children.get(child.name)
            children[child.name] = child if before is None else before.with_type(
                _merge(before.type, child.type, widen))
        return pa.struct(list(children.values()))
    if pa.types.is_list(old) and pa.types.is_list(new):
        return pa.list_(_merge(old.value_type, new.value_type, widen))
    if pa.types.is_null(old):
        return new
    if widen and old == pa.int64() and new == pa.float64():
        return new  # the one widening
    return old


def _known(kind: pa.DataType) -> pa.DataType | None:
    """What ``kind`` tells: null nothing; ``{}`` and ``[]`` still "an object", "an array"."""
    if pa.types.is_null(kind):
        return None
    if pa.types.is_struct(kind):
        children = [kind.field(i) for i in range(kind.num_fields)]
        return pa.struct([c.with_type(t) for c in children if (t := _known(c.type)) is not None])
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return pa.list_(_known(kind.value_type) or pa.null())
    return kind


def _in_order(fields: list[pa.Field], like: list[pa.Field]) -> list[pa.Field]:
    known = {f.name: f.type for f in like}
    rank = {f.name: i for i, f in enumerate(like)}
    ordered = sorted(fields, key=lambda f: rank.get(f.name, len(rank)))  # stable: new ones last
    return [f.with_type(_ordered_type(f.type, known.get(f.name))) for f in ordered]


def _ordered_type(kind: pa.DataType, like: pa.DataType | None) -> pa.DataType:
    if pa.types.is_struct(kind):
        like_fields = [like.field(i) for i in range(like.num_fields)] \
            if like is not None and pa.types.is_struct(like) else []
        return pa.struct(_in_order([kind.field(i) for i in range(kind.num_fields)], like_fields))
    if pa.types.is_list(kind):
        return pa.list_(kind.value_field.with_type(_ordered_type(kind.value_type, _item(like))))
    return kind


def _children(kind: pa.DataType | None) -> dict[str, pa.DataType]:
    """A struct's field types by name (nothing for any other type)."""
    if kind is None or not pa.types.is_struct(kind):
        return {}
    return {kind.field(i).name: kind.field(i).type for i in range(kind.num_fields)}


def _item(kind: pa.DataType | None) -> pa.DataType | None:
    """A list's item type (``None`` for any other type)."""
    return kind.value_type if kind is not None and pa.types.is_list(kind) else None


def _explicit(kind: pa.DataType, declared: pa.DataType | None) -> pa.DataType | None:
    """The part of ``kind`` Arrow's reader can be told (``None``: let it infer the field)."""
    nested = pa.types.is_struct(kind) or pa.types.is_list(kind)
    if declared is not None and not nested:
        return declared
    if pa.types.is_struct(kind):
        inner = _children(declared)
        children = [kind.field(i) for i in range(kind.num_fields)]
        return pa.struct([c.with_type(t) for c in children
                          if (t := _explicit(c.type, inner.get(c.name))) is not None])
    if pa.types.is_list(kind):
        item = _explicit(kind.value_type, _item(declared))
        return None if item is None else pa.list_(item)
    if pa.types.is_null(kind) or kind == pa.int64():
        return None
    return kind


# -- why a value does not fit -------------------------------------------------------------------


def type_label(kind: pa.DataType) -> str:
    """A type as the feeds' notation and the reasons name it."""
    if pa.types.is_struct(kind):
        return "object"
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return "array"
    return _LABELS.get(kind, str(kind))


def _misfit(value: Any, kind: pa.DataType, declared: pa.DataType | None, path: str) -> str | None:
    if value is None or pa.types.is_null(kind):
        return None
    found = _JSON_KINDS.get(type(value), type(value).__name__)
    if pa.types.is_struct(kind):
        if not isinstance(value, dict):
            return _reason(path, kind, found)
        inner, children = _children(declared), _children(kind)
        for name, item in value.items():
            if name in children:
                why = _misfit(item, children[name], inner.get(name), f"{path}.{name}")
                if why is not None:
                    return why
        return None
    if pa.types.is_list(kind):
        if not isinstance(value, list):
            return _reason(path, kind, found)
        for v in value:
            why = _misfit(v, kind.value_type, _item(declared), f"{path}[]")
            if why is not None:
                return why
        return None
    return _leaf_misfit(value, kind, declared is not None, path, found)


def _leaf_misfit(value: Any, kind: pa.DataType, declared: bool, path: str,
                 found: str) -> str | None:
    if isinstance(value, (dict, list)):
        return _reason(path, kind, found)
    if pa.types.is_string(kind):
        return None if isinstance(value, str) else _reason(path, kind, found)
    if pa.types.is_boolean(kind):
        return None if isinstance(value, bool) else _reason(path, kind, found)
    if pa.types.is_floating(kind):
        return None if found == "number" else _reason(path, kind, found)
    if kind in _INT_RANGES:
        if found != "number":
            return _reason(path, kind, found)
        low, high = _INT_RANGES[kind]
        if isinstance(value, int) and low <= value <= high:
            return None
        return None if not declared and kind == pa.int64() else _reason(path, kind, found, value)
    if _arrow_reads(value, kind):
        return None
    return _reason(path, kind, found, value)


def _arrow_reads(value: Any, kind: pa.DataType) -> bool:
    """Whether Arrow's JSON reader accepts ``value`` as ``kind`` (times, dates, …)."""
    data = json.dumps({"v": value}).encode()
    options = pajson.ParseOptions(explicit_schema=pa.schema([("v", kind)]))
    try:
        pajson.read_json(io.BytesIO(data), parse_options=options)
    except pa.ArrowException:
        return False
    return True


def _reason(path: str, kind: pa.DataType, found: str, value: Any = None) -> str:
    text = f"field {path}: expected {type_label(kind)}, found {found}"
    if value is not None:
        shown = json.dumps(value, ensure_ascii=False)
        text += f" {shown if len(shown) <= _SHOWN else shown[:_SHOWN] + '…'}"
    return text
