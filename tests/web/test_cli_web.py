"""``lakestream serve`` and ``lakestream tokens`` as a user runs them (``serve`` in a child)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from lakestream.cli import main
from tests.conftest import subprocess_env
from tests.web.conftest import free_port

LAKESTREAM = str(Path(sys.executable).with_name("lakestream"))


@dataclass
class Result:
    """What one command did."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project (lake folder, SQLite warehouse) as the working directory."""
    config = {"data_dir": str(tmp_path / "data"), "feeds_dir": str(tmp_path / "feeds"),
              "lake": {"root": str(tmp_path / "lake")}}
    (tmp_path / "lakestream.yaml").write_text(yaml.safe_dump(config))
    for var in [v for v in os.environ if v.startswith("LAKESTREAM_")]:
        monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def run(project: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run ``lakestream ARGS`` in this process; its exit status and output."""

    def invoke(*args: str) -> Result:
        capsys.readouterr()
        code = main(["--config", str(project / "lakestream.yaml"), *args])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return invoke


def test_a_token_is_shown_once_and_stored_hashed(project: Path,
                                                 run: Callable[..., Result]) -> None:
    created = run("tokens", "create", "--principal", "alice")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("lst_") and "shown only now" in created.stderr
    listed = run("tokens", "list", "--format", "json")
    rows = json.loads(listed.stdout)
    assert [r["principal"] for r in rows] == ["alice"]
    assert token not in listed.stdout
    stored = b"".join(p.read_bytes() for p in (project / "data").glob("warehouse.db*"))
    assert token.encode() not in stored  # only its SHA-256 is kept
    assert hashlib.sha256(token.encode()).hexdigest().encode() in stored


def test_a_revoked_token_is_gone(run: Callable[..., Result]) -> None:
    run("tokens", "create", "--principal", "bob")
    run("tokens", "create", "--principal", "bob")
    token_id = json.loads(run("tokens", "list", "--format", "json").stdout)[0]["id"]
    revoked = run("tokens", "revoke", str(token_id))
    assert revoked.returncode == 0 and f"revoked token {token_id}" in revoked.stdout
    assert len(json.loads(run("tokens", "list", "--format", "json").stdout)) == 1
    everything = run("tokens", "revoke", "--principal", "bob")
    assert "revoked 1 token(s)" in everything.stdout
    missing = run("tokens", "revoke", "999")
    assert missing.returncode == 1 and missing.stderr.count("\n") <= 2
    assert "no token with id 999" in missing.stderr and "Traceback" not in missing.stderr


def test_token_commands_refuse_bad_input_in_one_line(run: Callable[..., Result]) -> None:
    bad = run("tokens", "create", "--principal", "not a name!")
    assert bad.returncode == 2 and "not a valid principal name" in bad.stderr
    both = run("tokens", "revoke")
    assert both.returncode == 2 and "TOKEN_ID or --principal" in both.stderr


@pytest.mark.integration
def test_serve_answers_until_terminated(project: Path, run: Callable[..., Result]) -> None:
    port = free_port()
    token = run("tokens", "create", "--principal", "carol").stdout.strip()
    process = subprocess.Popen([LAKESTREAM, "serve", "--port", str(port)], cwd=project,
                               env=subprocess_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"{base}/api/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health.status_code == 200
        me = httpx.get(f"{base}/api/whoami", headers={"Authorization": f"Bearer {token}"})
        assert me.json() == {"principal": "carol", "readable": []}
        assert httpx.get(f"{base}/metrics").status_code == 401
        scraped = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"})
        assert scraped.status_code == 200 and "lakestream_broker_up" in scraped.text
        assert httpx.get(f"{base}/", follow_redirects=False).status_code == 303
    finally:
        os.kill(process.pid, signal.SIGTERM)
        out, _err = process.communicate(timeout=15)
    assert f"dashboard: http://127.0.0.1:{port}/" in out


def test_serve_on_a_taken_port_is_one_clear_line(run: Callable[..., Result]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--port", str(port))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--port" in result.stderr and "Traceback" not in result.stderr


def test_demo_offers_to_serve_the_dashboard(run: Callable[..., Result]) -> None:
    helped = run("demo", "--help")
    assert "--serve" in helped.stdout and "--port" in helped.stdout
