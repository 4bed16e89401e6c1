"""Which datasets exist, under which view name, and how sensitive each one is.

A dataset's name is the name of its view in ``lakestream query`` (see
:mod:`lakestream.lake.reader`): ``transaction_stream``, ``payment_method_totals``,
``bronze_weather``, ``silver_weather_cleaned``, ``dlq_transaction_stream`` ...
Its sensitivity decides the default permissions (SPEC §6):

- streams, tables and bronze take their feed's ``sensitivity``;
- dead-letter datasets are always ``restricted`` (they hold raw payloads);
- silver and gold datasets take the most restrictive sensitivity of the
  bronze feeds they are refined from (``shared`` for the weather pipeline);
- anything else found in the lake is ``restricted`` until a feed says otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from lakestream.feeds import Feed
from lakestream.lake.layout import DLQ, STREAMS, TABLES
from lakestream.lake.reader import Dataset

Sensitivity = Literal["restricted", "shared"]


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset as governance sees it.

    Attributes:
        name: The view name (lower case), what grants name.
        path: Its folder below the lake root.
        sensitivity: ``restricted`` (needs a grant) or ``shared`` (readable by ``analyst``).
        feed: The feed it comes from, if any.
        in_lake: Whether the lake holds Parquet files of it yet.
    """

    name: str
    path: str
    sensitivity: Sensitivity
    feed: str | None
    in_lake: bool


def view_name(path: str) -> str:
    """The view name of a dataset folder (``bronze/weather`` → ``bronze_weather``)."""
    area, _, name = path.partition("/")
    if area in (STREAMS, TABLES):
        return name
    if area == DLQ:
        return f"dlq_{name}"
    return f"{area}_{name}"


def build_catalog(feeds: Iterable[Feed], found: Iterable[Dataset]) -> dict[str, DatasetInfo]:
    """Every dataset of the registry and of the lake, by view name.

    Args:
        feeds: The feed registry.
        found: Datasets discovered in the lake (:func:`lakestream.lake.reader.discover`).
    """
    feeds = list(feeds)
    by_path = {f.dataset: f for f in feeds}
    refined: Sensitivity = "shared"
    if any(f.layer == "bronze" and f.sensitivity == "restricted" for f in feeds):
        refined = "restricted"
    catalog: dict[str, DatasetInfo] = {}
    for f in feeds:
        name = view_name(f.dataset)
        catalog[name] = DatasetInfo(name, f.dataset, f.sensitivity, f.name, False)
    for ds in found:
        name = ds.name.lower()
        feed = by_path.get(ds.path)
        catalog[name] = DatasetInfo(
            name, ds.path, _sensitivity(ds, feed, refined), feed.name if feed else None, True
        )
    return catalog


def _sensitivity(ds: Dataset, feed: Feed | None, refined: Sensitivity) -> Sensitivity:
    if ds.area == DLQ:
        return "restricted"
    if feed is not None:
        return feed.sensitivity
    if ds.area in ("silver", "gold"):
        return refined
    return "restricted"
