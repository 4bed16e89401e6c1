"""``lakestream sync``: lake dimensions and table versions into the warehouse, exactly."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from deltalake import DeltaTable

from lakestream.cli import main
from lakestream.config import S3Settings, Settings
from lakestream.errors import WarehouseError
from lakestream.lake.snapshot import live_files
from lakestream.lake.storage import open_storage
from lakestream.warehouse import WarehouseService, facts, lake_source
from lakestream.warehouse.schema import FACTS_BY_LAKE_TABLE, metadata

from .checks import (
    assert_facts_equal,
    assert_foreign_keys_hold,
    expected_rows,
    fact_rows,
    snapshot_table,
)
from .conftest import make_settings
from .lakegen import (
    MOVED_CITY,
    TABLES,
    aggregates,
    build_lake,
    flattened_events,
    latest_attributes,
    write_stream,
    write_table_version,
)

USER_ATTRS = ["user_name", "user_email", "user_country", "user_city"]
FACT_ORDERS = {
    "fact_user_transaction_summary": "summary_id",
    "fact_user_transaction_summary_eur": "summary_eur_id",
    "fact_payment_method_totals": "payment_total_id",
    "fact_product_purchase_counts": "product_count_id",
    "dim_users": "user_id",
    "dim_payment_methods": "payment_method_id",
}


def test_sync_twice_loads_exact_values_once(
    service: WarehouseService, loaded_lake: dict[str, Any], events: list[dict[str, Any]]
) -> None:
    first = service.sync()
    assert_foreign_keys_hold(service.engine)
    before = {t: snapshot_table(service.engine, t, o) for t, o in FACT_ORDERS.items()}
    second = service.sync()
    assert_foreign_keys_hold(service.engine)
    after = {t: snapshot_table(service.engine, t, o) for t, o in FACT_ORDERS.items()}

    assert after == before  # surrogate keys included: the second load changed nothing
    for table in TABLES:
        actual = fact_rows(service.engine, table, "v1")
        assert_facts_equal(actual, expected_rows(table, loaded_lake[table]))
    assert {t.table: t.rows_loaded for t in first.tasks} == {
        t.table: t.rows_loaded for t in second.tasks
    }
    assert all(t.inferred == 0 and t.rejected == 0 for t in first.tasks)
    with service.engine.connect() as conn:
        dates = conn.exec_driver_sql(
            "SELECT DISTINCT snapshot_date FROM fact_product_purchase_counts"
        ).scalars()
        assert [str(d) for d in dates] == ["2025-01-18"]
        logged = conn.exec_driver_sql(
            "SELECT COUNT(*) FROM pipeline_execution_log WHERE status = 'success'"
        ).scalar_one()
    assert logged == 2 * (2 + len(TABLES))


def test_dimensions_hold_the_latest_attributes(
    service: WarehouseService, loaded_lake: dict[str, Any], events: list[dict[str, Any]]
) -> None:
    service.sync()
    expected = latest_attributes(events, "user_id", USER_ATTRS)
    with service.engine.connect() as conn:
        users = conn.exec_driver_sql(
            "SELECT user_id, user_name, user_email, user_country, user_city FROM dim_users"
        ).all()
        methods = conn.exec_driver_sql(
            "SELECT payment_method_id, payment_method_name, payment_method_category, is_active "
            "FROM dim_payment_methods"
        ).all()
    assert {u[0]: tuple(u[1:]) for u in users} == expected
    assert any(city == MOVED_CITY for *_, city in expected.values())
    expected_methods = latest_attributes(
        events,
        "payment_method_id",
        ["payment_method_name", "payment_method_category", "payment_method_is_active"],
    )
    assert {m[0]: (m[1], m[2], bool(m[3])) for m in methods} == expected_methods


def test_a_new_lake_version_becomes_a_new_snapshot(
    service: WarehouseService, loaded_lake: dict[str, Any], lake: Path
) -> None:
    service.sync()
    more = flattened_events(900, seed=7)  # the same stream, 300 events later
    write_stream(lake, more)
    v2 = aggregates(more)
    for table, rows in v2.items():
        write_table_version(lake, table, rows, "v2", created_at="2025-01-19T06:00:00+00:00")
    report = service.sync()
    assert_foreign_keys_hold(service.engine)
    assert {t.source.rsplit("=", 1)[-1] for t in report.tasks if t.table.startswith("fact")} == {
        "v2"
    }
    for table in TABLES:
        assert_facts_equal(
            fact_rows(service.engine, table, "v1"), expected_rows(table, loaded_lake[table])
        )
        assert_facts_equal(fact_rows(service.engine, table, "v2"), expected_rows(table, v2[table]))


def test_unknown_dimension_members_are_inferred_then_completed(
    service: WarehouseService, loaded_lake: dict[str, Any], lake: Path, events: list[dict]
) -> None:
    stranger = {"user_id": "U99999", "transaction_type": "purchase", "total_amount": 10.0,
                "transaction_count": 1, "avg_amount": 10.0}  # fmt: skip
    method = {"payment_method_id": "PM99", "payment_method_name": "barter", "total_amount": 5.0,
              "transaction_count": 1, "avg_amount": 5.0}  # fmt: skip
    rows = loaded_lake["user_transaction_summary"] + [stranger]
    write_table_version(lake, "user_transaction_summary", rows, "v2")
    methods = loaded_lake["payment_method_totals"] + [method]
    write_table_version(lake, "payment_method_totals", methods, "v2")

    report = service.sync()
    assert_foreign_keys_hold(service.engine)
    inferred = {t.table: t.inferred for t in report.tasks}
    assert inferred["fact_user_transaction_summary"] == 1
    assert inferred["fact_payment_method_totals"] == 1
    with service.engine.connect() as conn:
        user = conn.exec_driver_sql(
            "SELECT user_name, last_event_time FROM dim_users WHERE user_id = 'U99999'"
        ).one()
        pm = conn.exec_driver_sql(
            "SELECT payment_method_name FROM dim_payment_methods WHERE payment_method_id = 'PM99'"
        ).scalar_one()
    assert tuple(user) == (None, None)
    assert pm == "barter"

    late = dict(events[-1], user_id="U99999", user_name="Late Comer",
                event_time=events[-1]["event_time"] + dt.timedelta(seconds=1))  # fmt: skip
    write_stream(lake, [*events, late])
    service.sync()
    with service.engine.connect() as conn:
        name = conn.exec_driver_sql(
            "SELECT user_name FROM dim_users WHERE user_id = 'U99999'"
        ).scalar_one()
    assert name == "Late Comer"


def test_rows_without_a_usable_key_go_to_the_dead_letter_folder(
    service: WarehouseService, loaded_lake: dict[str, Any], lake: Path
) -> None:
    good = loaded_lake["product_purchase_counts"]
    broken = [dict(good[0], product_id=None), dict(good[1], product_name="duplicate")]
    write_table_version(lake, "product_purchase_counts", good + broken, "v2")
    report = service.sync(["product_purchase_counts"])
    task = next(t for t in report.tasks if t.table == "fact_product_purchase_counts")
    assert (task.rows_in, task.rows_loaded, task.rejected) == (len(good) + 2, len(good), 2)
    dead = DeltaTable(str(lake / "_dlq" / "warehouse")).to_pyarrow_dataset().to_table()
    assert set(zip(dead.column("target_table").to_pylist(),
                   dead.column("snapshot_version").to_pylist(), strict=True)) == {
        ("fact_product_purchase_counts", "v2")}
    reasons = sorted(dead.column("reason").to_pylist())
    assert len(reasons) == 2
    assert reasons[0].startswith("NULL in key column(s) product_id")
    assert reasons[1].startswith("duplicate key (product_id)")
    # the same version's rejects again (a re-sync): stored once, not twice
    storage = open_storage(str(lake), S3Settings())
    version = lake_source.current_version(storage, "product_purchase_counts")
    assert version is not None
    facts.write_rejects(storage, FACTS_BY_LAKE_TABLE["product_purchase_counts"], version,
                        pa.Table.from_pylist(broken), ["again 1", "again 2"])
    again = DeltaTable(str(lake / "_dlq" / "warehouse")).to_pyarrow_dataset().to_table()
    assert sorted(again.column("reason").to_pylist()) == ["again 1", "again 2"]
    assert_facts_equal(
        fact_rows(service.engine, "product_purchase_counts", "v2"),
        expected_rows("product_purchase_counts", good),
    )


def test_without_metadata_the_highest_version_is_current(
    service: WarehouseService, lake: Path, events: list[dict[str, Any]]
) -> None:
    tables = aggregates(events)
    for version in ("v2", "v10", "v9"):
        write_table_version(
            lake, "product_purchase_counts", tables["product_purchase_counts"], version,
            created_at=None, current=False,
        )  # fmt: skip
    (lake / "tables/product_purchase_counts/_metadata.json").unlink()
    report = service.sync(["product_purchase_counts"])
    assert_foreign_keys_hold(service.engine)  # no stream: nothing to break
    assert report.tasks[0].note.startswith("no flattened stream")
    with service.engine.connect() as conn:
        got = conn.exec_driver_sql(
            "SELECT DISTINCT snapshot_version, snapshot_date FROM fact_product_purchase_counts"
        ).all()
    # the date is when the log says v10's files were added: stable from one sync to the next
    added = live_files(open_storage(str(lake), S3Settings()),
                       "tables/product_purchase_counts/version=v10")
    day = dt.datetime.fromtimestamp(min(f.mtime for f in added), dt.UTC).date()
    assert [(v, str(d)) for v, d in got] == [("v10", day.isoformat())]


def test_sync_needs_the_schema(tmp_path: Path, database_url: str, lake: Path) -> None:
    service = WarehouseService(make_settings(tmp_path, database_url, lake))
    try:
        with pytest.raises(WarehouseError, match="warehouse init"):
            service.sync()
    finally:
        service.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_cli_init_and_sync(
    tmp_path: Path,
    database_url: str,
    loaded_lake: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LAKESTREAM_WAREHOUSE_URL", database_url)
    monkeypatch.setenv("LAKESTREAM_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.chdir(tmp_path)
    assert main(["warehouse", "init"]) == 0
    assert main(["sync"]) == 0
    assert main(["sync", "--table", "product_purchase_counts"]) == 0
    assert main(["warehouse", "check"]) == 0
    assert main(["warehouse", "status"]) == 0
    out = capsys.readouterr().out
    assert f"created {len(metadata.tables)} table(s)" in out
    assert "foreign keys sound" in out
    assert "fact_product_purchase_counts" in out
    assert main(["sync", "--table", "nope"]) == 2
    engine = sa.create_engine(database_url)
    try:
        assert_foreign_keys_hold(engine)
    finally:
        engine.dispose()


@pytest.mark.integration
def test_sync_reads_an_s3_lake(
    tmp_path: Path, seaweedfs: Any, s3_bucket: str, events: list[dict[str, Any]]
) -> None:
    local = tmp_path / "local-lake"
    expected = build_lake(local, events)
    raw = make_settings(tmp_path, f"sqlite:///{tmp_path / 'w.db'}").model_dump()
    raw["lake"]["root"] = f"s3://{s3_bucket}/lake"
    raw["s3"] = {"endpoint": seaweedfs.endpoint_url, "access_key": seaweedfs.access_key,
                 "secret_key": seaweedfs.secret_key}  # fmt: skip
    settings = Settings.model_validate(raw)
    storage = open_storage(settings.lake.root, settings.s3)
    for path in local.rglob("*"):
        if path.is_file():
            storage.write_atomic(path.relative_to(local).as_posix(), path.read_bytes())
    service = WarehouseService(settings)
    try:
        service.init()
        report = service.sync()
        assert_foreign_keys_hold(service.engine)
        for table in TABLES:
            actual = fact_rows(service.engine, table, "v1")
            assert_facts_equal(actual, expected_rows(table, expected[table]))
    finally:
        service.close()
    assert report.tasks[0].source == f"s3://{s3_bucket}/lake/streams/transaction_flattened"
