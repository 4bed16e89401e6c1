"""What of the run logs a principal may see: the runs of pipelines, the checks of datasets.

The run logs hold figures about datasets (rows read and written, error texts,
"0 of 245 values outside [-100, 60] °C"), so they are filtered like the
datasets themselves:

- a pipeline's runs are listed to a principal who may read at least one of
  the pipeline's datasets; their figures (``rows_in``, ``rows_out``, errors)
  only to one who may read every one of them, else they are withheld (``None``)
  and the run says ``figures_withheld``;
- a quality result is shown only to a principal who may read its dataset.

A pipeline's datasets are those of its feeds (streams, tables, bronze) and,
for a pipeline with a bronze feed, the silver and gold datasets refined from it.
A pipeline whose datasets are unknown counts as reading every dataset.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lakestream.feeds import Feed
from lakestream.governance.catalog import view_name
from lakestream.lake.reader import Dataset
from lakestream.observe.models import QualityResult, Run

REFINED_AREAS = ("silver", "gold")
FIGURES = ("rows_in", "rows_out", "error")


def pipeline_datasets(known: Mapping[str, tuple[Dataset, Feed | None]]) -> dict[str, set[str]]:
    """Each pipeline's datasets by view name."""
    refining = {f.pipeline for _, f in known.values() if f is not None and f.layer == "bronze"}
    found: dict[str, set[str]] = {}
    for name, (ds, feed) in known.items():
        if feed is not None:
            found.setdefault(feed.pipeline, set()).add(name)
        elif ds.area in REFINED_AREAS:
            for pipeline in refining:
                found.setdefault(pipeline, set()).add(name)
    return found


@dataclass(frozen=True)
class Visibility:
    """What one principal may see of the run logs.

    Args:
        readable: The datasets the principal may read.
        pipelines: Each pipeline's datasets.
        everything: Every dataset (what an unknown pipeline counts as reading).
    """

    readable: frozenset[str]
    pipelines: Mapping[str, set[str]]
    everything: frozenset[str]

    @classmethod
    def of(cls, readable: Iterable[str],
           known: Mapping[str, tuple[Dataset, Feed | None]]) -> Visibility:
        """The visibility of a principal reading ``readable`` among ``known`` datasets."""
        return cls(frozenset(readable), pipeline_datasets(known), frozenset(known))

    def _datasets(self, pipeline: str) -> set[str]:
        return self.pipelines.get(pipeline) or set(self.everything)

    def sees_pipeline(self, pipeline: str) -> bool:
        """Whether the pipeline's runs are listed at all."""
        return bool(self._datasets(pipeline) & self.readable)

    def sees_figures(self, pipeline: str) -> bool:
        """Whether the figures of the pipeline's runs are shown."""
        return self._datasets(pipeline) <= self.readable

    def runs(self, runs: Iterable[Run]) -> list[Run]:
        """The runs the principal may see, figures withheld where they must be."""
        return [run if self.sees_figures(run.pipeline) else _without_figures(run)
                for run in runs if self.sees_pipeline(run.pipeline)]

    def outcomes(self, outcomes: Mapping[tuple[str, str, str], int]
                 ) -> dict[tuple[str, str, str], int]:
        """Task attempt counts of the pipelines the principal may see."""
        return {key: n for key, n in outcomes.items() if self.sees_pipeline(key[0])}

    def quality(self, results: Iterable[QualityResult]) -> list[QualityResult]:
        """The quality results of datasets the principal may read."""
        return [r for r in results if view_name(r.dataset) in self.readable]


def _without_figures(run: Run) -> Run:
    tasks = [t.model_copy(update=dict.fromkeys(FIGURES)) for t in run.tasks]
    return run.model_copy(update={"tasks": tasks, "error": None, "figures_withheld": True})
