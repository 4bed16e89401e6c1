"""The graph of datasets and jobs that recorded events describe.

Read from the JSON-lines file (one OpenLineage event a line, any producer's):
each job's latest state (``RUNNING`` after a ``START``, else the end event's
type), the time of its last event, its Lakestream run id and error; each
dataset's latest row count (output statistics) and quality assertions; the
edges dataset → job (read) and job → dataset (written) of every event. A
line that is not an OpenLineage run event is skipped and counted, never fatal.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from lakestream.errors import LakestreamError

STATE_OF = {"START": "RUNNING", "RUNNING": "RUNNING"}


class LineageEventsMissing(LakestreamError):
    """No events file: nothing has emitted lineage to it yet."""


@dataclass
class DatasetNode:
    """A dataset: its latest row count and quality assertions."""

    namespace: str
    name: str
    rows: int | None = None
    written_at: str | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"


@dataclass
class JobNode:
    """A job: its latest run's state and the datasets it reads and writes."""

    namespace: str
    name: str
    kind: str | None = None
    state: str = "RUNNING"
    last_event_at: str = ""
    run_id: str | None = None
    parent: str | None = None
    error: str | None = None
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    @property
    def pipeline(self) -> str:
        """The pipeline a Lakestream job belongs to (``weather`` of ``weather.load_gold``)."""
        return self.name.split(".", 1)[0]


@dataclass
class LineageGraph:
    """Datasets and jobs, and how many events (and skipped lines) they come from."""

    jobs: dict[str, JobNode] = field(default_factory=dict)
    datasets: dict[str, DatasetNode] = field(default_factory=dict)
    events: int = 0
    skipped: int = 0
    source: str | None = None

    def edges(self) -> list[tuple[str, str]]:
        """``(from, to)`` keys: dataset → job for reads, job → dataset for writes."""
        found = [(d, j.key) for j in self.jobs.values() for d in j.inputs]
        found += [(j.key, d) for j in self.jobs.values() for d in j.outputs]
        return found

    def select(self, job: str | None = None, dataset: str | None = None) -> LineageGraph:
        """The jobs named ``job`` (a pipeline's name selects its tasks too) and those
        touching a dataset whose name contains ``dataset``, with their datasets."""
        wanted = dataset.lower() if dataset else None

        def keep(j: JobNode) -> bool:
            named = job is None or j.name == job or j.name.startswith(f"{job}.")
            touches = wanted is None or any(wanted in self.datasets[k].name.lower()
                                            for k in (*j.inputs, *j.outputs))
            return named and touches

        return self._keeping({k for k, j in self.jobs.items() if keep(j)})

    def restricted(self, show_job: Callable[[JobNode], bool],
                   show_figures: Callable[[JobNode], bool],
                   show_dataset: Callable[[DatasetNode], bool]) -> LineageGraph:
        """What one viewer may see: hidden jobs and datasets left out, with their edges;
        a job's figures (its error) and a dataset's (rows, checks) withheld where asked."""
        shown = self._keeping({k for k, j in self.jobs.items() if show_job(j)})
        datasets = {k: d for k, d in shown.datasets.items() if show_dataset(d)}
        jobs = {k: replace(j, inputs=[d for d in j.inputs if d in datasets],
                           outputs=[d for d in j.outputs if d in datasets],
                           error=j.error if show_figures(j) else None)
                for k, j in shown.jobs.items()}
        withheld = {d for j in shown.jobs.values() if not show_figures(j)
                    for d in (*j.inputs, *j.outputs)}
        datasets = {k: d if k not in withheld else replace(d, rows=None, checks=[])
                    for k, d in datasets.items()}
        return replace(shown, jobs=jobs, datasets=datasets)

    def _keeping(self, keys: set[str]) -> LineageGraph:
        parents = {self.jobs[k].parent for k in keys} - {None}
        jobs = {k: j for k, j in self.jobs.items() if k in keys or k in parents}
        used = {d for j in jobs.values() for d in (*j.inputs, *j.outputs)}
        return replace(self, jobs=jobs,
                       datasets={k: d for k, d in self.datasets.items() if k in used})

    def as_json(self) -> dict[str, Any]:
        """Plain JSON: jobs, datasets (with their keys) and edges."""
        return {"source": self.source, "events": self.events, "skipped_lines": self.skipped,
                "jobs": [{"key": j.key, "pipeline": j.pipeline, **asdict(j)}
                         for j in self.jobs.values()],
                "datasets": [{"key": d.key, **asdict(d)} for d in self.datasets.values()],
                "edges": [{"from": a, "to": b} for a, b in self.edges()]}


def read_graph(path: Path) -> LineageGraph:
    """The graph of the events in ``path``.

    Raises:
        LineageEventsMissing: ``path`` does not exist.
    """
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        raise LineageEventsMissing(
            f"no lineage events at {path} yet",
            "run a pipeline first (`lakestream run weather`), or see docs/lineage.md") from None
    events: list[dict[str, Any]] = []
    skipped = 0
    for line in lines:
        event = parse_event(line)
        if event is None:
            skipped += bool(line.strip())
        else:
            events.append(event)
    graph = build_graph(events)
    graph.skipped, graph.source = skipped, str(path)
    return graph


def parse_event(line: str) -> dict[str, Any] | None:
    """One line as a run event, or ``None`` when it is not one."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("eventType"), str):
        return None
    job, run = event.get("job"), event.get("run")
    if not (isinstance(job, dict) and isinstance(run, dict)
            and _named(job) and _when(event.get("eventTime")) is not None):
        return None
    return event


def build_graph(events: Iterable[dict[str, Any]]) -> LineageGraph:
    """The graph of ``events`` (parsed run events), latest state last."""
    earliest = dt.datetime.min.replace(tzinfo=dt.UTC)
    ordered = sorted(events, key=lambda e: _when(e["eventTime"]) or earliest)
    graph = LineageGraph(events=len(ordered))
    for event in ordered:
        _add(graph, event)
    return graph


def _add(graph: LineageGraph, event: dict[str, Any]) -> None:
    job, run = event["job"], _obj(event["run"])
    node = graph.jobs.setdefault(f"{job['namespace']}/{job['name']}",
                                 JobNode(job["namespace"], job["name"]))
    run_facets = _obj(run.get("facets"))
    node.state = STATE_OF.get(event["eventType"], event["eventType"])
    node.last_event_at = event["eventTime"]
    kind = _obj(_obj(job.get("facets")).get("jobType")).get("jobType")
    node.kind = kind if isinstance(kind, str) else node.kind
    run_id = _tag(run_facets, "lakestream.run_id") or run.get("runId")
    node.run_id = str(run_id) if run_id is not None else None
    parent = _obj(_obj(run_facets.get("parent")).get("job"))
    node.parent = f"{parent['namespace']}/{parent['name']}" if _named(parent) else node.parent
    message = _obj(run_facets.get("errorMessage")).get("message")
    node.error = str(message) if message is not None else None
    for item in _datasets(event, "inputs"):
        found = _dataset(graph, item)
        _link(node.inputs, found.key)
        checks = _obj(_obj(item.get("inputFacets")).get("dataQualityAssertions")).get(
            "assertions")
        if isinstance(checks, list) and checks:
            found.checks = [c for c in checks if isinstance(c, dict)]
    for item in _datasets(event, "outputs"):
        found = _dataset(graph, item)
        _link(node.outputs, found.key)
        rows = _obj(_obj(item.get("outputFacets")).get("outputStatistics")).get("rowCount")
        if isinstance(rows, int) and not isinstance(rows, bool):
            found.rows, found.written_at = rows, event["eventTime"]


def _obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (malformed facets are ignored)."""
    return value if isinstance(value, dict) else {}


def _datasets(event: dict[str, Any], side: str) -> list[dict[str, Any]]:
    items = event.get(side)
    return [d for d in items if isinstance(d, dict) and _named(d)] if isinstance(items, list) \
        else []


def _dataset(graph: LineageGraph, item: dict[str, Any]) -> DatasetNode:
    found = DatasetNode(item["namespace"], item["name"])
    return graph.datasets.setdefault(found.key, found)


def _link(keys: list[str], key: str) -> None:
    if key not in keys:
        keys.append(key)


def _named(item: dict[str, Any]) -> bool:
    return isinstance(item.get("namespace"), str) and isinstance(item.get("name"), str)


def _tag(run_facets: dict[str, Any], key: str) -> str | None:
    tags = _obj(run_facets.get("tags")).get("tags")
    return next((str(t.get("value")) for t in tags if isinstance(t, dict)
                 and t.get("key") == key), None) if isinstance(tags, list) else None


def _when(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
