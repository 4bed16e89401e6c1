"""``lakestream metadata report|stats|export-csv``: counts from the files, stable forms."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakestream.cli import main
from lakestream.lake.compaction import compact_dataset
from lakestream.lake.report import STATS_FIELDS, lake_report, report_csv, stats_json
from tests.lake.lakegen import land, local_lake


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = {"data_dir": str(tmp_path / "data"), "feeds_dir": str(tmp_path / "feeds"),
              "lake": {"root": str(tmp_path / "lake")}}
    (tmp_path / "lakestream.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)
    land(local_lake(tmp_path / "lake"), 3)  # 60 records over two days, 2 partitions
    return tmp_path


def _stats(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["metadata", "stats", "--format", "json"]) == 0
    stats: dict[str, Any] = json.loads(capsys.readouterr().out)
    return stats


def test_stats_json_has_the_exact_documented_form(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stats = _stats(capsys)
    assert list(stats) == ["lake", "generated_at", "datasets", "totals"]
    feed = next(d for d in stats["datasets"] if d["name"] == "feed")
    assert list(feed) == list(STATS_FIELDS)
    assert {k: feed[k] for k in ("kind", "path", "records", "files", "partitions", "first_date",
                                 "last_date", "versions")} == {
        "kind": "stream", "path": "streams/feed", "records": 60, "files": 12, "partitions": 2,
        "first_date": "2025-01-15", "last_date": "2025-01-16", "versions": 0}
    assert feed["bytes"] > 0 and feed["last_export"] and 0 <= feed["freshness_s"] < 600
    assert stats["totals"]["records"] == sum(d["records"] for d in stats["datasets"])
    registered = {d["name"] for d in stats["datasets"]}
    assert "transaction_stream" in registered, "registered feeds without data are listed too"


def test_counts_follow_the_files_after_a_compaction(project: Path) -> None:
    storage = local_lake(project / "lake")
    before = {d.name: d for d in lake_report(storage).datasets}["feed"]
    compact_dataset(storage, "streams/feed")
    after = {d.name: d for d in lake_report(storage).datasets}["feed"]
    assert (after.records, after.partitions) == (before.records, before.partitions)
    assert after.files < before.files


def test_report_json_with_partitions_and_the_text_report(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["metadata", "report", "--partitions", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    feed = next(d for d in report["datasets"] if d["name"] == "feed")
    assert [(p["date"], p["records"]) for p in feed["partition_detail"]] == [
        ("2025-01-15", 30), ("2025-01-16", 30)]
    assert {"name": "id", "type": "string"} in feed["schema"]
    assert set(feed["kafka_offsets"]) == {"events:0", "events:1"}
    assert main(["metadata", "report", "--partitions"]) == 0
    text = capsys.readouterr().out
    assert "feed (stream, streams/feed)" in text and "60 records" in text
    assert "year=2025/month=01/day=15: 30 records" in text


def test_csv_per_dataset_and_per_partition(project: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = project / "lake.csv"
    assert main(["metadata", "export-csv", "-o", str(out)]) == 0
    rows = list(csv.DictReader(out.read_text().splitlines()))
    feed = next(r for r in rows if r["name"] == "feed")
    assert (feed["records"], feed["partitions"], feed["columns"]) == ("60", "2", "7")
    assert "wrote" in capsys.readouterr().out
    assert main(["metadata", "export-csv", "--partitions"]) == 0
    parts = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(p["date"], p["records"]) for p in parts if p["dataset"] == "feed"] == [
        ("2025-01-15", "30"), ("2025-01-16", "30")]


def test_an_empty_lake_reports_zeroes(tmp_path: Path) -> None:
    report = lake_report(local_lake(tmp_path))
    assert stats_json(report)["totals"] == {"datasets": 0, "records": 0, "bytes": 0, "files": 0}
    assert report_csv(report, False).splitlines() == [",".join([*STATS_FIELDS, "columns"])]
