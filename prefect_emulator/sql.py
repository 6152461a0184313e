"""Hasura's `where` and `order_by` compiled to SQLite, for the store (store.py) to answer.

`where` compiles to a `Compiled` condition: exact when SQLite's answer is the one filters.matches gives for every
row, else a superset of it (filters.py then tests each row it returns in Python). What compiles exactly:

- comparisons of columns that are not jsonb or interval: `_eq`, `_neq`, `_gt`, `_gte`, `_lt`, `_lte`, `_in`,
  `_nin`, `_is_null`, and the case-sensitive patterns `_like`, `_nlike`, `_similar`, `_nsimilar` (as GLOB
  patterns: SQLite's LIKE ignores the case of ASCII letters, Hasura's does not);
- `_and`, `_or`, `_not` of exact parts, and relations (EXISTS over the related table).

Every compiled comparison is true or false, never NULL: a null column fails it, as in filters.compare, so that
`_not` of it holds, and an ordering comparison also fails when the column holds another kind of value than the
argument (Python's TypeError). What does not compile exactly (`_ilike`, whose case folding covers more than
ASCII, jsonb operators, intervals) narrows nothing: its place in the condition is true.

`order_by` compiles when every key is a column that is not jsonb, a column of an object relation, or an array
relation's count; Postgres sorts nulls as larger than any value, which `NULLS FIRST` / `NULLS LAST` say.
"""
from __future__ import annotations

import itertools
from typing import Any, Iterator, List, NamedTuple, Optional, Sequence

from . import timestamps
from .tables import INTERVAL, JSONB, TABLES, TIME


class Compiled(NamedTuple):
    """A condition in SQL over one table's columns, its parameters, and whether it is exact (see module doc)."""

    text: str
    params: Sequence[Any]
    exact: bool = True


class OrderKey(NamedTuple):
    """One sort key in SQL; `column` is set when it is one of the table's own columns (an index may serve it)."""

    expression: str
    params: Sequence[Any]
    descending: bool
    nulls_first: Optional[bool]  # None: no nulls to place (the rows' values are known not to be null)
    column: Optional[str] = None


TRUE = Compiled("1", ())
_UNKNOWN = Compiled("1", (), exact=False)  # narrows nothing
_PATTERNS = {"_like": False, "_similar": False, "_nlike": True, "_nsimilar": True}  # op -> negated
_ORDERING = {"_gt": ">", "_gte": ">=", "_lt": "<", "_lte": "<="}


def where_sql(table: str, where: Optional[dict]) -> Compiled:
    """`where` on `table` as SQL over its columns, named as `"table"."column"` (so that a subquery's own
    columns of the same name do not hide them)."""
    return _where(table, where or {}, f'"{table}".' + '"{}"', itertools.count())


def _where(table: str, where: dict, column: str, aliases: Iterator[int]) -> Compiled:
    """`column` formats a column name into a reference to it (with the table's alias inside subqueries)."""
    spec = TABLES[table]
    parts: List[Compiled] = []
    for key, cond in where.items():
        if cond is None:
            continue  # Hasura (as Prefect Server runs it) ignores null filters
        if key == "_and":
            parts.append(_all([_where(table, c, column, aliases) for c in cond]))
        elif key == "_or":
            branches = [_where(table, c, column, aliases) for c in cond]
            if not branches:
                parts.append(Compiled("0", ()))
            else:
                parts.append(Compiled("(" + " OR ".join(b.text for b in branches) + ")",
                                      [p for b in branches for p in b.params], all(b.exact for b in branches)))
        elif key == "_not":
            inner = _where(table, cond, column, aliases)
            parts.append(Compiled(f"NOT {inner.text}", inner.params) if inner.exact else _UNKNOWN)
        elif key in spec.columns:
            parts.append(_compare(spec.columns[key], column.format(key), cond))
        else:
            is_object = key in spec.objects
            rel = spec.objects[key] if is_object else spec.arrays[key]
            alias = f"r{next(aliases)}"
            inner = _where(rel.table, cond, alias + '."{}"', aliases)
            sql = (f'EXISTS (SELECT 1 FROM "{rel.table}" {alias} WHERE {alias}."{rel.remote}" = '
                   f"{column.format(rel.local)} AND {inner.text})")
            # an object relation on another column than id follows its first row only (filters.related)
            parts.append(Compiled(sql, inner.params, inner.exact and (not is_object or rel.remote == "id")))
    return _all(parts)


def _all(parts: List[Compiled]) -> Compiled:
    parts = [p for p in parts if p.text != "1" or not p.exact]
    known = [p for p in parts if p.text != "1"]
    if not known:
        return TRUE if all(p.exact for p in parts) else _UNKNOWN
    return Compiled("(" + " AND ".join(p.text for p in known) + ")", [x for p in known for x in p.params],
                    all(p.exact for p in parts))


def _compare(kind: str, column: str, cond: dict) -> Compiled:
    """One column's comparison expression, as filters.compare evaluates it."""
    parts: List[Compiled] = []
    for op, arg in cond.items():
        if op == "_is_null":
            if arg is not None:
                parts.append(Compiled(f"{column} IS {'' if arg else 'NOT '}NULL", ()))
            continue
        if arg is None:
            continue  # null comparison arguments are ignored, as Hasura does
        if kind in (JSONB, INTERVAL):
            parts.append(_UNKNOWN)
        elif op in ("_eq", "_neq"):
            parts.append(Compiled(f"({column} IS NOT NULL AND {column} {'=' if op == '_eq' else '<>'} ?)",
                                  [_value(kind, arg)]))
        elif op in ("_in", "_nin"):
            values = [_value(kind, a) for a in arg if a is not None]
            marks = ", ".join("?" * len(values))
            parts.append(Compiled(f"({column} IS NOT NULL AND {column} {'IN' if op == '_in' else 'NOT IN'} ({marks}))",
                                  values))
        elif op in _ORDERING:
            value = _value(kind, arg)
            kinds = "'text'" if isinstance(value, str) else "'integer', 'real'"
            parts.append(Compiled(f"(typeof({column}) IN ({kinds}) AND {column} {_ORDERING[op]} ?)", [value]))
        elif op in _PATTERNS and isinstance(arg, str):
            negation = "NOT " if _PATTERNS[op] else ""
            parts.append(Compiled(f"(typeof({column}) = 'text' AND {negation}{column} GLOB ?)", [like_to_glob(arg)]))
        else:
            parts.append(_UNKNOWN)
    return _all(parts)


def _value(kind: str, arg: Any) -> Any:
    """An argument in the form the store keeps the column's values (timestamps canonical, Booleans 0/1)."""
    if kind == TIME:
        return timestamps.sort_key(arg)
    if isinstance(arg, bool):
        return int(arg)
    return arg


def like_to_glob(pattern: str) -> str:
    """A LIKE pattern (`%`, `_`, `\\` escaping the next character, a trailing one standing for itself) as the
    GLOB pattern that matches the same texts, case-sensitively."""
    out = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "%":
            out.append("*")
        elif ch == "_":
            out.append("?")
        else:
            if ch == "\\":
                ch = next(chars, "\\")
            out.append(f"[{ch}]" if ch in "*?[" else ch)
    return "".join(out)


def order_sql(table: str, order_by: Optional[List[dict]]) -> Optional[List[OrderKey]]:
    """`order_by` as SQL sort keys, first first, or None when a key does not compile (see module doc)."""
    keys: List[OrderKey] = []
    for clause in order_by or []:
        if not _order(table, clause, f'"{table}".' + '"{}"', None, keys, itertools.count()):
            return None
    return keys


def _order(table: str, clause: dict, column: str, wrap: Optional[str], keys: List[OrderKey],
           aliases: Iterator[int]) -> bool:
    """Adds the keys of one `order_by` clause. `wrap` is the scalar subquery (with `{}` for the value) that
    reaches `table`'s row from the table being sorted; None at the top."""
    spec = TABLES[table]
    for field, direction in clause.items():
        if direction is None:
            continue
        if field in spec.columns:
            if spec.columns[field] == JSONB:
                return False
            expression = column.format(field)
            keys.append(_key(expression if wrap is None else wrap.format(expression), direction,
                             field if wrap is None else None))
        elif field in spec.objects:
            rel = spec.objects[field]
            if rel.remote != "id":
                return False
            alias = f"o{next(aliases)}"
            inner = f'(SELECT {{}} FROM "{rel.table}" {alias} WHERE {alias}."id" = {column.format(rel.local)})'
            if not _order(rel.table, direction, alias + '."{}"', inner if wrap is None else wrap.format(inner),
                          keys, aliases):
                return False
        elif field.endswith("_aggregate") and field[: -len("_aggregate")] in spec.arrays:
            rel = spec.arrays[field[: -len("_aggregate")]]
            count = direction.get("count")
            if count:
                alias = f"a{next(aliases)}"
                counted = (f'(SELECT count(*) FROM "{rel.table}" {alias} '
                           f'WHERE {alias}."{rel.remote}" = {column.format(rel.local)})')
                # through a missing object the count is 0, as filters.sort has it
                keys.append(_key(counted if wrap is None else f"IFNULL({wrap.format(counted)}, 0)", count))
        else:
            return False
    return True


def _key(expression: str, direction: str, column: Optional[str] = None) -> OrderKey:
    descending = direction.startswith("desc")
    nulls_first = "nulls_first" in direction or (descending and "nulls_last" not in direction)
    return OrderKey(expression, (), descending, nulls_first, column)
