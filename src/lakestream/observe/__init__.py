"""Read models for the dashboard, the JSON API and ``/metrics``.

What the lake holds per dataset (:mod:`.datasets`), consumer lag
(:mod:`.lag`), runs and quality results (:mod:`.runs`), the data behind the
charts (:mod:`.charts`), tied together per principal by :class:`Monitor`.
Everything it answers is one of the read models of :mod:`.models`, which the
web layer serves as they are.
"""

from lakestream.observe.charts import CHARTS, Chart, UnknownChartError
from lakestream.observe.datasets import UnknownDatasetError
from lakestream.observe.lag import TANSU_NOTE, LagMonitor
from lakestream.observe.models import DatasetDetail, DatasetSummary, LagReport, Run
from lakestream.observe.runs import LogDatabase
from lakestream.observe.service import Monitor

__all__ = [
    "CHARTS",
    "TANSU_NOTE",
    "Chart",
    "DatasetDetail",
    "DatasetSummary",
    "LagMonitor",
    "LagReport",
    "LogDatabase",
    "Monitor",
    "Run",
    "UnknownChartError",
    "UnknownDatasetError",
]
