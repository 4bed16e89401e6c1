"""``lakestream lineage``: the graph of datasets and jobs the runs' OpenLineage events describe."""

from __future__ import annotations

import json

import click

from lakestream.cli.root import Context, cli, pass_ctx
from lakestream.lineage import LineageGraph
from lakestream.lineage.graph import DatasetNode, JobNode
from lakestream.output import console, err_console


@cli.command("lineage")
@click.option("--job", default=None, metavar="NAME",
              help="Only this job; a pipeline's name (weather) selects its tasks too.")
@click.option("--dataset", default=None, metavar="TEXT",
              help="Only the jobs reading or writing a dataset whose name contains TEXT.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Output format.")
@pass_ctx
def lineage(ctx: Context, job: str | None, dataset: str | None, fmt: str) -> None:
    """The lineage graph: datasets → jobs → datasets, from the runs' OpenLineage events.

    Every pipeline run and task emits OpenLineage events (docs/lineage.md). When
    openlineage-python is configured (OPENLINEAGE_URL, OPENLINEAGE_CONFIG or an
    openlineage.yml) they go there, to Marquez for example, which keeps the
    graph; otherwise they are appended to <data_dir>/lineage/events.jsonl, which
    this command reads. Each job shows its latest run's state, when its last
    event was, what it read (←) and wrote (→), row counts and quality checks.

    \b
    Examples:
      lakestream lineage
      lakestream lineage --job weather
      lakestream lineage --dataset weather_cleaned --format json
    """
    found = ctx.api.lineage
    where = found.destination()
    if where.kind != "file":
        err_console.print(f"note: events go to {where.text}; only those in {found.events_file} "
                          "are shown", markup=False, soft_wrap=True)
    graph = found.graph()
    if graph.skipped:
        err_console.print(f"warning: {graph.skipped} line(s) of {graph.source} skipped: not "
                          "OpenLineage run events", markup=False, soft_wrap=True)
    chosen = graph.select(job, dataset)
    if fmt == "json":
        console.print_json(json.dumps({"destination": where.text, **chosen.as_json()}))
        return
    for line in text_lines(chosen):
        console.print(line, markup=False, soft_wrap=True, highlight=False)


def text_lines(graph: LineageGraph) -> list[str]:
    """The graph as indented lines: each pipeline run's job, its tasks and their datasets."""
    lines = [f"{graph.events} event(s) in {graph.source}: {len(graph.jobs)} job(s), "
             f"{len(graph.datasets)} dataset(s)"]
    if not graph.jobs:
        return [*lines, "no job matches"]
    children: dict[str | None, list[JobNode]] = {}
    for node in graph.jobs.values():
        parent = node.parent if node.parent in graph.jobs else None
        children.setdefault(parent, []).append(node)
    for top in children.get(None, []):
        lines += _job_lines(graph, top, "")
        for child in children.get(top.key, []):
            lines += _job_lines(graph, child, "  ")
    return lines


def _job_lines(graph: LineageGraph, job: JobNode, indent: str) -> list[str]:
    kind = f" ({job.kind})" if job.kind else ""
    lines = [f"{indent}{job.name}{kind}  {job.state}  {_time(job.last_event_at)}  "
             f"run {job.run_id or '-'}"]
    if job.error:
        lines.append(f"{indent}  error: {job.error}")
    lines += [f"{indent}  ← {_dataset(graph.datasets[k])}" for k in job.inputs]
    lines += [f"{indent}  → {_dataset(graph.datasets[k])}" for k in job.outputs]
    return lines


def _dataset(ds: DatasetNode) -> str:
    text = f"{ds.name}  [{ds.namespace}]"
    if ds.rows is not None:
        text += f"  {ds.rows:,} rows"
    if ds.checks:
        failed = [str(c.get("assertion")) for c in ds.checks if c.get("success") is False]
        text += f"  checks: {len(ds.checks) - len(failed)} of {len(ds.checks)} passed"
        text += f" (failed: {', '.join(failed)})" if failed else ""
    return text


def _time(iso: str) -> str:
    return iso.replace("T", " ")[:19] + " UTC" if iso else "-"
