"""The bulk loaders: upsert semantics and faithful values on every dialect and path."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from lakestream.errors import WarehouseError
from lakestream.warehouse import WarehouseService
from lakestream.warehouse.failures import run_in_transaction
from lakestream.warehouse.loaders import Target
from lakestream.warehouse.loaders.mysql import MySQLLoader
from lakestream.warehouse.schema import dim_users

from .conftest import FAST_RETRY, SERVER_BACKENDS, make_settings

COLUMNS = ("user_id", "user_name", "user_email", "user_country", "user_city", "last_event_time")
USERS = Target(dim_users, ("user_id",), COLUMNS)
TRICKY = [
    'quote " inside',
    "comma, and\nnew line",
    "back\\slash \\N",
    "",
    "NULL",
    None,
    "Zoë 東京 🚀",
]
WHEN = dt.datetime(2025, 1, 15, 12, 34, 56, 789000)


def _users(names: list[str | None], city: str = "Paris") -> pa.Table:
    n = len(names)
    return pa.table(
        {
            "user_id": [f"U{i:05d}" for i in range(n)],
            "user_name": pa.array(names, pa.string()),
            "user_email": [f"u{i}@example.com" for i in range(n)],
            "user_country": ["FR"] * n,
            "user_city": [city] * n,
            "last_event_time": pa.array([WHEN] * n, pa.timestamp("ms", tz="UTC")),
        }
    )


def _load(service: WarehouseService, target: Target, rows: pa.Table, expect_new: bool) -> int:
    def work(conn: sa.Connection) -> int:
        return service.loader.load(conn, target, rows, expect_new=expect_new)

    return run_in_transaction(service.engine, work, FAST_RETRY, "test load")[0]


def _read_users(service: WarehouseService) -> list[tuple[Any, ...]]:
    with service.engine.connect() as conn:
        rows = conn.execute(sa.select(*(dim_users.c[c] for c in COLUMNS)).order_by("user_id"))
        return [tuple(r) for r in rows]


@pytest.mark.parametrize("expect_new", [True, False], ids=["bulk", "staged"])
def test_values_survive_the_trip(service: WarehouseService, expect_new: bool) -> None:
    assert _load(service, USERS, _users(TRICKY), expect_new) == len(TRICKY)
    got = _read_users(service)
    assert [r[1] for r in got] == TRICKY
    assert {r[5] for r in got} == {WHEN}


def test_upsert_updates_changed_rows_and_keeps_the_rest(service: WarehouseService) -> None:
    _load(service, USERS, _users(["a", "b", "c"]), expect_new=True)
    changed = _users(["a", "B", "c", "d"], city="Lyon")
    _load(service, USERS, changed, expect_new=True)  # a wrong hint: still an upsert
    got = _read_users(service)
    assert [(r[1], r[4]) for r in got] == [(n, "Lyon") for n in ("a", "B", "c", "d")]
    keep = Target(dim_users, ("user_id",), ("user_id", "user_name"), update=False)
    names = pa.table({"user_id": ["U00000", "U00009"], "user_name": ["x", "y"]})
    _load(service, keep, names, expect_new=False)
    names_by_id = {r[0]: r[1] for r in _read_users(service)}
    assert names_by_id["U00000"] == "a" and names_by_id["U00009"] == "y"


@pytest.mark.parametrize("backend", SERVER_BACKENDS, indirect=True)
@pytest.mark.parametrize("expect_new", [True, False], ids=["bulk", "staged"])
def test_a_value_too_long_fails_the_load_instead_of_being_cut(
    service: WarehouseService, expect_new: bool
) -> None:
    with pytest.raises(WarehouseError):
        _load(service, USERS, _users(["ok", "x" * 300]), expect_new)
    assert _read_users(service) == []


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_mysql_without_local_infile_falls_back_to_multirow_upserts(
    tmp_path: Path, database_url: str
) -> None:
    service = WarehouseService(
        make_settings(tmp_path, database_url), retry=FAST_RETRY, local_infile=False
    )
    try:
        service.init()
        _load(service, USERS, _users(TRICKY), expect_new=True)
        _load(service, USERS, _users([n and n.upper() for n in TRICKY]), expect_new=False)
        assert [r[1] for r in _read_users(service)] == [n and n.upper() for n in TRICKY]
        assert isinstance(service.loader, MySQLLoader) and service.loader.local_infile is False
    finally:
        service.close()
