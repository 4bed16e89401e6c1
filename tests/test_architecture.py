"""The module hierarchy of docs/architecture.md holds for every module under src/lakestream."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "lakestream"
DOC = ROOT / "docs" / "architecture.md"
FRAMEWORKS = ("click", "rich", "fastapi", "starlette", "uvicorn")
FRAMEWORK_USERS = frozenset({"output", "demo", "cli", "web"})


@dataclass(frozen=True)
class Layers:
    """Package → layer number, and the layers whose packages may import each other."""

    rank: dict[str, int]
    peers: frozenset[int]


def read_layers(markdown: str) -> Layers:
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


def package_of(module: str) -> str | None:
    """``lakestream.lake.ledger`` → ``lake``; ``lakestream`` → ``__init__``; others → None."""
    parts = module.split(".")
    if parts[0] != "lakestream":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(module: str, source: str, is_package: bool) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``source``, relative ones resolved."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from lakestream import cli` imports the package lakestream.cli
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


def violations(sources: dict[str, tuple[str, bool]], layers: Layers) -> list[str]:
    """Every broken rule, as ``module:line: message``.

    Args:
        sources: module name → (source code, whether it is a package's ``__init__``).
        layers: The documented hierarchy.
    """
    found: set[str] = set()
    edges: dict[str, set[str]] = {}
    for module, (source, is_package) in sorted(sources.items()):
        own = package_of(module)
        assert own is not None
        if own not in layers.rank:
            found.add(f"{module}: package '{own}' is not placed in docs/architecture.md")
            continue
        for line, target in imported_modules(module, source, is_package):
            where = f"{module}:{line}"
            top = target.split(".")[0]
            if top in FRAMEWORKS and own not in FRAMEWORK_USERS:
                found.add(f"{where}: '{own}' imports {top}; only {sorted(FRAMEWORK_USERS)} may")
            other = package_of(target)
            if other is None or other == own:
                continue
            if target.count(".") == 1 and target.split(".")[1] not in layers.rank:
                continue  # `from lakestream import __version__`: a name, not a package
            if other not in layers.rank:
                found.add(f"{where}: imports '{other}', which is not in docs/architecture.md")
                continue
            mine, theirs = layers.rank[own], layers.rank[other]
            if theirs > mine:
                found.add(f"{where}: '{own}' (layer {mine}) imports '{other}' (layer {theirs})")
            elif theirs == mine and mine not in layers.peers:
                found.add(f"{where}: '{own}' imports '{other}' of its own layer {mine}")
            else:
                edges.setdefault(own, set()).add(other)
    found.update(cycles(edges))
    return sorted(found)


def cycles(edges: dict[str, set[str]]) -> list[str]:
    """One message per import cycle between packages."""
    found: list[str] = []
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycle = [*path[path.index(node) :], node]
            found.append(f"import cycle between packages: {' -> '.join(cycle)}")
            return
        if node in done:
            return
        for nxt in sorted(edges.get(node, ())):
            visit(nxt, [*path, node])
        done.add(node)

    for start in sorted(edges):
        visit(start, [])
    return found


def real_sources() -> dict[str, tuple[str, bool]]:
    return {
        module_name(path): (path.read_text(encoding="utf-8"), path.name == "__init__.py")
        for path in sorted(SRC.rglob("*.py"))
    }


LAYERS = read_layers(DOC.read_text(encoding="utf-8"))


# -- the rules hold for the code ------------------------------------------------------------


def test_every_package_is_placed_in_the_documented_hierarchy() -> None:
    packages = {package_of(module) for module in real_sources()}
    missing = sorted(p for p in packages if p is not None and p not in LAYERS.rank)
    assert missing == [], f"add {missing} to the layers block of docs/architecture.md"


def test_no_module_imports_a_higher_layer_or_a_framework_it_should_not() -> None:
    found = violations(real_sources(), LAYERS)
    assert found == [], "\n".join(found)


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


# -- the checker itself catches what it must -------------------------------------------------


def checked(module: str, source: str, is_package: bool = False) -> list[str]:
    return violations({**real_sources(), module: (source, is_package)}, LAYERS)


def test_a_forbidden_import_is_reported() -> None:
    found = checked("lakestream.lake.shortcut", "from lakestream.cli import main\n")
    assert found == ["lakestream.lake.shortcut:1: 'lake' (layer 4) imports 'cli' (layer 10)"]


def test_lazy_relative_and_type_checking_imports_are_reported() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from ..api import Lakestream\n"
        "def f() -> None:\n"
        "    import lakestream.ingest.engine\n"
        "    from lakestream import demo\n"
    )
    found = checked("lakestream.kafka.sneaky", source)
    assert found == [
        "lakestream.kafka.sneaky:3: 'kafka' (layer 3) imports 'api' (layer 8)",
        "lakestream.kafka.sneaky:5: 'kafka' (layer 3) imports 'ingest' (layer 6)",
        "lakestream.kafka.sneaky:6: 'kafka' (layer 3) imports 'demo' (layer 9)",
    ]


def test_same_layer_imports_and_cycles_are_reported() -> None:
    assert checked("lakestream.web.app", "from lakestream.cli import cli\n") == [
        "lakestream.web.app:1: 'web' imports 'cli' of its own layer 10"
    ]
    found = violations(
        {
            "lakestream.quality.checks": ("from lakestream.medallion import silver\n", True),
            "lakestream.medallion.silver": ("import lakestream.quality.checks\n", False),
        },
        LAYERS,
    )
    assert any("import cycle between packages" in v for v in found)


def test_frameworks_outside_the_presentation_layers_are_reported() -> None:
    found = checked("lakestream.lake.pretty", "import rich.progress\n")
    assert found == [
        "lakestream.lake.pretty:1: 'lake' imports rich; only ['cli', 'demo', 'output', 'web'] may"
    ]


def test_an_unplaced_package_is_reported() -> None:
    found = checked("lakestream.shiny.thing", "from lakestream.errors import LakestreamError\n")
    assert found == [
        "lakestream.shiny.thing: package 'shiny' is not placed in docs/architecture.md"
    ]


def test_the_version_import_from_the_root_package_is_allowed() -> None:
    assert checked("lakestream.lake.v", "from lakestream import __version__\n") == []
