"""The emulator's SQLite file: its format, the checks made before serving from it, and the upgrade of older files.

The format: one SQLite table per table of tables.py, with one column per column (no type affinity, so values
keep their Python type), `_seq INTEGER PRIMARY KEY` (table order), `_extra` (JSON of keys beyond the columns),
an index on every relation and filter column (`tables.indexed_columns`) and on the columns queries order by
(`ORDER_INDEXES`). `PRAGMA application_id` marks the file as the emulator's and `PRAGMA user_version` holds
the format's version (`SCHEMA_VERSION`). Files are made with incremental auto-vacuum, so that retention can give
disk space back a little at a time.

Versions: 0 is the format of emulators before this one (each table as `(id TEXT PRIMARY KEY, doc TEXT)`, the
row as a JSON document, no application id); it is converted at start, once, in one transaction (a failure
leaves the file as it was), after a backup beside it (`<db>.v0-backup`, made through SQLite's backup API after
a checkpoint, so it holds what the write-ahead log held too).

Refused, with a message naming the file and the fix: a file that is not SQLite (corrupt), one shorter than its
header says (truncated), a SQLite database of something else (foreign) and one from a newer emulator.
"""
from __future__ import annotations

import json
import os
import sqlite3
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .tables import BOOL, JSONB, TABLES, indexed_columns

SCHEMA_VERSION = 1
APPLICATION_ID = 0x50524546  # "PREF"
LEGACY_VERSION = 0
BACKUP_SUFFIX = ".v0-backup"
_HEADER = b"SQLite format 3\x00"

# Columns that queries order or range over, besides relation and filter columns: the agents' queue (runs due
# by state start time), the UI's run lists (by start or scheduled time), retention (by end time), logs (a
# run's newest first), idempotency keys and the scheduler's latest auto-scheduled run of a flow.
ORDER_INDEXES: Dict[str, List[Tuple[str, ...]]] = {
    "flow_run": [("state", "state_start_time"), ("tenant_id", "state", "state_start_time"), ("start_time",),
                 ("scheduled_start_time",), ("end_time",), ("created",), ("updated",),
                 ("flow_id", "idempotency_key"), ("flow_id", "auto_scheduled", "scheduled_start_time")],
    "task_run": [("flow_run_id", "state", "state_start_time"), ("state", "state_start_time"),
                 ("start_time",), ("heartbeat",)],
    "flow_run_state": [("flow_run_id", "version")],
    "task_run_state": [("task_run_id", "version")],
    "log": [("flow_run_id", "timestamp"), ("task_run_id", "timestamp"), ("timestamp",)],
}


class BadDatabase(Exception):
    """The --db file cannot be served from; the message names the file and what to do."""


# ---------------------------------------------------------------------------------------------- values
def sql_columns(table: str) -> List[str]:
    """The SQL columns of `table` besides `_seq` and `_extra`: its columns, and `id` (every row has one)."""
    columns = list(TABLES[table].columns)
    return columns if "id" in columns else columns + ["id"]


def encode(table: str, column: str, value: Any) -> Any:
    """`value` as the SQL column `column` of `table` holds it (jsonb as JSON text, booleans as 0/1)."""
    if value is None:
        return None
    kind = TABLES[table].columns.get(column)
    if kind == JSONB:
        return json.dumps(value)
    if kind == BOOL and isinstance(value, bool):
        return int(value)
    return value


def encode_row(table: str, row: dict) -> Tuple[List[str], List[Any]]:
    """(quoted SQL column names, values) of a whole row, `_extra` last: keys that are no column, and
    structures given for a scalar column (kept as they were given, the column left null)."""
    names: List[str] = []
    values: List[Any] = []
    extra: Dict[str, Any] = {}
    columns = set(sql_columns(table))
    for name, value in row.items():
        if name not in columns:
            extra[name] = value
            continue
        stored = encode(table, name, value)
        if isinstance(stored, (dict, list)):
            extra[name] = value
            stored = None
        names.append(f'"{name}"')
        values.append(stored)
    names.append("_extra")
    values.append(json.dumps(extra) if extra else None)
    return names, values


# ------------------------------------------------------------------------------------------ connections
def check_file(path: str) -> None:
    """Refuses a file that is not a whole SQLite database, before SQLite opens (and would write to) it.

    Raises:
        BadDatabase: not SQLite, or shorter than its header says
    """
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return  # a new database
    with open(path, "rb") as handle:
        header = handle.read(100)
    if len(header) < 100 or not header.startswith(_HEADER):
        raise BadDatabase(f"{path} is not a SQLite database (corrupt, or another kind of file): move it away "
                          "or give --db a new file name; the emulator makes a new database there")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    size = os.path.getsize(path)
    if pages and size < pages * page_size:
        raise BadDatabase(f"{path} is truncated ({size} bytes of {pages * page_size}): restore it from a "
                          "backup (a .v0-backup beside it, if the emulator made one) or give --db a new file name")


def configure(conn: sqlite3.Connection, durable: bool) -> None:
    """Sets up one connection: write-ahead log, and synchronous=NORMAL for a --db file (a commit survives a crash
    of the process; a power loss may cost the last commits, never the file) or OFF for a scratch file."""
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA analysis_limit = 400")  # statistics from samples: quick on a file of any size
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {'NORMAL' if durable else 'OFF'}")


def analyze(conn: sqlite3.Connection) -> None:
    """Gives the query planner statistics of every table, from a sample of each index (fast on any size): without
    them it takes any equality for a narrow one, and may walk a tenant's every run for the agents' poll."""
    conn.execute("PRAGMA optimize = 0x10002")


def close(conn: sqlite3.Connection) -> None:
    """Lets SQLite refresh its statistics before the last connection closes (cheap, and plans stay good)."""
    conn.execute("PRAGMA optimize")


# ---------------------------------------------------------------------------------------------- schema
NEW, CURRENT, LEGACY = "new", "current", "legacy"


def inspect(conn: sqlite3.Connection, path: Optional[str]) -> str:
    """What the file is, read before anything is written to it (a refused file is left exactly as it was).

    Returns:
        NEW (no table yet), CURRENT (this format, or an earlier one of ours) or LEGACY (format 0)

    Raises:
        BadDatabase: a corrupt, foreign or newer file
    """
    name = path or "the scratch database"
    try:
        tables = _tables(conn)
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.OperationalError:
        raise
    except sqlite3.DatabaseError as exc:
        raise BadDatabase(f"{name} cannot be read ({exc}): it is corrupt; move it away or give --db a new file "
                          "name") from None
    if not tables and app_id == 0:
        return NEW
    if app_id == APPLICATION_ID:
        if version > SCHEMA_VERSION:
            raise BadDatabase(f"{name} was written by a newer emulator (format {version}, this one reads up to "
                              f"{SCHEMA_VERSION}): run that emulator, or give --db a new file name")
        return CURRENT
    if app_id == 0 and _is_legacy(conn, tables):
        return LEGACY
    raise BadDatabase(f"{name} is not an emulator database (it holds tables {', '.join(sorted(tables))}): "
                      "give --db a new file name, or the file an emulator made")


def prepare(conn: sqlite3.Connection, path: Optional[str], kind: str) -> Optional[int]:
    """Makes the tables of a new file, adds those declared since an existing one was made, upgrades format 0.

    Returns:
        the version the file was upgraded from, or None

    Raises:
        BadDatabase: a failed upgrade (the file is left as it was)
    """
    if kind == LEGACY:
        _upgrade_legacy(conn, path, _tables(conn))
        return LEGACY_VERSION
    _create(conn)
    return None


def _tables(conn: sqlite3.Connection) -> set:
    return {row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}


def _create(conn: sqlite3.Connection) -> None:
    """Makes every table, column and index that is missing, and stamps the file (all in one transaction)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        _create_tables(conn)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _create_tables(conn: sqlite3.Connection) -> None:
    indexed = indexed_columns()
    for table in TABLES:
        columns = sql_columns(table)
        existing = [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]
        if not existing:
            defs = ", ".join(f'"{c}" NOT NULL UNIQUE' if c == "id" else f'"{c}"' for c in columns)
            conn.execute(f'CREATE TABLE "{table}" (_seq INTEGER PRIMARY KEY, {defs}, _extra)')
        else:
            for column in columns:
                if column not in existing:
                    conn.execute(f'ALTER TABLE "{table}" ADD COLUMN "{column}"')
        keys = [(c,) for c in sorted(indexed.get(table, ()))] + ORDER_INDEXES.get(table, [])
        for key in keys:
            if all(c in columns for c in key):
                conn.execute(f'CREATE INDEX IF NOT EXISTS "ix_{table}__{"__".join(key)}" ON "{table}" '
                             f'({", ".join(chr(34) + c + chr(34) for c in key)})')


# ---------------------------------------------------------------------------------------------- upgrade
def _is_legacy(conn: sqlite3.Connection, tables: set) -> bool:
    """True for a file of format 0: only tables of ours, each exactly (id, doc)."""
    if not tables <= set(TABLES):
        return False
    return all([row[1] for row in conn.execute(f'PRAGMA table_info("{t}")')] == ["id", "doc"] for t in tables)


def _upgrade_legacy(conn: sqlite3.Connection, path: Optional[str], tables: set) -> None:
    """Converts a format-0 file in place: backup beside it, then one transaction that renames the document
    tables away, makes the new ones, copies every row in table order and drops the old ones."""
    if path:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        backup = path + BACKUP_SUFFIX
        if os.path.exists(backup):
            os.remove(backup)  # left by an upgrade that failed: the file it copied is still untouched
        target = sqlite3.connect(backup)
        try:
            conn.backup(target)
        finally:
            target.close()
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table in tables:
            conn.execute(f'ALTER TABLE "{table}" RENAME TO "_v0_{table}"')
        _create_tables(conn)
        for table in tables:
            _copy_documents(conn, table)
            conn.execute(f'DROP TABLE "_v0_{table}"')
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException as exc:
        conn.execute("ROLLBACK")
        raise BadDatabase(f"{path} could not be upgraded from the emulator's format 0 ({exc}); it is left as it "
                          f"was: start an emulator of the version that wrote it, or give --db a new file name"
                          ) from None
    # the new tables are in; incremental vacuum needs the whole file rewritten once, outside a transaction
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute("VACUUM")


def _copy_documents(conn: sqlite3.Connection, table: str) -> None:
    """Copies the JSON documents of `_v0_<table>` into `table`, row by row in their table order."""
    reader = conn.execute(f'SELECT id, doc FROM "_v0_{table}" ORDER BY rowid')
    while True:
        batch = reader.fetchmany(1000)
        if not batch:
            return
        for row_id, doc in batch:
            row = json.loads(doc)
            row["id"] = row_id
            names, values = encode_row(table, row)
            conn.execute(insert_sql(table, names), values)


def insert_sql(table: str, names: Sequence[str]) -> str:
    """The INSERT statement of a row with these quoted column names."""
    return f'INSERT INTO "{table}" ({", ".join(names)}) VALUES ({", ".join("?" * len(names))})'
