"""Scenario 6c: arbitrary arguments and config files into the command line (in-process).

Every outcome must be exit status 0, 1 (one ``error:`` line) or 2 (a usage
message), never a traceback and never an "internal error" (an exception the
CLI did not expect), and fast: no command may hang on bad input.

The fuzzed commands are those that act on the project folder alone. Left out
on purpose: commands that start servers or long runs (``demo``, ``serve``,
``schedule``, ``broker start``, ``run``, ``task``), reach the network
(``produce weather``, ``doctor``), start Spark (``medallion``) or write into
the repository (``docs``, ``airflow dag``). The API arrives with the dashboard
issue and is not fuzzed yet.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from lakestream.cli import cli, main
from tests.conftest import clear_settings_environment
from tests.faults.badinput import FUZZ
from tests.faults.conftest import FaultCounts

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SKIPPED = {("demo",), ("serve",), ("schedule",), ("run",), ("task",), ("doctor",), ("docs",),
           ("medallion",), ("airflow",), ("broker", "start"), ("produce", "weather")}
SLOW_S = 20.0


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        if any(path[: len(s)] == s for s in SKIPPED):
            continue
        yield path, command
        if isinstance(command, click.Group):
            yield from _commands(command, path)


COMMANDS = dict(_commands(cli))
OPTIONS = sorted({o for c in COMMANDS.values() for p in c.params for o in p.opts
                  if o.startswith("-")} - {"--debug"})
CHOICES = sorted({str(v) for c in COMMANDS.values() for p in c.params
                  if isinstance(p.type, click.Choice) for v in p.type.choices})
VALUES = st.one_of(
    st.sampled_from(CHOICES), st.sampled_from(OPTIONS),
    st.sampled_from(["", "-", "--", "0", "-1", "1e309", "nan", "2025-02-30", "2025-01-15",
                     "transaction_stream", "transactions", "weather", "analyst", "read", "admin",
                     "lakestream.yaml", "missing.yaml", ".", "/", "SELECT 1", "SELEC",
                     "SELECT * FROM nope", "DROP TABLE x", "'; --", "x" * 300, "é"]),
    st.integers(-(2**40), 2**40).map(str),
    # what a shell can pass: any text but NUL (argv entries are C strings)
    st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]),
            max_size=12),
)


def _value(param: click.Parameter) -> st.SearchStrategy[str]:
    """A value for ``param``: mostly of its type, sometimes anything."""
    kind = param.type
    if isinstance(kind, click.Choice):
        typed: st.SearchStrategy[str] = st.sampled_from([str(c) for c in kind.choices])
    elif isinstance(kind, click.types.IntParamType):
        typed = st.integers(-(2**33), 2**33).map(str)
    elif isinstance(kind, click.types.FloatParamType):
        typed = st.floats(allow_nan=True).map(str)
    else:
        typed = VALUES
    return st.one_of(typed, typed, VALUES)


@st.composite
def command_argv(draw: st.DrawFn) -> list[str]:
    """A real command with arguments and options shaped like its own, then perhaps spoiled."""
    path = draw(st.sampled_from(sorted(COMMANDS)))
    command = COMMANDS[path]
    argv = list(path)
    for param in command.params:
        if isinstance(param, click.Argument):
            if param.required or draw(st.booleans()):
                argv += [draw(_value(param)) for _ in range(max(1, param.nargs))]
        elif isinstance(param, click.Option) and draw(st.integers(0, 2)) == 0:
            argv.append(draw(st.sampled_from(param.opts + param.secondary_opts)))
            if not param.is_flag and not param.count:
                argv += [draw(_value(param)) for _ in range(max(1, param.nargs))]
    if draw(st.integers(0, 3)) == 0:  # spoil it: an extra, a missing or a moved token
        spoil = draw(st.sampled_from(["insert", "drop", "swap"]))
        i = draw(st.integers(0, len(argv)))
        if spoil == "insert":
            argv.insert(i, draw(VALUES))
        elif spoil == "drop" and argv:
            argv.pop(min(i, len(argv) - 1))
        elif len(argv) > 1:
            j = draw(st.integers(0, len(argv) - 1))
            argv[min(i, len(argv) - 1)], argv[j] = argv[j], argv[min(i, len(argv) - 1)]
    return argv


ARGV = st.one_of(command_argv(), command_argv(), command_argv(), st.lists(VALUES, max_size=6))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project (no Kafka, an empty local lake) as the working directory."""
    clear_settings_environment(monkeypatch)
    monkeypatch.chdir(tmp_path)
    config = {"data_dir": str(tmp_path / "data"), "feeds_dir": str(tmp_path / "feeds"),
              "lake": {"root": str(tmp_path / "lake")}}
    (tmp_path / "lakestream.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def check_outcome(argv: list[str], capsys: pytest.CaptureFixture[str]) -> int:
    """Run ``lakestream ARGV`` in-process; assert it ended the way a user may expect."""
    started = time.monotonic()
    code = main(argv)
    took = time.monotonic() - started
    out, err = capsys.readouterr()
    assert code in (0, 1, 2), (argv, code, err[-2000:])
    assert "Traceback" not in out + err, (argv, err[-2000:])
    assert "internal error" not in err, (argv, err[-2000:])
    if code == 1:
        assert "error:" in err, (argv, out[-500:], err[-500:])
    if code == 2:
        assert err.strip(), (argv, "a usage error says what is wrong")
    assert took < SLOW_S, (argv, f"took {took:.1f}s")
    return code


@settings(FUZZ, max_examples=2000)
@given(argv=ARGV)
def test_arbitrary_arguments_end_in_exit_0_1_or_2_with_a_clear_message(
        argv: list[str], project: Path, capsys: pytest.CaptureFixture[str],
        counts: FaultCounts) -> None:
    check_outcome(argv, capsys)
    counts.fuzz["CLI: argument lists"] += 1


_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                     st.floats(), st.text(max_size=20),
                     st.sampled_from(["", "s3://", "s3://b/p", "file:///x", "ftp://x",
                                      "mysql://", "sqlite:///w.db", "localhost:1", "bad url"]))
_SECTIONS = {
    "kafka": ["bootstrap_servers", "group_id", "session_timeout_ms", "partitions",
              "client_config", "bootstrp_servers"],
    "lake": ["root", "flush_interval_s", "max_batch_records", "max_batch_bytes",
             "table_versions", "snapshot_interval_s", "rot"],
    "s3": ["endpoint", "region", "access_key", "secret_key"],
    "weather": ["cities", "interval_s", "api_url", "retries"],
}
_TOP = ["data_dir", "feeds_dir", "warehouse_url", "gold_url", "ksqldb_url", "anon_key",
        "source", "dat_dir", *_SECTIONS]


@st.composite
def config_document(draw: st.DrawFn) -> str:
    """YAML text: real keys at the right (or wrong) level with values of any type, or junk."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(["", "- a\n- b\n", "42\n", "{", "key: [unclosed\n",
                                     "\t- tab\n", ": x\n", "a: b: c\n", "\xff\xfe"]))
    document: dict[str, Any] = {}
    for key in draw(st.lists(st.sampled_from(_TOP), max_size=6, unique=True)):
        if key in _SECTIONS and draw(st.booleans()):
            document[key] = {k: draw(_SCALARS) for k in draw(
                st.lists(st.sampled_from(_SECTIONS[key]), max_size=4, unique=True))}
        else:
            document[key] = draw(st.one_of(_SCALARS, st.lists(_SCALARS, max_size=2),
                                           st.dictionaries(st.text(max_size=4), _SCALARS,
                                                           max_size=2)))
    return yaml.safe_dump(document, allow_unicode=draw(st.booleans()))


SETTINGS_READERS = [["feeds", "list"], ["reference", "rates"], ["warehouse", "ddl"],
                    ["feeds", "show", "transaction_stream"]]


@settings(FUZZ, max_examples=600)
@given(text=config_document(), command=st.sampled_from(SETTINGS_READERS))
def test_arbitrary_config_files_end_in_exit_0_or_1_with_a_clear_message(
        text: str, command: list[str], project: Path, capsys: pytest.CaptureFixture[str],
        counts: FaultCounts) -> None:
    path = project / "fuzzed.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    code = check_outcome(["--config", str(path), *command], capsys)
    assert code in (0, 1)
    counts.fuzz["CLI: config files"] += 1
