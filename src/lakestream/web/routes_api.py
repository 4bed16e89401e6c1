"""The JSON API: thin routes over :attr:`Lakestream.monitor`, one call each.

Each route answers with the monitor's read model as it is (``observe.models``:
the response models ``/openapi.json`` describes).

Every route needs a token; every route that reads a dataset goes through the
governance permission check and the audit log (inside the monitor). A dataset
the principal may not read is answered like one that does not exist (404), and
lists (datasets, lag, runs, quality, charts) leave out what it may not read.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from lakestream import __version__
from lakestream.lake.browse import MAX_PAGE
from lakestream.observe import models as read
from lakestream.web import models
from lakestream.web.auth import Api, Principal

router = APIRouter(prefix="/api", responses=models.ERRORS)

Name = Annotated[str, Path(description="dataset (view) name, e.g. transaction_stream",
                           max_length=255)]
Limit = Annotated[int, Query(ge=1, le=200, description="how many runs")]
Pipeline = Annotated[str | None, Query(max_length=64, description="only this pipeline")]


@router.get("/health", response_model=models.Health, tags=["meta"],
            responses={401: {"description": "never"}})
def health() -> models.Health:
    """Liveness: the server answers (no token needed)."""
    return models.Health(status="ok", version=__version__)


@router.get("/whoami", response_model=models.WhoAmI, tags=["meta"])
def whoami(api: Api, principal: Principal) -> models.WhoAmI:
    """The principal the token acts as, and the datasets it may read."""
    return models.WhoAmI(principal=principal, readable=api.monitor.readable(principal))


@router.get("/overview", response_model=read.Overview, tags=["dashboard"])
def overview(api: Api, principal: Principal) -> read.Overview:
    """Datasets, lag, the last runs and failing quality checks in one answer."""
    return api.monitor.overview(principal)


@router.get("/datasets", response_model=read.DatasetList, tags=["datasets"])
def datasets(api: Api, principal: Principal) -> read.DatasetList:
    """Every dataset the principal may read, with totals and freshness."""
    return read.DatasetList(datasets=api.monitor.datasets(principal))


@router.get("/datasets/{name}", response_model=read.DatasetDetail, tags=["datasets"])
def dataset(api: Api, principal: Principal, name: Name) -> read.DatasetDetail:
    """One dataset: totals, schema, partitions (with file sizes), versions, offsets."""
    return api.monitor.dataset(principal, name)


@router.get("/datasets/{name}/metadata", response_model=dict[str, Any], tags=["datasets"])
def metadata(api: Api, principal: Principal, name: Name) -> dict[str, Any]:
    """The dataset's ``_metadata.json`` as the lake keeps it (``{}`` before its first commit)."""
    return api.monitor.metadata(principal, name)


@router.get("/datasets/{name}/partitions", response_model=read.PartitionList,
            tags=["datasets"])
def partitions(api: Api, principal: Principal, name: Name) -> read.PartitionList:
    """The dataset's partitions: days (streams), months (silver) or versions (tables)."""
    return api.monitor.partitions(principal, name)


@router.get("/datasets/{name}/partitions/{partition}", response_model=read.PartitionDetail,
            tags=["datasets"])
def partition(api: Api, principal: Principal, name: Name,
              partition: Annotated[str, Path(max_length=64,
                                             description="2025-01-15, 2025-01 or v3")]
              ) -> read.PartitionDetail:
    """One partition: its Parquet files, their sizes and record counts."""
    return api.monitor.partition(principal, name, partition)


@router.get("/datasets/{name}/rows", response_model=read.RowsPage, tags=["datasets"])
def rows(api: Api, principal: Principal, name: Name,
         limit: Annotated[int, Query(ge=0, le=MAX_PAGE, description="rows per page")] = 100,
         offset: Annotated[int, Query(ge=0, le=2**62, description="rows to skip")] = 0,
         columns: Annotated[str | None, Query(max_length=4000,
                                              description="comma-separated columns")] = None,
         date: Annotated[dt.date | None, Query(description="YYYY-MM-DD: read only this "
                                               "day's partition")] = None) -> read.RowsPage:
    """A page of the dataset's rows; a date reads only that day's files."""
    chosen = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    return api.monitor.rows(principal, name, chosen, date, limit, offset)


@router.get("/datasets/{name}/dlq", response_model=read.DeadLetters, tags=["datasets"])
def dead_letters(api: Api, principal: Principal, name: Name,
                 limit: Annotated[int, Query(ge=0, le=100)] = 10) -> read.DeadLetters:
    """How many records of the dataset's feed were rejected, the first ``limit``, the
    groups by reason, and the command that replays them."""
    return api.monitor.dlq(principal, name, limit)


@router.get("/lag", response_model=read.LagReport, tags=["operations"])
def lag(api: Api, principal: Principal) -> read.LagReport:
    """Consumer lag per topic-partition: high watermark minus the lake's committed position."""
    return api.monitor.lag(principal)


@router.get("/runs", response_model=read.RunList, tags=["operations"])
def runs(api: Api, principal: Principal, pipeline: Pipeline = None,
         limit: Limit = 20) -> read.RunList:
    """The most recent runs with their tasks (``pipeline_execution_log``), newest first."""
    return api.monitor.runs(principal, pipeline, limit)


@router.get("/quality", response_model=read.QualityList, tags=["operations"])
def quality(api: Api, principal: Principal, pipeline: Pipeline = None,
            limit: Limit = 20) -> read.QualityList:
    """Quality check results of the most recent ``limit`` runs, newest first."""
    return api.monitor.quality(principal, pipeline, limit)


@router.get("/lineage", response_model=read.Lineage, tags=["operations"])
def lineage(api: Api, principal: Principal,
            job: Annotated[str | None, Query(max_length=255, description="only this job (a "
                                             "pipeline's name: its tasks too)")] = None,
            dataset: Annotated[str | None, Query(max_length=255, description="only jobs "
                                                 "touching a dataset whose name has this")] = None
            ) -> read.Lineage:
    """The lineage graph of the runs' OpenLineage events: jobs, datasets, edges (docs/lineage.md).

    Jobs of pipelines the principal does not see, and datasets it may not read, are left
    out; figures are withheld as in ``/api/runs``."""
    graph = api.monitor.lineage(principal, job, dataset)
    return read.Lineage.of(graph, api.lineage.destination().text)


@router.get("/charts", response_model=list[read.ChartInfo], tags=["charts"])
def charts(api: Api, principal: Principal) -> list[read.ChartInfo]:
    """The charts the dashboard draws of datasets the principal may read."""
    return api.monitor.charts(principal)


@router.get("/charts/{chart}", response_model=read.ChartData, tags=["charts"])
def chart(api: Api, principal: Principal,
          chart: Annotated[str, Path(max_length=64, description="a name from /api/charts")]
          ) -> read.ChartData:
    """The rows behind one chart (its dataset must be readable)."""
    return api.monitor.chart(principal, chart)
