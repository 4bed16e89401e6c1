"""Response bodies of the JSON API: they make ``/openapi.json`` describe what comes back."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    """Every error: one line saying what went wrong, and perhaps how to fix it."""

    error: str = Field(description="what went wrong")
    hint: str | None = Field(default=None, description="how to fix it")
    status: int = Field(description="the HTTP status")


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "bad parameter"},
    401: {"model": ErrorBody, "description": "no token, or an invalid or revoked one"},
    404: {"model": ErrorBody, "description": "no such dataset, partition or chart, or a "
          "dataset the principal may not read (both answered alike)"},
    503: {"model": ErrorBody, "description": "a store the answer needs is unavailable"},
}


class Health(BaseModel):
    """The server is up."""

    status: str
    version: str


class WhoAmI(BaseModel):
    """The principal a token acts as, and what it may read."""

    principal: str
    readable: list[str]


class DatasetSummary(BaseModel):
    """One dataset's totals and freshness."""

    name: str
    path: str
    area: str
    kind: str
    feed: str | None
    pipeline: str | None
    topic: str | None
    enabled: bool
    records: int
    bytes: int
    files: int
    dlq_records: int
    partitions: int
    current_version: str | None
    last_commit: str | None = Field(description="ISO-8601 time of the last commit")
    freshness_s: float | None = Field(description="seconds since the last commit")
    status: str = Field(description="ok, stale, empty or disabled")


class DatasetList(BaseModel):
    """The datasets the principal may read."""

    datasets: list[DatasetSummary]


class PartitionSummary(BaseModel):
    """One partition (a day, a silver month or a table version)."""

    partition: str
    path: str
    files: int
    bytes: int
    records: int | None
    file_sizes: list[int]


class DatasetDetail(BaseModel):
    """One dataset's page."""

    summary: DatasetSummary
    schema_: list[dict[str, Any]] = Field(alias="schema")
    partitions: list[PartitionSummary]
    versions: list[dict[str, Any]]
    kafka_offsets: dict[str, Any]


class PartitionList(BaseModel):
    """The partitions of a dataset."""

    dataset: str
    partitions: list[PartitionSummary]


class FileEntry(BaseModel):
    """One Parquet file of a partition."""

    name: str
    bytes: int
    records: int
    modified: str | None


class PartitionDetail(BaseModel):
    """One partition's files."""

    dataset: str
    partition: str
    path: str
    bytes: int
    records: int
    files: list[FileEntry]


class RowsPage(BaseModel):
    """A page of a dataset's rows."""

    dataset: str
    columns: list[str]
    rows: list[list[Any]]
    total: int = Field(description="rows matching the filter, over all pages")
    limit: int
    offset: int
    date: str | None
    files_read: int = Field(description="Parquet files the page was read from")


class DeadLetterGroup(BaseModel):
    """Dead letters of one reason (the reason without the value it quotes)."""

    reason: str
    count: int
    first_seen: str | None
    last_seen: str | None
    partitions: list[dict[str, Any]]


class DeadLetters(BaseModel):
    """A feed's rejected records: how many, the first few, the groups by reason, and the
    command that replays them after a fix."""

    dataset: str
    count: int
    samples: list[dict[str, Any]]
    reasons: list[DeadLetterGroup]
    replay: str


class PartitionLag(BaseModel):
    """Lag of one sink on one topic-partition."""

    sink: str
    topic: str
    partition: int
    position: int = Field(description="next offset the sink reads (committed + 1)")
    low: int | None
    high: int | None = Field(description="the broker's high watermark")
    lag: int | None = Field(description="high - max(position, low); null when unknown")


class LagReport(BaseModel):
    """Consumer lag of the lake's sinks."""

    broker: str | None
    approximate: bool = Field(description="true when the broker (Tansu) reports wrong watermarks")
    note: str | None
    error: str | None
    total: int | None
    partitions: list[PartitionLag]


class TaskRun(BaseModel):
    """One task attempt of a run."""

    task: str
    status: str
    attempt: int
    started_at: str | None
    ended_at: str | None
    duration_s: float | None
    rows_in: int | None
    rows_out: int | None
    error: str | None


class Run(BaseModel):
    """One run of a pipeline."""

    run_id: str
    pipeline: str
    status: str
    started_at: str
    ended_at: str | None
    duration_s: float | None
    tasks: list[TaskRun]
    error: str | None
    figures_withheld: bool = Field(
        default=False, description="true when the principal may not read every dataset of the "
        "pipeline: rows and errors are withheld (null)")


class RunList(BaseModel):
    """Recent runs, newest first; ``error`` when a run log could not be read."""

    runs: list[Run]
    error: str | None


class QualityResult(BaseModel):
    """One quality check of one run."""

    run_id: str
    pipeline: str
    check_name: str
    dataset: str
    status: str = Field(description="pass, warn or fail")
    observed: float | None
    threshold: str | None
    detail: str | None
    checked_at: str | None


class QualityList(BaseModel):
    """Quality results of recent runs, newest first."""

    results: list[QualityResult]
    error: str | None


class LineageJob(BaseModel):
    """A job: a pipeline run (``DAG``) or a task (``TASK``), as its latest event left it."""

    key: str = Field(description="namespace/name")
    pipeline: str
    namespace: str
    name: str
    kind: str | None = Field(description="DAG or TASK (the job type facet)")
    state: str = Field(description="RUNNING, COMPLETE, FAIL or ABORT")
    last_event_at: str
    run_id: str | None = Field(description="Lakestream's run id of the latest run")
    parent: str | None = Field(description="key of the pipeline job a task belongs to")
    error: str | None
    inputs: list[str] = Field(description="keys of the datasets it reads")
    outputs: list[str] = Field(description="keys of the datasets it writes")


class LineageDataset(BaseModel):
    """A dataset, named as OpenLineage names it."""

    key: str = Field(description="namespace/name")
    namespace: str = Field(description="kafka://host:port, file, s3://bucket, postgres://…")
    name: str
    rows: int | None = Field(description="rows the last run that counted them wrote")
    written_at: str | None
    checks: list[dict[str, Any]] = Field(description="its latest data-quality assertions")


class LineageEdge(BaseModel):
    """A dataset read by a job, or written by it."""

    model_config = ConfigDict(populate_by_name=True)

    source: str = Field(alias="from")
    to: str


class Lineage(BaseModel):
    """The lineage graph of the recorded OpenLineage events."""

    destination: str = Field(description="where runs send their events now")
    source: str | None = Field(description="the events file the graph is read from")
    events: int
    skipped_lines: int = Field(description="lines of the file that are no run event")
    jobs: list[LineageJob]
    datasets: list[LineageDataset]
    edges: list[LineageEdge]


class ChartInfo(BaseModel):
    """A chart the dashboard draws."""

    name: str
    title: str
    dataset: str


class ChartData(BaseModel):
    """The rows behind one chart."""

    chart: str
    title: str
    dataset: str
    kind: str
    x: str
    y: list[str]
    series: str | None
    columns: list[str]
    rows: list[list[Any]]


class Overview(BaseModel):
    """The overview page."""

    datasets: list[DatasetSummary]
    lag: LagReport
    runs: list[Run]
    failing_checks: list[QualityResult]
    checks: int = Field(description="checks in the latest quality run")
    errors: list[str]
