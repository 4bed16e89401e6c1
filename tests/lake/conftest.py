"""Fixtures of the lake tests: the independent Delta readers of ``tests/lake/interop.py``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from . import interop


@pytest.fixture(scope="session")
def interop_python() -> Path:
    """The Python of ``.venv-interop/`` (DuckDB 1.5.5 + its delta extension, polars)."""
    return interop.ensure_venv()


@pytest.fixture(scope="session")
def read_with(interop_python: Path) -> Callable[..., list[interop.Row]]:
    """``read_with(reader, table_uri, sql_or_columns)``: rows read by DuckDB or polars."""
    return functools.partial(interop.read_with, python=interop_python)


@pytest.fixture(scope="module")
def spark() -> Any:
    """A local Spark session (the medallion's), for the interop tests that read with Spark."""
    from lakestream.medallion.spark_engine import spark_session

    return spark_session()
