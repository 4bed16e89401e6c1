"""Run every benchmark with its default sizes and print a summary of the verdicts.

``make bench`` runs this. Each benchmark prints its own figures and its ratio
against a baseline measured in the same run; the summary repeats the SPEC §9
verdicts. Nothing here fails on a number: benchmarks measure, tests decide.

Every ``benchmarks/bench_*.py`` module with a ``main`` runs: the ingest ones
first, in the order below, then the others by name. Each ``main(argv)``
(:func:`benchmarks.common.run_main`) prints its figures and returns its verdict lines.

    python -m benchmarks.run_all [--only ingest size] [--quick]
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import time
from collections.abc import Callable

import benchmarks

FIRST = ("ingest_vs_bare", "decode_write", "size", "memory")

# Sizes for a quick look (a couple of minutes in all); the defaults are the reference runs.
QUICK: dict[str, list[str]] = {
    "ingest_vs_bare": ["--events", "500000", "--repeat", "1"],  # fewer: prefetch skews it
    "decode_write": ["--events", "200000", "--distinct", "100000", "--batch-size", "100000"],
    "size": ["--events", "200000"],
    "memory": ["--events", "500000"],
}


Main = Callable[[list[str]], list[str]]


def discover() -> dict[str, Main]:
    """``{short name: main}`` of every ``bench_*`` module, ingest benchmarks first."""
    names = sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules(benchmarks.__path__)
        if m.name.startswith("bench_")
    )
    ordered = [n for n in FIRST if n in names] + [n for n in names if n not in FIRST]
    found = {}
    for name in ordered:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        if callable(getattr(module, "main", None)):
            found[name] = module.main
    return found


def run_one(name: str, main: Main, quick: bool) -> list[str]:
    """Run one benchmark; its verdict lines (a failure is reported, not raised)."""
    try:
        return main(QUICK.get(name, []) if quick else [])
    except Exception as exc:  # one broken benchmark must not hide the others' figures
        print(f"benchmark {name} failed: {type(exc).__name__}: {exc}")
        return [f"{name}: FAILED ({type(exc).__name__}: {exc})"]


def main(argv: list[str] | None = None) -> list[str]:
    """Run the chosen benchmarks in turn; print and return every verdict line."""
    found = discover()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=list(found), default=list(found))
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = p.parse_args(argv)
    started = time.monotonic()
    verdicts: list[str] = []
    for name in args.only:
        verdicts += run_one(name, found[name], args.quick)
    print(f"\n=== Summary (SPEC §9), {time.monotonic() - started:.0f} s ===")
    print("\n".join(verdicts))
    return verdicts


if __name__ == "__main__":
    main()
