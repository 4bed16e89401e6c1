"""A user's own statements program and its independent recomputation (plain Python).

Shared by the in-process executor tests (``test_executor.py``) and the kill -9 test of
the same program registered with ``lakestream statements add`` and run by ``lakestream
process`` (``tests/faults/test_user_statements.py``): a filtered stream, a join to the
rates table, a tumbling hourly revenue with a grace period and a hopping window with
HAVING.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tests.derive.expected import RATES
from tests.derive.statements.helpers import spec_event

USER_FILE = """\
CREATE STREAM big_purchases WITH (KAFKA_TOPIC = 'big_purchases') AS SELECT
  transaction_id, user_id, amount_usd,
  CASE WHEN amount_usd >= 1000 THEN 'huge' ELSE 'big' END AS size
FROM transaction_flattened
WHERE status = 'completed' AND transaction_type = 'purchase' AND amount_usd > 100
EMIT CHANGES;

CREATE STREAM amounts_in_eur WITH (KAFKA_TOPIC = 'amounts_in_eur') AS SELECT
  t.transaction_id AS transaction_id, t.`user`->user_id AS user_id,
  ROUND(t.amount * r.to_usd * r.usd_to_eur, 2) AS amount_eur
FROM transaction_stream t JOIN exchange_rates r ON t.currency = r.currency
EMIT CHANGES;

CREATE TABLE hourly_revenue WITH (KEY_FORMAT = 'JSON') AS SELECT
  currency, WINDOWSTART AS window_start, WINDOWEND AS window_end,
  SUM(amount_usd) AS revenue_usd, COUNT(*) AS purchases
FROM transaction_flattened
WINDOW TUMBLING (SIZE 1 HOUR, GRACE PERIOD 10 MINUTES)
WHERE status = 'completed'
GROUP BY currency
EMIT CHANGES;

CREATE TABLE busy_users AS SELECT
  user_id, COUNT(*) AS events, MAX(amount_usd) AS largest
FROM transaction_flattened
WINDOW HOPPING (SIZE 30 MINUTES, ADVANCE BY 10 MINUTES, GRACE PERIOD 2 HOURS)
GROUP BY user_id
HAVING COUNT(*) > 1
EMIT CHANGES;
"""
NOON = int(datetime(2025, 1, 15, 12, tzinfo=UTC).timestamp() * 1000)
MINUTE = 60_000
HOUR = 60 * MINUTE


def _micro(value: float | Decimal) -> int:
    return int(Decimal(value).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def at(minute: int, **changes: Any) -> dict[str, Any]:
    """The SPEC example event at NOON + ``minute``."""
    stamp = datetime.fromtimestamp((NOON + minute * MINUTE) / 1000, UTC)
    return spec_event(event_time=stamp.strftime("%Y-%m-%dT%H:%M:%S.000Z"), **changes)


def event_ms(event: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(event["event_time"]).timestamp() * 1000)


def recompute(batches: list[tuple[int, list[dict[str, Any]]]]) -> dict[str, Any]:
    """What the user program gives, by its definition: per partition in offset order, the
    stream time is the highest event time so far; a window closes at end + grace."""
    stream_time: dict[int, int] = {}
    revenue: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    busy: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    late: set[str] = set()
    big, eur = [], []
    for partition, events in batches:
        for e in events:
            t = event_ms(e)
            now = stream_time[partition] = max(stream_time.get(partition, t), t)
            usd = _micro(e["amount"] * RATES[e["currency"]] * 1e6)
            eur.append((e["transaction_id"], round(e["amount"] * RATES[e["currency"]]
                                                   * 0.925926, 2)))
            completed = e["status"] == "completed"
            if completed and e["transaction_type"] == "purchase" and usd > 100_000_000:
                big.append((e["transaction_id"], "huge" if usd >= 1_000_000_000 else "big"))
            if completed:
                start = t - t % HOUR
                if start + HOUR + 10 * MINUTE <= now:
                    late.add(e["transaction_id"])
                else:
                    cell = revenue[(e["currency"], start)]
                    cell[0], cell[1] = cell[0] + usd, cell[1] + 1
            first = max(0, t - 30 * MINUTE + 10 * MINUTE)
            for start in range(first - first % (10 * MINUTE), t + 1, 10 * MINUTE):
                if start + 30 * MINUTE + 2 * HOUR <= now:
                    late.add(e["transaction_id"])
                    continue
                cell = busy[(e["user"]["user_id"], start)]
                cell[0], cell[1] = cell[0] + 1, max(cell[1], usd)
    return {
        "big_purchases": big, "amounts_in_eur": eur, "late": late,
        "hourly_revenue": {(c, s, s + HOUR): {"revenue_usd": round(m / 1e6, 6), "purchases": n}
                           for (c, s), (m, n) in revenue.items()},
        "busy_users": {(u, s, s + 30 * MINUTE): {"events": n, "largest": round(m / 1e6, 6)}
                       for (u, s), (n, m) in busy.items() if n > 1},
    }
