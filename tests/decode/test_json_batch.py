"""JSON message bytes → one Arrow table: every bad input is isolated, good rows are kept."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakestream.decode.json_batch import DecodeResult, JsonDecoder
from lakestream.decode.schemas import TRANSACTION_REQUIRED, arrow_schema

SPEC = {"id": "string", "ts": "timestamp", "n": "int64", "user": {"uid": "string"}}
DECODER = JsonDecoder(arrow_schema(SPEC, "ts"), required=("id", "ts", "user.uid"))


def event(i: int, **extra: Any) -> bytes:
    """A valid message with id ``e<i>``."""
    body = {"id": f"e{i}", "ts": "2025-01-02T03:04:05Z", "n": i, "user": {"uid": f"u{i}"}}
    body.update(extra)
    return json.dumps(body).encode()


def ids(result: DecodeResult) -> list[str]:
    assert result.table is not None
    return [str(v) for v in result.table.column("id").to_pylist()]


def reasons(result: DecodeResult) -> dict[int, str]:
    return dict(result.rejected)


def decode_one_bad(bad: bytes | None, decoder: JsonDecoder = DECODER) -> str:
    """Decode ``[good, bad, good]``; assert both good rows survive; return the reason."""
    result = decoder.decode([event(0), bad, event(2)])
    assert result.indices.to_pylist() == [0, 2]
    assert ids(result) == ["e0", "e2"]
    assert [i for i, _ in result.rejected] == [1]
    return result.rejected[0][1]


# -- each kind of bad input ------------------------------------------------------------------


def test_malformed_json_is_rejected_with_the_parser_reason() -> None:
    assert decode_one_bad(b'{"id": "x", "ts": ').startswith("JSON parse error")


def test_an_array_is_not_an_object() -> None:
    assert decode_one_bad(b"[1, 2]") == "not a JSON object: the message is a JSON array"


def test_a_number_is_not_an_object() -> None:
    assert decode_one_bad(b"42") == "not a JSON object: the message is a JSON number"


def test_a_string_is_not_an_object() -> None:
    assert decode_one_bad(b'"hello"') == "not a JSON object: the message is a JSON string"


def test_json_null_is_not_an_object_even_without_required_fields() -> None:
    # a feed with no required fields must not land a JSON null as an all-null row
    lenient = JsonDecoder(arrow_schema(SPEC, "ts"))
    assert decode_one_bad(b"null", lenient) == "not a JSON object: the message is a JSON null"


def test_json_null_first_in_the_batch_does_not_crash_the_reader() -> None:
    # pyarrow's JSON reader crashes the process on a block that starts with `null`
    result = DECODER.decode([b"null", b"true", event(2), b" null"])
    assert result.indices.to_pylist() == [2]
    assert reasons(result) == {
        0: "not a JSON object: the message is a JSON null",
        1: "not a JSON object: the message is a JSON boolean",
        3: "not a JSON object: the message is a JSON null",
    }


def test_empty_and_whitespace_messages_are_rejected() -> None:
    assert decode_one_bad(b"") == "empty message"
    assert decode_one_bad(b"  \n ") == "empty message"


def test_a_tombstone_is_rejected_as_empty() -> None:
    assert decode_one_bad(None) == "empty message"


def test_a_wrong_type_for_a_declared_field_names_the_field_and_both_types() -> None:
    assert decode_one_bad(event(1, n="twelve")) == "field n: expected int64, found string"
    assert decode_one_bad(event(1, id={"a": 1})) == "field id: expected string, found object"
    assert decode_one_bad(event(1, user=[1])) == "field user: expected object, found array"
    assert decode_one_bad(event(1, user={"uid": 7})) == \
        "field user.uid: expected string, found number"
    assert decode_one_bad(event(1, n=1.5)) == "field n: expected int64, found number 1.5"


def test_an_array_of_mixed_items_is_not_called_a_parse_error() -> None:
    assert decode_one_bad(event(1, tags=[1, "a"])) == "field tags[]: expected number, found string"


def test_an_unparseable_time_names_the_value() -> None:
    reason = decode_one_bad(event(1, ts="yesterday at noon"))
    assert "yesterday at noon" in reason and "timestamp" in reason


def test_a_missing_required_nested_field_names_its_path() -> None:
    assert decode_one_bad(event(1, user={"name": "no id"})) == "missing required field 'user.uid'"


def test_a_null_required_field_counts_as_missing() -> None:
    assert decode_one_bad(event(1, id=None)) == "missing required field 'id'"


def test_two_objects_in_one_message_are_rejected() -> None:
    expected = "not exactly one JSON object in the message"
    assert decode_one_bad(event(1) + event(2)) == expected
    assert decode_one_bad(event(1) + b"\n" + event(2)) == expected


def test_pretty_printed_json_with_newlines_is_accepted() -> None:
    body = {"id": "p", "ts": "2025-01-02T03:04:05Z", "n": 7, "user": {"uid": "u"}}
    pretty = json.dumps(body, indent=2).encode()
    result = DECODER.decode([event(0), pretty, b"\n" + pretty + b"\n"])
    assert result.rejected == []
    assert ids(result) == ["e0", "p", "p"]
    assert result.table is not None and result.table.column("n").to_pylist() == [0, 7, 7]


def test_crlf_line_endings_are_accepted() -> None:
    crlf = event(5).replace(b", ", b",\r\n  ")
    result = DECODER.decode([crlf, event(6) + b"\r\n"])
    assert result.rejected == []
    assert ids(result) == ["e5", "e6"]


def test_an_empty_batch_decodes_to_nothing() -> None:
    result = DECODER.decode([])
    assert result.table is None and result.indices.to_pylist() == [] and result.rejected == []


def test_a_batch_of_only_bad_records_has_no_table() -> None:
    result = DECODER.decode([b"{", None, b"[]"])
    assert result.table is None
    assert [i for i, _ in result.rejected] == [0, 1, 2]


def test_good_rows_keep_order_and_indices_around_many_bad_ones() -> None:
    values: list[bytes | None] = []
    for i in range(40):
        values.append(event(i) if i % 3 else b"{broken")
    result = DECODER.decode(values)
    good = [i for i in range(40) if i % 3]
    assert result.indices.to_pylist() == good
    assert ids(result) == [f"e{i}" for i in good]
    assert [i for i, _ in result.rejected] == [i for i in range(40) if i % 3 == 0]


def test_time_is_parsed_as_utc_timestamp() -> None:
    result = DECODER.decode([event(1, ts="2025-01-02T23:30:00+02:00")])
    assert result.table is not None
    assert result.table.schema.field("ts").type == pa.timestamp("ms", tz="UTC")
    assert str(result.table.column("ts")[0].as_py()) == "2025-01-02 21:30:00+00:00"


def test_the_transactions_schema_requires_the_documented_fields() -> None:
    decoder = JsonDecoder(arrow_schema("transactions", "event_time"), TRANSACTION_REQUIRED)
    tx = {
        "transaction_id": "t1", "event_time": "2025-01-15T12:34:56.789Z",
        "transaction_type": "purchase", "status": "completed", "amount": 59.98,
        "currency": "USD", "quantity": 2, "user": {"user_id": "U1"},
        "payment_method": {"payment_method_id": "PM03"}, "product": {"product_id": "P1"},
        "card_last4": None,
    }  # fmt: skip
    no_product = {**tx, "product": {"name": "x"}}
    result = decoder.decode([json.dumps(tx).encode(), json.dumps(no_product).encode()])
    assert result.indices.to_pylist() == [0]
    assert reasons(result) == {1: "missing required field 'product.product_id'"}


# -- schema evolution ------------------------------------------------------------------------


def test_new_top_level_and_nested_fields_become_columns() -> None:
    old = event(1)
    new = event(2, coupon="SAVE10", user={"uid": "u2", "tier": "gold"})
    result = DECODER.decode([old, new])
    assert result.rejected == []
    table = result.table
    assert table is not None
    assert table.column("coupon").to_pylist() == [None, "SAVE10"]
    users = table.column("user").to_pylist()
    assert users[0]["uid"] == "u1" and users[0].get("tier") is None
    assert users[1] == {"uid": "u2", "tier": "gold"}


def test_new_fields_in_different_blocks_are_merged() -> None:
    # the bad record splits the batch into blocks; each block infers its own new field
    values = [event(0, a=1), b"{oops", event(2, b="x")]
    result = DECODER.decode(values)
    assert result.indices.to_pylist() == [0, 2]
    assert result.table is not None
    assert result.table.column("a").to_pylist() == [1, None]
    assert result.table.column("b").to_pylist() == [None, "x"]


def test_type_conflict_across_blocks_keeps_the_first_type_and_rejects_the_other() -> None:
    values = [event(0, extra=1), b"{oops", event(2, extra="text"), event(3), event(4, extra=5)]
    result = DECODER.decode(values)
    assert result.indices.to_pylist() == [0, 3, 4]
    assert result.table is not None
    assert result.table.column("extra").to_pylist() == [1, None, 5]
    assert reasons(result)[2] == "field extra: expected int64, found string"
    assert set(reasons(result)) == {1, 2}


def test_type_conflict_after_an_all_null_field_never_raises() -> None:
    # null, then int, then string in three blocks: the int wins, the string is rejected
    values = [event(0, x=None), event(1, x=1), event(2, x="s")]
    result = DECODER.decode(values)
    assert result.indices.to_pylist() == [0, 1]
    assert reasons(result)[2] == "field x: expected int64, found string"


# -- property: decode never raises and accounts for every input exactly once ----------------

_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
_json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=8,
)
_keys = st.sampled_from(["id", "ts", "n", "user", "x", "uid", ""]) | st.text(max_size=3)
_messages = st.one_of(
    st.integers(0, 999).map(lambda i: ("good", event(i))),
    st.dictionaries(_keys, _json_values, max_size=5).map(lambda o: ("any", json.dumps(o).encode())),
    _json_values.map(lambda v: ("any", json.dumps(v).encode())),
    st.binary(max_size=24).map(lambda b: ("any", b)),
    st.binary(max_size=24).map(lambda b: ("any", b"{" + b)),
    st.none().map(lambda n: ("any", n)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_messages, max_size=14))
def test_decode_accounts_for_every_message_exactly_once(
    batch: list[tuple[str, bytes | None]],
) -> None:
    values = [v for _, v in batch]
    result = DECODER.decode(values)  # must not raise

    kept = result.indices.to_pylist()
    rejected = [i for i, _ in result.rejected]
    assert sorted(kept + rejected) == list(range(len(values)))
    assert kept == sorted(kept)
    assert all(reason for _, reason in result.rejected)
    assert (result.table.num_rows if result.table is not None else 0) == len(kept)
    # every valid event is kept, in input order, with its own values
    good = [i for i, (kind, _) in enumerate(batch) if kind == "good"]
    assert set(good) <= set(kept)
    if result.table is not None:
        row_of = {index: row for row, index in enumerate(kept)}
        column = result.table.column("id").to_pylist()
        for i in good:
            assert column[row_of[i]] == json.loads(values[i] or b"")["id"]
