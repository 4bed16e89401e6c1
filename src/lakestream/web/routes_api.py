"""The JSON API: thin routes over :attr:`Lakestream.monitor`, one call each.

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
from lakestream.observe import CHARTS
from lakestream.web import models
from lakestream.web.auth import Api, Principal
from lakestream.web.jsonable import plain, plain_rows

router = APIRouter(prefix="/api", responses=models.ERRORS)

Name = Annotated[str, Path(description="dataset (view) name, e.g. transaction_stream",
                           max_length=255)]
Limit = Annotated[int, Query(ge=1, le=200, description="how many runs")]
Pipeline = Annotated[str | None, Query(max_length=64, description="only this pipeline")]


@router.get("/health", response_model=models.Health, tags=["meta"],
            responses={401: {"description": "never"}})
def health() -> dict[str, Any]:
    """Liveness: the server answers (no token needed)."""
    return {"status": "ok", "version": __version__}


@router.get("/whoami", response_model=models.WhoAmI, tags=["meta"])
def whoami(api: Api, principal: Principal) -> dict[str, Any]:
    """The principal the token acts as, and the datasets it may read."""
    return {"principal": principal, "readable": api.monitor.readable(principal)}


@router.get("/overview", response_model=models.Overview, tags=["dashboard"])
def overview(api: Api, principal: Principal) -> Any:
    """Datasets, lag, the last runs and failing quality checks in one answer."""
    return plain(api.monitor.overview(principal))


@router.get("/datasets", response_model=models.DatasetList, tags=["datasets"])
def datasets(api: Api, principal: Principal) -> Any:
    """Every dataset the principal may read, with totals and freshness."""
    return {"datasets": plain(api.monitor.datasets(principal))}


@router.get("/datasets/{name}", response_model=models.DatasetDetail, tags=["datasets"])
def dataset(api: Api, principal: Principal, name: Name) -> Any:
    """One dataset: totals, schema, partitions (with file sizes), versions, offsets."""
    detail = api.monitor.dataset(principal, name)
    return plain(detail)


@router.get("/datasets/{name}/metadata", response_model=dict[str, Any], tags=["datasets"])
def metadata(api: Api, principal: Principal, name: Name) -> Any:
    """The dataset's ``_metadata.json`` as the lake keeps it (``{}`` before its first commit)."""
    return plain(api.monitor.metadata(principal, name))


@router.get("/datasets/{name}/partitions", response_model=models.PartitionList,
            tags=["datasets"])
def partitions(api: Api, principal: Principal, name: Name) -> Any:
    """The dataset's partitions: days (streams), months (silver) or versions (tables)."""
    detail = api.monitor.dataset(principal, name)
    return {"dataset": name, "partitions": plain(detail.partitions)}


@router.get("/datasets/{name}/partitions/{partition}", response_model=models.PartitionDetail,
            tags=["datasets"])
def partition(api: Api, principal: Principal, name: Name,
              partition: Annotated[str, Path(max_length=64,
                                             description="2025-01-15, 2025-01 or v3")]) -> Any:
    """One partition: its Parquet files, their sizes and record counts."""
    return plain(api.monitor.partition(principal, name, partition))


@router.get("/datasets/{name}/rows", response_model=models.RowsPage, tags=["datasets"])
def rows(api: Api, principal: Principal, name: Name,
         limit: Annotated[int, Query(ge=0, le=MAX_PAGE, description="rows per page")] = 100,
         offset: Annotated[int, Query(ge=0, le=2**62, description="rows to skip")] = 0,
         columns: Annotated[str | None, Query(max_length=4000,
                                              description="comma-separated columns")] = None,
         date: Annotated[dt.date | None, Query(description="YYYY-MM-DD: read only this "
                                               "day's partition")] = None) -> Any:
    """A page of the dataset's rows; a date reads only that day's files."""
    chosen = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    page = api.monitor.rows(principal, name, chosen, date, limit, offset)
    return {"dataset": name, "columns": page.columns, "rows": plain_rows(page.rows),
            "total": page.total, "limit": limit, "offset": offset,
            "date": date.isoformat() if date else None,
            "files_read": len(page.files_read)}


@router.get("/datasets/{name}/dlq", response_model=models.DeadLetters, tags=["datasets"])
def dead_letters(api: Api, principal: Principal, name: Name,
                 limit: Annotated[int, Query(ge=0, le=100)] = 10) -> Any:
    """How many records of the dataset's feed were rejected, the first ``limit``, the
    groups by reason, and the command that replays them."""
    found = api.monitor.dlq(principal, name, limit)
    return {"dataset": name, **plain(found)}


@router.get("/lag", response_model=models.LagReport, tags=["operations"])
def lag(api: Api, principal: Principal) -> Any:
    """Consumer lag per topic-partition: high watermark minus the lake's committed position."""
    return plain(api.monitor.lag(principal).as_dict())


@router.get("/runs", response_model=models.RunList, tags=["operations"])
def runs(api: Api, principal: Principal, pipeline: Pipeline = None, limit: Limit = 20) -> Any:
    """The most recent runs with their tasks (``pipeline_execution_log``), newest first."""
    return plain(api.monitor.runs(principal, pipeline, limit))


@router.get("/quality", response_model=models.QualityList, tags=["operations"])
def quality(api: Api, principal: Principal, pipeline: Pipeline = None,
            limit: Limit = 20) -> Any:
    """Quality check results of the most recent ``limit`` runs, newest first."""
    return plain(api.monitor.quality(principal, pipeline, limit))


@router.get("/lineage", response_model=models.Lineage, tags=["operations"])
def lineage(api: Api, principal: Principal,
            job: Annotated[str | None, Query(max_length=255, description="only this job (a "
                                             "pipeline's name: its tasks too)")] = None,
            dataset: Annotated[str | None, Query(max_length=255, description="only jobs "
                                                 "touching a dataset whose name has this")] = None
            ) -> Any:
    """The lineage graph of the runs' OpenLineage events: jobs, datasets, edges (docs/lineage.md).

    Jobs of pipelines the principal does not see, and datasets it may not read, are left
    out; figures are withheld as in ``/api/runs``."""
    graph = api.monitor.lineage(principal, job, dataset)
    return {"destination": api.lineage.destination().text, **graph.as_json()}


@router.get("/charts", response_model=list[models.ChartInfo], tags=["charts"])
def charts(api: Api, principal: Principal) -> Any:
    """The charts the dashboard draws of datasets the principal may read."""
    readable = set(api.monitor.readable(principal))
    return [{"name": c.name, "title": c.title, "dataset": c.dataset} for c in CHARTS.values()
            if c.dataset in readable]


@router.get("/charts/{chart}", response_model=models.ChartData, tags=["charts"])
def chart(api: Api, principal: Principal,
          chart: Annotated[str, Path(max_length=64, description="a name from /api/charts")]
          ) -> Any:
    """The rows behind one chart (its dataset must be readable)."""
    data = api.monitor.chart(principal, chart)
    return {**data, "rows": plain_rows(data["rows"])}
