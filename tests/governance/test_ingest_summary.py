"""The ingest summary counts files and bytes as ``metadata stats`` does, table versions included."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from lakestream.api import Lakestream
from lakestream.cli import main
from lakestream.config import load_settings
from lakestream.ingest.engine import IngestReport
from lakestream.output import print_ingest_report

from .lakebuild import build_stream, build_table


def test_the_summary_and_metadata_stats_count_the_same_files(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    api = Lakestream(load_settings(project / "project.yaml", environ={}, cwd=project))
    feeds = [api.feeds.get("events"), api.feeds.get("totals")]
    today = dt.datetime.now(dt.UTC).date()
    build_stream(api.storage, feeds[0], today, days=60, batches=3)  # with dead letters
    build_table(api.storage, feeds[1], versions=4)

    assert main(["--config", str(project / "project.yaml"), "metadata", "stats",
                 "--format", "json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    mine = [d for d in stats["datasets"]
            if d["name"] in ("events", "totals", "dlq_events", "dlq_totals")]
    assert {d["name"] for d in mine} >= {"events", "totals", "dlq_events"}
    assert next(d for d in mine if d["name"] == "totals")["files"] >= 4  # the table's versions
    files, size = sum(d["files"] for d in mine), sum(d["bytes"] for d in mine)

    assert api.lake_holdings(feeds) == (files, size)
    print_ingest_report(IngestReport(), ["events", "totals"], api.lake_holdings(feeds))
    assert f"the lake holds {files:,} files, {size / 1e6:.1f} MB" in capsys.readouterr().out
