"""Which datasets exist, under which view name, and how sensitive each one is.

A dataset's name is the name of its view in ``lakestream query`` (see
:mod:`lakestream.lake.reader`): ``transaction_stream``, ``payment_method_totals``,
``payment_method_totals_history``, ``bronze_weather``, ``silver_weather_cleaned``,
``dlq_transaction_stream`` ... Every feed's dataset and dead letters are in it
from the moment the feed is declared, before any data arrives.
Its sensitivity decides the default permissions (docs/governance.md):

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
from lakestream.lake.reader import Dataset, lake_views
from lakestream.lake.storage import Storage

Sensitivity = Literal["restricted", "shared"]


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset as governance sees it.

    Attributes:
        name: The view name (lower case), what grants name.
        path: Its folder below the lake root.
        sensitivity: ``restricted`` (needs a grant) or ``shared`` (readable by ``analyst``).
        feed: The feed it comes from, if any.
        in_lake: Whether the lake holds Parquet files of it yet (a declared
            dataset is a view, empty, before that).
    """

    name: str
    path: str
    sensitivity: Sensitivity
    feed: str | None
    in_lake: bool


def view_name(path: str) -> str:
    """The view name of a dataset folder (``bronze/weather`` → ``bronze_weather``).

    A table's folder also has the view ``<name>_history`` (every version).
    """
    area, _, name = path.partition("/")
    if area in (STREAMS, TABLES):
        return name
    if area == DLQ:
        return f"dlq_{name}"
    return f"{area}_{name}"


def build_catalog(feeds: Iterable[Feed], views: Iterable[Dataset]) -> dict[str, DatasetInfo]:
    """Every dataset of the registry and of the lake, by view name.

    Args:
        feeds: The feed registry.
        views: The lake's views (:func:`lakestream.lake.reader.lake_views`): the
            datasets found and the declared ones, ``<table>_history`` and
            ``dlq_<feed>`` included.
    """
    feeds = list(feeds)
    by_path = {f.dataset: f for f in feeds}
    refined: Sensitivity = "shared"
    if any(f.layer == "bronze" and f.sensitivity == "restricted" for f in feeds):
        refined = "restricted"
    catalog: dict[str, DatasetInfo] = {}
    for ds in views:
        name = ds.name.lower()
        feed = by_path.get(ds.path)
        catalog[name] = DatasetInfo(name, ds.path, _sensitivity(ds, feed, refined),
                                    feed.name if feed else None, ds.columns is None)
    return catalog


def lake_catalog(storage: Storage, feeds: Iterable[Feed]) -> dict[str, DatasetInfo]:
    """The catalog of ``storage``'s lake and the feed registry (every view, by name)."""
    feeds = list(feeds)
    return build_catalog(feeds, lake_views(storage, feeds))


def _sensitivity(ds: Dataset, feed: Feed | None, refined: Sensitivity) -> Sensitivity:
    if ds.area == DLQ:
        return "restricted"
    if feed is not None:
        return feed.sensitivity
    if ds.area in ("silver", "gold"):
        return refined
    return "restricted"
