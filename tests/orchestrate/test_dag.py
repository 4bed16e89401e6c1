"""The DAG model: order, selection, validation; the shipped DAGs follow SPEC §4's policy."""

from __future__ import annotations

import pytest

from lakestream.errors import UsageError
from lakestream.orchestrate.catalog import builtin_dags
from lakestream.orchestrate.dag import Dag, Task, TaskOutput, as_output

from .conftest import task


def noop(_ctx: object) -> None:
    return None


def test_tasks_run_in_dependency_order_whatever_their_declaration_order() -> None:
    dag = Dag("d", (Task("load", noop, ("extract", "fetch")), Task("extract", noop),
                    Task("fetch", noop, ("extract",))))
    assert [t.name for t in dag.order()] == ["extract", "fetch", "load"]


def test_a_cycle_or_an_unknown_upstream_is_refused() -> None:
    with pytest.raises(ValueError, match="cycle"):
        Dag("d", (Task("a", noop, ("b",)), Task("b", noop, ("a",))))
    with pytest.raises(ValueError, match="unknown"):
        Dag("d", (Task("a", noop, ("zz",)),))


def test_from_selects_the_task_and_everything_downstream() -> None:
    dag = Dag("d", (Task("a", noop), Task("b", noop, ("a",)), Task("c", noop, ("a",)),
                    Task("d", noop, ("b",))))
    assert [t.name for t in dag.select(from_task="b")] == ["b", "d"]
    assert [t.name for t in dag.select(only="c")] == ["c"]


def test_an_unknown_task_name_suggests_the_closest() -> None:
    dag = builtin_dags()["weather"]
    with pytest.raises(UsageError, match="has no task 'load_glod'") as error:
        dag.select(only="load_glod")
    assert error.value.hint == "did you mean 'load_gold'?"
    with pytest.raises(UsageError, match="not both"):
        dag.select("check_api", "load_gold")


def test_the_weather_dag_has_the_spec_tasks_and_policy() -> None:
    dag = builtin_dags()["weather"]
    assert [t.name for t in dag.order()] == [
        "check_api", "ingest_data", "consume_to_s3", "process_silver", "load_gold",
        "quality_check", "notify_success", "cleanup_old_data"]
    policy = dag.policy
    assert policy.schedule == "0 * * * *" and policy.retries == 3
    assert policy.retry_delay_s == 300 and policy.sla_s == 1800 and policy.run_timeout_s == 7200


def test_the_transactions_dag_chains_its_steps() -> None:
    dag = builtin_dags()["transactions"]
    names = [t.name for t in dag.order()]
    assert names[:2] == ["process", "ingest"] and names.index("sync") < names.index("quality")
    assert all(t.upstream == (names[i - 1],) for i, t in enumerate(dag.order()) if i)


def test_a_task_may_return_counts_in_several_shapes() -> None:
    class Report:
        rows_in, rows_out, summary = 3, 2, "ok"

    assert as_output(None) == TaskOutput()
    assert as_output(5) == TaskOutput(rows_out=5)
    assert as_output(Report()) == TaskOutput(3, 2, "ok")
    # no context on purpose: the default task's function does not read it
    assert task("x").fn(None) == TaskOutput(10, 10)  # type: ignore[arg-type]
