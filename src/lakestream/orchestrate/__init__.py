"""Orchestration: DAGs as code, their runs, the scheduler, Airflow.

:mod:`.dag` (the model) → :mod:`.catalog` (the shipped DAGs) → :mod:`.lock`,
:mod:`.notify`, :mod:`.executors` (the parts of a run; its log is
:mod:`lakestream.warehouse.runlog`) → :mod:`.runner` (one run) →
:mod:`.scheduler` (runs on a cron schedule) and :mod:`.airflow` (the same DAG
for Airflow) → :mod:`.service` (what the facade exposes). ``orchestrate``
imports ``pipelines``, never the reverse.
"""
