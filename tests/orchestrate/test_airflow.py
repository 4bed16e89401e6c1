"""The generated DAG under a real Airflow 3.3, installed in its own virtualenv.

Airflow's pins would drag the core's versions, so it never goes into
``.venv``: the session creates ``.venv-airflow/`` (reused when present; about
a minute from the package mirror) with ``apache-airflow==3.3.*`` and the
project, then runs ``airflow dags test`` on an SQLite metadata database.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from lakestream.cli import main
from lakestream.warehouse.connection import make_engine
from lakestream.warehouse.runlog import RunLog
from tests.conftest import subprocess_env

from .conftest import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-airflow"
BIN = VENV / "bin"
AIRFLOW_SPEC = "apache-airflow==3.3.*"
WEATHER_TASKS = ["check_api", "ingest_data", "consume_to_s3", "process_silver", "load_gold",
                 "quality_check", "notify_success", "cleanup_old_data"]


def _pip(*args: str) -> None:
    subprocess.run([str(BIN / "python"), "-m", "pip", "install", "--quiet", *args], check=True,
                   timeout=900)


@pytest.fixture(scope="session")
def airflow_bin() -> Path:
    """``.venv-airflow/bin`` with Airflow 3.3 and this project installed."""
    stamp = VENV / ".lakestream-stamp"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not (BIN / "airflow").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        _pip("--upgrade", "pip")
        _pip(AIRFLOW_SPEC)
    if not (BIN / "lakestream").exists() or not stamp.exists() or stamp.read_text() != wanted:
        _pip("-e", str(ROOT), AIRFLOW_SPEC)
        stamp.write_text(wanted)
    return BIN


def airflow_env(home: Path, **extra: str) -> dict[str, str]:
    return subprocess_env(
        AIRFLOW_HOME=str(home), AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}", **extra)


def test_airflow_dags_test_runs_the_weather_dag_through_lakestream(
    airflow_bin: Path, workdir: Path, tmp_path: Path, receiver: Receiver
) -> None:
    home = tmp_path / "airflow"
    dag_file = home / "dags" / "lakestream_weather.py"
    assert main(["airflow", "dag", "--pipeline", "weather", "--out", str(dag_file),
                 "--lakestream-bin", str(airflow_bin / "lakestream"),
                 "--task-config", str(workdir / "lakestream.yaml"), "--sla-as", "callback"]) == 0
    env = airflow_env(home, LAKESTREAM_NOTIFY_WEBHOOK_URL=receiver.url)
    subprocess.run([str(airflow_bin / "airflow"), "db", "migrate"], env=env, check=True,
                   capture_output=True, timeout=300)
    test = subprocess.run([str(airflow_bin / "airflow"), "dags", "test", "lakestream_weather"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert test.returncode == 0, test.stdout[-3000:] + test.stderr[-3000:]

    engine = make_engine(sa.make_url(f"sqlite:///{workdir / 'data' / 'gold.db'}"))  # weather's
    with engine.connect() as conn:
        run_ids = {r[0] for r in conn.exec_driver_sql(
            "SELECT DISTINCT run_id FROM pipeline_execution_log")}
    [run_id] = run_ids
    assert run_id.startswith("manual__")  # Airflow's run id, passed to every task
    rows = RunLog(engine).rows(run_id)
    assert [(r["task"], r["status"], r["attempt"]) for r in rows] == [
        (t, "success", 1) for t in WEATHER_TASKS]
    [body] = receiver.wait_for(1)
    assert body["event"] == "success" and body["run_id"] == run_id


INSPECT = """
import json, runpy, sys
dag = runpy.run_path(sys.argv[1])["dag"]
alert = dag.deadline[0] if isinstance(dag.deadline, list) else dag.deadline
print(json.dumps({
    "dag_id": dag.dag_id, "tasks": [t.task_id for t in dag.topological_sort()],
    "max_active_runs": dag.max_active_runs, "catchup": dag.catchup,
    "dagrun_timeout": dag.dagrun_timeout.total_seconds(),
    "retries": [t.retries for t in dag.tasks],
    "retry_delay": [t.retry_delay.total_seconds() for t in dag.tasks],
    "execution_timeout": [t.execution_timeout.total_seconds() for t in dag.tasks],
    "deadline_s": alert.interval.total_seconds(), "deadline_ref": type(alert.reference).__name__,
    "failure_callbacks": all(t.on_failure_callback for t in dag.tasks),
}))
"""


def test_the_deadline_alert_dag_loads_in_airflow_with_the_policy(
    airflow_bin: Path, tmp_path: Path
) -> None:
    dag_file = tmp_path / "lakestream_weather.py"
    assert main(["airflow", "dag", "--pipeline", "weather", "--out", str(dag_file)]) == 0
    env = {**airflow_env(tmp_path / "home"), "PYTHONWARNINGS": "ignore"}
    shown = subprocess.run([str(airflow_bin / "python"), "-c", INSPECT, str(dag_file)], env=env,
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-3000:]
    dag = json.loads(shown.stdout.strip().splitlines()[-1])
    assert dag["dag_id"] == "lakestream_weather" and dag["tasks"] == WEATHER_TASKS
    assert dag["max_active_runs"] == 1 and dag["catchup"] is False
    assert dag["dagrun_timeout"] == 7200
    assert set(dag["retries"]) == {3} and set(dag["retry_delay"]) == {300}
    assert set(dag["execution_timeout"]) == {7200}
    assert dag["deadline_s"] == 1800 and dag["deadline_ref"] == "DagRunQueuedAtDeadline"
    assert dag["failure_callbacks"]
    assert os.path.exists(airflow_bin / "airflow")
