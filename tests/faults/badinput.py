"""Hypothesis strategies for bad input: arbitrary bytes and transaction events gone wrong.

Each drawn message is tagged ``good`` (an untouched generator event: it must
land in the lake), ``mutated`` (a real event with fields deleted, retyped,
added or garbled: it may or may not still be valid) or ``garbage``. The
oracle :func:`definitely_bad` says, independently of the decoder, which
messages must end in the dead-letter queue.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lakestream.decode.schemas import TRANSACTION_REQUIRED
from lakestream.sources.generator import TransactionGenerator
from tests.faults.chaos import FIXED_CLOCK

# seeded (derandomized), no example database, no shrinking: a failure shows the drawn
# example at once (shrinking deeply nested inputs takes minutes; enable it locally)
FUZZ = settings(derandomize=True, database=None, deadline=None, print_blob=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

_GENERATOR = TransactionGenerator(seed=4242, now=lambda: FIXED_CLOCK)
EVENTS: list[dict[str, Any]] = [_GENERATOR.event() for _ in range(200)]
PATHS = sorted({f"{k}.{n}" if isinstance(v, dict) else k
                for e in EVENTS[:20] for k, v in e.items()
                for n in (v if isinstance(v, dict) else [None])}
               | {k for e in EVENTS[:20] for k in e})

_wrong = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
    st.lists(st.integers(-5, 5), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.sampled_from(["", "yesterday", "2025-13-45T00:00:00Z", "2025-03-10", "1741600000",
                     "2025-03-10T12:00:00+25:00", "0000-00-00T00:00:00Z", "9999-12-31T23:59:59Z",
                     "1677-01-01T00:00:00Z", "2262-04-12T00:00:00Z", "NaN", "\u0000", "🙂" * 3]),
)


@st.composite
def mutated_event(draw: st.DrawFn) -> bytes:
    """A real event with 1-3 things done wrong, serialized (sometimes oddly)."""
    event = copy.deepcopy(draw(st.sampled_from(EVENTS)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS)).split(".")
        parent = event
        for part in path[:-1]:
            parent = parent.get(part) if isinstance(parent.get(part), dict) else {}
        action = draw(st.sampled_from(["delete", "retype", "retype", "add", "flatten", "deep"]))
        if action == "delete":
            parent.pop(path[-1], None)
        elif action == "retype":
            parent[path[-1]] = draw(_wrong)
        elif action == "add":
            parent[draw(st.text(min_size=1, max_size=8))] = draw(_wrong)
        elif action == "deep":  # nested far deeper than any event needs
            parent[path[-1]] = _nested(draw(st.integers(2, 600)), draw(st.booleans()))
        else:
            event[path[0]] = draw(_wrong)
    text = json.dumps(event, ensure_ascii=draw(st.booleans()),
                      indent=draw(st.sampled_from([None, None, 2])))
    raw = text.encode()
    garble = draw(st.sampled_from(["none", "none", "none", "truncate", "crlf", "bom", "tail"]))
    if garble == "truncate":
        raw = raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    elif garble == "crlf":
        raw = raw.replace(b"\n", b"\r\n").replace(b", ", b",\r\n ")
    elif garble == "bom":
        raw = b"\xef\xbb\xbf" + raw
    elif garble == "tail":
        raw += draw(st.sampled_from([b" ", b"x", b"}", b"\n{}", b"\x00", b" []"]))
    return raw


def _nested(depth: int, arrays: bool) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value] if arrays else {"a": value}
    return value


_deep = st.integers(1, 6000)
good_event = st.sampled_from(EVENTS).map(lambda e: json.dumps(e).encode())
garbage = st.one_of(
    st.binary(max_size=64), st.binary(max_size=16).map(lambda b: b"{" + b),
    st.just(b""), st.just(b"null"), st.just(b"{}"), st.just(b"[]"), st.just(b"{" * 200),
    st.text(max_size=40).map(str.encode),
    _deep.map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    _deep.map(lambda n: b'{"x": ' + b"[" * n + b"]" * n + b"}"),
    _deep.map(lambda n: b"[" * n), _deep.map(lambda n: b'{"a":' * n),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                 lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                 max_leaves=8).map(lambda v: json.dumps(v).encode()),
)
_KINDS = {"good": good_event, "mutated": mutated_event(), "garbage": garbage}
# about 3 good : 4 mutated : 3 garbage (a plain one_of leans to the many garbage branches)
tagged_message = st.sampled_from(["good"] * 3 + ["mutated"] * 4 + ["garbage"] * 3).flatmap(
    lambda kind: _KINDS[kind].map(lambda raw: (kind, raw)))


def definitely_bad(raw: bytes | None, required: tuple[str, ...] = TRANSACTION_REQUIRED) -> bool:
    """Whether a message must be rejected: not one JSON object, or a required field missing.

    Only judged when Python's own parser reads it (it is more lenient than a strict
    reader: NaN, any number size), so the verdict never depends on the decoder's.
    """
    if not raw or not raw.strip():
        return True
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return False  # no verdict: the decoder may be right either way
    if not isinstance(value, dict):
        return True
    for path in required:
        node: Any = value
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return True
    return False


def draw_batches(examples: int) -> list[tuple[str, bytes]]:
    """Messages of ``examples`` seeded batches of :data:`tagged_message`, for a live topic."""
    drawn: list[tuple[str, bytes]] = []

    @settings(FUZZ, max_examples=examples)
    @given(st.lists(tagged_message, min_size=5, max_size=30))
    def collect(batch: list[tuple[str, bytes]]) -> None:
        drawn.extend(batch)

    collect()
    return drawn
