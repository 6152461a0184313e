"""The emulator's tables: columns, their Hasura types, and the relations between tables.

This mirrors the Postgres schema that Prefect Server 1.4.1 exposes through Hasura, reduced to the tables and
columns the `prefect` client, agents, CLI and UI read. The GraphQL schema (schema.py), the filters
(filters.py) and the store (store.py) are all generated from this one table.
"""
from __future__ import annotations

from typing import Dict, NamedTuple, Tuple

# Hasura scalar type names used for columns; schema.py defines one comparison input per type.
UUID = "uuid"
TEXT = "String"
INT = "Int"
BOOL = "Boolean"
TIME = "timestamptz"
JSONB = "jsonb"
INTERVAL = "interval"

_BASE = {"id": UUID, "created": TIME, "updated": TIME, "tenant_id": UUID}
_STATE_COLUMNS = {
    "version": INT, "heartbeat": TIME, "start_time": TIME, "end_time": TIME, "state": TEXT,
    "state_timestamp": TIME, "state_message": TEXT, "state_result": JSONB, "state_start_time": TIME,
    "serialized_state": JSONB, "name": TEXT,
}


class Relation(NamedTuple):
    """A Hasura relationship: rows of `table` whose `remote` column equals this row's `local` column."""

    table: str
    local: str
    remote: str


class Table(NamedTuple):
    """One table: its columns (name -> Hasura type), object relations (one row) and array relations (many)."""

    columns: Dict[str, str]
    objects: Dict[str, Relation]
    arrays: Dict[str, Relation]


def _table(columns: Dict[str, str], objects: Dict[str, Tuple[str, str, str]] = None,
           arrays: Dict[str, Tuple[str, str, str]] = None) -> Table:
    return Table(
        columns=dict(columns),
        objects={k: Relation(*v) for k, v in (objects or {}).items()},
        arrays={k: Relation(*v) for k, v in (arrays or {}).items()},
    )


TABLES: Dict[str, Table] = {
    "tenant": _table(
        {**_BASE, "name": TEXT, "slug": TEXT, "info": JSONB, "settings": JSONB},
        arrays={"projects": ("project", "id", "tenant_id"), "flows": ("flow", "id", "tenant_id"),
                "flow_groups": ("flow_group", "id", "tenant_id"), "agents": ("agent", "id", "tenant_id")},
    ),
    "project": _table(
        {**_BASE, "name": TEXT, "description": TEXT},
        objects={"tenant": ("tenant", "tenant_id", "id")},
        arrays={"flows": ("flow", "id", "project_id")},
    ),
    "flow_group": _table(
        {**_BASE, "name": TEXT, "description": TEXT, "settings": JSONB, "default_parameters": JSONB,
         "schedule": JSONB, "labels": JSONB, "run_config": JSONB},
        objects={"tenant": ("tenant", "tenant_id", "id")},
        arrays={"flows": ("flow", "id", "flow_group_id")},
    ),
    "flow": _table(
        {**_BASE, "project_id": UUID, "flow_group_id": UUID, "archived": BOOL, "schedule": JSONB,
         "is_schedule_active": BOOL, "version": INT, "version_group_id": TEXT, "core_version": TEXT,
         "name": TEXT, "description": TEXT, "serialized_flow": JSONB, "environment": JSONB,
         "run_config": JSONB, "storage": JSONB, "parameters": JSONB, "settings": JSONB},
        objects={"tenant": ("tenant", "tenant_id", "id"), "project": ("project", "project_id", "id"),
                 "flow_group": ("flow_group", "flow_group_id", "id")},
        arrays={"tasks": ("task", "id", "flow_id"), "edges": ("edge", "id", "flow_id"),
                "flow_runs": ("flow_run", "id", "flow_id"),
                "versions": ("flow", "version_group_id", "version_group_id")},
    ),
    "task": _table(
        {**_BASE, "flow_id": UUID, "name": TEXT, "slug": TEXT, "description": TEXT, "type": TEXT,
         "max_retries": INT, "retry_delay": INTERVAL, "trigger": TEXT, "tags": JSONB, "mapped": BOOL,
         "auto_generated": BOOL, "cache_key": TEXT, "is_root_task": BOOL, "is_terminal_task": BOOL,
         "is_reference_task": BOOL},
        objects={"flow": ("flow", "flow_id", "id")},
        arrays={"task_runs": ("task_run", "id", "task_id"),
                "upstream_edges": ("edge", "id", "downstream_task_id"),
                "downstream_edges": ("edge", "id", "upstream_task_id")},
    ),
    "edge": _table(
        {**_BASE, "flow_id": UUID, "upstream_task_id": UUID, "downstream_task_id": UUID, "key": TEXT,
         "mapped": BOOL},
        objects={"flow": ("flow", "flow_id", "id"), "upstream_task": ("task", "upstream_task_id", "id"),
                 "downstream_task": ("task", "downstream_task_id", "id")},
    ),
    "flow_run": _table(
        {**_BASE, **_STATE_COLUMNS, "flow_id": UUID, "parameters": JSONB, "labels": JSONB,
         "run_config": JSONB, "context": JSONB, "scheduled_start_time": TIME, "auto_scheduled": BOOL,
         "times_resurrected": INT, "idempotency_key": TEXT, "agent_id": UUID},
        objects={"tenant": ("tenant", "tenant_id", "id"), "flow": ("flow", "flow_id", "id"),
                 "agent": ("agent", "agent_id", "id")},
        arrays={"states": ("flow_run_state", "id", "flow_run_id"),
                "task_runs": ("task_run", "id", "flow_run_id"), "logs": ("log", "id", "flow_run_id")},
    ),
    "task_run": _table(
        {**_BASE, **_STATE_COLUMNS, "flow_run_id": UUID, "task_id": UUID, "map_index": INT,
         "cache_key": TEXT},
        objects={"tenant": ("tenant", "tenant_id", "id"), "flow_run": ("flow_run", "flow_run_id", "id"),
                 "task": ("task", "task_id", "id")},
        arrays={"states": ("task_run_state", "id", "task_run_id"), "logs": ("log", "id", "task_run_id"),
                "artifacts": ("task_run_artifact", "id", "task_run_id")},
    ),
    "flow_run_state": _table(
        {**_BASE, "flow_run_id": UUID, "timestamp": TIME, "message": TEXT, "result": JSONB,
         "start_time": TIME, "state": TEXT, "version": INT, "serialized_state": JSONB},
        objects={"flow_run": ("flow_run", "flow_run_id", "id")},
    ),
    "task_run_state": _table(
        {**_BASE, "task_run_id": UUID, "timestamp": TIME, "message": TEXT, "result": JSONB,
         "start_time": TIME, "state": TEXT, "version": INT, "serialized_state": JSONB},
        objects={"task_run": ("task_run", "task_run_id", "id")},
    ),
    "log": _table(
        {**_BASE, "flow_run_id": UUID, "task_run_id": UUID, "timestamp": TIME, "name": TEXT,
         "level": TEXT, "message": TEXT, "info": JSONB},
        objects={"flow_run": ("flow_run", "flow_run_id", "id"), "task_run": ("task_run", "task_run_id", "id")},
    ),
    "agent": _table(
        {**_BASE, "agent_config_id": UUID, "name": TEXT, "type": TEXT, "core_version": TEXT,
         "labels": JSONB, "last_queried": TIME},
        objects={"tenant": ("tenant", "tenant_id", "id")},
        arrays={"flow_runs": ("flow_run", "id", "agent_id")},
    ),
    "agent_config": _table(
        {**_BASE, "name": TEXT, "settings": JSONB},
        arrays={"agents": ("agent", "id", "agent_config_id")},
    ),
    "task_run_artifact": _table(
        {**_BASE, "task_run_id": UUID, "kind": TEXT, "data": JSONB},
        objects={"task_run": ("task_run", "task_run_id", "id")},
    ),
    "message": _table(
        {**_BASE, "user_id": UUID, "read": BOOL, "type": TEXT, "text": TEXT, "content": JSONB},
    ),
    # Server's cloud_hook (no relationships in its Hasura metadata); cloud_hooks.py
    "cloud_hook": _table(
        {**_BASE, "name": TEXT, "states": JSONB, "type": TEXT, "config": JSONB, "active": BOOL,
         "version_group_id": TEXT},
    ),
    # Server's utility.traversal: the row type of the traversal functions below (the table itself stays empty)
    "utility_traversal": _table(
        {"tenant_id": UUID, "task_id": UUID, "depth": INT},
        objects={"task": ("task", "task_id", "id")},
    ),
}

# What Postgres does to a referring row when the row it refers to is deleted (Server's foreign keys).
CASCADE = "CASCADE"
SET_NULL = "SET NULL"


class ForeignKey(NamedTuple):
    """`table.column` refers to a row of `parent`; `on_delete` is what becomes of it when that row goes."""

    table: str
    column: str
    parent: str
    on_delete: str


def _keys(on_delete: str, *keys: Tuple[str, str, str]) -> Tuple[ForeignKey, ...]:
    return tuple(ForeignKey(table, column, parent, on_delete) for table, column, parent in keys)


# Server's foreign keys on the tables and columns kept here, as its migrations declare them
# (services/postgres/alembic/versions: the initial migration, then the message, agent and artifact ones).
# Store.delete applies them, so a mutation deletes one row and Postgres's rules do the rest, as on Server.
FOREIGN_KEYS: Tuple[ForeignKey, ...] = _keys(CASCADE, *(
    (table, "tenant_id", "tenant") for table in (
        "project", "flow_group", "flow", "task", "edge", "flow_run", "task_run", "flow_run_state",
        "task_run_state", "log", "agent", "agent_config", "task_run_artifact", "message", "cloud_hook")),
    ("flow", "project_id", "project"), ("flow", "flow_group_id", "flow_group"),
    ("task", "flow_id", "flow"), ("edge", "flow_id", "flow"),
    ("edge", "upstream_task_id", "task"), ("edge", "downstream_task_id", "task"),
    ("flow_run", "flow_id", "flow"), ("flow_run_state", "flow_run_id", "flow_run"),
    ("task_run", "flow_run_id", "flow_run"), ("task_run", "task_id", "task"),
    ("task_run_state", "task_run_id", "task_run"), ("log", "flow_run_id", "flow_run"),
    ("log", "task_run_id", "task_run"), ("task_run_artifact", "task_run_id", "task_run"),
) + _keys(SET_NULL, ("flow_run", "agent_id", "agent"), ("agent", "agent_config_id", "agent_config"))


def referring_keys() -> Dict[str, Tuple[ForeignKey, ...]]:
    """parent table -> the foreign keys that refer to it."""
    result: Dict[str, Tuple[ForeignKey, ...]] = {}
    for key in FOREIGN_KEYS:
        result[key.parent] = result.get(key.parent, ()) + (key,)
    return result


# Hasura-tracked SQL functions: name -> (the table of their rows, their arguments as name -> Hasura type).
# start_task_ids is a Postgres array literal ("{id,id}"), Hasura's `_uuid` scalar.
FUNCTIONS: Dict[str, Tuple[str, Dict[str, str]]] = {
    "utility_downstream_tasks": ("utility_traversal", {"start_task_ids": "_uuid", "depth_limit": INT}),
    "utility_upstream_tasks": ("utility_traversal", {"start_task_ids": "_uuid", "depth_limit": INT}),
}


# Indexes besides the ones every array relation's column gets (`indexes`): the agents' queue (state, then when
# due), the orders the UI, the dashboard and retention read runs and logs in, and the idempotency key. Each is a
# tuple of columns; SQLite orders ties within an index by rowid, which is table order.
EXTRA_INDEXES: Dict[str, Tuple[Tuple[str, ...], ...]] = {
    "flow_run": (("state", "state_start_time"), ("flow_id", "scheduled_start_time"), ("scheduled_start_time",),
                 ("start_time",), ("end_time",), ("created",), ("idempotency_key",)),
    "task_run": (("state",),),
    "log": (("flow_run_id", "timestamp"), ("timestamp",)),
    "cloud_hook": (("tenant_id",),),
}


def indexes() -> Dict[str, Tuple[Tuple[str, ...], ...]]:
    """The store's indexes per table: one on each column an array relation looks rows up by (a cascading
    delete follows the same columns), then EXTRA_INDEXES; an index on a column that leads a longer one is left
    out.

    Returns:
        table name -> tuples of column names, without repeats
    """
    result: Dict[str, Tuple[Tuple[str, ...], ...]] = {}
    for table in TABLES.values():
        for rel in table.arrays.values():
            if (rel.remote,) not in result.get(rel.table, ()):
                result[rel.table] = result.get(rel.table, ()) + ((rel.remote,),)
    for name, extra in EXTRA_INDEXES.items():
        result[name] = result.get(name, ()) + tuple(i for i in extra if i not in result.get(name, ()))
    # an index on (a, b) also serves lookups by a alone
    return {name: tuple(i for i in found if len(i) > 1 or not any(o[0] == i[0] and len(o) > 1 for o in found))
            for name, found in result.items()}
