"""Replace the files of one date partition atomically (day rebuilds, compaction).

Two ways, one interface (:class:`DayReplace`):

- **Swap** (local lakes on Linux): the new day is built as a complete folder
  under ``_staging/`` (new files written, kept files hard-linked), then
  ``renameat2(RENAME_EXCHANGE)`` swaps it with the live ``day=DD`` folder in
  one system call. Every reader, ours or a plain DuckDB/Spark glob, lists
  either the old folder or the new one.
- **Day manifest** (S3, and local filesystems without ``renameat2``): S3 has
  no atomic multi-object operation, so the day folder holds a ``_day.json``
  (``generation`` + ``superseded`` file names). New files are written as
  ``g<generation>~<name>`` (hidden while their generation is newer than the
  manifest's); one PUT of ``_day.json`` then flips the day from old to new;
  superseded files are deleted right after. Lakestream's own reader follows
  the manifest (:func:`visible_files`); a plain S3 reader may see both
  versions for the seconds between the first new file and the deletions.

Files that appear in the day while a replacement runs (the streaming ingest
committing a new batch) are carried into the new day, so a replacement never
loses a concurrent commit.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field

from lakestream.errors import StorageError
from lakestream.lake.layout import STAGING
from lakestream.lake.storage import FileInfo, Storage

log = logging.getLogger(__name__)

DAY_MANIFEST = "_day.json"
_GENERATION = re.compile(r"^g(\d+)~")  # "~" never occurs in Kafka topic names
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


@dataclass
class DayState:
    """The content of a day's ``_day.json``: which files are live."""

    generation: int = 0
    superseded: list[str] = field(default_factory=list)

    def visible(self, name: str) -> bool:
        """Whether a file (base name) of the day belongs to the live version."""
        match = _GENERATION.match(name)
        if match and int(match.group(1)) > self.generation:
            return False  # written by a replacement that has not committed (or failed)
        return name not in self.superseded


def read_day_state(storage: Storage, day_dir: str) -> DayState | None:
    """The day's manifest, or ``None`` when the day never went through manifest mode."""
    try:
        data = json.loads(storage.read(f"{day_dir}/{DAY_MANIFEST}"))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise StorageError(f"{storage.url(day_dir)}/{DAY_MANIFEST} is corrupt: {exc}") from None
    return DayState(int(data.get("generation", 0)), list(data.get("superseded", [])))


def visible_files(storage: Storage, prefix: str, attempts: int = 5) -> list[FileInfo]:
    """The live files below ``prefix``, consistent with every day manifest.

    A listing and the manifests cannot be read in one step on S3, so the
    manifests are read after a first listing, the folder is listed again and
    the manifests re-read; the result is used only when nothing changed in
    between (else it tries again).
    """
    for _ in range(attempts):
        first = _manifests(storage, storage.list_files(prefix))
        files = storage.list_files(prefix)
        second = _manifests(storage, files)
        if first == second:
            return [f for f in files if _live(f.path, second)]
    raise StorageError(f"{storage.url(prefix)} kept changing while it was listed", "try again")


def _manifests(storage: Storage, files: Iterable[FileInfo]) -> dict[str, DayState | None]:
    days = [f.path.rsplit("/", 1)[0] for f in files if f.path.endswith(f"/{DAY_MANIFEST}")]
    return {day: read_day_state(storage, day) for day in days}


def _live(path: str, states: dict[str, DayState | None]) -> bool:
    folder, _, name = path.rpartition("/")
    if name == DAY_MANIFEST:
        return False
    return (states.get(folder) or DayState()).visible(name)


_EXCHANGE_WORKS: dict[str, bool] = {}


@contextlib.contextmanager
def maintenance_lock(storage: Storage, dataset: str) -> Iterator[None]:
    """Keep two rebuilds or compactions of one dataset from running at once.

    Local lakes take an ``flock`` on ``_staging/_locks/<dataset>.lock`` (released
    by the kernel if the process dies). S3 has no lock primitive: there the
    operator must not start two at once (docs/operations.md).
    """
    storage.check_root()  # the lock file is made with os calls: a root that is a file fails here
    if not storage.is_local:
        yield
        return
    path = storage.full(f"{STAGING}/_locks/{dataset.replace('/', '__')}.lock")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StorageError(f"another rebuild or compaction of {dataset} is running",
                               "wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def exchange_supported(storage: Storage) -> bool:
    """Whether this lake's folders can be swapped with ``renameat2(RENAME_EXCHANGE)``."""
    if not storage.is_local:
        return False
    if storage.base not in _EXCHANGE_WORKS:
        _EXCHANGE_WORKS[storage.base] = _probe_exchange(storage)
    return _EXCHANGE_WORKS[storage.base]


def _probe_exchange(storage: Storage) -> bool:
    probe = storage.full(f"{STAGING}/_probe-{uuid.uuid4().hex}")
    a, b = f"{probe}/a", f"{probe}/b"
    try:
        os.makedirs(a)
        os.makedirs(b)
        _exchange(a, b)
        return True
    except OSError as exc:
        log.info("renameat2(RENAME_EXCHANGE) unavailable (%s): using day manifests", exc)
        return False
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def _exchange(a: str, b: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


@dataclass
class DayReplace:
    """One atomic replacement of the files of ``day_dir``.

    Call :meth:`write` for every new file and :meth:`keep` for every live file
    that stays, then :meth:`commit`; every other live file is dropped.

    Args:
        storage: The lake.
        day_dir: The partition folder (``streams/x/year=/month=/day=``).
        swap: Use the folder swap (``None``: when the filesystem supports it).
    """

    storage: Storage
    day_dir: str
    swap: bool | None = None
    live: list[str] = field(default_factory=list)
    _state: DayState | None = None
    _generation: int = 0
    _kept: set[str] = field(default_factory=set)
    _written: set[str] = field(default_factory=set)
    _deferred: dict[str, bytes | memoryview] = field(default_factory=dict)
    _new_dir: str = ""

    def __post_init__(self) -> None:
        if self.swap is None:
            self.swap = exchange_supported(self.storage)
        self._state = read_day_state(self.storage, self.day_dir)
        names = [f.path.rsplit("/", 1)[1] for f in visible_files(self.storage, self.day_dir)]
        self.live = sorted(names)
        if self.swap:
            day = self.day_dir.rsplit("/", 1)[1]
            self._new_dir = f"{STAGING}/_replace/{uuid.uuid4().hex}/{day}"
        else:
            self._generation = self._clear_pending()

    @property
    def mode(self) -> str:
        """``swap`` or ``manifest``."""
        return "swap" if self.swap else "manifest"

    def _clear_pending(self) -> int:
        """Delete what failed replacements left (hidden files); the next generation number."""
        state = self._state or DayState()
        top = state.generation
        for f in self.storage.list_files(self.day_dir, recursive=False):
            name = f.path.rsplit("/", 1)[1]
            match = _GENERATION.match(name)
            if match and int(match.group(1)) > state.generation:
                self.storage.delete(f.path)
            elif match:
                top = max(top, int(match.group(1)))
        return top + 1

    def write(self, name: str, data: bytes | memoryview, exact: bool = False) -> str:
        """Add a new file to the new version of the day; returns its final base name.

        Args:
            name: Base name of the file.
            data: Its bytes.
            exact: Keep ``name`` as it is (a file other records name, e.g. the
                ingest's ledger); in manifest mode it is written in place right
                after the commit, so it must hold the same records as the live
                file of that name.
        """
        final = name if exact or self.swap else f"g{self._generation:06d}~{name}"
        if self.swap:
            self.storage.write_atomic(f"{self._new_dir}/{final}", data)
        elif exact:
            self._deferred[final] = data
        else:
            self.storage.write_atomic(f"{self.day_dir}/{final}", data)
        self._written.add(final)
        return final

    def keep(self, name: str) -> None:
        """Keep a live file of the day, unchanged, in the new version."""
        if name not in self.live:
            raise StorageError(f"{self.storage.url(self.day_dir)}/{name} is not a live file")
        if self.swap:
            self._link(f"{self.day_dir}/{name}", f"{self._new_dir}/{name}")
        self._kept.add(name)

    def _link(self, src: str, dst: str) -> None:
        os.makedirs(os.path.dirname(self.storage.full(dst)), exist_ok=True)
        try:
            os.link(self.storage.full(src), self.storage.full(dst))
        except FileExistsError:
            pass
        except OSError:
            shutil.copy2(self.storage.full(src), self.storage.full(dst))

    def commit(self, carry: Callable[[str], bool] = lambda _name: True) -> None:
        """Make the new version live in one step.

        Args:
            carry: For a file that appeared in the day after this replacement
                started, whether it belongs to the new version too (default: yes).
        """
        if self.swap:
            self._commit_swap(carry)
        else:
            self._commit_manifest(carry)

    def abort(self) -> None:
        """Forget the replacement; the day stays as it was."""
        if self.swap:
            shutil.rmtree(self.storage.full(self._new_dir.rsplit("/", 1)[0]), ignore_errors=True)
            return
        for name in self._written - set(self._deferred):
            self.storage.delete(f"{self.day_dir}/{name}")

    # -- swap mode --------------------------------------------------------------------------

    def _commit_swap(self, carry: Callable[[str], bool]) -> None:
        old, new = self.storage.full(self.day_dir), self.storage.full(self._new_dir)
        os.makedirs(new, exist_ok=True)
        self._carry_newcomers(self.day_dir, carry, link=True)
        if not os.path.isdir(old):
            os.makedirs(os.path.dirname(old), exist_ok=True)
            with contextlib.suppress(OSError):
                os.rename(new, old)  # nothing to swap with: a plain rename is atomic
                self._cleanup_swap()
                return
        _exchange(new, old)
        # files moved into the old folder between the check above and the swap
        self._carry_newcomers(self._new_dir, carry, link=False)
        self._cleanup_swap()

    def _carry_newcomers(self, folder: str, carry: Callable[[str], bool], link: bool) -> None:
        target = self._new_dir if link else self.day_dir
        present = {f.path.rsplit("/", 1)[1] for f in self.storage.list_files(target, False)}
        for f in self.storage.list_files(folder, recursive=False):
            name = f.path.rsplit("/", 1)[1]
            if name in self.live or name in present or name == DAY_MANIFEST or not carry(name):
                continue
            if not (self._state or DayState()).visible(name):
                continue
            if link:
                self._link(f.path, f"{target}/{name}")
            else:
                self.storage.move(f.path, f"{target}/{name}")
            log.info("carried %s, committed during the replacement, into the new day", name)

    def _cleanup_swap(self) -> None:
        shutil.rmtree(self.storage.full(self._new_dir.rsplit("/", 1)[0]), ignore_errors=True)

    # -- manifest mode ----------------------------------------------------------------------

    def _commit_manifest(self, carry: Callable[[str], bool]) -> None:
        keep = self._kept | set(self._deferred)
        dropped = [n for n in self.live if n not in keep]
        leftovers = [n for n in (self._state.superseded if self._state else [])
                     if n not in keep and self.storage.exists(f"{self.day_dir}/{n}")]
        newcomers = {f.path.rsplit("/", 1)[1] for f in self.storage.list_files(self.day_dir, False)}
        refused = [n for n in newcomers - set(self.live) - self._written
                   if n != DAY_MANIFEST and (self._state or DayState()).visible(n)
                   and not carry(n)]
        state = DayState(self._generation, sorted(set(dropped) | set(leftovers) | set(refused)))
        self.storage.write_atomic(f"{self.day_dir}/{DAY_MANIFEST}",
                                  json.dumps(asdict(state), indent=1).encode())
        for name, data in self._deferred.items():
            self.storage.write_atomic(f"{self.day_dir}/{name}", data)
        for name in state.superseded:
            self.storage.delete(f"{self.day_dir}/{name}")
