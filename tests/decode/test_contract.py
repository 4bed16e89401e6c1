"""The type contract: declared types are fixed, inferred ones are kept once committed."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pyarrow as pa

from lakestream.decode.contract import (
    TypeContract,
    contract_schema,
    contract_spec,
    merge_committed,
)
from lakestream.decode.json_batch import DecodeResult, JsonDecoder
from lakestream.decode.schemas import arrow_schema

DECODER = JsonDecoder(arrow_schema({"order_id": "string"}, "at"), required=("order_id", "at"))


def order(i: int, **fields: Any) -> bytes:
    return json.dumps({"order_id": f"o{i}", "at": "2025-05-01T10:00:00Z", **fields}).encode()


def after(decoder: JsonDecoder, *batches: list[bytes]) -> tuple[JsonDecoder, list[DecodeResult]]:
    """Decode ``batches`` in turn, committing the landed types after each, as the sink does."""
    results = []
    for values in batches:
        result = decoder.decode(values)
        results.append(result)
        if result.table is not None:
            committed = decoder.contract.absorb(result.table.schema).committed
            decoder = dataclasses.replace(decoder, committed=committed)
    return decoder, results


def types(decoder: JsonDecoder) -> dict[str, str]:
    return {f.name: str(f.type) for f in decoder.contract.full}


def test_a_batch_of_only_strings_cannot_turn_a_number_column_into_text() -> None:
    numbers = [order(i, total=i + 0.5) for i in range(5)]
    strings = [order(i, total="12.50") for i in range(5, 8)]
    decoder, [first, second] = after(DECODER, numbers, strings)

    assert first.rejected == []
    assert second.table is None
    assert second.rejected == [(i, "field total: expected double, found string") for i in range(3)]
    assert types(decoder)["total"] == "double"


def test_inside_one_batch_the_first_type_wins_with_the_same_reason() -> None:
    _, [result] = after(DECODER, [order(0, total=1.5), order(1, total="12.50")])
    assert result.rejected == [(1, "field total: expected double, found string")]


def test_an_inferred_integer_widens_to_double_and_stays_double() -> None:
    decoder, [_, second, third] = after(DECODER, [order(0, qty=2)], [order(1, qty=2.5)],
                                        [order(2, qty=3)])
    assert second.rejected == third.rejected == []
    assert second.table is not None and second.table.column("qty").to_pylist() == [2.5]
    assert third.table is not None and third.table.column("qty").type == pa.float64()
    assert types(decoder)["qty"] == "double"


def test_a_declared_integer_never_widens_and_a_declared_double_takes_integers() -> None:
    decoder = JsonDecoder(arrow_schema({"order_id": "string", "qty": "int64",
                                        "total": "double"}, "at"))
    result = decoder.decode([order(0, qty=2.5, total=1), order(1, qty=2, total=3)])
    assert result.rejected == [(0, "field qty: expected int64, found number 2.5")]
    assert result.table is not None and result.table.column("total").to_pylist() == [3.0]


def test_a_new_field_holding_times_stays_a_string_whatever_the_batch() -> None:
    _, [alone] = after(DECODER, [order(0, seen="2025-05-01T10:00:00Z")])
    _, [mixed] = after(DECODER, [order(0, seen="2025-05-01T10:00:00Z"), order(1, seen="soon")])
    assert alone.table is not None and alone.table.column("seen").type == pa.string()
    assert mixed.rejected == []
    assert mixed.table is not None and mixed.table.column("seen").to_pylist() == [
        "2025-05-01T10:00:00Z", "soon"]


def test_a_record_that_does_not_land_does_not_type_a_new_field() -> None:
    no_id = json.dumps({"at": "2025-05-01T10:00:00Z", "coupon": 5}).encode()
    decoder, [result] = after(DECODER, [no_id, order(1, coupon="SAVE10")])
    assert result.rejected == [(0, "missing required field 'order_id'")]
    assert types(decoder)["coupon"] == "string"


def test_an_empty_array_commits_its_kind_an_empty_object_nothing() -> None:
    """``[]`` is an array column (of items typed later); ``{}`` has no field a table can
    store (Parquet and Delta have no empty struct), so like null it types nothing."""
    decoder, [_, result] = after(DECODER, [order(0, tags=[], meta={})],
                                 [order(1, tags=3), order(2, meta="x"), order(3, tags=["a"])])
    assert result.rejected == [(0, "field tags: expected array, found number")]
    assert types(decoder)["tags"] == "list<item: string>"
    assert types(decoder)["meta"] == "string"


def test_null_commits_nothing() -> None:
    decoder, [_, second] = after(DECODER, [order(0, note=None)], [order(1, note="x")])
    assert second.rejected == []
    assert types(decoder)["note"] == "string"


def test_nested_fields_are_part_of_the_contract() -> None:
    decoder, [_, second] = after(DECODER, [order(0, customer={"id": "c1", "vip": True})],
                                 [order(1, customer={"id": 7}), order(2, customer={"vip": "y"}),
                                  order(3, customer={"id": "c3", "since": 2020})])
    assert second.rejected == [(0, "field customer.id: expected string, found number"),
                               (1, "field customer.vip: expected bool, found string")]
    assert types(decoder)["customer"] == "struct<id: string, vip: bool, since: int64>"


def test_the_declaration_wins_over_what_data_committed() -> None:
    committed = pa.schema([("total", pa.string()), ("order_id", pa.string())])
    decoder = dataclasses.replace(DECODER, schema=arrow_schema({"total": "double"}, "at"),
                                  committed=committed)
    result = decoder.decode([order(0, total="12.50"), order(1, total=12.5)])
    assert result.rejected == [(0, "field total: expected double, found string")]


def test_the_contract_is_kept_in_the_feeds_notation_and_read_back() -> None:
    schema = pa.schema([("total", pa.float64()), ("n", pa.int64()), ("at", pa.timestamp(
        "ms", tz="UTC")), ("customer", pa.struct([("id", pa.string()), ("vip", pa.bool_())])),
        ("tags", pa.list_(pa.null())), ("meta", pa.struct([]))])
    spec = contract_spec(schema)
    assert spec == {"total": "double", "n": "int64", "at": "timestamp",
                    "customer": {"id": "string", "vip": "bool"}, "tags": ["null"], "meta": {}}
    assert contract_schema(json.loads(json.dumps(spec))).equals(schema)


def test_writers_committed_types_merge_first_wins_and_widen() -> None:
    first = pa.schema([("a", pa.int64()), ("b", pa.string())])
    second = pa.schema([("a", pa.float64()), ("b", pa.int64()), ("c", pa.bool_())])
    merged = merge_committed([first, second])
    assert {f.name: str(f.type) for f in merged} == {"a": "double", "b": "string", "c": "bool"}


def test_absorbing_what_is_already_known_keeps_the_same_contract() -> None:
    contract = TypeContract(pa.schema([]), pa.schema([("a", pa.string())]))
    assert contract.absorb(pa.schema([("a", pa.string()), ("b", pa.null())])) is contract
