"""Values read from Parquet made JSON-ready (times, decimals, bytes, structs).

The read models (:mod:`.models`) carry only what JSON can: the rows of a page
or a chart, dead letters and ``_metadata.json`` pass through :func:`plain` first.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import math
from collections.abc import Sequence
from typing import Any


def plain(value: Any) -> Any:
    """``value`` as JSON can carry it: ISO times, floats, text, lists and objects."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    if isinstance(value, list | tuple | set):
        return [plain(v) for v in value]
    return str(value)


def plain_rows(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Rows of values made JSON-ready."""
    return [[plain(v) for v in row] for row in rows]
