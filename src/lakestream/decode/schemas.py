"""Event schemas: the built-in ones and the compact notation feeds use.

A feed's schema is a mapping of field name to type name (``string``, ``int64``,
``float64``, ``bool``, ``timestamp``, ``date``), to a nested mapping (a struct), or
to a one-element list ``[type]`` (a list of that type).
Fields not in the schema are still kept: their type is inferred, so a new
optional field in the events becomes a new column (schema evolution).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from lakestream.errors import FeedError

TIMESTAMP = pa.timestamp("ms", tz="UTC")

_TYPES: Mapping[str, pa.DataType] = {
    "string": pa.string(),
    "str": pa.string(),
    "int": pa.int64(),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "float": pa.float64(),
    "float64": pa.float64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "boolean": pa.bool_(),
    "timestamp": TIMESTAMP,
    "date": pa.date32(),
}

TRANSACTION_SCHEMA_SPEC: Mapping[str, Any] = {
    "transaction_id": "string",
    "event_time": "timestamp",
    "transaction_type": "string",
    "status": "string",
    "amount": "float64",
    "currency": "string",
    "quantity": "int64",
    "user": {"user_id": "string", "name": "string", "email": "string",
             "country": "string", "city": "string"},
    "payment_method": {"payment_method_id": "string", "name": "string",
                       "category": "string", "is_active": "bool"},
    "product": {"product_id": "string", "name": "string", "category": "string",
                "unit_price": "float64"},
    "device": {"ip_address": "string", "user_agent": "string"},
    "card_last4": "string",
}  # fmt: skip

TRANSACTION_REQUIRED: tuple[str, ...] = (
    "transaction_id", "event_time", "transaction_type", "status", "amount", "currency",
    "quantity", "user.user_id", "payment_method.payment_method_id", "product.product_id",
)  # fmt: skip

_FLATTENED: dict[str, Any] = {
    "transaction_id": "string", "event_time": "timestamp", "transaction_type": "string",
    "status": "string", "amount": "float64", "currency": "string", "amount_usd": "float64",
    "quantity": "int64", "user_id": "string", "user_name": "string", "user_email": "string",
    "user_country": "string", "user_city": "string", "payment_method_id": "string",
    "payment_method_name": "string", "payment_method_category": "string",
    "payment_method_is_active": "bool", "product_id": "string", "product_name": "string",
    "product_category": "string", "product_unit_price": "float64", "ip_address": "string",
    "card_last4": "string", "_source_partition": "int32", "_source_offset": "int64",
}  # fmt: skip
_ANONYMIZED = {k: v for k, v in _FLATTENED.items()
               if k not in ("user_name", "user_email", "card_last4")}

# OpenWeather "current weather" (units=metric) plus the producer's `city` and `fetched_at`.
WEATHER_SCHEMA_SPEC: Mapping[str, Any] = {
    "coord": {"lon": "float64", "lat": "float64"},
    "weather": [{"id": "int64", "main": "string", "description": "string", "icon": "string"}],
    "base": "string",
    "main": {"temp": "float64", "feels_like": "float64", "temp_min": "float64",
             "temp_max": "float64", "pressure": "float64", "humidity": "float64",
             "sea_level": "float64", "grnd_level": "float64"},
    "visibility": "float64",
    "wind": {"speed": "float64", "deg": "float64", "gust": "float64"},
    "rain": {"1h": "float64", "3h": "float64"},
    "snow": {"1h": "float64", "3h": "float64"},
    "clouds": {"all": "float64"},
    "dt": "int64",
    "sys": {"type": "int64", "id": "int64", "country": "string", "sunrise": "int64",
            "sunset": "int64"},
    "timezone": "int64",
    "id": "int64",
    "name": "string",
    "cod": "int64",
    "city": "string",
    "fetched_at": "timestamp",
}  # fmt: skip

BUILTIN_SCHEMAS: Mapping[str, Mapping[str, Any]] = {
    "transactions": TRANSACTION_SCHEMA_SPEC,
    "weather": WEATHER_SCHEMA_SPEC,
    "transaction_flattened": _FLATTENED,
    "transaction_stream_anonymized": _ANONYMIZED,
    "transaction_stream_blacklisted": {**_FLATTENED, "blacklist_reason": "string"},
    "user_transaction_summary": {
        "user_id": "string", "transaction_type": "string", "total_amount": "float64",
        "transaction_count": "int64", "avg_amount": "float64"},
    "user_transaction_summary_eur": {
        "user_id": "string", "transaction_type": "string", "total_amount_eur": "float64",
        "transaction_count": "int64", "avg_amount_eur": "float64", "exchange_rate": "float64"},
    "payment_method_totals": {
        "payment_method_id": "string", "payment_method_name": "string",
        "total_amount": "float64", "transaction_count": "int64", "avg_amount": "float64"},
    "product_purchase_counts": {
        "product_id": "string", "product_name": "string", "product_category": "string",
        "purchase_count": "int64", "total_revenue": "float64", "avg_price": "float64",
        "unique_buyers": "int64"},
}  # fmt: skip

# Columns the ingest adds to every record: where it came from in Kafka.
KAFKA_COLUMNS = pa.schema(
    [
        ("_kafka_partition", pa.int32()),
        ("_kafka_offset", pa.int64()),
        ("_kafka_timestamp", TIMESTAMP),
        ("_kafka_key", pa.string()),
    ]
)


def arrow_type(spec: Any, where: str) -> pa.DataType:
    """The Arrow type of one schema entry (a type name, a nested mapping, or ``[type]``: a list)."""
    if isinstance(spec, list) and len(spec) == 1:
        return pa.list_(arrow_type(spec[0], f"{where}[]"))
    if isinstance(spec, Mapping):
        return pa.struct([pa.field(k, arrow_type(v, f"{where}.{k}")) for k, v in spec.items()])
    if isinstance(spec, str) and spec.lower() in _TYPES:
        return _TYPES[spec.lower()]
    known = ", ".join(sorted(set(_TYPES)))
    raise FeedError(f"schema field '{where}': unknown type {spec!r}", f"use one of: {known}")


def arrow_schema(spec: Mapping[str, Any] | str | None, time_field: str | None) -> pa.Schema:
    """Build the explicit Arrow schema for a feed.

    Args:
        spec: A field mapping, the name of a built-in schema, or ``None`` (infer all).
        time_field: The event-time field; always typed ``timestamp`` so it is parsed.
    """
    if isinstance(spec, str):
        if spec not in BUILTIN_SCHEMAS:
            raise FeedError(
                f"unknown built-in schema '{spec}'", f"known: {sorted(BUILTIN_SCHEMAS)}"
            )
        spec = BUILTIN_SCHEMAS[spec]
    fields = [pa.field(k, arrow_type(v, k)) for k, v in (spec or {}).items()]
    if time_field and "." not in time_field and time_field not in {f.name for f in fields}:
        fields.append(pa.field(time_field, TIMESTAMP))
    return pa.schema(fields)


def schema_as_json(schema: pa.Schema) -> list[dict[str, str]]:
    """A schema as ``[{"name": ..., "type": ...}]`` for ``_metadata.json``."""
    return [{"name": f.name, "type": str(f.type)} for f in schema]


def storable(table: pa.Table) -> pa.Table:
    """``table`` without columns that hold no type: objects with no field (``{}``, which
    Parquet cannot store) and fields null in every record, at any depth.

    Either becomes a column as soon as a record gives it a value (docs/operations.md,
    "Types"), so a column's existence and type never depend on how records were
    batched. Arrays keep their item type, even an unknown one (``[]``).
    """
    pruned = [(field, _without_empty_structs(field.type)) for field in table.schema]
    if all(kind == field.type for field, kind in pruned):
        return table
    kept = [field.with_type(kind) for field, kind in pruned if kind is not None]
    return table.select([f.name for f in kept]).cast(pa.schema(kept, table.schema.metadata))


def _without_empty_structs(kind: pa.DataType) -> pa.DataType | None:
    """``kind`` with its field-less structs and null fields removed (``None``: nothing left)."""
    if pa.types.is_null(kind):
        return None
    if pa.types.is_struct(kind):
        fields = [kind.field(i) for i in range(kind.num_fields)]
        kept = [f.with_type(t) for f in fields if (t := _without_empty_structs(f.type)) is not None]
        return pa.struct(kept) if kept else None
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        if pa.types.is_null(kind.value_type):
            return kind
        inner = _without_empty_structs(kind.value_type)
        if inner is None:
            return None
        item = kind.value_field.with_type(inner)
        return pa.list_(item) if pa.types.is_list(kind) else pa.large_list(item)
    return kind
