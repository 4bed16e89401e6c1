"""A dataset written before Lakestream kept the lake as Delta tables is refused, clearly.

The lake is a copy of ``tests/fixtures/legacy_lake`` (written by the pre-Delta
code): ``lakestream query`` and the ingest's writer name the dataset and tell
to run ``lakestream lake upgrade``, and change nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from lakestream.cli import main
from lakestream.config import S3Settings
from lakestream.errors import ConfigError
from lakestream.feeds import BUILTIN_FEEDS
from lakestream.ingest.delta_sink import DeltaLakeSink, lake_sink
from lakestream.lake.storage import open_storage

LEGACY_LAKE = Path(__file__).parents[1] / "fixtures" / "legacy_lake"
STREAM = next(f for f in BUILTIN_FEEDS if f.name == "transaction_stream")
HINT = "run `lakestream lake upgrade` (--dry-run shows what it does)"


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """A lake holding the legacy ``streams/transaction_stream`` (and its dead letters)."""
    root = tmp_path / "lake"
    for rel in (STREAM.dataset, "_dlq/transaction_stream"):
        shutil.copytree(LEGACY_LAKE / rel, root / rel)
    return root


def _files(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.stat().st_size) for p in root.rglob("*"))


def test_query_names_the_legacy_dataset_and_the_upgrade(
        lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "project.yaml"
    config.write_text(yaml.safe_dump({"lake": {"root": str(lake)},
                                      "data_dir": str(tmp_path / "data"),
                                      "feeds_dir": str(tmp_path / "feeds")}))
    before = _files(lake)

    status = main(["--config", str(config), "query", "SELECT count(*) FROM transaction_stream"])

    err = capsys.readouterr().err
    assert status != 0
    assert f"{lake}/{STREAM.dataset} was written before Lakestream kept the lake as Delta " \
           "tables" in err
    assert HINT in err
    assert _files(lake) == before


def test_the_ingest_writer_refuses_the_legacy_dataset(lake: Path) -> None:
    storage = open_storage(str(lake), S3Settings())
    before = _files(lake)
    for make in (DeltaLakeSink, lake_sink):
        with pytest.raises(ConfigError) as refused:
            make(storage, STREAM)
        assert refused.value.message == (f"{storage.url(STREAM.dataset)} was written before "
                                         "Lakestream kept the lake as Delta tables")
        assert refused.value.hint == HINT
    assert _files(lake) == before
