"""How states combine: a batch's delta into a partition's row, partitions' rows into a value.

Each state column merges by its rule (:class:`~lakestream.derive.statements.StateColumn`):

- ``add``: integer sums and counts add up (a missing side counts as 0);
- ``min`` / ``max``: the smaller / larger non-null value;
- ``latest`` / ``earliest``: an aggregate's ``value``, ``time`` and ``offset`` columns move
  together — the side whose event comes later (earlier) by (event time, input offset, then
  partition) wins. A side without an event time never beats one with it: it is either
  empty (no event of the batch counted, ``LATEST_BY_OFFSET(x, true)`` over nulls) or a
  state migrated from a store that did not record it (older than any new event).

Merging is associative and commutative per rule, so the value of a key does not depend on
how its events were batched or which partition processed them first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lakestream.derive.state.schema import StatePart

State = dict[str, Any]
_RANKED = ("latest", "earliest")


@dataclass(frozen=True)
class _Group:
    """State columns that merge together: one column, or a latest/earliest aggregate's
    value, time and offset."""

    rule: str
    names: tuple[str, ...]
    time: str = ""
    offset: str = ""

    def rank(self, state: Mapping[str, Any], partition: int) -> tuple[Any, ...] | None:
        """The side's place in event order (higher wins), or ``None`` for an empty side.

        A side with a value but no event time (a migrated state) ranks below every side
        with one; between such sides the higher partition wins, as it did in that older
        store.
        """
        time = state.get(self.time)
        if time is None:
            has_value = any(state.get(n) is not None for n in self.names)
            return (0, 0, 0, partition) if has_value else None
        offset = state.get(self.offset)
        order = (time, -1 if offset is None else offset, partition)
        return (1, *order) if self.rule == "latest" else (1, *(-k for k in order))


def _groups(parts: Iterable[StatePart]) -> list[_Group]:
    """State columns grouped: one group per latest/earliest aggregate, one per other column."""
    groups: list[_Group] = []
    ranked: dict[str, list[StatePart]] = {}
    order: list[str] = []
    for part in parts:
        if part.merge in _RANKED:
            prefix = part.name.rsplit("_", 1)[0]
            if prefix not in ranked:
                ranked[prefix] = []
                order.append(prefix)
                groups.append(_Group(part.merge, (prefix,)))  # completed below
            ranked[prefix].append(part)
        else:
            groups.append(_Group(part.merge, (part.name,)))
    for i, group in enumerate(groups):
        if group.rule in _RANKED:
            members = ranked[group.names[0]]
            names = tuple(p.name for p in members)
            groups[i] = _Group(group.rule, names,
                               next(n for n in names if n.endswith("_time")),
                               next(n for n in names if n.endswith("_offset")))
    return groups


class StateMerger:
    """Merges the states of one aggregate table (its state columns: ``parts``)."""

    def __init__(self, parts: Iterable[StatePart]) -> None:
        self.groups = _groups(parts)
        self.names = tuple(n for g in self.groups for n in g.names)

    def merge(self, old: Mapping[str, Any] | None, old_partition: int,
              new: Mapping[str, Any], new_partition: int) -> State:
        """``old`` and ``new`` combined (``old`` may be missing: the key's first state)."""
        if old is None:
            return {n: new.get(n) for n in self.names}
        out: State = {}
        for group in self.groups:
            rule = group.rule
            if rule in _RANKED:
                new_rank = group.rank(new, new_partition)
                old_rank = group.rank(old, old_partition)
                wins = new_rank is not None and (old_rank is None or new_rank > old_rank)
                winner = new if wins else old
                for n in group.names:
                    out[n] = winner.get(n)
                continue
            name = group.names[0]
            a, b = old.get(name), new.get(name)
            if rule == "add":
                out[name] = (a or 0) + (b or 0)
            elif a is None or b is None:
                out[name] = b if a is None else a
            else:
                out[name] = min(a, b) if rule == "min" else max(a, b)
        return out

    def combine(self, states: Iterable[tuple[int, Mapping[str, Any]]]) -> State:
        """The merged state of several partitions' ``(partition, state)``."""
        rows = list(states)
        if len(rows) == 1:
            only = rows[0][1]
            return {n: only.get(n) for n in self.names}
        out: State = {}
        for group in self.groups:
            if group.rule in _RANKED:
                best: Mapping[str, Any] = {}
                best_rank: tuple[Any, ...] | None = None
                for partition, state in rows:
                    rank = group.rank(state, partition)
                    if rank is not None and (best_rank is None or rank > best_rank):
                        best, best_rank = state, rank
                for n in group.names:
                    out[n] = best.get(n)
                continue
            name = group.names[0]
            present = [v for _, state in rows if (v := state.get(name)) is not None]
            if group.rule == "add":
                out[name] = sum(present)
            else:
                out[name] = (min(present) if group.rule == "min" else max(present)) \
                    if present else None
        return out
