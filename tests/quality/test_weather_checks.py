"""The weather quality checks pass on good data and fail, with the reason, on crafted bad data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from deltalake import DeltaTable, write_deltalake

from lakestream.cli import main
from lakestream.config import S3Settings
from lakestream.lake.storage import Storage, open_storage
from lakestream.medallion.engines import DuckDBEngine
from lakestream.medallion.gold import GoldStore
from lakestream.medallion.gold_schema import data_quality_results
from lakestream.medallion.silver import CLEANED, SilverBuilder, dataset_files
from lakestream.quality import check_pipeline
from lakestream.warehouse.schema import pipeline_execution_log
from tests.medallion.bronze import BronzeWriter, record
from tests.medallion.conftest import make_settings

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def project(tmp_path: Path, records: list[dict[str, Any]]) -> Storage:
    """A project folder (lakestream.yaml) whose lake holds ``records`` in bronze and silver."""
    config = {"data_dir": str(tmp_path / "data"), "lake": {"root": str(tmp_path / "lake")}}
    (tmp_path / "lakestream.yaml").write_text(yaml.safe_dump(config))
    storage = open_storage(str(tmp_path / "lake"), S3Settings())
    BronzeWriter(storage).write(records)
    engine = DuckDBEngine(storage)
    try:
        SilverBuilder(storage, engine).run()
    finally:
        engine.close()
    return storage


def hourly(hours: int, end: dt.datetime, **kwargs: Any) -> list[dict[str, Any]]:
    return [record(city, end - dt.timedelta(hours=h), **kwargs)
            for h in range(hours) for city in ("Paris", "Lima")]


def statuses(storage: Storage) -> dict[str, str]:
    return {r.name: r.status for r in check_pipeline("weather", storage, now=NOW).results}


def test_good_data_passes_and_results_are_stored_per_run(tmp_path: Path, capsys: Any) -> None:
    project(tmp_path, hourly(24, NOW - dt.timedelta(minutes=30)))
    for _ in range(2):
        assert main(["--config", str(tmp_path / "lakestream.yaml"), "quality", "check",
                     "--pipeline", "weather"]) == 0
    out = capsys.readouterr().out
    assert "completeness.temperature" in out and "freshness" in out and "fail" not in out
    store = GoldStore(make_settings(tmp_path))
    results = store.select(data_quality_results, "result_id")
    assert len(results) == 20 and len({r["run_id"] for r in results}) == 2
    assert {r["status"] for r in results} == {"pass"}
    log = store.select(pipeline_execution_log, "execution_id")
    assert [(r["task"], r["status"]) for r in log] == [("quality_check", "success")] * 2
    assert {r["run_id"] for r in log} == {r["run_id"] for r in results}  # one id per run
    store.close()


def test_incomplete_bronze_fails_completeness_and_exits_1(tmp_path: Path, capsys: Any) -> None:
    records = hourly(20, NOW)
    records += [record("Paris", NOW - dt.timedelta(hours=30 + h), temp=None) for h in range(6)]
    project(tmp_path, records)  # 6 of 46 records lack a temperature: 87 %
    code = main(["--config", str(tmp_path / "lakestream.yaml"), "quality", "check"])
    assert code == 1
    err = capsys.readouterr().err
    assert "completeness.temperature" in err and "40 of 46 records have main.temp" in err
    store = GoldStore(make_settings(tmp_path))
    failed = [r for r in store.select(data_quality_results, "result_id") if r["status"] == "fail"]
    assert [r["check_name"] for r in failed] == ["completeness.temperature"]
    assert failed[0]["observed"] == pytest.approx(86.96)
    log = store.select(pipeline_execution_log, "execution_id")
    assert log[0]["status"] == "failed" and "completeness.temperature" in log[0]["error"]
    store.close()


def test_duplicates_and_out_of_range_values_in_silver_fail(tmp_path: Path) -> None:
    storage = project(tmp_path, hourly(4, NOW))
    silver = DeltaTable(storage.full(CLEANED))
    table = silver.to_pyarrow_dataset().to_table()
    bad = table.slice(0, 1).set_column(table.column_names.index("temperature"), "temperature",
                                       pa.array([75.0]))
    write_deltalake(silver, bad, mode="append")  # a duplicate key, and 75 °C, committed
    assert DeltaTable(storage.full(CLEANED)).to_pyarrow_dataset().count_rows() == \
        table.num_rows + 1
    assert statuses(storage) == {
        "completeness.city": "pass", "completeness.timestamp": "pass",
        "completeness.temperature": "pass", "validity.in": "pass", "uniqueness.in": "pass",
        "validity.temperature": "fail", "validity.humidity": "pass",
        "validity.timestamp": "pass", "uniqueness": "fail", "freshness": "pass"}


@pytest.mark.parametrize(("age_h", "expected"), [(1, "pass"), (3, "warn"), (7, "fail")])
def test_freshness_warns_after_2_hours_and_alerts_after_6(tmp_path: Path, age_h: int,
                                                          expected: str) -> None:
    storage = project(tmp_path, hourly(3, NOW - dt.timedelta(hours=age_h, minutes=1)))
    assert statuses(storage)["freshness"] == expected


def test_no_data_at_all_fails_every_check(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "lake"), S3Settings())
    results = check_pipeline("weather", storage).results
    assert len(results) == 10
    failed = {r.name for r in results if r.status == "fail"}
    assert failed == {"completeness.city", "completeness.timestamp", "completeness.temperature",
                      "validity.in", "uniqueness.in", "freshness"}  # silver: nothing to check


@pytest.mark.parametrize(("check", "bad"), [
    ("completeness.city", {"city": "   "}),
    ("completeness.city", {"city": ""}),
    ("completeness.city", {"city": None}),
    ("completeness.timestamp", {"drop": ["dt"]}),
    ("completeness.temperature", {"temp": None}),
])
def test_completeness_counts_missing_what_silver_drops(tmp_path: Path, check: str,
                                                       bad: dict[str, Any]) -> None:
    records = hourly(20, NOW)  # 40 good records, 6 bad ones: 86.96 % complete
    city = bad.pop("city", "Paris")
    records += [record(city, NOW - dt.timedelta(hours=30 + h), **bad) for h in range(6)]
    storage = project(tmp_path, records)
    results = {r.name: r for r in check_pipeline("weather", storage, now=NOW).results}
    assert results[check].status == "fail" and results[check].observed == pytest.approx(86.96)
    assert results[check].detail.startswith("40 of 46 records")
    engine = DuckDBEngine(storage)
    try:
        engine.register("silver", dataset_files(storage, CLEANED))
        assert engine.rows("SELECT COUNT(*) FROM silver")[0][0] == 40  # what silver kept
    finally:
        engine.close()
