"""What ``lake upgrade`` will do to each dataset: read the legacy (pre-Delta) bookkeeping.

Lakes written before the move to Delta (issue #16) decide which files are
live with their own manifests. This module reads them without the code that
wrote them (it is gone), by these rules:

- **Streams and bronze** (``<dataset>/_ledger/<topic>/<partition>/<end>.json``,
  the offset ledger): every Parquet file of a date folder is live, except
  those the folder's ``_day.json`` hides (a name in ``superseded``, or a
  ``g<N>~`` file of a generation above the manifest's: a replacement that never
  committed). The newest manifest of each Kafka partition gives its last offset
  (``end_offset``), the derived streams' highest source offset
  (``totals.max_source_offset``), and names the batch's files: one still in
  ``_staging/`` and not at its place was committed, then the writer died before
  moving it (the ledger's recovery would move it). Other staged files are
  orphans of uncommitted batches, not live.
- **Dead letters** (``_dlq/<feed>``): the same folder rule; their offsets and
  staged files are in the ledger of the feed's dataset (files of kind ``dlq``).
- **Tables** (``tables/<t>/_ledger/versions/v<N>.json``): each kept version's
  manifest names its file and the next offset of every Kafka partition it
  covers; the newest is the table's position.
- **Other datasets** (silver, gold): every visible Parquet file.

``_retention.json`` only corrected the ledger's running totals; the Delta log
counts what is there, so it is dropped.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lakestream.errors import LakeDataError
from lakestream.lake.delta import DELTA_LOG, app_id
from lakestream.lake.layout import DLQ, LEDGER, METADATA, STAGING, TABLES
from lakestream.lake.storage import FileInfo, Storage
from lakestream.lake.table_versions import META_OFFSETS, META_REJECTED, META_VERSION, SNAPSHOT_APP

log = logging.getLogger(__name__)

DAY_MANIFEST = "_day.json"
RETENTION_FILE = "_retention.json"
SOURCE_PREFIX = "source:"  # DeltaLakeSink.SOURCE_PREFIX: derived streams' source offsets
PROCESSOR = "processor"  # derive.processor.DLQ_FEED: its staged dead letters are _staging/processor
AREAS = ("streams", "bronze", TABLES, "silver", "gold")
_GENERATION = re.compile(r"^g(\d+)~")
_WIDTH = {"year": 4, "month": 2, "day": 2}


@dataclass(frozen=True)
class LiveFile:
    """A data file the upgraded table references.

    Attributes:
        path: Where it lives (below the lake root) once settled.
        size: Bytes.
        mtime: Modification time (epoch seconds).
        partition: Partition values, from its folder names (dates zero-padded).
        staged: Where a committed batch left it, when it still has to be moved to ``path``.
    """

    path: str
    size: int
    mtime: float
    partition: dict[str, str]
    staged: str | None = None

    @property
    def source(self) -> str:
        """Where the file is right now."""
        return self.staged or self.path


@dataclass
class DatasetPlan:
    """The upgrade of one dataset.

    Attributes:
        rel: Its folder below the lake root.
        kind: ``stream`` (streams, bronze), ``dlq``, ``table`` or ``other``.
        files: The live files the Delta table will reference.
        partition_by: Partition columns (strings).
        offsets: Application transactions to carry: app id → version.
        drop: Files that are not live: deleted once the Delta commit is in.
        bookkeeping: Legacy files and folders removed once the Delta commit is in.
        finish: The table is Delta already; only the clean-up is left.
        feed: The feed the dataset belongs to, when known.
        topic: The Kafka topic of its offsets, when known.
        commit_info: Custom metadata of the commit (a table's snapshot: its version,
            offsets and rejected count, as :mod:`lakestream.lake.table_versions` writes them).
    """

    rel: str
    kind: str
    files: list[LiveFile] = field(default_factory=list)
    partition_by: list[str] = field(default_factory=list)
    offsets: dict[str, int] = field(default_factory=dict)
    drop: list[str] = field(default_factory=list)
    bookkeeping: list[str] = field(default_factory=list)
    finish: bool = False
    feed: str | None = None
    topic: str | None = None
    commit_info: dict[str, str] = field(default_factory=dict)


def is_committed_delta(storage: Storage, rel: str) -> bool:
    """Whether ``rel`` holds a Delta table with at least one commit (not only a temp file
    a crashed commit left in ``_delta_log/``)."""
    return any(f.path.rsplit("/", 1)[1].split(".")[0].isdigit()
               for f in storage.list_files(f"{rel}/{DELTA_LOG}", recursive=False))


def datasets(storage: Storage) -> list[str]:
    """Every dataset folder of the lake, dead letters first (their offsets are in the
    ledger of their feed's dataset, removed when that one is upgraded)."""
    found = [f"{DLQ}/{name}" for name in storage.list_dirs(DLQ) if not name.startswith((".", "_"))]
    rest = [f"{area}/{name}" for area in AREAS for name in storage.list_dirs(area)
            if not name.startswith((".", "_"))]
    for rel in rest:  # dead letters of a feed may all still wait in _staging/
        area, name = rel.split("/", 1)
        if area in ("streams", "bronze") and f"{DLQ}/{name}" not in found \
                and storage.list_files(f"{rel}/{LEDGER}"):
            found.append(f"{DLQ}/{name}")
    return [*found, *rest]


def kind_of(rel: str) -> str:
    """``stream``, ``dlq``, ``table`` or ``other`` for a dataset folder."""
    area = rel.split("/", 1)[0]
    return {"streams": "stream", "bronze": "stream", DLQ: "dlq", TABLES: "table"}.get(area,
                                                                                     "other")


def staging_of(rel: str) -> str:
    """The legacy staging folder of a dataset's batches."""
    return f"{STAGING}/{rel.replace('/', '__')}"


# -- legacy manifests ---------------------------------------------------------------------


def _read_json(storage: Storage, rel: str) -> dict[str, Any]:
    try:
        data = json.loads(storage.read(rel))
    except ValueError as exc:
        raise LakeDataError(f"{storage.url(rel)} is corrupt: {exc}",
                            "restore it from a backup, or delete it if the lake can do "
                            "without it (see docs/lake.md, 'Upgrading')") from None
    if not isinstance(data, dict):
        raise LakeDataError(f"{storage.url(rel)} is not a JSON object")
    return data


def newest_manifests(storage: Storage, rel: str) -> list[dict[str, Any]]:
    """The newest ledger manifest of each (topic, partition) of a stream dataset."""
    newest: dict[str, str] = {}
    for f in storage.list_files(f"{rel}/{LEDGER}"):
        parts = f.path[len(rel) + len(LEDGER) + 2:].split("/")
        if len(parts) == 3 and parts[2].endswith(".json") and parts[1].isdigit():
            folder = f.path.rsplit("/", 1)[0]
            newest[folder] = max(newest.get(folder, ""), f.path)
    return [_read_json(storage, p) for p in sorted(newest.values())]


def table_versions(storage: Storage, rel: str) -> list[dict[str, Any]]:
    """The version manifests of a table, oldest first."""
    files = [f.path for f in storage.list_files(f"{rel}/{LEDGER}/versions", recursive=False)
             if f.path.endswith(".json")]
    versions = [_read_json(storage, p) for p in files]
    return sorted(versions, key=lambda v: int(v["version"]))


def day_state(storage: Storage, day_dir: str) -> tuple[int, set[str]] | None:
    """``(generation, superseded names)`` of a day's ``_day.json`` (``None``: none)."""
    if not storage.exists(f"{day_dir}/{DAY_MANIFEST}"):
        return None
    data = _read_json(storage, f"{day_dir}/{DAY_MANIFEST}")
    return int(data.get("generation", 0)), set(data.get("superseded", []))


def _visible(name: str, state: tuple[int, set[str]] | None) -> bool:
    generation, superseded = state or (0, set())
    match = _GENERATION.match(name)
    if match and int(match.group(1)) > generation:
        return False
    return name not in superseded


# -- partitions -----------------------------------------------------------------------------


def partition_values(rel: str, path: str) -> dict[str, str]:
    """The ``key=value`` folders between the dataset and the file; dates zero-padded
    (``month=1`` and ``month=01`` are both ``"01"``: the value lives in the log, the file
    stays where it is)."""
    folders = path[len(rel) + 1:].split("/")[:-1]
    values: dict[str, str] = {}
    for folder in folders:
        key, sep, value = folder.partition("=")
        if not sep:
            continue
        if key in _WIDTH and value.isdigit():
            value = value.zfill(_WIDTH[key])
        values[key] = value
    return values


def _data_files(storage: Storage, rel: str) -> tuple[list[FileInfo], list[FileInfo], list[str]]:
    """``(visible, hidden, day manifests)`` Parquet files of a dataset's partition folders."""
    visible: list[FileInfo] = []
    hidden: list[FileInfo] = []
    manifests: list[str] = []
    states: dict[str, tuple[int, set[str]] | None] = {}
    for f in storage.list_files(rel):
        inner = f.path[len(rel) + 1:]
        if any(part.startswith(("_", ".")) for part in inner.split("/")[:-1]):
            continue  # _ledger/, _delta_log/, … (the legacy code never put data there)
        folder, _, name = f.path.rpartition("/")
        if name == DAY_MANIFEST:
            manifests.append(f.path)
            continue
        if not name.endswith(".parquet") or name.startswith((".", "_")):
            continue
        if folder not in states:
            states[folder] = day_state(storage, folder)
        (visible if _visible(name, states[folder]) else hidden).append(f)
    return visible, hidden, manifests


# -- plans ------------------------------------------------------------------------------------


def plan_dataset(storage: Storage, rel: str, feed_topics: dict[str, str],
                 pending: Iterable[tuple[str, str]] = ()) -> DatasetPlan | None:
    """The upgrade of ``rel`` (``None``: nothing to do — already Delta and clean, or empty).

    Args:
        storage: The lake.
        rel: The dataset folder.
        feed_topics: Feed name → topic (tables' offsets are per partition of it).
        pending: ``(staging, final)`` of files a writer outside the lake's bookkeeping
            committed but did not move yet (the processor's dead letters: its state's
            ``pending_files``).
    """
    plan = DatasetPlan(rel, kind_of(rel), feed=rel.split("/", 1)[1])
    plan.topic = feed_topics.get(plan.feed or "")
    visible, hidden, day_manifests = _data_files(storage, rel)
    plan.drop = [f.path for f in hidden]
    plan.bookkeeping = [*day_manifests, *_existing(storage, [f"{rel}/{RETENTION_FILE}"]),
                        *_staging_leftovers(storage, rel)]
    ledger = storage.list_files(f"{rel}/{LEDGER}")
    if plan.kind == "table":
        _plan_table(storage, plan, visible)
    elif plan.kind == "dlq":
        _plan_stream(storage, plan, visible, _feed_ledger(storage, plan.feed or ""), "dlq")
        _add_pending(storage, plan, visible, pending)
    elif plan.kind == "stream":
        _plan_stream(storage, plan, visible, rel, "data")
    else:
        plan.files = [_live(rel, f) for f in visible]
    if ledger:
        plan.bookkeeping.append(f"{rel}/{LEDGER}")  # removed last: the marker of "not done"
    if is_committed_delta(storage, rel):
        plan.finish = True
        referenced = _delta_paths(storage, rel)
        plan.drop = [p for p in plan.drop if p not in referenced]
        if not plan.drop and not plan.bookkeeping and not _legacy_metadata(storage, rel):
            return None
        return plan
    if not plan.files and (plan.kind == "dlq" or not plan.offsets) and not ledger:
        return None  # a folder with nothing to upgrade (no dead letter, no offset)
    keys = {tuple(f.partition) for f in plan.files}
    if len(keys) > 1:
        raise LakeDataError(f"{storage.url(rel)}: files sit in folders of different partition "
                            f"columns ({' / '.join(sorted('/'.join(k) for k in keys))})",
                            "move the odd files into the dataset's partition layout first")
    plan.partition_by = list(keys.pop()) if keys else _default_partitions(plan.kind, rel)
    return plan


def _default_partitions(kind: str, rel: str) -> list[str]:
    if kind == "table":
        return ["version"]
    return ["year", "month"] if rel.startswith("silver/") else ["year", "month", "day"]


def _existing(storage: Storage, paths: list[str]) -> list[str]:
    return [p for p in paths if storage.exists(p)]


def _staging_leftovers(storage: Storage, rel: str) -> list[str]:
    found = [staging_of(rel)] if storage.list_files(staging_of(rel)) else []
    lock = f"{STAGING}/_locks/{rel.replace('/', '__')}.lock"
    return [*found, *_existing(storage, [lock])]


def _legacy_metadata(storage: Storage, rel: str) -> bool:
    if not storage.exists(f"{rel}/{METADATA}"):
        return False
    try:
        return json.loads(storage.read(f"{rel}/{METADATA}")).get("format") != "delta"
    except (ValueError, AttributeError):
        return True


def _delta_paths(storage: Storage, rel: str) -> set[str]:
    import pyarrow as pa
    from deltalake import DeltaTable

    from lakestream.lake.delta import delta_errors, storage_options

    with delta_errors(f"read the log of {storage.url(rel)}"):
        table = DeltaTable(storage.url(rel), storage_options=storage_options(storage))
        paths = pa.table(table.get_add_actions(flatten=True)).column("path").to_pylist()
    return {f"{rel}/{p}" for p in paths}


def file_info(storage: Storage, rel: str) -> FileInfo | None:
    """Size and time of one file (``None``: there is no file there)."""
    import pyarrow.fs as pafs

    info = storage.fs.get_file_info(storage.full(rel))
    if info.type != pafs.FileType.File:
        return None
    return FileInfo(rel, int(info.size or 0), info.mtime.timestamp() if info.mtime else 0.0)


def _live(rel: str, f: FileInfo, staged: str | None = None) -> LiveFile:
    return LiveFile(f.path, f.size, f.mtime, partition_values(rel, f.path), staged)


def _feed_ledger(storage: Storage, feed: str) -> str | None:
    """The dataset whose ledger holds the offsets of ``_dlq/<feed>``."""
    for area in ("streams", "bronze"):
        if storage.list_files(f"{area}/{feed}/{LEDGER}"):
            return f"{area}/{feed}"
    return None


def _plan_stream(storage: Storage, plan: DatasetPlan, visible: list[FileInfo],
                 ledger_of: str | None, kind: str) -> None:
    plan.files = [_live(plan.rel, f) for f in visible]
    if ledger_of is None:
        return
    present = {f.path for f in visible}
    for manifest in newest_manifests(storage, ledger_of):
        topic, partition = str(manifest["topic"]), int(manifest["partition"])
        plan.topic = topic
        plan.offsets[app_id(topic, partition)] = int(manifest["end_offset"])
        source = (manifest.get("totals") or {}).get("max_source_offset")
        if kind == "data" and source is not None:
            plan.offsets[app_id(SOURCE_PREFIX + topic, partition)] = int(source)
        for staged in manifest.get("files", []):
            final, where = str(staged["final"]), str(staged["staging"])
            if staged.get("kind", "data") != kind or final in present:
                continue
            info = file_info(storage, where)
            if info is None:
                log.warning("committed file %s is missing from the lake", final)
                continue
            plan.files.append(LiveFile(final, info.size, info.mtime,
                                       partition_values(plan.rel, final), where))


def _add_pending(storage: Storage, plan: DatasetPlan, visible: list[FileInfo],
                 pending: Iterable[tuple[str, str]]) -> None:
    present = {f.path for f in visible} | {f.path for f in plan.files}
    for staging, final in pending:
        if final.startswith(f"{plan.rel}/") and final not in present \
                and (info := file_info(storage, staging)) is not None:
            plan.files.append(LiveFile(final, info.size, info.mtime,
                                       partition_values(plan.rel, final), staging))
    if plan.feed == PROCESSOR and storage.list_files(f"{STAGING}/{PROCESSOR}"):
        plan.bookkeeping.append(f"{STAGING}/{PROCESSOR}")  # its orphans and settled files


def _plan_table(storage: Storage, plan: DatasetPlan, visible: list[FileInfo]) -> None:
    versions = table_versions(storage, plan.rel)
    present = {f.path: f for f in visible}
    live: list[LiveFile] = []
    for i, version in enumerate(versions):
        final, staged = str(version["file"]), str(version.get("staged") or "")
        if final in present:
            live.append(_live(plan.rel, present.pop(final)))
        elif i == len(versions) - 1 and staged and (info := file_info(storage, staged)):
            live.append(LiveFile(final, info.size, info.mtime,
                                 partition_values(plan.rel, final), staged))
    if not versions:  # a table written before version manifests: its folders are the truth
        live, present = [_live(plan.rel, f) for f in present.values()], {}
    plan.files = live
    plan.drop += sorted(present)  # files of versions no manifest keeps (pruned mid-way)
    if not versions:
        return
    newest = versions[-1]
    last = {int(p): int(o) - 1 for p, o in newest.get("offsets", {}).items() if int(o) > 0}
    plan.offsets[SNAPSHOT_APP] = int(newest["version"])
    plan.commit_info = {META_VERSION: f"v{int(newest['version'])}",
                        META_REJECTED: str(int(newest.get("rejected", 0))),
                        META_OFFSETS: json.dumps({str(p): o for p, o in sorted(last.items())})}
    if plan.topic is None:
        log.warning("%s: no feed names its topic; its offsets are not carried", plan.rel)
        return
    for partition, offset in last.items():
        plan.offsets[app_id(plan.topic, partition)] = offset
