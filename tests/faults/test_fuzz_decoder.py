"""Scenario 6a: arbitrary bytes and events gone wrong through the decoder of `ingest` and `process`.

Batches mix untouched generator events, real events with fields deleted,
retyped, added, nested thousands of levels deep or garbled, and arbitrary
bytes. Whatever comes: no exception and no crash (several such inputs used to
crash the whole process: see README, "Fault tolerance"), every message either
decoded or rejected with a reason, every good event kept, every definitely bad
one rejected.
"""

from __future__ import annotations

import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lakestream.decode.json_batch import JsonDecoder
from lakestream.decode.schemas import TRANSACTION_REQUIRED, arrow_schema
from lakestream.feeds import BUILTIN_FEEDS
from tests.faults.badinput import FUZZ, definitely_bad, tagged_message
from tests.faults.conftest import FaultCounts

pytestmark = [pytest.mark.faults, pytest.mark.slow]

_FEED = next(f for f in BUILTIN_FEEDS if f.name == "transaction_stream")
DECODERS = {
    "ingest": JsonDecoder(arrow_schema(_FEED.schema_spec, _FEED.time_field),
                          tuple(dict.fromkeys([*_FEED.required, "event_time"]))),
    "process": JsonDecoder(arrow_schema("transactions", "event_time"), TRANSACTION_REQUIRED),
}


@settings(FUZZ, max_examples=400)
@given(batch=st.lists(tagged_message, min_size=1, max_size=40),
       which=st.sampled_from(sorted(DECODERS)))
def test_decoder_rejects_bad_input_with_a_reason_and_keeps_every_good_event(
        batch: list[tuple[str, bytes]], which: str, counts: FaultCounts) -> None:
    decoder = DECODERS[which]
    values = [m for _, m in batch]

    result = decoder.decode(values)

    kept = result.indices.to_pylist()
    rejected = [i for i, _ in result.rejected]
    assert sorted(kept + rejected) == list(range(len(values))), "each message exactly once"
    assert all(isinstance(r, str) and r.strip() for _, r in result.rejected), result.rejected
    for i, (kind, raw) in enumerate(batch):
        if kind == "good":
            assert i in kept, f"good event {i} rejected: {dict(result.rejected).get(i)}"
        if definitely_bad(raw):
            assert i in rejected, f"bad message {i} kept: {raw[:200]!r}"
    if result.table is not None:
        assert result.table.num_rows == len(kept)
        for path in decoder.required:
            head, *rest = path.split(".")
            column = result.table.column(head)
            for part in rest:
                column = pc.struct_field(column, part)
            assert column.null_count == 0, f"a kept row misses {path}"
    counts.fuzz["decoder: messages (in 400 batches)"] += len(values)
