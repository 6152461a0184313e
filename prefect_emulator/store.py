"""Rows of every table, kept in memory and written through to SQLite (a file with --db, else `:memory:`).

Each table is stored as (id TEXT PRIMARY KEY, doc TEXT) with the row as a JSON document; filtering and sorting
happen in Python over the in-memory copy (filters.py), helped by indexes the store keeps up to date on every
write (indexes.py): rows by id, by relation columns and by a few filter columns (`tables.indexed_columns`),
and, once a query orders by it, by a timestamp column.

Access goes through a readers-writer lock (rwlock.py): the HTTP server holds it shared for a whole GraphQL
query and exclusively for a whole mutation, so a mutation's checks and writes are atomic even when many
agents poll at once, queries never see half a mutation, and queries run side by side. Every mutation's writes
reach SQLite in one transaction. Rows are never changed in place (an update stores a new dict), so a row
handed out stays as it was.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import sqlite3
import uuid
from typing import Any, Collection, Dict, Iterable, Iterator, List, Optional, Tuple

from .indexes import HashIndex, OrderIndex
from .rwlock import ReadWriteLock
from .tables import CASCADE, TABLES, indexed_columns, referring_keys
from .timestamps import now


class Store:
    """All tables of the emulator.

    Args:
        path: SQLite database file; None keeps everything in memory (same code path, `:memory:`)
    """

    def __init__(self, path: Optional[str] = None) -> None:
        self.lock = ReadWriteLock()
        self.path = path
        self._lock_file = _claim(path) if path else None
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per mutation
        self._conn = sqlite3.connect(path or ":memory:", check_same_thread=False, isolation_level=None)
        if path:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._rows: Dict[str, Dict[str, dict]] = {name: {} for name in TABLES}
        # each row's position in its table (the dict's order), so rows found through an index can be put back
        # in table order; a row gets a new number whenever it (re-)enters the dict, as its dict position does
        self._seq: Dict[str, Dict[str, int]] = {name: {} for name in TABLES}
        self._counter = itertools.count()
        for name in TABLES:
            self._conn.execute(f'CREATE TABLE IF NOT EXISTS "{name}" (id TEXT PRIMARY KEY, doc TEXT NOT NULL)')
            for row_id, doc in self._conn.execute(f'SELECT id, doc FROM "{name}" ORDER BY rowid'):
                self._rows[name][row_id] = json.loads(doc)
                self._seq[name][row_id] = next(self._counter)
        self._indexed = indexed_columns()
        self._referring = referring_keys()
        # built on first use, then kept up to date by _write; readers may build one at the same time, each
        # publishing a complete index (no writer runs while they read), so the last one simply wins
        self._index: Dict[Tuple[str, str], HashIndex] = {}
        self._order: Dict[Tuple[str, str], OrderIndex] = {}
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

    def count(self, table: str) -> int:
        """How many rows `table` has."""
        return len(self._rows[table])

    def find(self, table: str, column: str, value: Any) -> List[dict]:
        """Returns the rows whose `column` equals `value`, oldest first (indexed for relation columns)."""
        if value is None:
            return []
        if column not in self._indexed.get(table, ()):
            return [r for r in self._rows[table].values() if r.get(column) == value]
        rows = self._rows[table]
        return [rows[i] for i in self._hash_index(table, column).ids(value)]

    def lookup(self, table: str, column: str, values: Iterable[Any]) -> Optional[Collection[str]]:
        """The ids of the rows whose `column` equals one of `values` (nulls never match), through an index.

        Returns:
            a collection of ids (for one value, a live view: use it before the next write), or None when the
            column has no index (`id` and `tables.indexed_columns` do)
        """
        values = [v for v in values if v is not None]
        if column == "id":
            rows = self._rows[table]
            return {v for v in values if v in rows}
        if column not in self._indexed.get(table, ()):
            return None
        index = self._hash_index(table, column)
        if len(values) == 1:
            return index.ids(values[0])
        found: set = set()
        for value in values:
            found.update(index.ids(value))
        return found

    def in_table_order(self, table: str, ids: Collection[str]) -> List[dict]:
        """The rows with these ids (unknown ids skipped), in table order as `all` lists them."""
        rows = self._rows[table]
        if len(ids) * 4 > len(rows):  # most of the table: one pass is cheaper than sorting
            return [row for row_id, row in rows.items() if row_id in ids]
        seq = self._seq[table]
        return [rows[i] for i in sorted((i for i in ids if i in rows), key=seq.__getitem__)]

    def ordered(self, table: str, column: str, descending: bool, nulls_first: bool
                ) -> Iterator[Tuple[Optional[str], str]]:
        """(key, row id) of every row in the order a stable sort of the table by timestamp `column` gives
        (see OrderIndex.walk)."""
        index = self._order.get((table, column))
        if index is None:
            index = OrderIndex(column, self._rows[table], self._seq[table])
            self._order[(table, column)] = index
        return index.walk(descending, nulls_first)

    def _hash_index(self, table: str, column: str) -> HashIndex:
        index = self._index.get((table, column))
        if index is None:
            index = HashIndex(column, self._rows[table])
            self._index[(table, column)] = index
        return index

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
        """Removes a row if it exists, with what refers to it as Server's foreign keys say (tables.FOREIGN_KEYS):
        the referring rows of an ON DELETE CASCADE key go too, an ON DELETE SET NULL column is emptied."""
        if row_id not in self._rows[table]:
            return
        for key in self._referring.get(table, ()):
            for row in self.find(key.table, key.column, row_id):
                if key.on_delete == CASCADE:
                    self.delete(key.table, row["id"])
                elif row["id"] in self._rows[key.table]:  # not gone through another key already
                    self.update(key.table, row["id"], **{key.column: None})
        self._write(table, row_id, None)

    def _write(self, table: str, row_id: str, row: Optional[dict]) -> None:
        if self._undo is None:
            raise RuntimeError("store writes must happen inside Store.transaction()")
        old = self._rows[table].get(row_id)
        self._undo.setdefault((table, row_id), old)
        old_seq = self._seq[table].get(row_id)
        new_seq = None if row is None else old_seq if old is not None else next(self._counter)
        for column in self._indexed.get(table, ()):
            index = self._index.get((table, column))
            if index is not None:
                index.replace(row_id, old, row)
        for (name, _column), order in self._order.items():
            if name == table:
                order.replace(row_id, old, old_seq, row, new_seq)
        if row is None:
            del self._rows[table][row_id]
            del self._seq[table][row_id]
        else:
            self._rows[table][row_id] = row
            self._seq[table][row_id] = new_seq  # type: ignore[assignment]

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Store"]:
        """Groups writes: all of them reach SQLite in one transaction, or none (memory is rolled back too)."""
        with self.lock.writing():
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
        if not touched:
            return
        for (table, row_id), old in touched.items():
            if old is None:
                self._rows[table].pop(row_id, None)
                self._seq[table].pop(row_id, None)
            else:
                if row_id not in self._rows[table]:  # a deleted row comes back at the end, as in the dict
                    self._seq[table][row_id] = next(self._counter)
                self._rows[table][row_id] = old
        # indexes hold the rolled-back writes: rebuild them on next use, in table order
        self._index.clear()
        self._order.clear()

    def integrity_check(self) -> str:
        """Runs SQLite's integrity check. It takes the store lock, so /health must not call it: /health answers
        while a long query holds the lock."""
        with self.lock.writing():
            return self._conn.execute("PRAGMA integrity_check").fetchone()[0]

    def close(self) -> None:
        """Closes the SQLite connection and lets another emulator open the file."""
        with self.lock.writing():
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

