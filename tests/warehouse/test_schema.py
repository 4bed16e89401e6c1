"""The schema: created idempotently, and the shipped SQL scripts are exactly the code's DDL."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from lakestream.cli import main
from lakestream.warehouse import WarehouseService
from lakestream.warehouse.ddl import PARTS, render_all
from lakestream.warehouse.schema import FACTS, metadata
from tests.support.databases import require_server

from .conftest import make_settings

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


def test_init_twice_creates_the_schema_once(tmp_path: Path, database_url: str) -> None:
    service = WarehouseService(make_settings(tmp_path, database_url))
    try:
        first = service.init()
        second = service.init()
        inspector = sa.inspect(service.engine)
        tables = set(inspector.get_table_names())
        fks = {
            spec.table.name: inspector.get_foreign_keys(spec.table.name)
            for spec in FACTS
            if spec.dimension
        }
        uniques = {
            spec.table.name: inspector.get_unique_constraints(spec.table.name) for spec in FACTS
        }
    finally:
        service.close()
    assert set(first.tables_created) == set(metadata.tables)
    assert second.tables_created == ()
    assert tables >= set(metadata.tables)
    for table, keys in fks.items():
        assert [fk["options"].get("ondelete", "").upper() for fk in keys] == ["CASCADE"], table
    for spec in FACTS:
        assert [tuple(u["column_names"]) for u in uniques[spec.table.name]] == [spec.key]


def test_shipped_scripts_equal_the_generated_ddl(tmp_path: Path) -> None:
    assert main(["warehouse", "ddl", "--dialect", "mysql", "--out-dir", str(tmp_path)]) == 0
    generated = render_all("mysql")
    for part in PARTS:
        shipped = (SQL_DIR / part.file_name).read_text(encoding="utf-8")
        assert shipped == generated[part.file_name], (
            f"sql/{part.file_name} is stale: run `lakestream warehouse ddl --dialect mysql "
            "--out-dir sql`"
        )
        assert (tmp_path / part.file_name).read_text(encoding="utf-8") == shipped


@pytest.mark.integration
def test_running_the_scripts_by_hand_builds_the_same_tables_as_init(
    tmp_path: Path, server_status: dict[str, str | None]
) -> None:
    server = require_server("mariadb", server_status)
    by_script, by_init = (f"lstest_{uuid.uuid4().hex[:12]}" for _ in range(2))
    try:
        statements = [
            re.sub(r"\blakestream\b", f"`{by_script}`", s, count=1)
            if s.startswith(("CREATE DATABASE", "USE "))
            else s
            for part in PARTS
            for s in _statements((SQL_DIR / part.file_name).read_text(encoding="utf-8"))
        ]
        _run_as_one_session(server.admin_url, statements)
        service = WarehouseService(make_settings(tmp_path, server.url(by_init)))
        assert service.init().database_created
        service.close()
        assert _show_create(server.url(by_script)) == _show_create(server.url(by_init))
    finally:
        server.execute(
            f"DROP DATABASE IF EXISTS `{by_script}`", f"DROP DATABASE IF EXISTS `{by_init}`"
        )


def test_ddl_prints_every_dialect() -> None:
    for dialect in ("mysql", "postgresql", "sqlite"):
        text = "\n".join(render_all(dialect).values())
        assert text.count("CREATE TABLE") == len(metadata.tables)
        assert "ON DELETE CASCADE" in text
    # a mariadb:// URL builds exactly the MySQL tables (engine, charset, binary collation)
    assert render_all("mariadb") == {
        name: text.replace("(mysql)", "(mariadb)").replace("dialect mysql", "dialect mariadb")
        for name, text in render_all("mysql").items()
    }


def _statements(script: str) -> list[str]:
    body = "\n".join(line for line in script.splitlines() if not line.startswith("--"))
    return [s.strip() for s in body.split(";\n") if s.strip()]


def _run_as_one_session(url: str, statements: list[str]) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement.rstrip(";"))
    finally:
        engine.dispose()


def _show_create(url: str) -> dict[str, str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                name: conn.exec_driver_sql(f"SHOW CREATE TABLE `{name}`").one()[1]
                for name in metadata.tables
            }
    finally:
        engine.dispose()
