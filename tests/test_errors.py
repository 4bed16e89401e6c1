"""The error hierarchy's two axes: "may I retry?" (mixins) and "which system failed?"."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from lakestream import errors
from lakestream.errors import (
    BrokerError,
    HttpSourceError,
    KsqlDbError,
    LakestreamError,
    StorageError,
    StorageFullError,
    StorageUnavailableError,
    TerminalError,
    TransientError,
    UnknownNameError,
    UsageError,
    WarehouseError,
    WarehouseRefusedError,
    WarehouseUnavailableError,
    WebhookError,
    safe_url,
)

SRC = Path(__file__).resolve().parents[1] / "src" / "lakestream"
SYSTEMS = (BrokerError, StorageError, WarehouseError, HttpSourceError, KsqlDbError, WebhookError)
# every name modules and tests catch: they stay importable
KEPT = ["LakestreamError", "TransientError", "TerminalError", "ConfigError", "UsageError",
        "FeedError", "UnknownNameError", "BrokerError", "StorageError", "StorageFullError",
        "QueryError", "FencedError", "WarehouseError", "WarehouseUnavailableError"]


def error_classes() -> list[type[BaseException]]:
    return [c for _, c in inspect.getmembers(errors, inspect.isclass)
            if issubclass(c, BaseException) and c.__module__ == errors.__name__]


def test_the_names_modules_and_tests_catch_stay_importable() -> None:
    assert all(isinstance(getattr(errors, name), type) for name in KEPT)


def test_the_retry_mixins_carry_no_system_and_nothing_else() -> None:
    for mixin in (TransientError, TerminalError):
        assert mixin.__bases__ == (Exception,)
        assert not issubclass(mixin, LakestreamError)
        assert set(vars(mixin)) <= {"__module__", "__doc__", "__qualname__", "__firstlineno__",
                                    "__static_attributes__", "__weakref__", "__dict__"}


def test_every_error_says_its_system_and_at_most_one_retry_answer() -> None:
    for cls in error_classes():
        if cls in (TransientError, TerminalError):
            continue
        assert issubclass(cls, LakestreamError), cls
        assert not (issubclass(cls, TransientError) and issubclass(cls, TerminalError)), cls


def test_the_axes_are_independent_per_system() -> None:
    assert issubclass(StorageUnavailableError, StorageError)
    assert issubclass(StorageUnavailableError, TransientError)
    assert issubclass(StorageFullError, StorageError)
    assert issubclass(StorageFullError, TerminalError)
    assert issubclass(WarehouseUnavailableError, WarehouseError)
    assert issubclass(WarehouseRefusedError, WarehouseError)
    assert not issubclass(WarehouseUnavailableError, TerminalError)
    assert issubclass(UnknownNameError, UsageError)  # exit 2


def test_no_module_raises_a_system_class_without_saying_whether_to_retry() -> None:
    """``raise StorageError(...)`` would be retried by no policy: say Unavailable or Full."""
    names = {cls.__name__ for cls in SYSTEMS}
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in names:
                found.append(f"{path.relative_to(SRC)}:{node.lineno}: {node.func.id}(...)")
    assert found == [], "use the transient or terminal class of the system:\n" + \
        "\n".join(found)


def test_every_class_that_mixes_in_a_retry_answer_is_a_lakestream_error() -> None:
    """A class with only a mixin as base would escape the CLI's one-line error handling."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
                if bases and set(bases) <= {"TransientError", "TerminalError"}:
                    found.append(f"{path.relative_to(SRC)}:{node.lineno}: {node.name}")
    assert found == []


# -- context: the dataset, the topic and partition, the URL without secrets ------------------


def test_context_is_kept_as_attributes_and_named_in_the_message() -> None:
    error = StorageUnavailableError("cannot commit: connection reset", "retrying",
                                    dataset="s3://lake/streams/orders", topic="orders",
                                    partition=3)
    assert error.dataset == "s3://lake/streams/orders"
    assert (error.topic, error.partition) == ("orders", 3)
    assert error.message == ("cannot commit: connection reset "
                             "[dataset s3://lake/streams/orders, topic orders[3]]")
    assert str(error) == f"{error.message} (retrying)"


def test_context_the_message_names_already_is_not_repeated() -> None:
    error = StorageFullError("cannot write s3://lake/streams/orders/f.parquet: full",
                             dataset="s3://lake/streams/orders", topic="orders", partition=1)
    assert error.message == "cannot write s3://lake/streams/orders/f.parquet: full " \
        "[topic orders[1]]"
    plain = StorageFullError("orders[1] at s3://lake/streams/orders: full",
                             dataset="s3://lake/streams/orders", topic="orders", partition=1)
    assert plain.message == "orders[1] at s3://lake/streams/orders: full"


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql+psycopg://etl:s3cr3t@db:5432/lake", "postgresql+psycopg://etl:***@db:5432/lake"),
    ("http://user:p%40ss@ksqldb:8088", "http://user:***@ksqldb:8088"),
    ("https://api.openweathermap.org/data/2.5/weather?q=Paris&appid=abc123",
     "https://api.openweathermap.org/data/2.5/weather?q=Paris&appid=***"),
    ("https://hooks.example/x?token=t0k&x=1", "https://hooks.example/x?token=***&x=1"),
    ("http://ksqldb:8088", "http://ksqldb:8088"),
])
def test_urls_are_shown_without_passwords_or_keys(url: str, shown: str) -> None:
    assert safe_url(url) == shown
    error = WarehouseUnavailableError("the warehouse is unavailable", url=url)
    assert error.url == shown and shown in error.message
    for secret in ("s3cr3t", "p%40ss", "abc123", "t0k"):
        assert secret not in error.message and secret not in str(error.url)
