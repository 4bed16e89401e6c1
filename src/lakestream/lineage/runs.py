"""The OpenLineage events of one pipeline run and of each of its task attempts.

A run is the job ``<pipeline>`` (job type ``DAG``); each attempt of a task
is a run of the job ``<pipeline>.<task>`` (job type ``TASK``) whose parent
facet points at the pipeline's run. Every run emits ``START`` and then
``COMPLETE``, ``FAIL`` or ``ABORT`` (a cancelled run or attempt). A task's
``START`` names its datasets; its end adds their schemas, its row counts
and, for a quality task, the checks' results as data-quality assertions on
the datasets they concern. The job namespace is ``OPENLINEAGE_NAMESPACE``,
else ``lakestream``. Run ids are UUIDs derived from Lakestream's run id and
start time; the Lakestream run id and attempt are the run's tags.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    input_statistics_input_dataset,
    output_statistics_output_dataset,
)
from openlineage.client.uuid import generate_static_uuid

from lakestream.config import Settings
from lakestream.feeds import FeedRegistry
from lakestream.lake.storage import Storage
from lakestream.lineage import facets
from lakestream.lineage.graph import LineageEventsMissing, LineageGraph, read_graph
from lakestream.lineage.quality import Check, stored_checks
from lakestream.lineage.resolve import Resolver, quietly
from lakestream.lineage.tasks import Ref, TaskSpec, task_spec
from lakestream.lineage.transport import Destination, EventSink, destination, events_file

NAMESPACE_ENV = "OPENLINEAGE_NAMESPACE"
DEFAULT_NAMESPACE = "lakestream"
STATES = {"success": RunState.COMPLETE, "failed": RunState.FAIL, "timeout": RunState.FAIL,
          "cancelled": RunState.ABORT}

CheckReader = Callable[[str], list[Check]]


def job_namespace() -> str:
    """``OPENLINEAGE_NAMESPACE``, else ``lakestream``."""
    return os.environ.get(NAMESPACE_ENV) or DEFAULT_NAMESPACE


@dataclass(frozen=True)
class TaskResult:
    """How one task attempt ended, as its lineage tells it.

    Attributes:
        status: ``success``, ``failed``, ``timeout`` or ``cancelled``.
        checks: Its quality results; ``None``: read them from the gold store
            when the task is a quality task.
    """

    status: str
    rows_in: int | None = None
    rows_out: int | None = None
    error: str | None = None
    checks: Sequence[Check] | None = None


class Lineage:
    """Lineage of one configuration: runs emit through it.

    Args:
        settings: The configuration (``data_dir``, databases).
        storage: The lake.
        feeds: The feed registry.
        read_checks: Stored quality results of a run id (default: the gold store's).
    """

    def __init__(self, settings: Settings, storage: Storage, feeds: FeedRegistry,
                 read_checks: CheckReader | None = None) -> None:
        self.settings = settings
        self.storage = storage
        self.feeds = feeds
        self.read_checks = read_checks or (lambda run_id: stored_checks(settings, run_id))

    @property
    def events_file(self) -> Path:
        """The JSON-lines file events go to when nothing else is configured."""
        return events_file(self.settings.data_dir)

    def destination(self) -> Destination:
        """Where events go now."""
        return destination(self.settings.data_dir)

    def graph(self) -> LineageGraph:
        """The graph of the events in :attr:`events_file`.

        Raises:
            LineageEventsMissing: No event was written to the file yet.
        """
        where = self.destination()
        try:
            return read_graph(self.events_file)
        except LineageEventsMissing as exc:
            if where.kind == "file":
                raise
            raise LineageEventsMissing(
                exc.message, f"events go to {where.text}: the graph is kept there (Marquez: its "
                "web UI); only events written to this file are shown here") from None

    def run(self, pipeline: str, run_id: str, bootstrap: str | None = None) -> RunLineage:
        """Start following one run of ``pipeline`` (Kafka topics named on ``bootstrap``)."""
        sink = EventSink(self.settings.data_dir, f"{pipeline} run {run_id}")
        resolver = Resolver(self.settings, self.storage, self.feeds, bootstrap)
        return RunLineage(pipeline, run_id, sink, resolver, self.read_checks)


class RunLineage:
    """The events of one pipeline run and its task attempts; a sink of ``None`` emits none."""

    def __init__(self, pipeline: str, run_id: str, sink: EventSink | None,
                 resolver: Resolver | None, read_checks: CheckReader | None = None) -> None:
        self.pipeline = pipeline
        self.run_id = run_id
        self.sink = sink
        self.resolver = resolver
        self.read_checks = read_checks
        self.namespace = job_namespace()
        self.started_at = dt.datetime.now(dt.UTC)
        self.uuid = str(generate_static_uuid(self.started_at, f"{pipeline}/{run_id}".encode()))
        self._attempts: dict[tuple[str, int], UUID] = {}

    @classmethod
    def silent(cls, pipeline: str, run_id: str) -> RunLineage:
        """A run that emits nothing (no lineage configured for this runner)."""
        return cls(pipeline, run_id, None, None)

    @property
    def emitting(self) -> bool:
        """Whether events go out: lineage is on and nothing failed yet in this run."""
        return self.sink is not None and self.sink.client is not None and not self.sink.failed

    # -- the pipeline run ----------------------------------------------------------------------

    def started(self) -> None:
        """The pipeline run's ``START``."""
        self._guarded(f"{self.pipeline} START", lambda: self._emit(
            RunState.START, self.uuid, self.pipeline, self._run_facets(), "DAG",
            when=self.started_at))

    def ended(self, status: str, error: str | None = None) -> None:
        """The pipeline run's end: ``COMPLETE``, ``FAIL`` or ``ABORT``; then the sink closes."""
        self._guarded(f"{self.pipeline} end", lambda: self._end_run(status, error))
        if self.sink is not None:
            self.sink.close()

    def _end_run(self, status: str, error: str | None) -> None:
        state = STATES.get(status, RunState.FAIL)
        run_facets = self._run_facets()
        if state != RunState.COMPLETE:
            run_facets["errorMessage"] = facets.error(error or f"the run ended {status}")
        self._emit(state, self.uuid, self.pipeline, run_facets, "DAG")

    # -- task attempts -------------------------------------------------------------------------

    def task_started(self, task: str, attempt: int = 1) -> None:
        """An attempt's ``START``, naming the datasets it reads and writes."""
        at = dt.datetime.now(dt.UTC)
        run_uuid = generate_static_uuid(at, f"{self.pipeline}/{self.run_id}/{task}/{attempt}"
                                        .encode())
        self._attempts[(task, attempt)] = run_uuid
        self._guarded(f"{self.pipeline}.{task} START", lambda: self._emit(
            RunState.START, str(run_uuid), f"{self.pipeline}.{task}", self._task_facets(attempt),
            "TASK", *self._datasets(task_spec(self.pipeline, task), None, []), at))

    def task_ended(self, task: str, attempt: int, result: TaskResult) -> None:
        """An attempt's end, with schemas, row counts and quality results."""
        run_uuid = self._attempts.pop((task, attempt), None) or generate_static_uuid(
            dt.datetime.now(dt.UTC), f"{self.pipeline}/{self.run_id}/{task}/{attempt}".encode())
        self._guarded(f"{self.pipeline}.{task} end",
                      lambda: self._end_task(task, attempt, result, run_uuid))

    def _end_task(self, task: str, attempt: int, result: TaskResult, run_uuid: UUID) -> None:
        spec = task_spec(self.pipeline, task)
        checks = list(result.checks) if result.checks is not None else self._stored(spec)
        ins, outs = self._datasets(spec, result, checks)
        state = STATES.get(result.status, RunState.FAIL)
        run_facets = self._task_facets(attempt)
        if state != RunState.COMPLETE:
            run_facets["errorMessage"] = facets.error(result.error or f"{task} {result.status}")
        self._emit(state, str(run_uuid), f"{self.pipeline}.{task}", run_facets, "TASK", ins,
                   outs)

    def _guarded(self, what: str, build_and_emit: Callable[[], None]) -> None:
        """Build and send one event, if events go out; one that cannot be built is left out
        with the run's one warning, never the run's failure."""
        if not self.emitting:
            return
        try:
            build_and_emit()
        except Exception as exc:
            assert self.sink is not None
            self.sink.warn(f"the {what} event cannot be built and is left out: {exc}")

    # -- building events -----------------------------------------------------------------------

    def _run_facets(self) -> dict[str, Any]:
        return {"tags": facets.tags({"lakestream.run_id": self.run_id})}

    def _task_facets(self, attempt: int) -> dict[str, Any]:
        return {"parent": facets.parent(self.namespace, self.pipeline, self.uuid),
                "tags": facets.tags({"lakestream.run_id": self.run_id,
                                     "lakestream.attempt": str(attempt)})}

    def _stored(self, spec: TaskSpec) -> list[Check]:
        if not spec.checks or self.read_checks is None:
            return []
        reader = self.read_checks
        return quietly(f"read the quality results of {self.run_id}",
                        lambda: reader(self.run_id)) or []

    def _datasets(self, spec: TaskSpec, result: TaskResult | None, checks: list[Check]
                  ) -> tuple[list[InputDataset], list[OutputDataset]]:
        assert self.resolver is not None
        feeds = self.resolver.feeds
        declared_in = quietly("list a task's inputs", lambda: spec.inputs(feeds)) or []
        declared_out = quietly("list a task's outputs", lambda: spec.outputs(feeds)) or []
        by_ref: dict[Ref, list[Check]] = {}
        for check in checks:
            ref = self.resolver.checked(check.dataset)
            if ref is not None:
                by_ref.setdefault(ref, []).append(check)
        in_refs = list(dict.fromkeys([*declared_in, *by_ref]))
        ins = [self._input(ref, result, by_ref.get(ref), spec.first_input_rows and i == 0)
               for i, ref in enumerate(in_refs)]
        outs = [self._output(ref, result, spec.first_output_rows and i == 0)
                for i, ref in enumerate(declared_out)]
        return [d for d in ins if d is not None], [d for d in outs if d is not None]

    def _input(self, ref: Ref, result: TaskResult | None, checks: list[Check] | None,
               counted: bool) -> InputDataset | None:
        assert self.resolver is not None
        found = self.resolver.dataset_id(ref)
        if found is None:
            return None
        if result is None:
            return InputDataset(found.namespace, found.name)
        fields = self.resolver.fields(ref)
        dataset_facets: dict[str, Any] = {"schema": facets.schema(fields)} if fields else {}
        input_facets: dict[str, Any] = {}
        if counted and result.rows_in is not None:
            input_facets["inputStatistics"] = (
                input_statistics_input_dataset.InputStatisticsInputDatasetFacet(
                    rowCount=result.rows_in, producer=facets.PRODUCER))
        if checks:
            input_facets["dataQualityAssertions"] = facets.assertions(
                checks, [f.name for f in fields or []])
        return InputDataset(found.namespace, found.name, facets=dataset_facets,
                            inputFacets=input_facets)

    def _output(self, ref: Ref, result: TaskResult | None, counted: bool) -> OutputDataset | None:
        assert self.resolver is not None
        found = self.resolver.dataset_id(ref)
        if found is None:
            return None
        if result is None:
            return OutputDataset(found.namespace, found.name)
        fields = self.resolver.fields(ref)
        dataset_facets: dict[str, Any] = {"schema": facets.schema(fields)} if fields else {}
        output_facets: dict[str, Any] = {}
        if counted and result.rows_out is not None and result.status == "success":
            output_facets["outputStatistics"] = (
                output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                    rowCount=result.rows_out, producer=facets.PRODUCER))
        return OutputDataset(found.namespace, found.name, facets=dataset_facets,
                             outputFacets=output_facets)

    def _emit(self, state: RunState, run_uuid: str, job: str, run_facets: dict[str, Any],
              kind: str, inputs: list[InputDataset] | None = None,
              outputs: list[OutputDataset] | None = None,
              when: dt.datetime | None = None) -> None:
        assert self.sink is not None
        event = RunEvent(eventType=state,
                         eventTime=(when or dt.datetime.now(dt.UTC)).isoformat(),
                         run=Run(runId=run_uuid, facets=run_facets),
                         job=Job(namespace=self.namespace, name=job,
                                 facets={"jobType": facets.job_type(kind)}),
                         inputs=inputs or [], outputs=outputs or [], producer=facets.PRODUCER)
        self.sink.emit(event)
