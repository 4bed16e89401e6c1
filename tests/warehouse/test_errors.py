"""A user's mistake or a server that is down: one clear line with a hint, never a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import sqlalchemy as sa

from lakestream.cli import main
from lakestream.errors import WarehouseError, WarehouseUnavailableError
from lakestream.warehouse import WarehouseService

from .conftest import FAST_RETRY, SERVER_BACKENDS, make_settings


def _cli(args: list[str], url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """Run the CLI in ``tmp_path`` with the warehouse at ``url``."""
    monkeypatch.setenv("LAKESTREAM_WAREHOUSE_URL", url)
    monkeypatch.chdir(tmp_path)
    return main(args)


def _with_credentials(url: str, user: str, password: str | None) -> str:
    parsed = sa.make_url(url).set(username=user, password=password)
    return parsed.render_as_string(hide_password=False)


@pytest.mark.parametrize("backend", SERVER_BACKENDS, indirect=True)
def test_wrong_credentials_are_one_clear_line(
    backend: str,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # PostgreSQL trusts local logins whatever the password: a wrong user is refused
    user = "root" if backend == "mariadb" else "no_such_role"
    url = _with_credentials(database_url, user, "wrong-password")
    code = _cli(["sync"], url, tmp_path, monkeypatch)
    err = " ".join(capsys.readouterr().err.split())  # rich wraps at 80 columns
    assert code == 1
    assert "refused the login" in err
    assert "check the user and password" in err
    assert "wrong-password" not in err
    assert "Traceback" not in err


@pytest.mark.parametrize("backend", SERVER_BACKENDS, indirect=True)
def test_missing_database_is_named_and_init_creates_it(
    missing_database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = _cli(["sync"], missing_database_url, tmp_path, monkeypatch)
    err = " ".join(capsys.readouterr().err.split())  # rich wraps at 80 columns
    database = sa.make_url(missing_database_url).database
    assert code == 1
    assert f"database '{database}' does not exist" in err
    assert "lakestream warehouse init" in err
    assert "Traceback" not in err

    assert main(["warehouse", "init"]) == 0
    assert "created database" in capsys.readouterr().out
    assert main(["warehouse", "check"]) == 0


@pytest.mark.parametrize("backend", SERVER_BACKENDS, indirect=True)
def test_unreachable_server_is_retried_then_reported(backend: str, tmp_path: Path) -> None:
    with socket.socket() as probe:  # a loopback port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    scheme = "mysql+pymysql://root" if backend == "mariadb" else "postgresql+psycopg://postgres"
    url = f"{scheme}@127.0.0.1:{port}/lakestream"
    service = WarehouseService(make_settings(tmp_path, url), retry=FAST_RETRY)
    try:
        with pytest.raises(WarehouseUnavailableError, match="unavailable") as caught:
            service.sync()
    finally:
        service.close()
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "server running" in (caught.value.hint or "")


def test_a_bad_url_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _cli(["warehouse", "init"], "oracle://scott:tiger@db/x", tmp_path, monkeypatch)
    err = " ".join(capsys.readouterr().err.split())  # rich wraps at 80 columns
    assert code == 1
    assert "unsupported database 'oracle'" in err


def test_wrong_schema_is_reported_with_the_fix(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    service = WarehouseService(make_settings(tmp_path, url))
    try:
        with pytest.raises(WarehouseError, match="has no table") as caught:
            service.status()
    finally:
        service.close()
    assert caught.value.hint == "run `lakestream warehouse init` first"
