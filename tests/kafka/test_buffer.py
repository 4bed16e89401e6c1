"""The one batch of a partition's messages: filled by the consumer loop, or built by a scan."""

from __future__ import annotations

from lakestream.kafka.buffer import PartitionBuffer


def filled(values: list[bytes | None]) -> PartitionBuffer:
    buffer = PartitionBuffer("tx", 3)
    for offset, value in enumerate(values, start=10):
        buffer.add(value, b"k", offset, 1_700_000_000_000 + offset)
    return buffer


def test_a_buffer_built_from_columns_equals_one_filled_message_by_message() -> None:
    values = [b"abc", None, b"de"]
    built = PartitionBuffer("tx", 3, list(values), [b"k"] * 3, [10, 11, 12],
                            [1_700_000_000_010, 1_700_000_000_011, 1_700_000_000_012])
    assert built == filled(values)
    assert built.nbytes == 5 and len(built) == 3 and built.first_at > 0


def test_slices_and_selections_keep_every_column_and_count_their_bytes() -> None:
    buffer = filled([b"a", b"bb", b"ccc", b"dddd"])
    middle = buffer.slice(1, 3)
    assert (middle.topic, middle.partition) == ("tx", 3)
    assert middle.offsets == [11, 12] and middle.values == [b"bb", b"ccc"]
    assert middle.timestamps == buffer.timestamps[1:3] and middle.nbytes == 5
    picked = buffer.select([0, 3])
    assert picked.offsets == [10, 13] and picked.keys == [b"k", b"k"] and picked.nbytes == 5
    assert len(buffer) == 4 and buffer.nbytes == 10  # the original is left as it was


def test_columns_from_an_offset_skip_what_a_sink_already_holds() -> None:
    buffer = filled([b"a", b"b", b"c"])
    assert buffer.columns_from(None) == (buffer.values, buffer.keys, buffer.offsets,
                                         buffer.timestamps)
    cut = buffer.columns_from(11)
    assert cut is not None and cut[2] == [11, 12]
    assert buffer.columns_from(13) is None
    buffer.clear()
    assert len(buffer) == 0 and buffer.nbytes == 0
