"""``_metadata.json`` of a dataset: a human-readable summary of its Delta log (docs/lake.md).

The log stays the truth; the summary is rewritten from it after commits
(:mod:`lakestream.lake.delta_metadata`).
"""

from __future__ import annotations

import json
from typing import Any

from lakestream.lake.layout import METADATA
from lakestream.lake.storage import Storage


def read_metadata(storage: Storage, dataset: str) -> dict[str, Any] | None:
    """The dataset's ``_metadata.json``, or ``None`` if there is none yet."""
    try:
        data = json.loads(storage.read(f"{dataset}/{METADATA}"))
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None
