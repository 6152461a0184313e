"""Rows of every table, kept in memory and written through to SQLite (a file with --db, else `:memory:`).

Each table is stored as (id TEXT PRIMARY KEY, doc TEXT) with the row as a JSON document; filtering and sorting
happen in Python over the in-memory copy (test data is small). All access goes through one re-entrant lock:
the HTTP server holds it for a whole GraphQL operation, so a mutation's checks and writes are atomic even when
many agents poll at once, and every mutation's writes reach SQLite in one transaction.
"""
from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import uuid
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .tables import TABLES, indexed_columns
from .timestamps import now


class Store:
    """All tables of the emulator.

    Args:
        path: SQLite database file; None keeps everything in memory (same code path, `:memory:`)
    """

    def __init__(self, path: Optional[str] = None) -> None:
        self.lock = threading.RLock()
        self.path = path
        self._lock_file = _claim(path) if path else None
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per mutation
        self._conn = sqlite3.connect(path or ":memory:", check_same_thread=False, isolation_level=None)
        if path:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._rows: Dict[str, Dict[str, dict]] = {name: {} for name in TABLES}
        for name in TABLES:
            self._conn.execute(f'CREATE TABLE IF NOT EXISTS "{name}" (id TEXT PRIMARY KEY, doc TEXT NOT NULL)')
            for row_id, doc in self._conn.execute(f'SELECT id, doc FROM "{name}" ORDER BY rowid'):
                self._rows[name][row_id] = json.loads(doc)
        self._indexed = indexed_columns()
        self._index: Dict[Tuple[str, str], Dict[Any, List[str]]] = {}
        # (table, id) -> row before the current transaction touched it (None: did not exist)
        self._undo: Optional[Dict[Tuple[str, str], Optional[dict]]] = None

    # ------------------------------------------------------------------ reads
    def all(self, table: str) -> List[dict]:
        """Returns every row of `table`, oldest first. Rows are shared: callers must not mutate them."""
        return list(self._rows[table].values())

    def get(self, table: str, row_id: Any) -> Optional[dict]:
        """Returns the row with this id, or None."""
        if row_id is None:
            return None
        return self._rows[table].get(str(row_id))

    def find(self, table: str, column: str, value: Any) -> List[dict]:
        """Returns the rows whose `column` equals `value`, oldest first (indexed for relation columns)."""
        if value is None:
            return []
        if column not in self._indexed.get(table, ()):
            return [r for r in self._rows[table].values() if r.get(column) == value]
        index = self._index.get((table, column))
        if index is None:
            index = {}
            for row_id, row in self._rows[table].items():
                index.setdefault(_key(row.get(column)), []).append(row_id)
            self._index[(table, column)] = index
        rows = self._rows[table]
        return [rows[i] for i in index.get(_key(value), ()) if i in rows]

    # ----------------------------------------------------------------- writes
    def insert(self, table: str, doc: dict) -> dict:
        """Adds a row; fills id (a new UUID unless given), created, updated and missing columns with null.

        Returns:
            the stored row
        """
        stamp = now()
        row = {col: None for col in TABLES[table].columns}
        row.update(doc)
        row["id"] = str(row.get("id") or uuid.uuid4())
        row["created"] = row.get("created") or stamp
        row["updated"] = stamp
        if row["id"] in self._rows[table]:
            raise ValueError(f"Uniqueness violation. A {table} with id {row['id']} already exists.")
        self._write(table, row["id"], row)
        return row

    def update(self, table: str, row_id: str, **changes: Any) -> dict:
        """Replaces some columns of a row (copy on write, so rows handed out earlier stay unchanged).

        Returns:
            the new row
        """
        old = self._rows[table][row_id]
        row = dict(old)
        row.update(changes)
        row["updated"] = now()
        self._write(table, row_id, row)
        return row

    def delete(self, table: str, row_id: str) -> None:
        """Removes a row if it exists."""
        if row_id in self._rows[table]:
            self._write(table, row_id, None)

    def delete_where(self, table: str, column: str, value: Any) -> None:
        """Removes every row of `table` whose `column` equals `value` (a cascade from a parent row)."""
        for row in self.find(table, column, value):
            self.delete(table, row["id"])

    def _write(self, table: str, row_id: str, row: Optional[dict]) -> None:
        if self._undo is None:
            raise RuntimeError("store writes must happen inside Store.transaction()")
        old = self._rows[table].get(row_id)
        self._undo.setdefault((table, row_id), old)
        for column in self._indexed.get(table, ()):
            index = self._index.get((table, column))
            if index is None:
                continue
            if old is not None:
                ids = index.get(_key(old.get(column)), [])
                if row_id in ids and (row is None or _key(row.get(column)) != _key(old.get(column))):
                    ids.remove(row_id)
            if row is not None and (old is None or _key(row.get(column)) != _key(old.get(column))):
                index.setdefault(_key(row.get(column)), []).append(row_id)
        if row is None:
            del self._rows[table][row_id]
        else:
            self._rows[table][row_id] = row

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Store"]:
        """Groups writes: all of them reach SQLite in one transaction, or none (memory is rolled back too)."""
        with self.lock:
            if self._undo is not None:  # nested: the outer transaction commits
                yield self
                return
            self._undo = {}
            try:
                yield self
                self._commit(self._undo)
            except BaseException:
                self._rollback(self._undo)
                raise
            finally:
                self._undo = None

    def _commit(self, touched: Dict[Tuple[str, str], Optional[dict]]) -> None:
        if not touched:
            return
        cur = self._conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            for table, row_id in touched:
                row = self._rows[table].get(row_id)
                if row is None:
                    cur.execute(f'DELETE FROM "{table}" WHERE id = ?', (row_id,))
                else:
                    cur.execute(
                        f'INSERT INTO "{table}" (id, doc) VALUES (?, ?) '
                        "ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
                        (row_id, json.dumps(row)),
                    )
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    def _rollback(self, touched: Dict[Tuple[str, str], Optional[dict]]) -> None:
        for (table, row_id), old in touched.items():
            if old is None:
                self._rows[table].pop(row_id, None)
            else:
                self._rows[table][row_id] = old
        # indexes may hold rolled-back ids: rebuild them lazily
        self._index.clear()

    def integrity_check(self) -> str:
        """Runs SQLite's integrity check. It takes the store lock, so /health must not call it: /health answers
        while a long query holds the lock."""
        with self.lock:
            return self._conn.execute("PRAGMA integrity_check").fetchone()[0]

    def close(self) -> None:
        """Closes the SQLite connection and lets another emulator open the file."""
        with self.lock:
            self._conn.close()
            if self._lock_file is not None:
                self._lock_file.close()


class DatabaseInUse(Exception):
    """Another emulator process serves the same --db file."""


def _claim(path: str) -> Any:
    """Takes an exclusive lock beside the database: each process keeps every row in memory, so two
    emulators on one file would each answer from their own copy and overwrite each other's rows."""
    import fcntl
    handle = open(path + ".lock", "a")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise DatabaseInUse(f"{path} is in use by another emulator process: stop it, or give this one "
                            "another --db file")
    return handle


def _key(value: Any) -> Any:
    """Hashable form of a column value for the indexes."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return value
