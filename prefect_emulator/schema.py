"""The emulator's executable GraphQL schema: Hasura-style table queries generated from tables.py, plus
Prefect Server's own mutations (prefect_sdl.py) bound to the resolvers in the api modules.

Generating the Hasura half the way Hasura does (`T`, `T_by_pk`, `T_aggregate`, `T_bool_exp`, `T_order_by`,
`T_select_column`, `<type>_comparison_exp`) lets graphql-core validate every query the client builds
(aliases, variables, fragments, inline literal arguments) and name any unknown field in its error.
"""
from __future__ import annotations

import json
import uuid
from typing import Any, Callable, Dict, List, Optional

from graphql import GraphQLSchema, build_schema
from graphql import parse as parse_sdl
from graphql.language import ast as gast
from graphql.utilities import value_from_ast_untyped

from . import agents, cloud_hooks, filters, logs, messages, registry, runs, scheduler, states, tenancy, traversal
from .prefect_sdl import PREFECT_SDL
from .tables import BOOL, FUNCTIONS, INT, INTERVAL, JSONB, TABLES, TEXT, TIME, UUID
from .timestamps import normalize

_COMMON_OPS = {"_eq": "{t}", "_neq": "{t}", "_in": "[{t}!]", "_nin": "[{t}!]", "_gt": "{t}", "_gte": "{t}",
               "_lt": "{t}", "_lte": "{t}", "_is_null": "Boolean"}
_EXTRA_OPS = {
    TEXT: {"_like": "String", "_nlike": "String", "_ilike": "String", "_nilike": "String",
           "_similar": "String", "_nsimilar": "String"},
    JSONB: {"_contains": "jsonb", "_contained_in": "jsonb", "_has_key": "String", "_has_keys_all": "[String!]",
            "_has_keys_any": "[String!]"},
}
_ORDERABLE = (INT, TEXT, TIME, UUID, INTERVAL)


def _select_args(table: str) -> str:
    return (f"where: {table}_bool_exp, order_by: [{table}_order_by!], limit: Int, offset: Int, "
            f"distinct_on: [{table}_select_column!]")


def hasura_sdl() -> str:
    """Builds the SDL of the Hasura part: scalars, comparison inputs and, per table, its types and roots."""
    out: List[str] = [
        "scalar uuid", "scalar timestamptz", "scalar jsonb", "scalar interval", "scalar _uuid",
        "enum order_by { asc asc_nulls_first asc_nulls_last desc desc_nulls_first desc_nulls_last }",
    ]
    for kind in (UUID, TEXT, INT, BOOL, TIME, JSONB, INTERVAL):
        ops = {op: t.format(t=kind) for op, t in _COMMON_OPS.items()}
        ops.update(_EXTRA_OPS.get(kind, {}))
        out.append(f"input {kind}_comparison_exp {{ " + " ".join(f"{k}: {v}" for k, v in ops.items()) + " }")
    roots = []
    for name, spec in TABLES.items():
        fields = [f"{c}: {t}" for c, t in spec.columns.items()]
        fields += [f"{r}: {rel.table}" for r, rel in spec.objects.items()]
        for r, rel in spec.arrays.items():
            fields.append(f"{r}({_select_args(rel.table)}): [{rel.table}!]!")
            fields.append(f"{r}_aggregate({_select_args(rel.table)}): {rel.table}_aggregate!")
        out.append(f"type {name} {{ " + " ".join(fields) + " }")

        exp = [f"_and: [{name}_bool_exp!]", f"_or: [{name}_bool_exp!]", f"_not: {name}_bool_exp"]
        exp += [f"{c}: {t}_comparison_exp" for c, t in spec.columns.items()]
        exp += [f"{r}: {rel.table}_bool_exp" for r, rel in {**spec.objects, **spec.arrays}.items()]
        out.append(f"input {name}_bool_exp {{ " + " ".join(exp) + " }")

        order = [f"{c}: order_by" for c in spec.columns]
        order += [f"{r}: {rel.table}_order_by" for r, rel in spec.objects.items()]
        order += [f"{r}_aggregate: {rel.table}_aggregate_order_by" for r, rel in spec.arrays.items()]
        out.append(f"input {name}_order_by {{ " + " ".join(order) + " }")
        out.append(f"input {name}_aggregate_order_by {{ count: order_by }}")
        out.append(f"enum {name}_select_column {{ " + " ".join(spec.columns) + " }")

        minmax = [f"{c}: {t}" for c, t in spec.columns.items() if t in _ORDERABLE]
        out.append(f"type {name}_min_fields {{ " + " ".join(minmax) + " }")
        out.append(f"type {name}_max_fields {{ " + " ".join(minmax) + " }")
        out.append(f"type {name}_aggregate_fields {{ count(columns: [{name}_select_column!], distinct: Boolean): Int "
                   f"min: {name}_min_fields max: {name}_max_fields }}")
        out.append(f"type {name}_aggregate {{ aggregate: {name}_aggregate_fields nodes: [{name}!]! }}")

        roots.append(f"{name}({_select_args(name)}): [{name}!]!")
        if "id" in spec.columns:  # Hasura has no _by_pk for a table without a primary key
            roots.append(f"{name}_by_pk(id: uuid!): {name}")
        roots.append(f"{name}_aggregate({_select_args(name)}): {name}_aggregate!")
    for name, (table, args) in FUNCTIONS.items():
        out.append(f"input {name}_args {{ " + " ".join(f"{a}: {t}" for a, t in args.items()) + " }")
        roots.append(f"{name}(args: {name}_args!, {_select_args(table)}): [{table}!]!")
        roots.append(f"{name}_aggregate(args: {name}_args!, {_select_args(table)}): {table}_aggregate!")
    out.append("type Query { " + " ".join(roots) + " }")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------ scalars
def _parse_uuid(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a UUID string, got {value!r}")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError(f"invalid UUID {value!r}: expected e.g. 6f1c2a4e-9e4b-4f5e-8a1d-2b3c4d5e6f70")


def _parse_time(value: Any) -> str:
    return normalize(value)


def _parse_json(value: Any) -> Any:
    return value


def _literal(parse: Callable[[Any], Any]) -> Callable:
    def parse_literal(node: gast.ValueNode, variables: Dict[str, Any] = None) -> Any:
        return parse(value_from_ast_untyped(node, variables))
    return parse_literal


def _parse_interval(value: Any) -> Any:
    if isinstance(value, (str, int, float)):
        return value
    raise ValueError(f"expected an interval such as '0:00:05' or a number of seconds, got {value!r}")


def _parse_uuid_array(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f'expected a Postgres array literal such as "{{id1,id2}}", got {value!r}')
    return value


def serialize_interval(value: Any) -> Any:
    """An interval column as Hasura answers it, Postgres's text form: 10 -> "00:00:10",
    90000 -> "1 day 01:00:00" (the emulator stores intervals as seconds)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return value
    days, rest = divmod(float(value), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    whole = f"{int(hours):02d}:{int(minutes):02d}:{int(seconds):02d}"
    if seconds != int(seconds):
        whole += f"{seconds - int(seconds):.6f}".rstrip("0")[1:]
    if not days:
        return whole
    text = f"{int(days)} day{'s' if days != 1 else ''}"
    return text if whole == "00:00:00" else f"{text} {whole}"


def _serialize_json(value: Any) -> Any:
    if isinstance(value, str):
        # Hasura returns jsonb as JSON values; a row written with a JSON string is decoded on the way out
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


_SCALARS = {
    "uuid": (_parse_uuid, str), "UUID": (_parse_uuid, str),
    "timestamptz": (_parse_time, str), "DateTime": (_parse_time, str),
    "jsonb": (_parse_json, lambda v: v), "JSON": (_parse_json, lambda v: v),
    "interval": (_parse_interval, serialize_interval),
    "_uuid": (_parse_uuid_array, str),
}


# -------------------------------------------------------------------------------------------- resolvers
def _tenant_scope(ctx: Any, table: str) -> Optional[dict]:
    """The `where` a cloud client's X-PREFECT-TENANT-ID header adds: queries see that tenant only, as on Prefect
    Cloud; without the header (server backend) every tenant is visible, as on Server. None: no scope."""
    if not ctx.tenant_id or table == "tenant":
        return None  # `prefect auth list-tenants` lists every tenant the key may switch to
    if "tenant_id" not in TABLES[table].columns:
        return None
    return {"tenant_id": {"_eq": ctx.tenant_id}}


def _visible(ctx: Any, table: str, rows: List[dict]) -> List[dict]:
    """The rows the request may see (`_tenant_scope`)."""
    scope = _tenant_scope(ctx, table)
    return rows if scope is None else [r for r in rows if filters.matches(ctx.store, table, r, scope)]


def _scoped(ctx: Any, table: str, where: Optional[dict]) -> Optional[dict]:
    """`where` and the request's tenant scope (`_tenant_scope`)."""
    scope = _tenant_scope(ctx, table)
    if scope is None:
        return where
    return {"_and": [where, scope]} if where else scope


def _root_select(table: str) -> Callable:
    def resolve(_root: Any, info: Any, where: dict = None, order_by: list = None, limit: int = None,
                offset: int = None, distinct_on: list = None) -> List[dict]:
        return filters.select(info.context.store, table, where=_scoped(info.context, table, where),
                              order_by=order_by, distinct_on=distinct_on, limit=limit, offset=offset)
    return resolve


def _root_by_pk(table: str) -> Callable:
    def resolve(_root: Any, info: Any, id: str) -> Any:
        row = info.context.store.get(table, id)
        return row if row is not None and _visible(info.context, table, [row]) else None
    return resolve


class _Selection:
    """The rows an aggregate field stands for, read only if a field needs them: `count` alone is counted by
    SQLite when it can be (filters.count), so counting a year of runs does not read them."""

    def __init__(self, rows: Callable[[], List[dict]], counted: Callable[[], Optional[int]] = lambda: None) -> None:
        self._read = rows
        self._counted = counted
        self._rows: Optional[List[dict]] = None

    def rows(self, *_info: Any) -> List[dict]:
        if self._rows is None:
            self._rows = self._read()
        return self._rows

    def count(self) -> int:
        if self._rows is None:
            counted = self._counted()
            if counted is not None:
                return counted
        return len(self.rows())


def _aggregate(selection: _Selection) -> dict:
    # graphql-core calls a callable it finds as a field's value: `nodes` reads the rows only when asked for
    return {"aggregate": {"__selection": selection}, "nodes": selection.rows}


def _root_aggregate(table: str) -> Callable:
    select = _root_select(table)

    def resolve(root: Any, info: Any, **kwargs: Any) -> dict:
        counted = None
        if set(kwargs) <= {"where"}:  # no limit, offset, order or distinct_on: a count of what `where` selects
            where = _scoped(info.context, table, kwargs.get("where"))
            counted = lambda: filters.count(info.context.store, table, where)  # noqa: E731
        return _aggregate(_Selection(lambda: select(root, info, **kwargs), counted or (lambda: None)))
    return resolve


def _array(table: str, name: str) -> Callable:
    rel = TABLES[table].arrays[name]

    def resolve(row: dict, info: Any, where: dict = None, order_by: list = None, limit: int = None,
                offset: int = None, distinct_on: list = None) -> List[dict]:
        value = row.get(rel.local)
        if value is None:
            return []
        related = {rel.remote: {"_eq": value}}
        return filters.select(info.context.store, rel.table, where={"_and": [related, where]} if where else related,
                              order_by=order_by, distinct_on=distinct_on, limit=limit, offset=offset)
    return resolve


def _array_aggregate(table: str, name: str) -> Callable:
    select = _array(table, name)
    rel = TABLES[table].arrays[name]

    def resolve(row: dict, info: Any, **kwargs: Any) -> dict:
        counted = None
        if set(kwargs) <= {"where"} and row.get(rel.local) is not None:
            related = {rel.remote: {"_eq": row[rel.local]}}
            where = {"_and": [related, kwargs["where"]]} if kwargs.get("where") else related
            counted = lambda: filters.count(info.context.store, rel.table, where)  # noqa: E731
        return _aggregate(_Selection(lambda: select(row, info, **kwargs), counted or (lambda: None)))
    return resolve


def _function(table: str, downstream: bool, aggregate: bool = False) -> Callable:
    """A traversal function's root field: its rows, then Hasura's where/order_by/limit/offset on them."""
    def resolve(_root: Any, info: Any, args: dict, where: dict = None, order_by: list = None, limit: int = None,
                offset: int = None, distinct_on: list = None) -> Any:
        ctx = info.context
        rows = traversal.traverse(ctx, args.get("start_task_ids"), args.get("depth_limit"), downstream)
        rows = filters.select(ctx.store, table, rows=_visible(ctx, table, rows), where=where, order_by=order_by,
                              distinct_on=distinct_on, limit=limit, offset=offset)
        return _aggregate(_Selection(lambda: rows)) if aggregate else rows
    return resolve


def _object(table: str, name: str) -> Callable:
    def resolve(row: dict, info: Any) -> Any:
        return filters.related(info.context.store, table, row, name)
    return resolve


def _count(agg: dict, info: Any, columns: list = None, distinct: bool = None) -> int:
    selection = agg["__selection"]
    if not columns:
        return selection.count()
    rows = selection.rows()
    if columns:
        rows = [r for r in rows if all(r.get(c) is not None for c in columns)]
        if distinct:
            return len({json.dumps([r.get(c) for c in columns], default=str) for r in rows})
    return len(rows)


def _extreme(pick: Callable) -> Callable:
    def resolve(agg: dict, info: Any) -> dict:
        rows = agg["__selection"].rows()
        out = {}
        for field in info.return_type.fields:
            values = [r.get(field) for r in rows if r.get(field) is not None]
            out[field] = pick(values) if values else None
        return out
    return resolve


def build() -> GraphQLSchema:
    """Returns the executable schema: SDL generated and parsed, scalars and resolvers attached."""
    schema = build_schema("\n".join([hasura_sdl(), PREFECT_SDL, *EXTENSION_SDL]))
    for name, (parse, serialize) in _SCALARS.items():
        scalar = schema.type_map[name]
        scalar.parse_value = parse  # type: ignore[assignment]
        scalar.parse_literal = _literal(parse)  # type: ignore[assignment]
        scalar.serialize = _serialize_json if name in ("jsonb", "JSON") else serialize  # type: ignore

    query = schema.query_type.fields
    for table, spec in TABLES.items():
        query[table].resolve = _root_select(table)
        if "id" in spec.columns:
            query[f"{table}_by_pk"].resolve = _root_by_pk(table)
        query[f"{table}_aggregate"].resolve = _root_aggregate(table)
        obj = schema.type_map[table].fields
        for rel in spec.objects:
            obj[rel].resolve = _object(table, rel)
        for rel in spec.arrays:
            obj[rel].resolve = _array(table, rel)
            obj[f"{rel}_aggregate"].resolve = _array_aggregate(table, rel)
        agg = schema.type_map[f"{table}_aggregate_fields"].fields
        agg["count"].resolve = _count
        agg["min"].resolve = _extreme(min)
        agg["max"].resolve = _extreme(max)

    for name, (table, _args) in FUNCTIONS.items():
        query[name].resolve = _function(table, name == "utility_downstream_tasks")
        query[f"{name}_aggregate"].resolve = _function(table, name == "utility_downstream_tasks", aggregate=True)

    resolvers: Dict[str, Callable] = {}
    for module in API_MODULES:
        resolvers.update(module.RESOLVERS)
    mutation = schema.mutation_type.fields
    operations = list(mutation.items()) + [(n, query[n]) for n in prefect_query_names()]
    missing = sorted(name for name, _field in operations if name not in resolvers)
    if missing:  # a schema/resolver mismatch is a bug: fail at start, never answer null
        raise RuntimeError(f"no resolver for {', '.join(missing)}: add it to the RESOLVERS of an api module")
    unknown = sorted(set(resolvers) - {name for name, _field in operations})
    if unknown:
        raise RuntimeError(f"resolvers for operations not in prefect_sdl.py: {', '.join(unknown)}")
    for name, field in operations:
        field.resolve = _with_input(resolvers[name])
    return schema


# The modules that answer Prefect Server's own operations, each through its RESOLVERS dict.
API_MODULES = (tenancy, registry, runs, states, logs, agents, scheduler, messages, cloud_hooks)
# the operations modules declare next to their resolvers (`extend type Mutation`)
EXTENSION_SDL = (messages.SDL, cloud_hooks.SDL)


def prefect_query_names() -> List[str]:
    """The root query fields prefect_sdl.py declares (`extend type Query`): Server's own queries, which need a
    resolver (the Hasura table queries are generated and resolved from tables.py)."""
    document = parse_sdl(PREFECT_SDL)
    return [field.name.value for definition in document.definitions
            if isinstance(definition, gast.ObjectTypeExtensionNode) and definition.name.value == "Query"
            for field in definition.fields]


def _with_input(fn: Callable) -> Callable:
    """Adapts `fn(ctx, **args)` to graphql-core's `resolve(root, info, **args)`; mutations run in one transaction."""
    def resolve(_root: Any, info: Any, **kwargs: Any) -> Any:
        ctx = info.context
        pending = len(ctx.after_commit)
        try:
            with ctx.store.transaction():
                return fn(ctx, **kwargs)
        except BaseException:
            del ctx.after_commit[pending:]  # rolled back: what its writes would have done after commit is void
            raise
    return resolve
