"""The server fixtures: skip with the start command locally, fail under CI=true."""

from __future__ import annotations

import pytest

from tests.support.databases import SERVERS, Server, require_server

DOWN = Server("MariaDB", "mysql+pymysql://root@127.0.0.1:1/", "unused", "start it like this")


def test_a_server_down_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SERVERS, "mariadb", DOWN)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="start it like this"):
        require_server("mariadb", {})


def test_a_server_down_skips_with_the_start_command_outside_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(SERVERS, "mariadb", DOWN)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="start it like this"):
        require_server("mariadb", {})
