"""Hasura query arguments: `where` (bool_exp), `order_by`, `distinct_on`, `limit`, `offset`.

A query on a table is compiled to SQL (sqlquery.py) and answered by SQLite. This module also evaluates the same
arguments in Python, over rows already in hand (a traversal's rows, a row the tenant scope checks) and, with
`use_indexes=False`, over the whole table: the tests compare the two ways over many queries, so the Python
evaluation is the reference the SQL is held to.

graphql-core has already validated the arguments against the generated schema, so the shapes here are known
good: a bool_exp is a dict of `_and`/`_or`/`_not`, column comparisons and nested relation expressions.

Column comparisons and patterns are comparisons.py's.
"""
from __future__ import annotations

import functools
import json
from typing import Any, Callable, Collection, List, Optional, Tuple

from .errors import ApiError
from .comparisons import comparable, compare
from .sqlquery import Select, direction
from .store import Store
from .tables import TABLES


def select(store: Store, table: str, rows: Optional[List[dict]] = None, where: Optional[dict] = None,
           order_by: Optional[List[dict]] = None, distinct_on: Optional[List[str]] = None,
           limit: Optional[int] = None, offset: Optional[int] = None, use_indexes: bool = True,
           equal: Optional[Tuple[str, Any]] = None) -> List[dict]:
    """Applies Hasura's select arguments to `rows` (all rows of `table` when None, selected by SQLite).

    Args:
        store: the store (relations in `where` and `order_by` look rows up in it)
        table: the table the rows belong to
        rows: candidate rows; defaults to the whole table
        where: a `<table>_bool_exp` value
        order_by: a list of `<table>_order_by` values
        distinct_on: column names; keeps the first row (after ordering) of each distinct combination
        limit: at most this many rows
        offset: skip this many rows first
        use_indexes: False evaluates in Python over every row (the tests compare both ways)
        equal: (column, value): only the rows whose column equals the value (an array relation)

    Returns:
        the selected rows

    Raises:
        ApiError: a negative limit or offset (Hasura refuses them with the same message)
    """
    _check_page(limit, offset)
    if rows is None:
        if use_indexes:
            query = Select(table, where, order_by, distinct_on, limit, offset, equal)
            return store.rows(table, query.sql, query.params)
        rows = store.all(table) if equal is None else store.find(table, *equal)
    store = _Memo(store)  # type: ignore[assignment]  # relations followed once per row set, not per row
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


class _Memo:
    """The store's row lookups (`get`, `find`) remembered for one evaluation in Python: a relation that many
    rows share (their flow, say) is read from SQLite once. Rows do not change while a query holds the store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._got: dict = {}
        self._found: dict = {}

    def get(self, table: str, row_id: Any) -> Optional[dict]:
        key = (table, row_id)
        if key not in self._got:
            self._got[key] = self._store.get(table, row_id)
        return self._got[key]

    def find(self, table: str, column: str, value: Any) -> List[dict]:
        key = (table, column, json.dumps(value, sort_keys=True, default=str))
        if key not in self._found:
            self._found[key] = self._store.find(table, column, value)
        return self._found[key]


def count(store: Store, table: str, where: Optional[dict] = None, order_by: Optional[List[dict]] = None,
          distinct_on: Optional[List[str]] = None, limit: Optional[int] = None, offset: Optional[int] = None,
          equal: Optional[Tuple[str, Any]] = None) -> int:
    """How many rows `select` would give (counted by SQLite, no row read into Python)."""
    _check_page(limit, offset)
    query = Select(table, where, order_by, distinct_on, limit, offset, equal)
    return store.query(f"SELECT COUNT(*) FROM (SELECT a._seq {query.sql})", query.params)[0][0]


def _check_page(limit: Optional[int], offset: Optional[int]) -> None:
    for name, value in (("limit", limit), ("offset", offset)):
        if value is not None and value < 0:
            raise ApiError(f"unexpected negative value ({name}: {value}): give a {name} of 0 or more",
                           code="not-supported")


def candidates(store: Store, table: str, where: dict) -> Optional[Collection[str]]:
    """The ids of the rows of `table` that may match `where`, found through the store's indexed lookups: which
    conditions an index can narrow (`select` leaves the choice to SQLite's planner; the tests use this to check
    that the conditions on indexed columns are the ones the store keeps indexes for).

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


def sort(store: Store, table: str, rows: List[dict], order_by: List[dict]) -> List[dict]:
    """Sorts rows by a list of `<table>_order_by` values; nulls last ascending, first descending (Postgres)."""
    keys = _sort_keys(store, table, order_by)
    directions = [direction(value) for _getter, _kind, value in keys]

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
    decorated = [([comparable(kind, getter(row)) for getter, kind, _d in keys], row) for row in rows]
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
