"""The picture's layout: inputs left of their job, outputs right of it, whatever the graph."""

from __future__ import annotations

from lakestream.lineage.graph import DatasetNode, JobNode, LineageGraph
from lakestream.lineage.layout import NODE_H, picture


def graph(*jobs: tuple[str, list[str], list[str]]) -> LineageGraph:
    found = LineageGraph()
    for name, ins, outs in jobs:
        job = JobNode("ns", name, "TASK", "COMPLETE", "2026-01-01T00:00:00+00:00",
                      inputs=[f"file//{d}" for d in ins], outputs=[f"file//{d}" for d in outs])
        found.jobs[job.key] = job
        for d in (*ins, *outs):
            found.datasets.setdefault(f"file//{d}", DatasetNode("file", f"/{d}"))
    return found


def test_a_chain_is_drawn_left_to_right_in_alternating_layers() -> None:
    drawn = picture(graph(("p.a", ["lake/in"], ["lake/mid"]), ("p.b", ["lake/mid"], ["lake/out"]),
                          ("p.c", ["lake/in"], ["lake/side"])))
    x = {b.key: b.x for b in drawn.boxes}
    assert x["file//lake/in"] < x["ns/p.a"] < x["file//lake/mid"] < x["ns/p.b"] \
        < x["file//lake/out"]
    assert x["ns/p.c"] == x["ns/p.a"] and x["file//lake/side"] == x["file//lake/mid"]
    assert len(drawn.curves) == 6
    assert drawn.width > max(b.x + b.w for b in drawn.boxes)
    assert drawn.height >= 2 * NODE_H  # two nodes share a layer
    labels = {b.label for b in drawn.boxes}
    assert {"lake/in", "a", "b", "c"} <= labels


def test_a_cycle_and_an_empty_graph_are_drawn_without_end() -> None:
    drawn = picture(graph(("p.a", ["x/one"], ["x/two"]), ("p.b", ["x/two"], ["x/one"])))
    assert len(drawn.boxes) == 4 and len(drawn.curves) == 4
    empty = picture(LineageGraph())
    assert empty.boxes == [] and empty.curves == []
