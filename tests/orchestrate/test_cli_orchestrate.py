"""`lakestream run | task | schedule | airflow` as a user meets them."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from lakestream.cli import main
from lakestream.warehouse.connection import make_engine
from lakestream.warehouse.runlog import RunLog
from lakestream.warehouse.schema import pipeline_execution_log
from tests.conftest import clear_settings_environment, subprocess_env

from .conftest import Receiver
from .test_lock import holder_process, wait_for_holder

LAKESTREAM = Path(sys.executable).with_name("lakestream")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose Kafka is never reached by the tasks these tests run."""
    clear_settings_environment(monkeypatch)
    monkeypatch.chdir(tmp_path)
    config = {"data_dir": str(tmp_path / "data"), "feeds_dir": str(tmp_path / "feeds"),
              "lake": {"root": str(tmp_path / "lake")},
              "kafka": {"bootstrap_servers": "127.0.0.1:9"}}
    (tmp_path / "lakestream.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def engine_of(project: Path) -> sa.Engine:
    return make_engine(sa.make_url(f"sqlite:///{project / 'data' / 'warehouse.db'}"))


def cli(project: Path, *args: str, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LAKESTREAM), *args], cwd=project, capture_output=True, text=True,
                          env=subprocess_env(**(env or {})), timeout=timeout)


def test_an_unknown_pipeline_or_task_is_a_usage_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "wether"]) == 2
    assert "unknown pipeline 'wether'" in capsys.readouterr().err
    assert main(["run", "weather", "--only", "load_glod"]) == 2
    err = capsys.readouterr().err
    assert "has no task 'load_glod'" in err and "did you mean 'load_gold'?" in err
    assert main(["task", "transactions", "nope"]) == 2


def test_a_run_while_another_holds_the_lock_exits_1_and_a_killed_holder_frees_it(
    project: Path,
) -> None:
    (project / "data").mkdir()
    holder = holder_process(project / "data" / "warehouse.db", "weather", "run-elsewhere")
    try:
        wait_for_holder(engine_of(project), "weather")
        refused = cli(project, "run", "weather", "--only", "check_api")
        assert refused.returncode == 1
        assert refused.stderr.startswith("error: pipeline 'weather' is already running: "
                                         f"run run-elsewhere (pid {holder.pid} on ")
        assert "Traceback" not in refused.stderr
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    finally:
        holder.kill()
    after = cli(project, "run", "weather", "--only", "check_api")
    assert after.returncode == 0, after.stderr
    assert "✓ check_api" in after.stderr and "succeeded" in after.stdout


def test_a_task_run_alone_is_logged_whether_it_fails_or_succeeds(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["task", "transactions", "quality", "--run-id", "manual-1"]) == 1
    assert "run `lakestream warehouse init`" in capsys.readouterr().err  # no schema yet
    assert main(["task", "transactions", "sync", "--run-id", "manual-1", "--attempt", "2"]) == 0
    assert main(["task", "transactions", "quality", "--run-id", "manual-1", "--attempt", "3"]) == 0
    assert "transactions.quality: success" in capsys.readouterr().out
    rows = RunLog(engine_of(project)).rows("manual-1")
    assert [(r["task"], r["status"], r["attempt"]) for r in rows] == [
        ("quality", "failed", 1), ("sync", "success", 2), ("quality", "success", 3)]
    assert "no such table" in rows[0]["error"]


def test_airflow_notify_posts_to_the_configured_webhook(
    project: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LAKESTREAM_NOTIFY_WEBHOOK_URL", receiver.url)
    assert main(["airflow", "notify", "failure", "--pipeline", "weather", "--run-id", "a1",
                 "--task", "load_gold", "--error", "gold down"]) == 0
    [body] = receiver.wait_for(1)
    assert body["event"] == "failure" and body["failed_task"] == "load_gold"
    assert body["run_id"] == "a1" and body["error"] == "gold down"


def test_the_airflow_dag_file_maps_the_policy(project: Path) -> None:
    out = project / "dags" / "lakestream_weather.py"
    assert main(["airflow", "dag", "--pipeline", "weather", "--out", str(out),
                 "--lakestream-bin", "/opt/ls/bin/lakestream"]) == 0
    text = out.read_text()
    compile(text, str(out), "exec")
    for expected in ('dag_id="lakestream_weather"', "schedule='0 * * * *'", "max_active_runs=1",
                     '"retries": 3', '"retry_delay": timedelta(seconds=300)',
                     "dagrun_timeout=timedelta(seconds=7200)", "catchup=False",
                     "DeadlineReference.DAGRUN_QUEUED_AT", "interval=timedelta(seconds=1800)",
                     '"on_failure_callback": on_task_failure',
                     "/opt/ls/bin/lakestream task weather load_gold --run-id '{{ run_id }}'",
                     "check_api >> ingest_data", "quality_check >> notify_success"):
        assert expected in text, expected
    assert "on_success_callback" not in text  # weather announces success with its own task


@pytest.mark.integration
@pytest.mark.slow
def test_two_weather_runs_at_once_one_runs_the_other_exits_1(workdir: Path) -> None:
    first = subprocess.Popen([str(LAKESTREAM), "run", "weather"], cwd=workdir, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=subprocess_env())
    try:
        assert first.stderr is not None
        assert first.stderr.readline().startswith("▶ check_api")
        second = cli(workdir, "run", "weather")
        assert second.returncode == 1
        assert second.stderr.startswith("error: pipeline 'weather' is already running: run ")
        out, err = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 0, err
    assert "succeeded" in out
    gold = make_engine(sa.make_url(f"sqlite:///{workdir / 'data' / 'gold.db'}"))
    with gold.connect() as conn:  # the weather pipeline's run log is in its gold store
        rows = conn.execute(sa.select(pipeline_execution_log.c.run_id,
                                      pipeline_execution_log.c.task,
                                      pipeline_execution_log.c.status)).all()
    assert [tuple(r)[1:] for r in rows] == [(t, "success") for t in (
        "check_api", "ingest_data", "consume_to_s3", "process_silver", "load_gold",
        "quality_check", "notify_success", "cleanup_old_data")]
    assert len({r.run_id for r in rows}) == 1 and rows[0].run_id.startswith("weather-")
    warehouse = make_engine(sa.make_url(f"sqlite:///{workdir / 'data' / 'warehouse.db'}"))
    with warehouse.connect() as conn:  # none of it in the warehouse: a run is never split
        assert not sa.inspect(conn).has_table(pipeline_execution_log.name) or not conn.execute(
            sa.select(pipeline_execution_log.c.task)).all()


@pytest.mark.integration
@pytest.mark.slow
def test_schedule_catches_up_a_missed_run_and_sigterm_lets_the_task_finish(
    workdir: Path,
) -> None:
    engine = make_engine(sa.make_url(f"sqlite:///{workdir / 'data' / 'warehouse.db'}"))
    log = RunLog(engine)
    row = log.started("old-run", "transactions", "process", 1)  # the last run: 3 hours ago
    with engine.begin() as conn:
        conn.execute(pipeline_execution_log.update().values(
            started_at=dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=3),
            status="success").where(pipeline_execution_log.c.execution_id == row))
    env = subprocess_env(LAKESTREAM_ANON_KEY="k" * 32)
    scheduler = subprocess.Popen([str(LAKESTREAM), "schedule", "-p", "transactions"],
                                 cwd=workdir, text=True, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, env=env)
    try:
        assert scheduler.stdout is not None
        lines: list[str] = []
        while not lines or not lines[-1].startswith("▶ process"):
            lines.append(scheduler.stdout.readline())
            assert lines[-1], lines
        assert any("missed the run of" in line for line in lines)
        scheduler.send_signal(signal.SIGTERM)
        out, _ = scheduler.communicate(timeout=120)
    finally:
        scheduler.kill()
    assert scheduler.returncode == 0, out
    assert "scheduler stopped" in out
    with engine.connect() as conn:
        rows = conn.execute(sa.select(pipeline_execution_log.c.task,
                                      pipeline_execution_log.c.status)
                            .where(pipeline_execution_log.c.run_id != "old-run")
                            .where(pipeline_execution_log.c.task.not_like("sync:%"))
                            .order_by(pipeline_execution_log.c.execution_id)).all()
    assert [tuple(r) for r in rows] == [("process", "success")] + [
        (t, "cancelled") for t in ("ingest", "export_tables", "sync", "quality", "retention")]


@pytest.mark.integration
@pytest.mark.slow
def test_the_transactions_dag_lands_events_in_the_lake_and_the_warehouse(workdir: Path) -> None:
    env = {"LAKESTREAM_ANON_KEY": "k" * 32}
    produced = cli(workdir, "produce", "transactions", "-n", "300", "--seed", "5", env=env)
    assert produced.returncode == 0, produced.stderr
    run = cli(workdir, "run", "transactions", env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    engine = make_engine(sa.make_url(f"sqlite:///{workdir / 'data' / 'warehouse.db'}"))
    with engine.connect() as conn:
        logged = conn.execute(sa.select(pipeline_execution_log.c.task,
                                        pipeline_execution_log.c.status)
                              .where(pipeline_execution_log.c.task.not_like("sync:%"))
                              .order_by(pipeline_execution_log.c.execution_id)).all()
        facts = conn.exec_driver_sql("SELECT count(*) FROM fact_payment_method_totals").scalar()
        users = conn.exec_driver_sql("SELECT count(*) FROM dim_users").scalar()
        run_ids = dict(conn.execute(sa.select(pipeline_execution_log.c.task,
                                              pipeline_execution_log.c.run_id)).all())
    assert [tuple(r) for r in logged] == [(t, "success") for t in (
        "process", "ingest", "export_tables", "sync", "quality", "retention")]
    assert facts and users
    assert {"sync:dim_users", "sync:fact_payment_method_totals"} <= set(run_ids)
    assert len(set(run_ids.values())) == 1  # each table's load is logged under the DAG run's id
    query = cli(workdir, "query", "SELECT count(*) FROM transaction_stream", "--format", "csv")
    assert int(query.stdout.splitlines()[-1]) >= 300
