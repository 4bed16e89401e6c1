"""A digest of a dataset's rows that two readers can compare: the legacy reader before
``lake upgrade`` (``tests/fixtures/legacy_lake.expected.json``) and Delta after it."""

from __future__ import annotations

from typing import Any

PARTITION_COLUMNS = ("year", "month", "day")  # int32 in the legacy views, strings in Delta


def view_digest(con: Any, view: str) -> dict[str, Any]:
    """Row count, and per column (date partition columns aside) non-null count and hash sum."""
    columns = [r[0] for r in con.execute(f'DESCRIBE "{view}"').fetchall()
               if r[0] not in PARTITION_COLUMNS]
    sums = ", ".join(f'count("{c}"), sum(hash("{c}"))::VARCHAR' for c in columns)
    row = con.execute(f'SELECT count(*), {sums} FROM "{view}"').fetchone()
    return {"rows": row[0],
            "columns": {c: [row[1 + 2 * i], row[2 + 2 * i]] for i, c in enumerate(columns)}}
