"""The examples of docs/ksqldb.md's supported subset compile, on top of the shipped program."""

from __future__ import annotations

import re
from pathlib import Path

from lakestream.derive.statements import compile_statements
from tests.derive.statements.helpers import shipped_plan

DOC = Path(__file__).resolve().parents[3] / "docs" / "ksqldb.md"


def _examples() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## The supported subset, one example each", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL)


def test_every_example_of_the_supported_subset_compiles_as_written() -> None:
    source, *examples = _examples()
    assert len(examples) == 5, "the section lost or gained an example: update this test"
    base = shipped_plan()
    for example in examples:
        plan = compile_statements(source + example, "docs/ksqldb.md", base=base)
        assert plan.outputs[-1].name in example.lower(), example
