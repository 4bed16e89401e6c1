"""requirements.lock and pyproject.toml cannot drift apart: `make setup` installs the lock only."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("dev", "spark")  # what `make setup` installs besides the runtime dependencies
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = project["dependencies"] + [
        spec for extra in EXTRAS for spec in project["optional-dependencies"][extra]]
    return [Requirement(spec) for spec in found]


def lock_entries() -> dict[str, tuple[str, list[str]]]:
    """name -> (pinned version, hashes) of every package in the lock."""
    entries: dict[str, tuple[str, list[str]]] = {}
    current: list[str] = []
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        pin = PIN.match(line)
        if pin:
            current = []
            entries[canonicalize_name(pin.group(1))] = (pin.group(2), current)
        elif line.strip().startswith("--hash=sha256:"):
            current.append(line.strip().removeprefix("--hash=sha256:").rstrip(" \\"))
    return entries


def test_every_declared_dependency_is_pinned_in_the_lock_within_its_range() -> None:
    locked = lock_entries()
    stale = []
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        if name not in locked:
            stale.append(f"{requirement} is not in requirements.lock")
        elif not requirement.specifier.contains(locked[name][0], prereleases=True):
            stale.append(f"{requirement}: requirements.lock pins {locked[name][0]}")
    assert not stale, "run `make lock`: " + "; ".join(stale)


def test_every_locked_package_is_pinned_with_hashes() -> None:
    locked = lock_entries()
    assert len(locked) > len(declared())  # the transitive dependencies are locked too
    unhashed = [name for name, (_, hashes) in locked.items()
                if not hashes or not all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes)]
    assert not unhashed, f"no sha256 hashes for {unhashed}: run `make lock`"


def test_setup_installs_the_lock_with_hashes_and_lock_rewrites_it() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^\$\(STAMP\): \$\(LOCK\) pyproject\.toml$", makefile, re.M)
    assert "pip install --quiet --require-hashes -r $(LOCK)" in makefile
    assert "pip install --quiet --no-deps -e ." in makefile
    extras = " ".join(f"--extra {extra}" for extra in EXTRAS)
    assert f"uv pip compile --quiet pyproject.toml {extras} --generate-hashes" in makefile
