"""The transactions checks: ids unique per day, required fields, currencies, freshness."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from deltalake import write_deltalake

from lakestream.api import Lakestream
from lakestream.cli import main
from lakestream.config import S3Settings
from lakestream.lake.storage import open_storage
from lakestream.pipelines import transactions
from lakestream.pipelines.transactions import IntegrityCheckFailed
from lakestream.quality import check_pipeline
from tests.medallion.conftest import make_settings

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
RATES = ("USD", "EUR", "GBP", "CHF", "JPY", "CAD")


def row(tid: str | None, at: dt.datetime, currency: str | None = "EUR",
        user: str | None = "U1") -> dict[str, Any]:
    return {"transaction_id": tid, "event_time": at, "transaction_type": "purchase",
            "status": "completed", "amount": 10.5, "currency": currency, "user_id": user,
            "payment_method_id": "PM01", "product_id": "P0001"}


def land(lake: Path, stream: str, rows: list[dict[str, Any]]) -> None:
    schema = pa.schema([("transaction_id", pa.string()), ("event_time", pa.timestamp("us", "UTC")),
                        ("transaction_type", pa.string()), ("status", pa.string()),
                        ("amount", pa.float64()), ("currency", pa.string()),
                        ("user_id", pa.string()), ("payment_method_id", pa.string()),
                        ("product_id", pa.string())])
    write_deltalake(str(lake / "streams" / stream), pa.Table.from_pylist(rows, schema),
                    mode="append")


def test_good_streams_pass_and_crafted_faults_fail_with_their_figures(tmp_path: Path) -> None:
    good = [row(f"T{i}", NOW - dt.timedelta(minutes=i)) for i in range(40)]
    for stream in ("transaction_stream", "transaction_flattened",
                   "transaction_stream_anonymized"):
        land(tmp_path / "lake", stream, good)
    storage = open_storage(str(tmp_path / "lake"), S3Settings())
    report = check_pipeline("transactions", storage, now=NOW, currencies=RATES)
    assert {r.name: r.status for r in report.results} == {
        "uniqueness.transaction_id": "pass", "completeness.required": "pass",
        "validity.currency": "pass", "freshness.transaction_stream": "pass",
        "freshness.transaction_flattened": "pass",
        "freshness.transaction_stream_anonymized": "pass"}

    day = dt.datetime(2026, 1, 10, 9, tzinfo=dt.UTC)
    land(tmp_path / "lake", "transaction_flattened", [
        row("D1", day), row("D1", day + dt.timedelta(hours=8)),  # the same id twice in a day
        row("D1", day + dt.timedelta(hours=16)),  # the next day: allowed
        row("C7", NOW, currency="XYZ"), row("C8", NOW, currency="xyz"),
        *[row(f"M{i}", NOW, user=None) for i in range(5)],
        row("F1", NOW + dt.timedelta(days=400)),  # a future event does not make it fresh
    ])
    results = {r.name: r for r in check_pipeline("transactions", storage, now=NOW,
                                                  currencies=RATES).results}
    assert results["uniqueness.transaction_id"].status == "fail"
    assert results["uniqueness.transaction_id"].detail.startswith("1 transaction ids")
    assert results["completeness.required"].status == "pass"  # 46 of 51 = 90.2 %
    assert "user_id 5" in results["completeness.required"].detail
    assert results["validity.currency"].status == "fail"
    assert results["validity.currency"].detail == \
        "2 of 51 rows in a currency the rates table lacks (XYZ, xyz)"
    assert results["freshness.transaction_flattened"].status == "pass"


def test_quality_check_transactions_from_the_command_line(tmp_path: Path, capsys: Any) -> None:
    config = {"data_dir": str(tmp_path / "data"), "lake": {"root": str(tmp_path / "lake")}}
    (tmp_path / "lakestream.yaml").write_text(yaml.safe_dump(config))
    land(tmp_path / "lake", "transaction_flattened",
         [row(f"T{i}", NOW - dt.timedelta(hours=8)) for i in range(10)])
    base = ["--config", str(tmp_path / "lakestream.yaml"), "quality"]
    assert main([*base, "check", "--pipeline", "transactions", "--format", "json"]) == 1
    out, err = capsys.readouterr()
    statuses = {r["check"]: r["status"] for r in json.loads(out)}
    assert statuses["freshness.transaction_flattened"] == "fail"  # 8 h > 6 h: an alert
    assert statuses["freshness.transaction_stream"] == "fail"  # no event at all
    assert statuses["validity.currency"] == "pass"  # the shipped rates know EUR
    assert "quality check(s) failed" in err and "stored under run" in err
    assert main([*base, "show"]) == 0
    assert "freshness.transaction_flattened" in capsys.readouterr().out


def test_the_dag_quality_step_stores_its_checks_under_the_dag_run(tmp_path: Path) -> None:
    api = Lakestream(make_settings(tmp_path))
    land(tmp_path / "lake", "transaction_flattened", [row(f"T{i}", NOW) for i in range(5)])
    api.warehouse.init()
    step = transactions.quality(api, "dag-run-7")
    assert "no orphan rows" in step.summary and "6 lake checks, 2 warned" in step.summary
    run = api.quality_run("dag-run-7")
    assert {r["check_name"]: r["status"] for r in run.results}["validity.currency"] == "pass"

    land(tmp_path / "lake", "transaction_flattened", [row("T1", NOW)])  # T1 twice today
    with pytest.raises(IntegrityCheckFailed, match=r"uniqueness\.transaction_id fail"):
        transactions.quality(api, "dag-run-8")
