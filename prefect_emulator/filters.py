"""Hasura query arguments: `where` (bool_exp), `order_by`, `distinct_on`, `limit`, `offset`.

graphql-core has already validated the arguments against the generated schema, so the shapes here are known
good: a bool_exp is a dict of `_and`/`_or`/`_not`, column comparisons and nested relation expressions.

Pattern operators (`_like`, `_ilike`, `_similar` and their negations) never become a backtracking regular
expression: a pattern is split on `%` into fixed-length pieces that are matched left to right, each at its
leftmost place (see `LikePattern`), so a hostile pattern costs at most about len(text) x len(pattern) steps
instead of freezing the emulator. `_similar` keeps only the LIKE wildcards (`%`, `_`), not SIMILAR TO's regex
syntax.

A query on a whole table goes to SQLite (`select`, `count`): what of `where` and `order_by` compiles (sql.py)
is answered there, with the store's indexes, and only what does not is evaluated here, on the rows SQLite
returns. Python stays the reference: `matches` and `sort` define the answers, and the tests compare SQLite's
with theirs over every kind of condition.
"""
from __future__ import annotations

import functools
import json
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import sql, timestamps
from .errors import ApiError
from .store import Store
from .tables import TABLES, TIME


def select(store: Store, table: str, rows: Optional[List[dict]] = None, where: Optional[dict] = None,
           order_by: Optional[List[dict]] = None, distinct_on: Optional[List[str]] = None,
           limit: Optional[int] = None, offset: Optional[int] = None, use_sql: bool = True) -> List[dict]:
    """Applies Hasura's select arguments to `rows` (all rows of `table` when None).

    Args:
        store: the store (relations in `where` and `order_by` look rows up in it)
        table: the table the rows belong to
        rows: candidate rows; defaults to the whole table
        where: a `<table>_bool_exp` value
        order_by: a list of `<table>_order_by` values
        distinct_on: column names; keeps the first row (after ordering) of each distinct combination
        limit: at most this many rows
        offset: skip this many rows first
        use_sql: False reads every row and evaluates everything in Python (the tests compare both ways)

    Returns:
        the selected rows

    Raises:
        ApiError: a negative limit or offset (Hasura refuses them with the same message)
    """
    for name, value in (("limit", limit), ("offset", offset)):
        if value is not None and value < 0:
            raise ApiError(f"unexpected negative value ({name}: {value}): give a {name} of 0 or more",
                           code="not-supported")
    if rows is None and use_sql:
        condition = sql.where_sql(table, where)
        order = sql.order_sql(table, order_by)
        if condition.exact and order is not None:
            if not distinct_on:
                return store.select(table, condition, order, offset or 0, limit)
            rows, where, order_by = store.select(table, condition, order), None, None
        elif order is not None and limit is not None and not distinct_on:
            return _first_matches(store, table, condition, order, where or {}, offset or 0, limit)
        else:
            rows = store.select(table, condition)
    elif rows is None:
        rows = store.all(table)
    if where:
        rows = [r for r in rows if matches(store, table, r, where)]
    if order_by:
        rows = sort(store, table, rows, order_by)
    if distinct_on:
        seen = set()
        unique = []
        for row in rows:
            key = json.dumps([row.get(c) for c in distinct_on], sort_keys=True, default=str)
            if key not in seen:
                seen.add(key)
                unique.append(row)
        rows = unique
    if offset:
        rows = rows[offset:]
    if limit is not None:
        rows = rows[:limit]
    return rows


def count(store: Store, table: str, where: Optional[dict]) -> Optional[int]:
    """How many rows of `table` match `where`, counted by SQLite, or None when `where` does not compile exactly."""
    condition = sql.where_sql(table, where)
    return store.count_where(table, condition) if condition.exact else None


def _first_matches(store: Store, table: str, condition: sql.Compiled, order: List[sql.OrderKey], where: dict,
                   offset: int, limit: int) -> List[dict]:
    """The page `offset`, `limit` of the rows matching `where` when only part of it compiled: SQLite gives the
    rows its part allows, in the final order, and Python tests them until the page is full."""
    picked: List[dict] = []
    for row in store.iterate(table, condition, order):
        if len(picked) >= offset + limit:
            break
        if matches(store, table, row, where):
            picked.append(row)
    return picked[offset:]


def _direction(direction: str) -> Tuple[bool, bool]:
    """(descending, nulls first) of an `order_by` value; nulls sort as if larger than any value (Postgres)."""
    descending = direction.startswith("desc")
    return descending, "nulls_first" in direction or (descending and "nulls_last" not in direction)


def related(store: Store, table: str, row: dict, name: str) -> Any:
    """Follows relation `name` of `row`: the related row (object relation) or rows (array relation)."""
    spec = TABLES[table]
    if name in spec.objects:
        rel = spec.objects[name]
        value = row.get(rel.local)
        if rel.remote == "id":
            return store.get(rel.table, value)
        found = store.find(rel.table, rel.remote, value)
        return found[0] if found else None
    rel = spec.arrays[name]
    return store.find(rel.table, rel.remote, row.get(rel.local))


def matches(store: Store, table: str, row: dict, where: dict) -> bool:
    """True when `row` satisfies the bool_exp `where` (an empty expression matches everything)."""
    spec = TABLES[table]
    for key, cond in where.items():
        if cond is None:
            # Hasura (as Prefect Server runs it) ignores null filters
            continue
        if key == "_and":
            if not all(matches(store, table, row, c) for c in cond):
                return False
        elif key == "_or":
            if not any(matches(store, table, row, c) for c in cond):
                return False
        elif key == "_not":
            if matches(store, table, row, cond):
                return False
        elif key in spec.columns:
            if not compare(spec.columns[key], row.get(key), cond):
                return False
        elif key in spec.objects:
            other = related(store, table, row, key)
            if other is None or not matches(store, spec.objects[key].table, other, cond):
                return False
        elif key in spec.arrays:
            target = spec.arrays[key].table
            if not any(matches(store, target, r, cond) for r in related(store, table, row, key)):
                return False
        else:  # unreachable after schema validation; kept so a schema/table mismatch is loud
            raise ValueError(f"unknown filter field {key!r} on table {table!r}")
    return True


def _comparable(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == TIME:
        return timestamps.sort_key(value)
    return value


class LikePattern:
    """A SQL LIKE pattern (`%` any run of characters, `_` one character, `\\` escapes the next one), matched
    without backtracking.

    The pattern is split on `%` into pieces of fixed length. The first piece must match at the start, the last at
    the end, and each piece in between is searched for at its leftmost place after the previous one: taking the
    leftmost place never loses a match, because it leaves the most text for the pieces after it. Each piece is a
    regex of literals and `.` only (no repetition), so each search is bounded by len(text) x len(piece).

    Args:
        pattern: the LIKE pattern
        ignore_case: True for ILIKE
    """

    def __init__(self, pattern: str, ignore_case: bool = False) -> None:
        flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
        pieces: List[List[str]] = [[]]
        chars = iter(pattern)
        for ch in chars:
            if ch == "%":
                pieces.append([])
            elif ch == "_":
                pieces[-1].append(".")
            else:
                if ch == "\\":
                    ch = next(chars, "\\")  # a trailing backslash stands for itself
                pieces[-1].append(re.escape(ch))
        self._lengths = [len(piece) for piece in pieces]
        self._pieces = [re.compile("".join(piece), flags) for piece in pieces]

    def matches(self, text: str) -> bool:
        """True when the whole of `text` matches the pattern."""
        first, last = self._pieces[0], self._pieces[-1]
        if len(self._pieces) == 1:  # no %: the text is exactly as long as the pattern
            return len(text) == self._lengths[0] and first.fullmatch(text) is not None
        start, end = self._lengths[0], len(text) - self._lengths[-1]
        if end < start or first.match(text, 0, start) is None or last.fullmatch(text, end) is None:
            return False
        for piece, length in zip(self._pieces[1:-1], self._lengths[1:-1]):
            if not length:
                continue  # %% is one %
            found = piece.search(text, start, end)
            if found is None:
                return False
            start = found.end()
        return True


@functools.lru_cache(maxsize=256)
def _like(pattern: str, ignore_case: bool) -> LikePattern:
    return LikePattern(pattern, ignore_case)


def _contains(container: Any, item: Any) -> bool:
    """Postgres jsonb @>: objects contain sub-objects, arrays contain every element of the other array."""
    if isinstance(container, dict) and isinstance(item, dict):
        return all(k in container and _contains(container[k], v) for k, v in item.items())
    if isinstance(container, list):
        items = item if isinstance(item, list) else [item]
        return all(any(_contains(c, i) for c in container) for i in items)
    return container == item


def compare(kind: str, value: Any, cond: Dict[str, Any]) -> bool:
    """Evaluates one column's comparison expression (`{_eq: 1, _lt: 3}`) against the stored value."""
    left = _comparable(kind, value)
    for op, arg in cond.items():
        if op == "_is_null":
            if arg is not None and (value is None) != bool(arg):
                return False
            continue
        if arg is None:
            continue  # null comparison arguments are ignored, as Hasura does
        if value is None:
            return False  # SQL: a comparison with NULL is not true, so _neq and _nin skip null columns too
        if op in ("_in", "_nin"):
            values = [_comparable(kind, a) for a in arg]
            if (left in values) != (op == "_in"):
                return False
            continue
        if op in ("_has_key", "_has_keys_any", "_has_keys_all"):
            if not isinstance(value, dict):
                return False
            keys = [arg] if op == "_has_key" else arg
            test: Callable = all if op != "_has_keys_any" else any
            if not test(k in value for k in keys):
                return False
            continue
        if op == "_contains":
            if not _contains(value, arg):
                return False
            continue
        if op == "_contained_in":
            if not _contains(arg, value):
                return False
            continue
        right = _comparable(kind, arg)
        if op == "_eq":
            ok = left == right
        elif op == "_neq":
            ok = left != right
        elif op in ("_like", "_nlike", "_ilike", "_nilike", "_similar", "_nsimilar"):
            if not isinstance(left, str):
                return False
            ok = _like(right, "ilike" in op).matches(left)
            if op.startswith("_n"):
                ok = not ok
        else:
            if left is None:
                return False
            try:
                ok = {"_gt": left > right, "_gte": left >= right, "_lt": left < right,
                      "_lte": left <= right}[op]
            except TypeError:
                return False
        if not ok:
            return False
    return True


def sort(store: Store, table: str, rows: List[dict], order_by: List[dict]) -> List[dict]:
    """Sorts rows by a list of `<table>_order_by` values; nulls last ascending, first descending (Postgres)."""
    keys = _sort_keys(store, table, order_by)
    directions = [_direction(direction) for _getter, _kind, direction in keys]

    def cmp(a: Tuple[list, dict], b: Tuple[list, dict]) -> int:
        for va, vb, (desc, nulls_first) in zip(a[0], b[0], directions):
            if va is None and vb is None:
                continue
            if va is None or vb is None:
                return (-1 if nulls_first else 1) * (1 if va is None else -1)
            if isinstance(va, (dict, list)) or isinstance(vb, (dict, list)):
                va, vb = json.dumps(va, sort_keys=True), json.dumps(vb, sort_keys=True)
            if va == vb:
                continue
            try:
                result = -1 if va < vb else 1
            except TypeError:
                result = -1 if str(va) < str(vb) else 1
            return -result if desc else result
        return 0

    # each row's values are worked out once, not at every comparison
    decorated = [([_comparable(kind, getter(row)) for getter, kind, _d in keys], row) for row in rows]
    return [row for _values, row in sorted(decorated, key=functools.cmp_to_key(cmp))]


def _sort_keys(store: Store, table: str, order_by: List[dict]) -> List[Tuple[Callable, str, str]]:
    """The keys `order_by` sorts by, first first: (getter of the value from a row, its kind, direction)."""
    keys: List[Tuple[Callable, str, str]] = []
    for clause in order_by:
        _collect_keys(store, table, clause, lambda r: r, keys)
    return keys


def _collect_keys(store: Store, table: str, clause: dict, base: Callable, keys: list) -> None:
    spec = TABLES[table]
    for field, direction in clause.items():
        if direction is None:
            continue
        if field in spec.columns:
            keys.append((lambda r, f=field: (base(r) or {}).get(f), spec.columns[field], direction))
        elif field in spec.objects:
            target = spec.objects[field].table
            getter = (lambda r, f=field: None if base(r) is None else related(store, table, base(r), f))
            _collect_keys(store, target, direction, getter, keys)
        elif field.endswith("_aggregate") and field[: -len("_aggregate")] in spec.arrays:
            rel_name = field[: -len("_aggregate")]
            count = direction.get("count")
            if count:
                keys.append((lambda r, n=rel_name: len(related(store, table, base(r), n)) if base(r) else 0,
                             "Int", count))
