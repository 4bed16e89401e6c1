"""OpenLineage events of every pipeline run and task, and the graph they describe.

:mod:`.runs` emits them (the DAG runner calls it, for every run):
``START`` and ``COMPLETE`` / ``FAIL`` / ``ABORT`` for a pipeline run and each
task attempt, naming the datasets each task reads and writes (:mod:`.tasks`,
named by :mod:`.naming`), with schemas, row counts and quality results as
facets (:mod:`.facets`). :mod:`.transport` sends them where openlineage-python
is configured to (``OPENLINEAGE_URL``: Marquez or any endpoint), else to a
JSON-lines file under ``data_dir``, which :mod:`.graph` reads back for
``lakestream lineage`` and the dashboard (:mod:`.layout` draws it). See
docs/lineage.md.
"""

from lakestream.lineage.graph import LineageEventsMissing, LineageGraph, read_graph
from lakestream.lineage.quality import Check, checks_of
from lakestream.lineage.runs import Lineage, RunLineage, TaskResult
from lakestream.lineage.transport import Destination

__all__ = [
    "Check",
    "Destination",
    "Lineage",
    "LineageEventsMissing",
    "LineageGraph",
    "RunLineage",
    "TaskResult",
    "checks_of",
    "read_graph",
]
