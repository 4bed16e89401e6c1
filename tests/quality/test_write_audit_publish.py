"""Write-audit-publish: silver and gold publish only what passed their blocking checks.

Crafted bad data publishes nothing and leaves the previous data current (a
reader during the run sees only the old data); a good run publishes each
dataset in one commit; implausible times are dead letters and can no longer
make freshness pass; which checks block is configuration.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
import yaml
from deltalake import DeltaTable, write_deltalake

from lakestream.api import Lakestream
from lakestream.cli import main
from lakestream.config import S3Settings, Settings
from lakestream.feeds import FeedRegistry
from lakestream.lake.storage import Storage, open_storage
from lakestream.medallion.engines import DuckDBEngine, HeldBack
from lakestream.medallion.gold_schema import data_quality_results, gold_weather_detailed
from lakestream.medallion.silver import (
    CLEANED,
    DAILY,
    DATASETS,
    HOURLY,
    REJECTED,
    STAGING,
    SilverBuilder,
    SilverStage,
)
from lakestream.orchestrate.catalog import WEATHER_TASKS
from lakestream.orchestrate.dag import Dag, chain
from lakestream.orchestrate.executors import ThreadExecutor
from lakestream.orchestrate.runner import DagRunner
from lakestream.pipelines.weather import WeatherService
from lakestream.quality.audits import SilverHeldBack
from lakestream.warehouse.connection import make_engine
from lakestream.warehouse.runlog import RunLog, SafeRunLog
from tests.medallion.bronze import BronzeWriter, record
from tests.medallion.conftest import make_settings
from tests.orchestrate.conftest import FAST, Receiver, fast_notifier

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def service(tmp_path: Path, gold_url: str | None = None, **quality: Any) -> WeatherService:
    settings = make_settings(tmp_path, gold_url=gold_url, quality=quality)
    storage = open_storage(settings.lake.root, S3Settings())
    return WeatherService(settings, storage, FeedRegistry(tmp_path / "feeds"))


def hourly(hours: int, end: dt.datetime, cities: tuple[str, ...] = ("Paris", "Lima"),
           **kwargs: Any) -> list[dict[str, Any]]:
    return [record(city, end - dt.timedelta(hours=h), **kwargs)
            for h in range(hours) for city in cities]


def versions(storage: Storage) -> dict[str, int]:
    return {d: DeltaTable(storage.full(d)).version() for d in DATASETS}


def rows(storage: Storage, dataset: str) -> list[dict[str, Any]]:
    return DeltaTable(storage.full(dataset)).to_pyarrow_dataset().to_table().to_pylist()


def test_a_run_on_bad_data_publishes_nothing_and_the_next_good_one_publishes(
        tmp_path: Path) -> None:
    weather = service(tmp_path)
    bronze = BronzeWriter(weather.storage)
    bronze.write(hourly(12, NOW))
    first = weather.silver()
    assert first.held_back is None and first.rows_out == 24
    before, old_rows = versions(weather.storage), rows(weather.storage, CLEANED)

    # 8 of 20 new records lack a temperature: completeness 60 % < 90 % blocks
    bronze.write(hourly(6, NOW + dt.timedelta(minutes=10), cities=("Oslo",)) +
                 [record("Quito", NOW - dt.timedelta(hours=h), temp=None) for h in range(8)] +
                 hourly(3, NOW + dt.timedelta(minutes=20), cities=("Rome", "Kyiv")))
    with pytest.raises(SilverHeldBack) as held:
        weather.silver(run_id="run-bad")
    report = held.value.silver
    assert report.held_back is not None and "completeness.temperature" in report.held_back
    assert "12 of 20 records have main.temp" in str(held.value)
    assert versions(weather.storage) == before  # not one commit
    assert rows(weather.storage, CLEANED) == old_rows
    assert weather.storage.exists(f"{STAGING}/run-bad/_stage.json")  # kept for a person
    staged = weather.storage.list_files(f"{STAGING}/run-bad/weather_cleaned")
    assert staged and all(f.path.endswith(".parquet") for f in staged)

    shown = weather.gold_store.select(data_quality_results, "result_id")
    failed = [(r["check_name"], r["observed"]) for r in shown
              if r["run_id"] == "run-bad" and r["status"] == "fail"]
    assert failed == [("completeness.temperature", 60.0)]

    # the bad records stay unprocessed: the next run audits them again with what came since
    bronze.write(hourly(30, NOW + dt.timedelta(minutes=30), cities=("Riga", "Bern")))
    second = weather.silver(run_id="run-good")
    assert second.held_back is None and second.rows_in == 20 + 60
    assert len(rows(weather.storage, CLEANED)) == 24 + 6 + 6 + 60  # Quito's: rejected
    assert second.rejected_rows == 8
    assert {r["reason"] for r in rows(weather.storage, REJECTED)} == {
        "missing temperature (main.temp)"}
    for dataset in DATASETS:  # one commit per dataset
        assert DeltaTable(weather.storage.full(dataset)).version() == before[dataset] + 1
    assert weather.storage.exists(f"{STAGING}/run-bad/_stage.json")  # still within its time


def test_a_reader_during_the_audit_sees_only_the_old_data(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "lake"), S3Settings())
    bronze = BronzeWriter(storage)
    bronze.write(hourly(4, NOW - dt.timedelta(days=40)))
    engine = DuckDBEngine(storage)
    try:
        SilverBuilder(storage, engine).run()
        old = {d: sorted(map(str, rows(storage, d))) for d in (CLEANED, DAILY, HOURLY)}
        bronze.write(hourly(5, NOW - dt.timedelta(days=40, minutes=30), temp=21.0))
        seen: dict[str, Any] = {}

        def audit(stage: SilverStage) -> str | None:
            seen["during"] = {d: sorted(map(str, rows(storage, d))) for d in old}
            seen["staged"] = {d: len(f) for d, f in stage.files.items()}
            return seen.get("verdict")

        seen["verdict"] = "no: a person said so"
        held = SilverBuilder(storage, engine).run(audit)
        assert held.held_back == "no: a person said so" and seen["during"] == old
        assert {d: sorted(map(str, rows(storage, d))) for d in old} == old
        seen["verdict"] = None
        done = SilverBuilder(storage, engine).run(audit)
        assert done.held_back is None and seen["during"] == old
        after = {d: sorted(map(str, rows(storage, d))) for d in old}
        assert all(after[d] != old[d] for d in old)
        assert seen["staged"][CLEANED] >= 1
        assert not storage.list_files(f"{STAGING}/{done.run_id}")  # published: moved out
    finally:
        engine.close()


def test_future_and_ancient_times_are_dead_letters_and_freshness_no_longer_passes(
        tmp_path: Path) -> None:
    weather = service(tmp_path)
    records = hourly(12, NOW - dt.timedelta(hours=3))  # 24 records, the newest 3 h old
    records += [record("Paris", dt.datetime(2028, 1, 8, tzinfo=dt.UTC)),
                record("Lima", dt.datetime(1970, 1, 1, 0, 0, 5, tzinfo=dt.UTC))]
    BronzeWriter(weather.storage).write(records)
    report = weather.silver()
    assert report.dropped_implausible_time == 2 and report.rows_out == 24
    years = {r["timestamp"].year for r in rows(weather.storage, CLEANED)}
    assert years == {(NOW - dt.timedelta(hours=3)).year}
    rejected = {r["reason"]: r["timestamp"].year for r in rows(weather.storage, REJECTED)}
    assert rejected == {"timestamp in the future": 2028, "timestamp before the floor": 1970}

    checks = {r.name: r for r in weather.quality().results}
    assert checks["freshness"].status == "warn" and (checks["freshness"].observed or 0) > 2.9
    assert checks["validity.in"].status == "warn"  # 24 of 26 kept: 92 % >= 90 %
    assert "1 timestamp in the future" in checks["validity.in"].detail
    assert "1 timestamp before the floor" in checks["validity.in"].detail
    assert checks["validity.timestamp"].status == "pass"


def test_which_checks_block_and_their_thresholds_are_configuration(tmp_path: Path) -> None:
    bad = hourly(6, NOW) + [record("Quito", NOW - dt.timedelta(hours=h), temp=None)
                            for h in range(4)]  # 12 of 16 have a temperature: 75 %
    weather = service(tmp_path / "a", blocking=["uniqueness"])
    BronzeWriter(weather.storage).write(bad)
    report = weather.silver()
    assert report.held_back is None and report.rows_out == 12  # completeness only warns

    weather = service(tmp_path / "b", completeness_min_pct=70, validity_min_pct=70)
    BronzeWriter(weather.storage).write(bad)
    assert weather.silver().held_back is None

    weather = service(tmp_path / "c", future_tolerance_min=0, keep_unpublished_h=0)
    BronzeWriter(weather.storage).write(hourly(10, NOW + dt.timedelta(hours=12)))
    with pytest.raises(SilverHeldBack, match=r"validity\.in"):  # every record is in the future
        weather.silver(run_id="run-1")
    with pytest.raises(SilverHeldBack):
        weather.silver(run_id="run-2")
    assert not weather.storage.list_files(f"{STAGING}/run-1")  # kept 0 h: gone at the next run
    assert weather.silver(warn_only=True).held_back is None  # a person decided


def test_a_gold_load_that_fails_its_checks_rolls_back_whole(tmp_path: Path,
                                                            gold_url: str) -> None:
    weather = service(tmp_path, gold_url=gold_url)
    BronzeWriter(weather.storage).write(hourly(6, NOW))
    weather.silver()
    weather.gold()
    good = weather.gold_store.select(gold_weather_detailed, "city", "timestamp")

    silver = DeltaTable(weather.storage.full(CLEANED))
    table = silver.to_pyarrow_dataset().to_table()
    later = pa.array([NOW + dt.timedelta(minutes=30)], table.schema.field("timestamp").type)
    bad = table.slice(0, 1)
    bad = bad.set_column(bad.column_names.index("temperature"), "temperature", pa.array([75.0]))
    bad = bad.set_column(bad.column_names.index("timestamp"), "timestamp", later)
    write_deltalake(silver, bad, mode="append")  # 75 °C reached silver behind its back

    with pytest.raises(HeldBack, match=r"gold\.validity\.temperature"):
        weather.gold(run_id="gold-bad")
    assert weather.gold_store.select(gold_weather_detailed, "city", "timestamp") == good
    results = [r for r in weather.gold_store.select(data_quality_results, "result_id")
               if r["run_id"] == "gold-bad"]
    failed = {r["check_name"]: r["detail"] for r in results if r["status"] == "fail"}
    assert failed == {"gold.validity.temperature": "1 of 13 rows outside the °C range"}
    weather.gold_store.close()


def test_quality_show_prints_a_held_back_run_and_where_its_files_are(
        tmp_path: Path, capsys: Any) -> None:
    config = {"data_dir": str(tmp_path / "data"), "lake": {"root": str(tmp_path / "lake")}}
    (tmp_path / "lakestream.yaml").write_text(yaml.safe_dump(config))
    storage = open_storage(str(tmp_path / "lake"), S3Settings())
    BronzeWriter(storage).write([record(None, NOW - dt.timedelta(hours=h)) for h in range(3)])
    base = ["--config", str(tmp_path / "lakestream.yaml")]
    assert main([*base, "medallion", "silver"]) == 1
    out, err = capsys.readouterr()
    assert "held back, nothing published" in out and "completeness.city" in err
    run = out.split(" run ", 1)[1].split(":", 1)[0]
    assert main([*base, "quality", "show", run]) == 0
    out = capsys.readouterr().out
    assert "completeness.city" in out and "unpublished files kept in" in out
    assert f"_staging/silver/{run}" in out
    assert main([*base, "quality", "show", "--format", "json"]) == 0  # the latest run
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["run_id"] == run and shown["held_back"]["status"] == "held"
    assert main([*base, "quality", "show", "no-such-run"]) == 2
    assert "no quality results for run 'no-such-run'" in capsys.readouterr().err
    assert Settings.model_validate(config).quality.keep_unpublished_h == 72


def test_a_dag_run_held_back_by_silver_fails_notifies_and_keeps_its_checks(
        tmp_path: Path, receiver: Receiver) -> None:
    settings = make_settings(tmp_path, notify_webhook_url=receiver.url)
    api = Lakestream(settings)
    BronzeWriter(api.storage).write([record(None, NOW - dt.timedelta(hours=h))
                                     for h in range(4)])  # no city at all
    dag = Dag("weather", chain(*(t for t in WEATHER_TASKS if t.name == "process_silver")),
              FAST)
    engine = make_engine(sa.make_url(f"sqlite:///{tmp_path / 'log.db'}"))
    try:
        report = DagRunner(dag, ThreadExecutor(api), SafeRunLog(RunLog(engine)),
                           fast_notifier(receiver.url)).run(run_id="dag-run-1")
    finally:
        engine.dispose()
    assert report.status == "failed"
    error = report.tasks[0].error or ""
    assert "held back, nothing was published" in error
    assert "completeness.city fail: 0 of 4 records have city" in error
    body = receiver.wait_for(1)[0]
    assert body["event"] == "failure" and "completeness.city" in json.dumps(body)
    assert not api.storage.list_files(CLEANED)  # nothing published, not even a table
    run = api.quality_run("dag-run-1")
    assert {r["check_name"] for r in run.failed} == {"completeness.city", "freshness"}
    assert len(run.results) == 10  # each retry checked again: the latest result of each check
    assert run.held_back is not None and run.held_back["status"] == "held"
