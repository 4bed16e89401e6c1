"""The read models: what the dashboard, the JSON API and ``/metrics`` show.

There is one set of them, here. The monitor builds them with JSON-ready
values (ISO times, floats, text: :mod:`.jsonable`), the web layer hands them
to FastAPI as they are (they are its response models, so ``/openapi.json``
describes exactly what comes back), and ``/metrics`` reads their figures.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

from lakestream.kafka.lag import PartitionLag
from lakestream.lineage import LineageGraph


class ReadModel(BaseModel):
    """A read model: what the monitor answers, and a body of the JSON API.

    Every field is always present in the JSON (``/openapi.json`` marks those
    with a default as required too).
    """

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class DatasetSummary(ReadModel):
    """One dataset's totals and freshness."""

    name: str
    path: str
    area: str
    kind: str
    feed: str | None = None
    pipeline: str | None = None
    topic: str | None = None
    enabled: bool = True
    records: int = 0
    bytes: int = 0
    files: int = 0
    dlq_records: int = 0
    partitions: int = 0
    current_version: str | None = None
    last_commit: str | None = Field(default=None, description="ISO-8601 time of the last commit")
    freshness_s: float | None = Field(default=None, description="seconds since the last commit")
    status: str = Field(default="empty", description="ok, stale, empty or disabled")


class DatasetList(ReadModel):
    """The datasets the principal may read."""

    datasets: list[DatasetSummary]


class PartitionSummary(ReadModel):
    """One partition (a day, a silver month or a table version)."""

    partition: str
    path: str
    files: int
    bytes: int
    records: int | None
    file_sizes: list[int]


class DatasetDetail(ReadModel):
    """One dataset's page: totals, schema, partitions, versions and Kafka offsets."""

    model_config = ConfigDict(populate_by_name=True)

    summary: DatasetSummary
    schema_: list[dict[str, Any]] = Field(default_factory=list, alias="schema")
    partitions: list[PartitionSummary] = Field(default_factory=list)
    versions: list[dict[str, Any]] = Field(default_factory=list)
    kafka_offsets: dict[str, Any] = Field(default_factory=dict)


class PartitionList(ReadModel):
    """The partitions of a dataset."""

    dataset: str
    partitions: list[PartitionSummary]


class FileEntry(ReadModel):
    """One Parquet file of a partition."""

    name: str
    bytes: int
    records: int
    modified: str | None


class PartitionDetail(ReadModel):
    """One partition's files."""

    dataset: str
    partition: str
    path: str
    bytes: int
    records: int
    files: list[FileEntry]


class RowsPage(ReadModel):
    """A page of a dataset's rows."""

    dataset: str
    columns: list[str]
    rows: list[list[Any]]
    total: int = Field(description="rows matching the filter, over all pages")
    limit: int
    offset: int
    date: str | None
    files_read: int = Field(description="Parquet files the page was read from")


class DeadLetterGroup(ReadModel):
    """Dead letters of one reason (the reason without the value it quotes)."""

    reason: str
    count: int
    first_seen: str | None
    last_seen: str | None
    partitions: list[dict[str, Any]]


class DeadLetters(ReadModel):
    """A feed's rejected records: how many, the first few, the groups by reason, and the
    command that replays them after a fix."""

    dataset: str
    count: int
    samples: list[dict[str, Any]]
    reasons: list[DeadLetterGroup]
    replay: str


class LagReport(ReadModel):
    """Consumer lag of the lake's sinks, and how far to trust it."""

    broker: str | None = None
    approximate: bool = Field(
        default=False, description="true when the broker (Tansu) reports wrong watermarks")
    note: str | None = None
    error: str | None = None
    partitions: list[PartitionLag] = Field(default_factory=list,
                                           description="per sink and topic-partition")

    @computed_field(  # type: ignore[prop-decorator]
        description="the sum of the known lags; null when none is known")
    @property
    def total(self) -> int | None:
        """The sum of the known lags (``None`` when none is known)."""
        known = [p.lag for p in self.partitions if p.lag is not None]
        return sum(known) if known else None


class TaskRun(ReadModel):
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


class Run(ReadModel):
    """One run of a pipeline: its tasks in start order."""

    run_id: str
    pipeline: str
    status: str
    started_at: str
    ended_at: str | None
    duration_s: float | None
    tasks: list[TaskRun] = Field(default_factory=list)
    error: str | None = None
    figures_withheld: bool = Field(
        default=False, description="true when the principal may not read every dataset of the "
        "pipeline: rows and errors are withheld (null)")


class RunList(ReadModel):
    """Recent runs, newest first; ``error`` when a run log could not be read."""

    runs: list[Run]
    error: str | None


class QualityResult(ReadModel):
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


class QualityList(ReadModel):
    """Quality results of recent runs, newest first; ``error`` when a run log could not be
    read."""

    results: list[QualityResult]
    error: str | None


class LineageJob(ReadModel):
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


class LineageDataset(ReadModel):
    """A dataset, named as OpenLineage names it."""

    key: str = Field(description="namespace/name")
    namespace: str = Field(description="kafka://host:port, file, s3://bucket, postgres://…")
    name: str
    rows: int | None = Field(description="rows the last run that counted them wrote")
    written_at: str | None
    checks: list[dict[str, Any]] = Field(description="its latest data-quality assertions")


class LineageEdge(ReadModel):
    """A dataset read by a job, or written by it."""

    model_config = ConfigDict(populate_by_name=True)

    source: str = Field(alias="from")
    to: str


class Lineage(ReadModel):
    """The lineage graph of the recorded OpenLineage events."""

    destination: str = Field(description="where runs send their events now")
    source: str | None = Field(description="the events file the graph is read from")
    events: int
    skipped_lines: int = Field(description="lines of the file that are no run event")
    jobs: list[LineageJob]
    datasets: list[LineageDataset]
    edges: list[LineageEdge]

    @classmethod
    def of(cls, graph: LineageGraph, destination: str) -> Lineage:
        """The read model of ``graph``, whose runs now send their events to ``destination``."""
        return cls.model_validate({"destination": destination, **graph.as_json()})


class ChartInfo(ReadModel):
    """A chart the dashboard draws."""

    name: str
    title: str
    dataset: str


class ChartData(ReadModel):
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


class Overview(ReadModel):
    """The overview page: datasets, lag, the last runs and the failing quality checks."""

    datasets: list[DatasetSummary]
    lag: LagReport
    runs: list[Run]
    failing_checks: list[QualityResult]
    checks: int = Field(description="checks in the latest quality run")
    errors: list[str]
