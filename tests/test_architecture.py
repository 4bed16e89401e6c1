"""The module hierarchy of docs/architecture.md, declared as import-linter contracts
(pyproject.toml, ``[tool.importlinter]``), holds for every module under src/lakestream."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "lakestream"
DOC = ROOT / "docs" / "architecture.md"
LINT = Path(sys.executable).with_name("lint-imports")


@dataclass(frozen=True)
class Layers:
    """Package → layer number, and the layers whose packages may import each other."""

    rank: dict[str, int]
    peers: frozenset[int]


def read_layers(markdown: str) -> Layers:
    """The ``layers`` block of docs/architecture.md."""
    block = re.search(r"^```layers\n(.*?)^```", markdown, re.S | re.M)
    assert block, "docs/architecture.md has no ```layers block"
    rank: dict[str, int] = {}
    peers: set[int] = set()
    for line in block.group(1).splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        level, *names = words
        if names and names[-1] == "peers":
            peers.add(int(level))
            names = names[:-1]
        for name in names:
            assert name not in rank, f"{name} is placed twice in docs/architecture.md"
            rank[name] = int(level)
    return Layers(rank, frozenset(peers))


def contract_layers() -> Layers:
    """The layers contract of pyproject.toml, numbered as the docs number them (0 = bottom)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}
    rank: dict[str, int] = {"__init__": 0}  # the root package: the version only
    peers: set[int] = set()
    for level, layer in enumerate(reversed(contracts["layers"]["layers"])):
        names = [n.strip() for n in re.split(r"[:|]", layer)]
        if ":" in layer:
            peers.add(level)
        rank.update((name, level) for name in names)
    return Layers(rank, frozenset(peers))


LAYERS = read_layers(DOC.read_text(encoding="utf-8"))


def lint_imports(src: Path) -> subprocess.CompletedProcess[str]:
    """import-linter over the ``lakestream`` package found in ``src``, with the project's
    contracts."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([str(LINT), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
                          cwd=src.parent, env=env, capture_output=True, text=True, timeout=120)


# -- the rules hold for the code ------------------------------------------------------------


def test_the_contracts_are_the_documented_hierarchy() -> None:
    assert contract_layers() == LAYERS, (
        "the layers of pyproject.toml's [tool.importlinter] and docs/architecture.md differ")


def test_every_module_keeps_the_contracts() -> None:
    done = lint_imports(SRC.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 kept, 0 broken" in done.stdout


# -- the documented hierarchy keeps the relations the design relies on ---------------------


def test_the_documented_layers_keep_the_foundation_at_the_bottom() -> None:
    rank = LAYERS.rank
    assert rank["errors"] == 0 and rank["config"] == 1
    assert all(level > rank["config"] for name, level in rank.items() if name not in {
        "errors", "config", "__init__",
    })  # fmt: skip


def test_the_documented_layers_keep_the_lower_packages_below_the_upper_ones() -> None:
    rank = LAYERS.rank
    for low in ("kafka", "decode", "lake", "sources"):
        for high in ("ingest", "api", "cli", "demo", "output", "web", "pipelines"):
            assert rank[low] < rank[high], f"{low} must stay below {high}"
    for high in ("api", "cli"):
        assert rank["ingest"] < rank[high]
    # nothing below the CLI imports it: only `python -m lakestream` sits above it
    assert [name for name, level in rank.items() if level > rank["cli"]] == ["__main__"]
    assert rank["cli"] not in LAYERS.peers
    assert sorted(name for name, level in rank.items() if level == rank["cli"]) == ["cli", "web"]


# -- the contracts catch what they must -------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of src/ to add a module to."""
    shutil.copytree(SRC, tmp_path / "src" / "lakestream",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "src"


def broken(tree: Path, module: str, source: str) -> str:
    """What import-linter says of the tree once ``module`` holds ``source``."""
    path = tree.joinpath(*module.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / "__init__.py").touch()
    path.write_text(source, encoding="utf-8")
    done = lint_imports(tree)
    assert done.returncode == 1, done.stdout + done.stderr
    return done.stdout


def test_an_import_of_a_higher_layer_is_reported(tree: Path) -> None:
    out = broken(tree, "lakestream.lake.shortcut", "from lakestream.cli import main\n")
    assert "lakestream.lake.shortcut -> lakestream.cli" in out
    assert "lower layers only (docs/architecture.md) BROKEN" in out


@pytest.mark.parametrize("source", [
    "def f() -> None:\n    import lakestream.ingest.engine\n",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..api import Lakestream\n",
    "def f() -> None:\n    from lakestream import demo\n",
], ids=["lazy", "type-checking-relative", "from-root"])
def test_lazy_relative_and_type_checking_imports_are_reported(tree: Path, source: str) -> None:
    out = broken(tree, "lakestream.kafka.sneaky", source)
    assert re.search(r"lakestream\.kafka\.sneaky -> lakestream\.(ingest|api|demo)", out), out


def test_an_import_between_independent_packages_of_a_layer_is_reported(tree: Path) -> None:
    out = broken(tree, "lakestream.web.app2", "from lakestream.cli import cli\n")
    assert "lakestream.web.app2 -> lakestream.cli" in out


def test_a_cycle_between_peers_is_reported(tree: Path) -> None:
    (tree / "lakestream" / "medallion" / "loop.py").write_text(
        "import lakestream.quality.checks\n", encoding="utf-8")
    out = broken(tree, "lakestream.quality.back", "from lakestream.medallion import loop\n")
    assert "Packages of one layer import each other without cycles BROKEN" in out


def test_frameworks_outside_the_presentation_layers_are_reported(tree: Path) -> None:
    out = broken(tree, "lakestream.lake.pretty", "import rich.progress\n")
    assert "lakestream.lake.pretty -> rich" in out


def test_an_unplaced_package_is_reported(tree: Path) -> None:
    out = broken(tree, "lakestream.shiny.thing",
                 "from lakestream.errors import LakestreamError\n")
    assert "lakestream.shiny" in out


def test_the_version_import_from_the_root_package_is_allowed(tree: Path) -> None:
    (tree / "lakestream" / "lake" / "v.py").write_text("from lakestream import __version__\n",
                                                       encoding="utf-8")
    assert lint_imports(tree).returncode == 0
