"""A picture of the lineage graph: boxes in layers, left to right, and curves between them.

Each node sits in the layer of the longest path that leads to it, so what a
job reads stands left of it and what it writes right of it (datasets and
jobs alternate); within a layer, nodes follow the mean position of what
points to them, which keeps most curves from crossing. The dashboard draws
the result as an inline SVG; nothing here knows about SVG beyond a path's
``d`` attribute.
"""

from __future__ import annotations

from dataclasses import dataclass

from lakestream.lineage.graph import DatasetNode, JobNode, LineageGraph

NODE_W, NODE_H = 210, 46
GAP_X, GAP_Y, PAD = 70, 16, 12
LABEL_CHARS = 30


@dataclass(frozen=True)
class Box:
    """One node: where it is, two lines of text, a tooltip, and CSS classes."""

    key: str
    x: int
    y: int
    label: str
    detail: str
    title: str
    kind: str  # dataset | job
    state: str
    w: int = NODE_W
    h: int = NODE_H


@dataclass(frozen=True)
class Curve:
    """One edge as an SVG path."""

    source: str
    target: str
    d: str


@dataclass(frozen=True)
class Picture:
    """The whole drawing."""

    width: int
    height: int
    boxes: list[Box]
    curves: list[Curve]


def picture(graph: LineageGraph) -> Picture:
    """Lay ``graph`` out (jobs that touch no dataset, such as a DAG's own job, are left out)."""
    edges = graph.edges()
    keys = list(dict.fromkeys(k for edge in edges for k in edge))
    columns = _columns(keys, edges)
    boxes: dict[str, Box] = {}
    for col, members in enumerate(columns):
        for row, key in enumerate(members):
            boxes[key] = _box(graph, key, PAD + col * (NODE_W + GAP_X),
                              PAD + row * (NODE_H + GAP_Y))
    curves = [Curve(a, b, _curve(boxes[a], boxes[b])) for a, b in edges]
    tallest = max((len(c) for c in columns), default=0)
    return Picture(2 * PAD + max(len(columns) * (NODE_W + GAP_X) - GAP_X, 0),
                   2 * PAD + max(tallest * (NODE_H + GAP_Y) - GAP_Y, 0),
                   list(boxes.values()), curves)


def _columns(keys: list[str], edges: list[tuple[str, str]]) -> list[list[str]]:
    """Nodes by layer (longest path from a source; a cycle stops growing after n rounds)."""
    layer = dict.fromkeys(keys, 0)
    for _ in range(len(keys)):
        changed = False
        for a, b in edges:
            if layer[b] < layer[a] + 1:
                layer[b], changed = layer[a] + 1, True
        if not changed:
            break
    columns: list[list[str]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for key in keys:
        columns[layer[key]].append(key)
    placed: dict[str, int] = {}
    for members in columns:
        def mean_source(key: str) -> float:
            rows = [placed[a] for a, b in edges if b == key and a in placed]
            return sum(rows) / len(rows) if rows else float(len(placed))

        members.sort(key=lambda k: (mean_source(k), k))
        placed.update({k: i for i, k in enumerate(members)})
    return columns


def _box(graph: LineageGraph, key: str, x: int, y: int) -> Box:
    if key in graph.jobs:
        return _job_box(graph.jobs[key], x, y)
    return _dataset_box(graph.datasets[key], x, y)


def _job_box(job: JobNode, x: int, y: int) -> Box:
    name = job.name.split(".", 1)[1] if "." in job.name else job.name
    title = f"job {job.name} ({job.namespace}): {job.state} at {job.last_event_at}"
    if job.error:
        title += f"\n{job.error}"
    return Box(job.key, x, y, _short(name), job.state.lower(), title, "job", job.state.lower())


def _dataset_box(ds: DatasetNode, x: int, y: int) -> Box:
    failing = sum(1 for c in ds.checks if c.get("success") is False)
    detail = ds.namespace.split("://", 1)[0]
    if ds.rows is not None:
        detail += f" · {ds.rows:,} rows"
    if ds.checks:
        detail += f" · {failing} check(s) failed" if failing else " · checks pass"
    title = f"{ds.name} ({ds.namespace})"
    return Box(ds.key, x, y, _short(short_name(ds)), detail, title, "dataset",
               "bad" if failing else "ok")


def short_name(ds: DatasetNode) -> str:
    """What a person calls the dataset: ``bronze/weather``, a topic, a table's own name."""
    if "/" in ds.name.strip("/"):
        return "/".join(ds.name.rstrip("/").split("/")[-2:])
    if ds.namespace.startswith(("postgres://", "mysql://")):
        return ds.name.rsplit(".", 1)[-1]
    return ds.name


def _short(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def _curve(a: Box, b: Box) -> str:
    x1, y1 = a.x + a.w, a.y + a.h // 2
    x2, y2 = b.x, b.y + b.h // 2
    mid = (x1 + x2) // 2
    return f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"
