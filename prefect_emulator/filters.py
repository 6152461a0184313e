"""Hasura query arguments evaluated in Python: `where` (bool_exp), `order_by`, `distinct_on`, `limit`, `offset`.

graphql-core has already validated the arguments against the generated schema, so the shapes here are known
good: a bool_exp is a dict of `_and`/`_or`/`_not`, column comparisons and nested relation expressions.

Pattern operators (`_like`, `_ilike`, `_similar` and their negations) never become a backtracking regular
expression: a pattern is split on `%` into fixed-length pieces that are matched left to right, each at its
leftmost place (see `LikePattern`), so a hostile pattern costs at most about len(text) x len(pattern) steps
instead of freezing the emulator. `_similar` keeps only the LIKE wildcards (`%`, `_`), not SIMILAR TO's regex
syntax.

A query on a whole table does not scan it when it need not (`select`): `candidates` narrows the rows to those
an index finds for the `_eq` / `_in` conditions of `where` (also through relations), and an `order_by` whose
first key is a timestamp, with a `limit`, reads the rows off the store's order index until it has enough.
Both only choose which rows to look at: every row chosen is still tested with `matches` and sorted with
`sort`, so the answer is the one a scan gives, in the same order.
"""
from __future__ import annotations

import functools
import json
import re
from typing import Any, Callable, Collection, Dict, List, Optional, Tuple

from . import timestamps
from .errors import ApiError
from .store import Store
from .tables import TABLES, TIME


def select(store: Store, table: str, rows: Optional[List[dict]] = None, where: Optional[dict] = None,
           order_by: Optional[List[dict]] = None, distinct_on: Optional[List[str]] = None,
           limit: Optional[int] = None, offset: Optional[int] = None, use_indexes: bool = True) -> List[dict]:
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
        use_indexes: False scans every row (the tests compare both ways)

    Returns:
        the selected rows

    Raises:
        ApiError: a negative limit or offset (Hasura refuses them with the same message)
    """
    for name, value in (("limit", limit), ("offset", offset)):
        if value is not None and value < 0:
            raise ApiError(f"unexpected negative value ({name}: {value}): give a {name} of 0 or more",
                           code="not-supported")
    if rows is None:
        ids = candidates(store, table, where) if use_indexes and where else None
        if use_indexes and order_by and limit is not None and not distinct_on:
            first = _walk_in_order(store, table, ids, where, order_by, offset or 0, limit)
            if first is not None:
                return first
        rows = store.all(table) if ids is None else store.in_table_order(table, ids)
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


def candidates(store: Store, table: str, where: dict) -> Optional[Collection[str]]:
    """The ids of the rows of `table` that may match `where`, found through the store's indexes.

    Looks at the conditions every matching row must meet: the top level and `_and` (and `_or` when each
    branch narrows): `_eq` / `_in` on an indexed column (`Store.lookup`), and a relation whose own condition
    narrows the related table (a row's relation column must then hold one of the related ids). `_not` and
    other operators narrow nothing, nor does a condition that holds for most of the table. The answer may hold
    rows that do not match (the caller still tests each), never leaves one out.

    Returns:
        the ids, or None when nothing in `where` narrows the table (every row is a candidate)
    """
    spec = TABLES[table]
    found: Optional[Collection[str]] = None
    for key, cond in where.items():
        if cond is None:
            continue
        if key == "_and":
            parts = [candidates(store, table, c) for c in cond]
        elif key == "_or":
            branches = [candidates(store, table, c) for c in cond]
            parts = [set().union(*branches)] if all(b is not None for b in branches) else []
        elif key in spec.columns:
            parts = [store.lookup(table, key, [cond["_eq"]]) if cond.get("_eq") is not None else None,
                     store.lookup(table, key, cond["_in"]) if cond.get("_in") is not None else None]
        elif key in spec.objects or key in spec.arrays:
            rel = spec.objects.get(key) or spec.arrays[key]
            sub = candidates(store, rel.table, cond)
            parts = []
            if sub is not None:
                others = (store.get(rel.table, i) for i in sub)
                parts = [store.lookup(table, rel.local, {other.get(rel.remote) for other in others if other})]
        else:
            parts = []
        for part in parts:
            # a part holding most of the table narrows little: intersecting it would cost more than it saves
            if part is not None and len(part) * 2 <= store.count(table):
                found = part if found is None else _intersect(found, part)
    return found


def _intersect(a: Collection[str], b: Collection[str]) -> Collection[str]:
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    return {i for i in small if i in large}


def _walk_in_order(store: Store, table: str, ids: Optional[Collection[str]], where: Optional[dict],
                   order_by: List[dict], offset: int, limit: int) -> Optional[List[dict]]:
    """The page `offset`, `limit` of the rows matching `where`, read off the order index of the first
    `order_by` key, or None when that key has no order index or so few candidates that sorting them is cheaper.

    The rows come out in that key's order, ties in table order, which is the final order when there is no
    other key; with other keys, the walk goes on past `offset + limit` rows until the key changes, so ties at
    the edge of the page all reach `sort`, which orders them by the other keys as it would in the whole table.
    """
    first = _first_key(order_by)
    if first is None or TABLES[table].columns.get(first[0]) != TIME:
        return None  # only timestamp columns have order indexes (Store.ordered)
    column, direction = first
    need = offset + limit
    # a guess of the cheaper way: the walk may pass over most of the table, a sort touches only the candidates
    if ids is not None and len(ids) <= max(2 * need, store.count(table) // 64):
        return None
    descending, nulls_first = _direction(direction)
    walk = store.ordered(table, column, descending, nulls_first)
    only_key = len(_sort_keys(store, table, order_by)) == 1
    picked: List[dict] = []
    edge: Any = object()  # the key of the last row picked
    for key, row_id in walk:
        if len(picked) >= need and (only_key or key != edge):
            break
        if ids is not None and row_id not in ids:
            continue
        row = store.get(table, row_id)
        if where and not matches(store, table, row, where):
            continue
        picked.append(row)
        edge = key
    return (picked if only_key else sort(store, table, picked, order_by))[offset:need]


def _first_key(order_by: List[dict]) -> Optional[Tuple[str, Any]]:
    """The (field, direction) that orders first: the first one not null."""
    for clause in order_by:
        for field, direction in clause.items():
            if direction is not None:
                return field, direction
    return None


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
