"""The emulator's tables, kept in SQLite (a file with --db, else a file of its own in a temporary folder).

Nothing is kept in memory between requests: each read asks SQLite, so memory does not grow with history.
Rows come out as dicts of tables.py's columns (dbfile.py says how they are stored); filters.py compiles what
it can of a query's `where` and `order_by` to SQL (sql.py) and hands it to `select` and `count`.

Access goes through a readers-writer lock (rwlock.py): the HTTP server holds it shared for a whole GraphQL
query and exclusively for a whole mutation, so a mutation's checks and writes are atomic even when many
agents poll at once, queries never see half a mutation, and queries run side by side, each on a connection of
its own (`reading`, `writing`). A mutation is one SQLite transaction (`transaction`): all of its writes or none.
Rows handed out are copies: changing one changes nothing stored.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import tempfile
import threading
import uuid
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from . import dbfile
from .rwlock import ReadWriteLock
from .sql import OrderKey
from .tables import BOOL, CASCADE, JSONB, TABLES, TIME, referring_keys
from .timestamps import now, sort_key

# A condition in SQL over the table's columns, and its parameters (sql.Compiled is one).
Condition = Tuple[str, Sequence[Any]]
EVERYTHING: Condition = ("1", ())


class Store:
    """All tables of the emulator.

    Args:
        path: SQLite database file; None keeps the tables in a temporary file, removed by `close`
    """

    def __init__(self, path: Optional[str] = None) -> None:
        self.lock = ReadWriteLock()
        self.path = path
        self._temporary = None if path else tempfile.mkdtemp(prefix="prefect-emulator-")
        self._file = path or os.path.join(self._temporary, "store.db")  # type: ignore[arg-type]
        self._lock_file = _claim(path) if path else None
        try:
            dbfile.prepare(self._file, self._connect, _canonical_time)
        except BaseException:
            self._release_files()
            raise
        self._local = threading.local()
        self._idle: List[sqlite3.Connection] = []  # connections no scope uses now
        self._opened: List[sqlite3.Connection] = []
        self._pool_lock = threading.Lock()
        self._in_transaction = False
        self._columns = {name: list(spec.columns) for name, spec in TABLES.items()}
        self._select = {name: ", ".join(f'"{c}"' for c in columns) for name, columns in self._columns.items()}
        self._json = {name: [c for c, k in spec.columns.items() if k == JSONB] for name, spec in TABLES.items()}
        self._bool = {name: [c for c, k in spec.columns.items() if k == BOOL] for name, spec in TABLES.items()}
        self._referring = referring_keys()

    # ------------------------------------------------------------------ connections
    def _connect(self, file: Optional[str] = None) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per mutation
        conn = sqlite3.connect(file or self._file, check_same_thread=False, isolation_level=None, uri=True)
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL: a commit survives the emulator's crash; a power loss may undo the last ones, never corrupt
        # the file. A temporary store need not survive either.
        conn.execute("PRAGMA synchronous = " + ("NORMAL" if self.path else "OFF"))
        conn.execute("PRAGMA busy_timeout = 10000")  # a checkpoint may hold the file for a moment
        conn.execute("PRAGMA cache_size = -8000")  # KiB per connection: memory stays bounded
        return conn

    def _conn(self) -> sqlite3.Connection:
        """The connection of the current scope; outside any scope (tests, tools), this thread's own."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = getattr(self._local, "own", None)
            if conn is None:
                conn = self._local.own = self._connect()
                with self._pool_lock:
                    self._opened.append(conn)
        return conn

    @contextlib.contextmanager
    def _scope(self) -> Iterator[None]:
        """Gives this thread a pooled connection until the scope ends (nested scopes share it)."""
        if getattr(self._local, "conn", None) is not None:
            yield
            return
        with self._pool_lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
            with self._pool_lock:
                self._opened.append(conn)
        self._local.conn = conn
        try:
            yield
        finally:
            self._local.conn = None
            with self._pool_lock:
                self._idle.append(conn)

    @contextlib.contextmanager
    def reading(self) -> Iterator["Store"]:
        """Shared access for a whole query: no mutation runs until it ends, so it reads one consistent state."""
        with self.lock.reading(), self._scope():
            yield self

    @contextlib.contextmanager
    def writing(self) -> Iterator["Store"]:
        """Exclusive access for a whole operation; its writes still go in `transaction`s."""
        with self.lock.writing(), self._scope():
            yield self

    # ------------------------------------------------------------------ reads
    def all(self, table: str) -> List[dict]:
        """Returns every row of `table`, oldest first."""
        return self.select(table)

    def get(self, table: str, row_id: Any) -> Optional[dict]:
        """Returns the row with this id, or None."""
        if row_id is None:
            return None
        found = self._rows(table, '"id" = ?', (str(row_id),))
        return found[0] if found else None

    def count(self, table: str) -> int:
        """How many rows `table` has."""
        return self.count_where(table, EVERYTHING)

    def find(self, table: str, column: str, value: Any) -> List[dict]:
        """Returns the rows whose `column` equals `value`, oldest first (nulls never match)."""
        if value is None:
            return []
        return self._rows(table, f'"{column}" = ?', (_encode(TABLES[table].columns[column], value),))

    def select(self, table: str, where: Condition = EVERYTHING, order: Sequence[OrderKey] = (),
               offset: int = 0, limit: Optional[int] = None) -> List[dict]:
        """The rows matching `where`, in `order` (ties, and everything without an order, in table order).

        When the first key is a plain column, the rows where it is null and the others are read apart: an index
        on the column then serves Postgres's null ordering, which is not SQLite's.
        """
        first = order[0] if order else None
        if first is None or first.column is None:
            return self._rows(table, where[0], where[1], order, offset, limit)
        # without nulls, the first key needs no NULLS clause, which would keep SQLite from reading its index
        parts = [(f"{first.expression} IS NULL", order[1:]),
                 (f"{first.expression} IS NOT NULL", [first._replace(nulls_first=None), *order[1:]])]
        if not first.nulls_first:
            parts.reverse()
        rows: List[dict] = []
        for condition, part_order in parts:
            if limit is not None and len(rows) >= limit:
                break
            part_where = (f"({where[0]}) AND {condition}", where[1])
            want = None if limit is None else limit - len(rows)
            found = self._rows(table, part_where[0], part_where[1], part_order, offset, want)
            if offset and not found:  # the whole part lies before the page
                offset -= self.count_where(table, part_where)
                offset = max(offset, 0)
            else:
                offset = 0
            rows.extend(found)
        return rows

    def iterate(self, table: str, where: Condition, order: Sequence[OrderKey]) -> Iterator[dict]:
        """The rows matching `where` in `order`, read as they are consumed (the caller stops when it has enough).
        Only inside a `reading` or `writing` scope: its cursor must not outlive the state it reads."""
        sql, params = self._query(table, where[0], where[1], order)
        cursor = self._conn().execute(sql, params)
        while True:
            batch = cursor.fetchmany(64)
            if not batch:
                return
            for values in batch:
                yield self._decode(table, values)

    def ids(self, table: str, where: Condition, limit: int) -> List[str]:
        """The ids of the first `limit` rows matching `where`, in table order."""
        return [row_id for (row_id,) in self._conn().execute(
            f'SELECT "id" FROM "{table}" WHERE {where[0]} ORDER BY seq LIMIT ?', [*where[1], limit])]

    def explain(self, table: str, where: Condition, order: Sequence[OrderKey] = ()) -> List[str]:
        """SQLite's plan for `select` of these rows (EXPLAIN QUERY PLAN), one line per step: shows which
        indexes a query uses."""
        sql, params = self._query(table, where[0], where[1], order)
        return [line[-1] for line in self._conn().execute("EXPLAIN QUERY PLAN " + sql, params)]

    def count_where(self, table: str, where: Condition) -> int:
        """How many rows match `where`."""
        return self._conn().execute(f'SELECT count(*) FROM "{table}" WHERE {where[0]}', where[1]).fetchone()[0]

    def _rows(self, table: str, condition: str, params: Sequence[Any], order: Sequence[OrderKey] = (),
              offset: int = 0, limit: Optional[int] = None) -> List[dict]:
        sql, all_params = self._query(table, condition, params, order, offset, limit)
        return [self._decode(table, values) for values in self._conn().execute(sql, all_params)]

    def _query(self, table: str, condition: str, params: Sequence[Any], order: Sequence[OrderKey] = (),
               offset: int = 0, limit: Optional[int] = None) -> Tuple[str, List[Any]]:
        all_params = list(params)
        keys = []
        for key in order:
            nulls = "" if key.nulls_first is None else f" NULLS {'FIRST' if key.nulls_first else 'LAST'}"
            keys.append(f"{key.expression} {'DESC' if key.descending else 'ASC'}{nulls}")
            all_params.extend(key.params)
        keys.append("seq")
        sql = f'SELECT {self._select[table]} FROM "{table}" WHERE {condition} ORDER BY {", ".join(keys)}'
        if limit is not None or offset:
            sql += " LIMIT ? OFFSET ?"
            all_params += [-1 if limit is None else limit, offset]
        return sql, all_params

    def _decode(self, table: str, values: Sequence[Any]) -> dict:
        row = dict(zip(self._columns[table], values))
        for column in self._json[table]:
            if row[column] is not None:
                row[column] = json.loads(row[column])
        for column in self._bool[table]:
            if row[column] is not None:
                row[column] = bool(row[column])
        return row

    # ----------------------------------------------------------------- writes
    def insert(self, table: str, doc: dict) -> dict:
        """Adds a row; fills id (a new UUID unless given), created, updated and missing columns with null.

        Returns:
            the stored row
        """
        self._check_writing()
        stamp = now()
        row = {col: None for col in TABLES[table].columns}
        row.update(doc)
        row["id"] = str(row.get("id") or uuid.uuid4())
        row["created"] = row.get("created") or stamp
        row["updated"] = stamp
        stored = self._encode_row(table, row)
        columns = list(stored)
        try:
            self._conn().execute(f'INSERT INTO "{table}" (' + ", ".join(f'"{c}"' for c in columns) + ") VALUES ("
                                 + ", ".join("?" * len(columns)) + ")", list(stored.values()))
        except sqlite3.IntegrityError:
            raise ValueError(f"Uniqueness violation. A {table} with id {row['id']} already exists.") from None
        return self._decode(table, [stored[c] for c in self._columns[table]])

    def update(self, table: str, row_id: str, **changes: Any) -> dict:
        """Replaces some columns of a row.

        Returns:
            the new row

        Raises:
            KeyError: no row has this id
        """
        self._check_writing()
        changes = dict(changes, updated=now())
        stored = self._encode_row(table, changes)
        done = self._conn().execute(f'UPDATE "{table}" SET ' + ", ".join(f'"{c}" = ?' for c in stored) + ' WHERE "id" = ?',
                             [*stored.values(), row_id])
        if not done.rowcount:
            raise KeyError(row_id)
        return self.get(table, row_id)  # type: ignore[return-value]

    def delete(self, table: str, row_id: str) -> Dict[str, int]:
        """Removes a row if it exists, with what refers to it as Server's foreign keys say (tables.FOREIGN_KEYS):
        the referring rows of an ON DELETE CASCADE key go too, an ON DELETE SET NULL column is emptied.

        Returns:
            how many rows went, per table
        """
        return self.delete_where(table, ('"id" = ?', (str(row_id),)))

    def delete_where(self, table: str, where: Condition) -> Dict[str, int]:
        """Removes the rows matching `where`, and what refers to them, as `delete` does.

        Returns:
            how many rows went, per table (tables that lost none are left out)
        """
        self._check_writing()
        removed: Dict[str, int] = {}
        self._delete(table, where[0], list(where[1]), removed)
        return removed

    def _delete(self, table: str, condition: str, params: List[Any], removed: Dict[str, int]) -> None:
        conn = self._conn()
        chosen = f'SELECT "id" FROM "{table}" WHERE {condition}'
        for key in self._referring.get(table, ()):
            referring = f'"{key.column}" IN ({chosen})'
            if key.on_delete == CASCADE:
                self._delete(key.table, referring, params, removed)
            else:
                conn.execute(f'UPDATE "{key.table}" SET "{key.column}" = NULL, "updated" = ? WHERE {referring}',
                             [now(), *params])
        gone = conn.execute(f'DELETE FROM "{table}" WHERE {condition}', params).rowcount
        if gone:
            removed[table] = removed.get(table, 0) + gone

    def _check_writing(self) -> None:
        if not self._in_transaction:
            raise RuntimeError("store writes must happen inside Store.transaction()")

    def _encode_row(self, table: str, row: Dict[str, Any]) -> Dict[str, Any]:
        columns = TABLES[table].columns
        unknown = sorted(set(row) - set(columns))
        if unknown:
            raise ValueError(f"{table} has no column {', '.join(unknown)}")
        return {column: _encode(columns[column], value) for column, value in row.items()}


    @contextlib.contextmanager
    def transaction(self) -> Iterator["Store"]:
        """Groups writes: all of them reach SQLite in one transaction, or none."""
        with self.lock.writing(), self._scope():
            if self._in_transaction:  # nested: the outer transaction commits
                yield self
                return
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            self._in_transaction = True
            try:
                yield self
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            finally:
                self._in_transaction = False

    # ----------------------------------------------------------------- upkeep
    def integrity_check(self) -> str:
        """Runs SQLite's integrity check. It takes the store lock, so /health must not call it: /health answers
        while a long query holds the lock."""
        with self.writing():
            return self._conn().execute("PRAGMA integrity_check").fetchone()[0]

    def reclaim(self, pages: int) -> Tuple[int, int]:
        """Gives up to `pages` free pages back to the file system (incremental vacuum), in a step of its own.

        Returns:
            (pages given back, free pages left in the file)
        """
        with self.writing():
            conn = self._conn()
            before = conn.execute("PRAGMA freelist_count").fetchone()[0]
            conn.execute(f"PRAGMA incremental_vacuum({int(pages)})").fetchall()
            left = conn.execute("PRAGMA freelist_count").fetchone()[0]
            return before - left, left

    def page_count(self) -> int:
        """How many pages the file has (its size in pages)."""
        return self._conn().execute("PRAGMA page_count").fetchone()[0]

    def close(self) -> None:
        """Closes the SQLite connections and lets another emulator open the file."""
        with self.lock.writing():
            with self._pool_lock:
                for conn in self._opened:
                    conn.close()
                self._opened.clear()
                self._idle.clear()
            self._local = threading.local()
            self._release_files()

    def _release_files(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None


def _encode(kind: str, value: Any) -> Any:
    """A column value as the file stores it (dbfile.py)."""
    if value is None:
        return None
    if kind == JSONB:
        return json.dumps(value)
    if kind == BOOL:
        return int(bool(value))
    if kind == TIME:
        return _canonical_time(value)
    if isinstance(value, (dict, list)):
        raise TypeError(f"a {kind} column cannot hold {value!r}")
    return value


def _canonical_time(value: Any) -> Any:
    """A timestamp in the form that sorts as the instant it names; what is not a timestamp, as it is."""
    try:
        return sort_key(value)
    except ValueError:
        return value


class DatabaseInUse(Exception):
    """Another emulator process serves the same --db file."""


def _claim(path: str) -> Any:
    """Takes an exclusive lock beside the database: two emulators on one file would overwrite each other's
    rows and each would miss the other's writes to the Submitted lock."""
    import fcntl
    handle = open(path + ".lock", "a")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise DatabaseInUse(f"{path} is in use by another emulator process: stop it, or give this one "
                            "another --db file")
    return handle
