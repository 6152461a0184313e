"""Hasura's select arguments compiled to SQL over the store's tables (see store.py for their layout).

`where` (a bool_exp), `order_by`, `distinct_on`, `limit` and `offset` become one SELECT that SQLite answers
through its indexes, with the answers filters.py's Python evaluation gives (tests/prefect_emulator/
test_indexes.py compares the two over many queries):

- a comparison with a null column is false in Python, unknown in SQL: the same where it decides (a WHERE keeps
  neither), so only `_not` (NOT COALESCE(.., 0)) and `_nin` (`NULL NOT IN ()` is true) take care of it;
- comparisons on uuid, text, int, boolean and timestamptz columns are plain SQL (timestamps are stored in a
  canonical form that sorts as the instants it names, so the argument is put in that form); pattern operators
  go to `hlike`, which runs filters.LikePattern (Hasura's case rules, `_similar` as LIKE, no backtracking);
  jsonb and interval comparisons go to `hcompare`, which runs filters.compare on the decoded value;
- relations become EXISTS subqueries; an object relation whose remote column is not `id` takes the first related
  row in table order, as filters.related does;
- `order_by` keys take Postgres's null order (nulls last ascending, first descending) unless told, then table
  order (`_seq`), the order a stable sort of the table gives; `distinct_on` keeps the first row of each
  combination in that order (a window function).
"""
from __future__ import annotations

import functools
import itertools
import json
import sqlite3
from typing import Any, List, Optional, Tuple

from .comparisons import compare, like_pattern
from .dbfile import encode
from .tables import BOOL, INTERVAL, JSONB, TABLES, TIME
from .timestamps import sort_key

_PLAIN = {"_eq": "=", "_neq": "!=", "_gt": ">", "_gte": ">=", "_lt": "<", "_lte": "<="}
_PATTERNS = {"_like", "_nlike", "_ilike", "_nilike", "_similar", "_nsimilar"}
_JSON_KINDS = (JSONB, INTERVAL)
_LISTED = 100  # longer `_in` lists go in as one JSON parameter


def direction(value: str) -> Tuple[bool, bool]:
    """(descending, nulls first) of an `order_by` value; nulls sort as if larger than any value (Postgres)."""
    descending = value.startswith("desc")
    return descending, "nulls_first" in value or (descending and "nulls_last" not in value)


class Select:
    """One compiled select: `sql` is what follows `SELECT <columns>` (it starts with FROM, the table aliased
    `a`), `params` its parameters.

    Args:
        table: the table
        where: a `<table>_bool_exp` value
        order_by: a list of `<table>_order_by` values
        distinct_on: column names
        limit: at most this many rows
        offset: skip this many rows first
        equal: (column, value): only rows whose column equals the value (an array relation's rows)
    """

    def __init__(self, table: str, where: Optional[dict] = None, order_by: Optional[List[dict]] = None,
                 distinct_on: Optional[List[str]] = None, limit: Optional[int] = None,
                 offset: Optional[int] = None, equal: Optional[Tuple[str, Any]] = None) -> None:
        self.params: List[Any] = []
        self._aliases = itertools.count(1)
        conditions = []
        if equal is not None:
            column, value = equal
            conditions.append(f'a."{column}" = {self._bind(encode(table, column, value))}')
        if where:
            conditions.append(self._where(table, "a", where))
        filtered = f' WHERE {" AND ".join(conditions)}' if conditions else ""
        keys = self._order(table, "a", order_by or [])
        page = ""
        if limit is not None or offset:
            page = f" LIMIT {int(-1 if limit is None else limit)} OFFSET {int(offset or 0)}"
        if distinct_on:
            terms = "".join(_term(expr, desc, first) + ", " for expr, desc, first, _c in keys)
            window = f"ORDER BY {terms}a._seq"
            named = "".join(f", {expr} AS _k{n}" for n, (expr, _d, _f, _c) in enumerate(keys))
            partition = ", ".join(f'a."{column}"' for column in distinct_on)
            outer = "".join(_term(f"a._k{n}", desc, first) + ", " for n, (_e, desc, first, _c) in enumerate(keys))
            self.sql = (f'FROM (SELECT a.*, ROW_NUMBER() OVER (PARTITION BY {partition} {window}) AS _rn{named} '
                        f'FROM "{table}" a{filtered}) a WHERE a._rn = 1 ORDER BY {outer}a._seq{page}')
        else:
            terms = "".join(_term(expr, desc, first) + ", " for expr, desc, first, _c in keys)
            self.sql = f'FROM "{table}" a{filtered} ORDER BY {terms}a._seq{page}'

    def _bind(self, value: Any) -> str:
        self.params.append(value)
        return "?"

    # ------------------------------------------------------------------ where
    def _where(self, table: str, alias: str, where: dict) -> str:
        spec = TABLES[table]
        parts = []
        for key, cond in where.items():
            if cond is None:
                continue  # Hasura (as Prefect Server runs it) ignores null filters
            if key == "_and":
                parts.append("(" + (" AND ".join(self._where(table, alias, c) for c in cond if c) or "1") + ")")
            elif key == "_or":
                parts.append("(" + (" OR ".join(self._where(table, alias, c or {}) for c in cond) or "0") + ")")
            elif key == "_not":
                # a comparison with a null column is unknown in SQL, false in Python: NOT of it must be true
                parts.append(f"NOT COALESCE({self._where(table, alias, cond)}, 0)")
            elif key in spec.columns:
                parts.append(self._compare(spec.columns[key], f'{alias}."{key}"', cond))
            elif key in spec.objects or key in spec.arrays:
                rel = spec.objects.get(key) or spec.arrays[key]
                other = self._alias()
                inner = self._where(rel.table, other, cond)
                link = self._link(rel, alias, other, first=key in spec.objects)
                parts.append(f'EXISTS (SELECT 1 FROM "{rel.table}" {other} WHERE {link} AND {inner})')
            else:  # unreachable after schema validation; kept so a schema/table mismatch is loud
                raise ValueError(f"unknown filter field {key!r} on table {table!r}")
        return "(" + " AND ".join(parts or ["1"]) + ")"

    def _link(self, rel: Any, alias: str, other: str, first: bool) -> str:
        """The condition tying related rows (`other`) to a row (`alias`); `first`: an object relation, which
        is one row, the first in table order when the remote column is not unique."""
        if first and rel.remote != "id":
            return (f'{other}._seq = (SELECT f._seq FROM "{rel.table}" f WHERE f."{rel.remote}" = '
                    f'{alias}."{rel.local}" ORDER BY f._seq LIMIT 1)')
        return f'{other}."{rel.remote}" = {alias}."{rel.local}"'

    def _alias(self) -> str:
        return f"t{next(self._aliases)}"

    def _compare(self, kind: str, column: str, cond: dict) -> str:
        terms = []
        for op, arg in cond.items():
            if op == "_is_null":
                if arg is not None:
                    terms.append(f"{column} IS NULL" if arg else f"{column} IS NOT NULL")
                continue
            if arg is None:
                continue  # null comparison arguments are ignored, as Hasura does
            if kind in _JSON_KINDS or op not in _PLAIN and op not in ("_in", "_nin") and op not in _PATTERNS:
                terms.append(f"hcompare({self._bind(kind)}, {self._bind(op)}, {column}, "
                             f"{self._bind(json.dumps(arg))})")
            elif op in _PATTERNS:
                terms.append(f"hlike({column}, {self._bind(arg)}, {self._bind(op)})")
            elif op in ("_in", "_nin"):
                values = [_value(kind, a) for a in arg]
                negation = "NOT " if op == "_nin" else ""
                if len(values) <= _LISTED:  # a list the planner sees: it can walk an index once per value
                    listed = ", ".join(self._bind(v) for v in values)
                else:  # one parameter, however many values (SQLite caps the parameters of a statement)
                    listed = f"SELECT value FROM json_each({self._bind(json.dumps(values))})"
                # `NULL NOT IN ()` is true in SQL; a null column matches no comparison here
                guard = f"{column} IS NOT NULL AND " if negation else ""
                terms.append(f"({guard}{column} {negation}IN ({listed}))")
            else:
                terms.append(f"{column} {_PLAIN[op]} {self._bind(_value(kind, arg))}")
        return "(" + " AND ".join(terms or ["1"]) + ")"

    # ------------------------------------------------------------------ order_by
    def _order(self, table: str, alias: str, order_by: List[dict]) -> List[Tuple[str, bool, bool, bool]]:
        """(SQL expression, descending, nulls first, whether it is a count) of each key, first first."""
        keys: List[Tuple[str, bool, bool, bool]] = []
        spec = TABLES[table]
        for clause in order_by:
            for field, value in clause.items():
                if value is None:
                    continue
                if field in spec.columns:
                    expr = f'{alias}."{field}"'
                    if spec.columns[field] == JSONB:
                        expr = f"hsortkey({expr})"
                    keys.append((expr, *direction(value), False))
                elif field in spec.objects:
                    rel = spec.objects[field]
                    other = self._alias()
                    link = self._link(rel, alias, other, first=True)
                    for expr, desc, first, count in self._order(rel.table, other, [value]):
                        sub = f'(SELECT {expr} FROM "{rel.table}" {other} WHERE {link})'
                        # a count through a missing row is 0, as filters.sort counts it
                        keys.append((f"COALESCE({sub}, 0)" if count else sub, desc, first, count))
                elif field.endswith("_aggregate") and field[: -len("_aggregate")] in spec.arrays:
                    rel = spec.arrays[field[: -len("_aggregate")]]
                    count = value.get("count")
                    if count:
                        other = self._alias()
                        keys.append((f'(SELECT COUNT(*) FROM "{rel.table}" {other} WHERE '
                                     f'{self._link(rel, alias, other, first=False)})', *direction(count), True))
        return keys


def _term(expr: str, descending: bool, nulls_first: bool) -> str:
    return f"{expr} {'DESC' if descending else 'ASC'} NULLS {'FIRST' if nulls_first else 'LAST'}"


def _value(kind: str, value: Any) -> Any:
    """A comparison argument as the column holds it (timestamps in their canonical form, booleans as 0/1)."""
    if kind == TIME:
        return sort_key(value)
    if kind == BOOL and isinstance(value, bool):
        return int(value)
    return value


# ------------------------------------------------------------------------------------ SQL functions
def register_functions(conn: sqlite3.Connection) -> None:
    """Adds the functions compiled queries call to a connection."""
    conn.create_function("hlike", 3, _hlike, deterministic=True)
    conn.create_function("hcompare", 4, _hcompare, deterministic=True)
    conn.create_function("hsortkey", 1, _hsortkey, deterministic=True)


def _hlike(text: Any, pattern: str, op: str) -> int:
    if not isinstance(text, str):
        return 0
    found = like_pattern(pattern, "ilike" in op).matches(text)
    return int(found != op.startswith("_n"))


def _hcompare(kind: str, op: str, stored: Any, arg: str) -> int:
    value = json.loads(stored) if kind == JSONB and stored is not None else stored
    return int(compare(kind, value, {op: json.loads(arg)}))


@functools.lru_cache(maxsize=1024)
def _hsortkey(stored: Optional[str]) -> Optional[str]:
    """A jsonb value's sort key: its JSON with sorted keys, as filters.sort compares structures."""
    if stored is None:
        return None
    return json.dumps(json.loads(stored), sort_keys=True)
