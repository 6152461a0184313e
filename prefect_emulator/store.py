"""Rows of every table, kept in SQLite (a file with --db, else a temporary file removed at close): SQLite answers the
queries, so the emulator's memory does not grow with its history.

Each table of tables.py is a SQLite table with one column per column (sqlquery.py compiles Hasura's `where`,
`order_by`, `distinct_on`, `limit` and `offset` to SQL over them), an integer `_seq` (the rowid: a row's place in
its table, the order rows come back in when nothing else orders them) and `_extra` for keys a row holds beyond its
columns. Values keep their Python type (the columns have no type affinity); jsonb columns hold JSON text and
booleans are 0/1. dbfile.py makes, checks and upgrades the file.

Concurrency: a connection per thread (from a pool: the HTTP server starts a thread per request), and a
readers-writer lock (rwlock.py). The HTTP server holds it shared for a whole GraphQL query, inside one read
transaction (`reading`: the query reads one snapshot), and exclusively for a whole mutation (`writing`), so a
mutation's checks and writes are atomic even when many agents poll at once. `transaction` groups writes in one
SQLite transaction: all of them are kept, or none. Rows handed out are plain dicts, never shared with the store.
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
from typing import Any, Collection, Dict, Iterable, Iterator, List, Optional, Sequence

from . import dbfile, sqlquery
from .dbfile import encode, encode_row, insert_sql
from .rwlock import ReadWriteLock
from .tables import BOOL, JSONB, TABLES, indexed_columns
from .timestamps import now


class Store:
    """All tables of the emulator.

    Args:
        path: SQLite database file; None keeps everything in a temporary file of its own (same code path)
    """

    def __init__(self, path: Optional[str] = None) -> None:
        self.lock = ReadWriteLock()
        self.path = path
        if path:
            dbfile.check_file(path)
        self._lock_file = _claim(path) if path else None
        # without --db, a file of our own in a temporary folder, removed at close: connections of one shared-cache
        # memory database would take turns (SQLite holds the shared cache for a whole step of a statement)
        self._scratch = None if path else tempfile.mkdtemp(prefix="prefect-emulator-")
        self._target = path or os.path.join(self._scratch, "emulator.db")
        self._pool: List[sqlite3.Connection] = []
        self._pool_lock = threading.Lock()
        self._local = threading.local()
        self._closed = False
        first: Optional[sqlite3.Connection] = None
        try:
            first = sqlite3.connect(self._target, check_same_thread=False, isolation_level=None)
            kind = dbfile.inspect(first, path)
            if kind == dbfile.NEW:
                first.execute("PRAGMA auto_vacuum = INCREMENTAL")  # before the first page is written
            self._configure(first)
            self.upgraded_from = dbfile.prepare(first, path, kind)
            dbfile.analyze(first)
        except sqlite3.OperationalError:
            self._release(first)
            raise  # cannot open the file at all: its folder (the caller says so)
        except sqlite3.DatabaseError as exc:
            self._release(first)
            raise dbfile.BadDatabase(f"{path} cannot be read ({exc}): it is corrupt; move it away or give --db a "
                                     "new file name") from None
        except BaseException:
            self._release(first)
            raise
        self._pool.append(first)
        self._indexed = indexed_columns()
        self._columns = {name: dbfile.sql_columns(name) for name in TABLES}
        # the columns decode converts (most are stored as they come back)
        self._json = {name: [c for c, kind in spec.columns.items() if kind == JSONB] for name, spec in TABLES.items()}
        self._bools = {name: [c for c, kind in spec.columns.items() if kind == BOOL] for name, spec in TABLES.items()}
        self._select = {name: ", ".join(f'a."{c}"' for c in cols) + ", a._extra"
                        for name, cols in self._columns.items()}

    def _release(self, conn: Optional[sqlite3.Connection] = None) -> None:
        """Lets go of the file: a connection, the lock beside the file and the scratch folder."""
        if conn is not None:
            conn.close()
        if self._lock_file is not None:
            self._lock_file.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    # ------------------------------------------------------------------ connections
    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per mutation or query
        conn = sqlite3.connect(self._target, check_same_thread=False, isolation_level=None)
        self._configure(conn)
        return conn

    def _configure(self, conn: sqlite3.Connection) -> None:
        dbfile.configure(conn, durable=self.path is not None)
        sqlquery.register_functions(conn)

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """The calling thread's connection: the one it holds already, else one from the pool until the end."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            yield conn
            return
        with self._pool_lock:
            if self._closed:
                raise RuntimeError("the store is closed")
            conn = self._pool.pop() if self._pool else None
        if conn is None:
            conn = self._connect()
        self._local.conn = conn
        try:
            yield conn
        finally:
            self._local.conn = None
            if conn.in_transaction:  # a failure between BEGIN and COMMIT: never hand out an open transaction
                conn.execute("ROLLBACK")
            with self._pool_lock:
                if self._closed:
                    conn.close()
                else:
                    self._pool.append(conn)

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Holds the store shared for a whole query, which reads one snapshot (one read transaction)."""
        with self.lock.reading(), self.connection() as conn:
            if conn.in_transaction or self.lock.held_by_me():
                yield  # nested, or inside a mutation: its own view is the one to read
                return
            conn.execute("BEGIN")
            try:
                yield
            finally:
                conn.execute("COMMIT")

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Holds the store exclusively (a whole mutation: its checks and writes see no other writer)."""
        with self.lock.writing(), self.connection():
            yield

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Store"]:
        """Groups writes: all of them reach SQLite in one transaction, or none."""
        with self.lock.writing(), self.connection() as conn:
            if getattr(self._local, "writes", False):  # nested: the outer transaction commits
                yield self
                return
            conn.execute("BEGIN IMMEDIATE")
            self._local.writes = True
            try:
                yield self
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")
            finally:
                self._local.writes = False

    def query(self, sql: str, params: Sequence[Any] = ()) -> List[tuple]:
        """Runs one SQL query on the thread's connection and returns every row it gives."""
        with self.connection() as conn:
            return conn.execute(sql, params).fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Runs one SQL write inside the current transaction; returns how many rows it changed."""
        self._check_writing()
        with self.connection() as conn:
            return conn.execute(sql, params).rowcount

    # ------------------------------------------------------------------ rows
    def columns(self, table: str) -> List[str]:
        """The SQL columns of `table`, in the order rows list them (`_seq` and `_extra` aside)."""
        return self._columns[table]

    def select_list(self, table: str) -> str:
        """The SQL select list that `decode` reads, for a table aliased `a`."""
        return self._select[table]

    def decode(self, table: str, values: Sequence[Any]) -> dict:
        """A row as the API sees it, from the values of `select_list`."""
        row = dict(zip(self._columns[table], values))
        for name in self._json[table]:
            if row[name] is not None:
                row[name] = json.loads(row[name])
        for name in self._bools[table]:
            if row[name] is not None:
                row[name] = bool(row[name])
        extra = values[-1]
        if extra:
            row.update(json.loads(extra))
        return row

    def rows(self, table: str, sql: str, params: Sequence[Any] = ()) -> List[dict]:
        """Runs `SELECT <select_list> <sql>` (sql starts with `FROM "table" a`) and decodes each row."""
        found = self.query(f"SELECT {self._select[table]} {sql}", params)
        return [self.decode(table, values) for values in found]

    # ------------------------------------------------------------------ reads
    def all(self, table: str) -> List[dict]:
        """Returns every row of `table`, oldest first."""
        return self.rows(table, f'FROM "{table}" a ORDER BY a._seq')

    def get(self, table: str, row_id: Any) -> Optional[dict]:
        """Returns the row with this id, or None."""
        if row_id is None:
            return None
        found = self.rows(table, f'FROM "{table}" a WHERE a.id = ?', (str(row_id),))
        return found[0] if found else None

    def count(self, table: str) -> int:
        """How many rows `table` has."""
        return self.query(f'SELECT COUNT(*) FROM "{table}"')[0][0]

    def find(self, table: str, column: str, value: Any) -> List[dict]:
        """Returns the rows whose `column` equals `value`, oldest first (relation columns have an index)."""
        if value is None:
            return []
        return self.rows(table, f'FROM "{table}" a WHERE a."{column}" = ? ORDER BY a._seq',
                         (encode(table, column, value),))

    def lookup(self, table: str, column: str, values: Iterable[Any]) -> Optional[Collection[str]]:
        """The ids of the rows whose `column` equals one of `values` (nulls never match), through an index.

        Returns:
            a set of ids, or None when the column has no index (`id` and `tables.indexed_columns` do)
        """
        if column != "id" and column not in self._indexed.get(table, ()):
            return None
        encoded = [encode(table, column, v) for v in values if v is not None]
        found = self.query(f'SELECT id FROM "{table}" WHERE "{column}" IN (SELECT value FROM json_each(?))',
                           (json.dumps(encoded),))
        return {row_id for (row_id,) in found}

    def in_table_order(self, table: str, ids: Collection[str]) -> List[dict]:
        """The rows with these ids (unknown ids skipped), in table order as `all` lists them."""
        return self.rows(table, f'FROM "{table}" a WHERE a.id IN (SELECT value FROM json_each(?)) ORDER BY a._seq',
                         (json.dumps(list(ids)),))

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
        names, values = encode_row(table, row)
        try:
            self.execute(insert_sql(table, names), values)
        except sqlite3.IntegrityError:
            raise ValueError(f"Uniqueness violation. A {table} with id {row['id']} already exists.") from None
        return row

    def update(self, table: str, row_id: str, **changes: Any) -> dict:
        """Replaces some columns of a row.

        Returns:
            the new row

        Raises:
            KeyError: no row has this id
        """
        self._check_writing()
        old = self.get(table, row_id)
        if old is None:
            raise KeyError(row_id)
        row = dict(old)
        row.update(changes)
        row["updated"] = now()
        names, values = encode_row(table, row)
        assignments = ", ".join(f"{name} = ?" for name in names)
        self.execute(f'UPDATE "{table}" SET {assignments} WHERE id = ?', [*values, row_id])
        return row

    def delete(self, table: str, row_id: str) -> None:
        """Removes a row if it exists."""
        self.execute(f'DELETE FROM "{table}" WHERE id = ?', (row_id,))

    def delete_where(self, table: str, column: str, value: Any) -> None:
        """Removes every row of `table` whose `column` equals `value` (a cascade from a parent row)."""
        if value is not None:
            self.execute(f'DELETE FROM "{table}" WHERE "{column}" = ?', (encode(table, column, value),))

    def _check_writing(self) -> None:
        if not getattr(self._local, "writes", False):
            raise RuntimeError("store writes must happen inside Store.transaction()")

    def integrity_check(self) -> str:
        """Runs SQLite's integrity check. It takes the store lock, so /health must not call it: /health answers
        while a long query holds the lock."""
        with self.writing():
            return self.query("PRAGMA integrity_check")[0][0]

    def close(self) -> None:
        """Closes every connection and lets another emulator open the file."""
        with self.lock.writing():
            with self._pool_lock:
                self._closed = True
                pool, self._pool = self._pool, []
            if pool:
                dbfile.close(pool[0])
            for conn in pool:
                conn.close()
            self._release()


class DatabaseInUse(Exception):
    """Another emulator process serves the same --db file."""


def _claim(path: str) -> Any:
    """Takes an exclusive lock beside the database: the emulator's Submitted lock and its background services
    live in the process, so two emulators on one file would hand the same run to two agents."""
    import fcntl
    handle = open(path + ".lock", "a")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise DatabaseInUse(f"{path} is in use by another emulator process: stop it, or give this one "
                            "another --db file")
    return handle
