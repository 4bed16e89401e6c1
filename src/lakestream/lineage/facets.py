"""The facets Lakestream's events carry, built with openlineage-python's classes.

Schemas come from what already describes each dataset: a Delta table's log,
a feed's declared Arrow schema (its topic), a SQLAlchemy table definition
(gold store, warehouse). Quality results become data-quality assertions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from openlineage.client.facet_v2 import (
    data_quality_assertions_dataset,
    error_message_run,
    job_type_job,
    parent_run,
    schema_dataset,
    tags_run,
)

from lakestream import __version__
from lakestream.lineage.quality import Check

PRODUCER = f"urn:lakestream:{__version__}"
"""Who wrote an event (the spec asks for a URI): Lakestream and its version."""
INTEGRATION = "LAKESTREAM"

Field = schema_dataset.SchemaDatasetFacetFields


def job_type(kind: str) -> job_type_job.JobTypeJobFacet:
    """A batch job of Lakestream: ``DAG`` (a pipeline run) or ``TASK`` (one of its tasks)."""
    return job_type_job.JobTypeJobFacet(processingType="BATCH", integration=INTEGRATION,
                                        jobType=kind, producer=PRODUCER)


def parent(namespace: str, job: str, run_id: str) -> parent_run.ParentRunFacet:
    """The DAG run a task run belongs to (it is also the root)."""
    return parent_run.ParentRunFacet(
        run=parent_run.Run(runId=run_id), job=parent_run.Job(namespace=namespace, name=job),
        root=parent_run.Root(run=parent_run.RootRun(runId=run_id),
                             job=parent_run.RootJob(namespace=namespace, name=job)),
        producer=PRODUCER)


def error(message: str) -> error_message_run.ErrorMessageRunFacet:
    """Why a run failed."""
    return error_message_run.ErrorMessageRunFacet(message=message, programmingLanguage="python",
                                                  producer=PRODUCER)


def tags(pairs: dict[str, str]) -> tags_run.TagsRunFacet:
    """Lakestream's own names of a run (its run id, the attempt)."""
    return tags_run.TagsRunFacet(
        tags=[tags_run.TagsRunFacetFields(key, value, INTEGRATION) for key, value in pairs.items()],
        producer=PRODUCER)


# -- schemas ---------------------------------------------------------------------------------


def schema(fields: list[Field]) -> schema_dataset.SchemaDatasetFacet:
    """A schema facet of ``fields``."""
    return schema_dataset.SchemaDatasetFacet(fields=fields, producer=PRODUCER)


def delta_fields(table: Any) -> list[Field]:
    """The fields of a ``deltalake.DeltaTable``'s schema (structs nested)."""
    return [_delta_field(f) for f in table.schema().fields]


def _delta_field(field: Any) -> Field:
    kind = field.type
    nested = [_delta_field(f) for f in kind.fields] if kind.type == "struct" else []
    return Field(name=field.name, type=str(kind.type), fields=nested or None)


def arrow_fields(arrow: pa.Schema) -> list[Field]:
    """The fields of an Arrow schema (structs nested)."""
    return [_arrow_field(f) for f in arrow]


def _arrow_field(field: pa.Field) -> Field:
    nested = ([_arrow_field(field.type.field(i)) for i in range(field.type.num_fields)]
              if pa.types.is_struct(field.type) else [])
    kind = "struct" if nested else str(field.type)
    return Field(name=field.name, type=kind, fields=nested or None)


def table_fields(table: sa.Table) -> list[Field]:
    """The columns of a SQLAlchemy table, with their comments as descriptions."""
    return [Field(name=c.name, type=str(c.type), description=c.comment, fields=None)
            for c in table.columns]


# -- quality ---------------------------------------------------------------------------------


def assertions(results: Iterable[Check], columns: Iterable[str] = ()
               ) -> data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet:
    """Quality results of one dataset as its data-quality assertions.

    A warning passes (``success``); a check named after a column of the
    dataset (``validity.temperature``) refers to that column. A check whose
    failure holds a publication back has severity ``error``, any other ``warn``
    (none when that is not known).
    """
    known = set(columns)
    found = []
    for r in results:
        column = r.name.rsplit(".", 1)[-1]
        found.append(data_quality_assertions_dataset.Assertion(
            assertion=r.name, success=r.status != "fail",
            column=column if "." in r.name and column in known else None,
            severity=None if r.blocking is None else "error" if r.blocking else "warn",
            name=r.name, expected=r.threshold or None,
            actual=None if r.observed is None else f"{r.observed:g}",
            params={"status": r.status, "detail": r.detail}))
    return data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
        assertions=found, producer=PRODUCER)
