"""Dead-letter replay: what a fix lets through lands once, the rest stays with today's reason."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from lakestream.config import S3Settings
from lakestream.feeds import Feed
from lakestream.ingest.delta_sink import DeltaLakeSink
from lakestream.ingest.replay import DeadLetterReplay
from lakestream.lake.dead_letter_report import LetterFilter, dead_letters, reason_groups
from lakestream.lake.storage import Storage, open_storage
from tests.ingest.helpers import event, lake_rows

STRICT = Feed(name="feed", topic="t", pipeline="test", schema="transactions",
              time_field="event_time", required=("transaction_id", "event_time", "user.user_id"))
FIXED = STRICT.model_copy(update={"required": ("transaction_id", "event_time")})


@pytest.fixture
def lake(tmp_path: Path) -> Storage:
    return open_storage(str(tmp_path / "lake"), S3Settings())


def _no_user(tid: str, day: str = "2026-12-01") -> tuple[bytes, bytes]:
    body = {"transaction_id": tid, "event_time": f"{day}T10:00:00Z", "amount": 1.5}
    return b"K", json.dumps(body).encode()


def _ingest(lake: Storage) -> None:
    """Two partitions with good records and dead letters of every kind."""
    sink = DeltaLakeSink(lake, STRICT)
    batches: dict[int, list[tuple[bytes | None, bytes]]] = {
        0: [event("g0", "2026-12-01T09:00:00Z", score=1), _no_user("n0"), (b"K", b"{broken"),
            _no_user("n1", "2026-12-02"), (b"K", b"[1, 2]")],
        1: [event("g1", "2026-12-02T09:00:00Z", score=2), _no_user("n2"),
            event("s1", "2026-12-02T09:00:00Z", score="high"), (None, b"\xff\xfe")],
    }
    for partition, messages in batches.items():
        sink.recover("t", partition)
        sink.write("t", partition, [v for _, v in messages], [k for k, _ in messages],
                   list(range(100, 100 + len(messages))), [1_764_576_000_000] * len(messages))


def _ids(lake: Storage) -> Counter[str]:
    return Counter(r[0] for r in lake_rows(lake.base, columns="transaction_id"))


def _letters(lake: Storage) -> dict[tuple[int, int], str]:
    found, _ = dead_letters(lake, DeltaLakeSink(lake, STRICT).dlq, limit=None)
    return {(d.partition, d.offset): d.reason for d in found}


def test_a_fix_lands_the_letters_it_lets_through_and_keeps_the_others(lake: Storage) -> None:
    _ingest(lake)
    before = _letters(lake)
    assert len(before) == 7 and _ids(lake) == Counter(["g0", "g1"])
    report = DeadLetterReplay(lake, FIXED).run()
    assert (report.picked, report.landed, report.already) == (7, 3, 0)
    assert sum(report.failing.values()) == 4 and report.reasons_changed == 0
    assert _ids(lake) == Counter(["g0", "g1", "n0", "n1", "n2"])
    after = _letters(lake)
    assert after == {k: v for k, v in before.items() if "user.user_id" not in v}
    rows = {r[0]: r[1:] for r in lake_rows(lake.base, columns="transaction_id, "
                                          "_kafka_partition, _kafka_offset, day, _kafka_key")}
    assert rows["n1"] == (0, 103, "02", "K") and rows["n2"] == (1, 101, "01", "K")
    # a second replay finds nothing to land
    again = DeadLetterReplay(lake, FIXED).run()
    assert (again.picked, again.landed, again.already) == (4, 0, 0)
    assert _ids(lake) == Counter(["g0", "g1", "n0", "n1", "n2"]) and _letters(lake) == after


def test_a_dry_run_says_what_would_land_and_changes_nothing(lake: Storage) -> None:
    _ingest(lake)
    before = _letters(lake)
    report = DeadLetterReplay(lake, FIXED).run(dry_run=True)
    assert (report.picked, report.landed, report.dry_run) == (7, 3, True)
    assert _letters(lake) == before and _ids(lake) == Counter(["g0", "g1"])


def test_a_reason_filter_replays_only_those_letters(lake: Storage) -> None:
    _ingest(lake)
    report = DeadLetterReplay(lake, FIXED).run(LetterFilter(reason="BROKEN-NOTHING"))
    assert report.picked == 0
    report = DeadLetterReplay(lake, FIXED).run(LetterFilter(reason="expected int64"))
    assert (report.picked, report.landed) == (1, 0)
    assert _ids(lake) == Counter(["g0", "g1"])
    report = DeadLetterReplay(lake, FIXED).run(LetterFilter(reason="MISSING REQUIRED"))
    assert (report.picked, report.landed) == (3, 3)


def test_a_replay_killed_between_its_two_commits_lands_nothing_twice(lake: Storage) -> None:
    _ingest(lake)
    crashed = DeadLetterReplay(lake, FIXED)
    plan = crashed._plan(LetterFilter())
    assert crashed._land(plan) == 3  # the rows landed, then the process died
    report = DeadLetterReplay(lake, FIXED).run()
    assert (report.picked, report.landed, report.already) == (7, 0, 3)
    assert _ids(lake) == Counter(["g0", "g1", "n0", "n1", "n2"])
    assert not any("user.user_id" in why for why in _letters(lake).values())


def test_a_second_replay_planned_on_the_same_snapshot_is_fenced(lake: Storage) -> None:
    _ingest(lake)
    first, second = DeadLetterReplay(lake, FIXED), DeadLetterReplay(lake, FIXED)
    stale = second._plan(LetterFilter())
    first.run()
    from lakestream.errors import FencedError

    with pytest.raises(FencedError):
        second._land(stale)
    assert _ids(lake) == Counter(["g0", "g1", "n0", "n1", "n2"])


def test_letters_that_fail_for_another_reason_keep_today_s_reason(lake: Storage) -> None:
    _ingest(lake)
    other = STRICT.model_copy(
        update={"required": ("transaction_id", "event_time", "merchant_id")})
    report = DeadLetterReplay(lake, other).run(LetterFilter(reason="user.user_id"))
    assert (report.picked, report.landed, report.reasons_changed) == (3, 0, 3)
    reasons = [why for why in _letters(lake).values() if "required" in why]
    assert sorted(reasons) == ["missing required field 'merchant_id'"] * 3


def test_the_list_groups_reasons_without_the_values(lake: Storage) -> None:
    _ingest(lake)
    groups = reason_groups(lake, DeltaLakeSink(lake, STRICT).dlq)
    top = groups[0]
    assert (top.reason, top.count) == ("missing required field 'user.user_id'", 3)
    assert top.coordinates() == "t[0] 101..103, t[1] 101..101"
    assert any(g.reason == "field score: expected int64, found string" for g in groups)
    shown = {d.offset: d.shown for d in dead_letters(lake, DeltaLakeSink(lake, STRICT).dlq,
                                                      LetterFilter(reason="not a JSON object"),
                                                      limit=None)[0]}
    assert shown and all(kind == "text" for kind, _ in shown.values())
    binary = [d for d in dead_letters(lake, DeltaLakeSink(lake, STRICT).dlq, limit=None)[0]
              if d.raw == b"\xff\xfe"]
    assert binary[0].shown == ("hex", "fffe")
