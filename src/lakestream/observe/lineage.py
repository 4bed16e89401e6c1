"""What of the lineage graph a principal may see, by the rules of the run logs.

The graph names datasets and tells figures of runs (rows written, checks,
errors), so it is filtered like the runs (:mod:`.visibility`) and the
datasets themselves:

- a job is shown to a principal who sees its pipeline's runs; its error only
  to one who sees their figures;
- a dataset of the lake is shown to a principal who may read it, a topic to
  one who may read the dataset its feed lands in; any other dataset (a gold
  or warehouse table, a topic no feed reads) to one who sees the figures of
  every pipeline that touches it;
- a dataset's rows and checks are withheld where a job touching it has its
  figures withheld.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lakestream.feeds import FeedRegistry
from lakestream.governance.catalog import view_name
from lakestream.lake.storage import Storage
from lakestream.lineage import LineageEventsMissing, LineageGraph, read_graph
from lakestream.lineage.graph import DatasetNode
from lakestream.lineage.naming import DatasetId, lake_path
from lakestream.observe.visibility import Visibility


def graph_reader(path: Path) -> Callable[[], LineageGraph]:
    """Reads the events file at each call; no file yet is an empty graph."""

    def read() -> LineageGraph:
        try:
            return read_graph(path)
        except LineageEventsMissing:
            return LineageGraph(source=str(path))

    return read


def visible_lineage(graph: LineageGraph, seen: Visibility, readable: set[str],
                    storage: Storage, feeds: FeedRegistry) -> LineageGraph:
    """``graph`` as a principal reading ``readable`` (and seeing runs as ``seen``) may see it."""
    topics = {f.topic: view_name(f.dataset) for f in feeds}

    def view_of(ds: DatasetNode) -> str | None:
        rel = lake_path(storage, DatasetId(ds.namespace, ds.name))
        if rel is not None:
            return view_name(rel)
        return topics.get(ds.name) if ds.namespace.startswith("kafka://") else None

    def show_dataset(ds: DatasetNode) -> bool:
        view = view_of(ds)
        if view is not None:
            return view in readable
        touching = [j for j in graph.jobs.values() if ds.key in (*j.inputs, *j.outputs)]
        return all(seen.sees_figures(j.pipeline) for j in touching)

    return graph.restricted(lambda j: seen.sees_pipeline(j.pipeline),
                            lambda j: seen.sees_figures(j.pipeline), show_dataset)
