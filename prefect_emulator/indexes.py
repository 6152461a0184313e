"""The store's secondary indexes, kept up to date on every write so that queries need not scan whole tables.

- `HashIndex`: row ids by the value of one column (relation columns, a run's state), for `_eq` / `_in` filters
  and for following relations.
- `OrderIndex`: row ids sorted by one timestamp column, for `order_by` with `limit`: the first rows in that
  order are read off instead of sorting the table. Ties (and nulls) keep table order, as the stable sort of the
  table that it replaces does.

Rows are identified by id; `seq` is a row's position in its table (the store numbers rows in the order they
entered the table).
"""
from __future__ import annotations

import bisect
import json
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from .timestamps import sort_key


def hashable(value: Any) -> Any:
    """Hashable form of a column value (JSON columns hold dicts and lists)."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return value


class HashIndex:
    """Row ids by the value of `column`; each bucket in the order its rows entered it.

    Args:
        column: the column
        rows: the table's rows (id -> row) to index
    """

    def __init__(self, column: str, rows: Dict[str, dict]) -> None:
        self.column = column
        self._buckets: Dict[Any, Dict[str, None]] = {}
        for row_id, row in rows.items():
            self._add(row_id, row)

    def ids(self, value: Any) -> Iterable[str]:
        """The ids of the rows whose column equals `value` (a live view: read it before the next write)."""
        return self._buckets.get(hashable(value), {}).keys()

    def replace(self, row_id: str, old: Optional[dict], new: Optional[dict]) -> None:
        """Moves a row from its old value's bucket to its new one (None: the row did not / does not exist).
        A row whose value does not change keeps its place in its bucket."""
        if old is not None and new is not None and hashable(old.get(self.column)) == hashable(new.get(self.column)):
            return
        if old is not None:
            key = hashable(old.get(self.column))
            bucket = self._buckets.get(key)
            if bucket is not None:
                bucket.pop(row_id, None)
                if not bucket:
                    del self._buckets[key]
        if new is not None:
            self._add(row_id, new)

    def _add(self, row_id: str, row: dict) -> None:
        self._buckets.setdefault(hashable(row.get(self.column)), {})[row_id] = None


class OrderIndex:
    """Row ids sorted by the timestamp in `column` (compared as `timestamps.sort_key`), then by table order;
    rows where it is null are kept apart, in table order.

    Args:
        column: a timestamp column
        rows: the table's rows (id -> row)
        seq: each row's position in the table
    """

    def __init__(self, column: str, rows: Dict[str, dict], seq: Dict[str, int]) -> None:
        self.column = column
        self._values: List[Tuple[str, int, str]] = []  # (key, seq, id), sorted
        self._nulls: List[Tuple[int, str]] = []  # (seq, id), sorted
        for row_id, row in rows.items():
            entry = self._entry(row_id, seq[row_id], row)
            (self._nulls if len(entry) == 2 else self._values).append(entry)  # type: ignore[arg-type]
        self._values.sort()
        self._nulls.sort()

    def replace(self, row_id: str, old: Optional[dict], old_seq: Optional[int], new: Optional[dict],
                new_seq: Optional[int]) -> None:
        """Moves a row to its new place (None: the row did not / does not exist)."""
        before = None if old is None else self._entry(row_id, old_seq, old)
        after = None if new is None else self._entry(row_id, new_seq, new)
        if before == after:
            return
        if before is not None:
            entries = self._nulls if len(before) == 2 else self._values
            at = bisect.bisect_left(entries, before)  # type: ignore[arg-type]
            if at < len(entries) and entries[at] == before:
                del entries[at]
        if after is not None:
            bisect.insort(self._nulls if len(after) == 2 else self._values, after)  # type: ignore[arg-type]

    def walk(self, descending: bool, nulls_first: bool) -> Iterator[Tuple[Optional[str], str]]:
        """Yields (key, row id) in the order a stable sort of the table by this column would give: keys
        ascending or descending, equal keys in table order, null keys (None) first or last."""
        nulls = ((None, row_id) for _seq, row_id in self._nulls)
        if nulls_first:
            yield from nulls
        if descending:
            values = self._values
            end = len(values)
            while end:
                key = values[end - 1][0]
                start = bisect.bisect_left(values, (key,))  # the first entry with this key
                for at in range(start, end):
                    yield key, values[at][2]
                end = start
        else:
            for key, _seq, row_id in self._values:
                yield key, row_id
        if not nulls_first:
            yield from nulls

    def _entry(self, row_id: str, seq: Optional[int], row: dict) -> tuple:
        value = row.get(self.column)
        if value is None:
            return (seq, row_id)
        return (sort_key(value), seq, row_id)
