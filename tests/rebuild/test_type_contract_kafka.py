"""Issue 15's repro on a real broker: types hold, and a day rebuild accounts for every record.

A feed ``nu_orders`` gets 1,000 orders, 200 with a new field and 100 whose
``total`` is the string "12.50" in a batch of their own; then ``total`` is
declared ``double`` and each of its three days is rebuilt with ``lakestream
export --stream nu_orders --date D``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from lakestream.api import Lakestream
from lakestream.cli import main
from tests.batchload.helpers import bootstrap
from tests.conftest import settings_for, unique_topic
from tests.ingest.helpers import send
from tests.lake.lakegen import forget_types

pytestmark = pytest.mark.integration

DAYS = ("2025-05-01", "2025-05-02", "2025-05-03")
WRONG = "field total: expected double, found string"


def orders(first: int, count: int, **extra: Any) -> list[tuple[bytes | None, bytes]]:
    return [(None, json.dumps({"order_id": f"o{i}", "ordered_at": f"{DAYS[i % 3]}T{i % 24:02d}:00Z",
                               "customer": {"id": f"c{i % 50}"}, "total": i % 97 + 0.5,
                               **extra}).encode()) for i in range(first, first + count)]


def cli(workdir: Path, *args: str) -> int:
    return main(["--config", str(workdir / "lakestream.yaml"), *args])


def ingest(workdir: Path) -> None:
    """One ``ingest --until-idle`` of the feed: each call lands what was sent as its own batches."""
    api = Lakestream(settings_for(workdir))
    api.ingest_engine(api.select_feeds(None, "nu_orders"), until_idle=True,
                      idle_timeout_s=1.5).run()


def land_the_issue_stream(workdir: Path, before_the_contract: bool = False) -> None:
    topic = unique_topic("nu.orders")
    assert cli(workdir, "feeds", "add", "nu_orders", "--topic", topic, "--time-field",
               "ordered_at", "--required", "order_id", "--required", "customer.id") == 0
    send(bootstrap(workdir), topic, orders(0, 1000))
    ingest(workdir)
    send(bootstrap(workdir), topic, orders(1000, 200, gift_wrap=True))
    ingest(workdir)
    if before_the_contract:  # as the lake a release without the type contract wrote
        forget_types(workdir / "lake", "streams/nu_orders")
    send(bootstrap(workdir), topic, orders(1200, 100, total="12.50"))
    ingest(workdir)


def declare_total(workdir: Path) -> None:
    assert cli(workdir, "feeds", "update", "nu_orders", "--set",
               "schema={total: double, order_id: string}") == 0


def rebuild_every_day(workdir: Path, capsys: pytest.CaptureFixture[str]) -> list[tuple[int, ...]]:
    """``export --stream nu_orders --date D`` per day: (read, landed, dead letters, new) each."""
    capsys.readouterr()
    counts = []
    for day in DAYS:
        assert cli(workdir, "export", "--stream", "nu_orders", "--date", day,
                   "--idle-timeout", "1") == 0
        out = capsys.readouterr().out
        line = re.search(rf"{day}: read ([\d,]+) = ([\d,]+) landed \+ ([\d,]+) dead letters"
                         r"(?: \(([\d,]+) new in the DLQ\))?", out)
        assert line is not None, out
        counts.append(tuple(int((g or "0").replace(",", "")) for g in line.groups()))
    return counts


def lake_and_dlq(workdir: Path) -> tuple[Any, ...]:
    api = Lakestream(settings_for(workdir))
    return (api.query("SELECT count(*), count(DISTINCT order_id), typeof(any_value(total)), "
                      "count(gift_wrap) FROM nu_orders")[1][0],
            api.query("SELECT reason, count(*) FROM dlq_nu_orders GROUP BY 1")[1])


def test_strings_in_a_batch_of_their_own_cannot_turn_a_number_column_into_text(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    land_the_issue_stream(workdir)
    assert lake_and_dlq(workdir) == ((1200, 1200, "DOUBLE", 200), [(WRONG, 100)])

    declare_total(workdir)
    counts = rebuild_every_day(workdir, capsys)

    assert [read for read, landed, dead, new in counts] == [434, 433, 433]
    assert all(read == landed + dead and new == 0 for read, landed, dead, new in counts)
    assert sum(c[1] for c in counts) == 1200 and sum(c[2] for c in counts) == 100
    assert lake_and_dlq(workdir) == ((1200, 1200, "DOUBLE", 200), [(WRONG, 100)])
