"""The emulator's SQLite file: made, checked and upgraded before the store reads a row of it.

Layout, schema version 2: one SQL table per table of tables.py, whose `seq INTEGER PRIMARY KEY` is the table
order (rows in the order they were inserted) and whose other columns are tables.py's columns, declared without
a type so that SQLite keeps each value as it was given and compares values of different kinds as unequal, as
Python does. jsonb columns hold JSON text, Boolean columns 0 or 1, timestamps their canonical UTC form
(timestamps.py), which sorts as the instants it names. The indexes are tables.indexes(). The file says what it is
in its header: `application_id` APPLICATION_ID and `user_version` SCHEMA_VERSION.

Version 1, written by earlier emulators: one (id TEXT PRIMARY KEY, doc TEXT) table per table, each row a JSON
document, and no application_id. It is converted once, at start, into a new file beside it, which then takes
its name; the old file stays beside it as `<db>.v1-backup`, its write-ahead log checkpointed into it first so
that the backup holds every committed row. A failed conversion leaves the old file as it was.

A file that is not the emulator's is refused, never written to: not SQLite at all, truncated, corrupt, another
program's database, or one written by a newer emulator (`DatabaseFileError`, whose message names the file and
the fix).
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import struct
from typing import Any, Callable, Dict, List

from .tables import JSONB, TABLES, TIME, indexes

APPLICATION_ID = 0x50454D55  # "PEMU"
SCHEMA_VERSION = 2
BACKUP_SUFFIX = ".v1-backup"
_HEADER = b"SQLite format 3\x00"
_CANONICAL_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00"
_START_AFRESH = "move it away (the emulator then starts with an empty file) or restore it from a backup"


class DatabaseFileError(Exception):
    """A --db file the emulator will not use; the message says why and what to do."""


def prepare(path: str, connect: Callable[[str], sqlite3.Connection], normalize_time: Callable) -> None:
    """Makes `path` ready for the store: creates it, checks it, or upgrades it from version 1.

    Args:
        path: the database file (it may not exist yet)
        connect: opens a connection to a file
        normalize_time: a stored timestamp in canonical form (for version-1 rows written in another form)

    Raises:
        DatabaseFileError: the file is not one the emulator can use (see the module doc)
    """
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        _writing(_new_file(path), lambda conn: _create(conn, {}))
        return
    _check_header(path)
    try:
        # read-only until the file is known to be the emulator's: a refused file is left byte for byte as it was
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {name: [c[1] for c in conn.execute(f'PRAGMA table_info("{name}")')] for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise DatabaseFileError(f"{path} is not a usable SQLite database ({exc}): {_START_AFRESH}") from exc
    if app_id == APPLICATION_ID:
        if version > SCHEMA_VERSION:
            raise DatabaseFileError(
                f"{path} was written by a newer emulator (schema version {version}; this one knows up to "
                f"{SCHEMA_VERSION}): run that emulator's version, or give this one another --db file")
        _writing(connect(path), lambda conn: _create(conn, tables))  # what a newer tables.py adds
        return
    if app_id != 0:
        raise DatabaseFileError(f"{path} is another program's SQLite database (application_id "
                                f"{app_id:#x}): give the emulator a file of its own with --db")
    if not tables:  # an empty SQLite file: made elsewhere, but nothing to lose
        _writing(connect(path), lambda conn: _create(conn, tables))
        return
    if not _is_version_1(tables):
        foreign = sorted(set(tables) - set(TABLES)) or sorted(tables)
        raise DatabaseFileError(
            f"{path} holds tables that are not the emulator's ({', '.join(foreign[:5])}): it is another "
            "program's database; give the emulator a file of its own with --db")
    # the backup must hold what the write-ahead log held
    _writing(connect(path), lambda conn: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())
    _upgrade_from_version_1(path, connect, normalize_time)


def _writing(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], Any]) -> None:
    """Runs `work` on a connection of the emulator's own, then closes it."""
    try:
        work(conn)
    finally:
        conn.close()


def _new_file(path: str) -> sqlite3.Connection:
    """A connection to a file about to be made: incremental vacuum is chosen before anything is written (the
    write-ahead log's setup would fix the file's layout first), so that space freed later can be given back."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute("PRAGMA journal_mode = WAL")
    return conn


def _check_header(path: str) -> None:
    """Refuses a file that does not start as SQLite files do, or is shorter than its header says."""
    with open(path, "rb") as handle:
        header = handle.read(100)
    if not header.startswith(_HEADER):
        raise DatabaseFileError(f"{path} is not an SQLite database (nor an emulator's): {_START_AFRESH}, "
                                "or give --db another file")
    if len(header) < 100:
        raise DatabaseFileError(f"{path} is truncated ({len(header)} bytes, less than an SQLite header): "
                                f"{_START_AFRESH}")
    page_size = struct.unpack(">H", header[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    change_counter, pages = struct.unpack(">II", header[24:32])
    valid_for = struct.unpack(">I", header[92:96])[0]
    expected = page_size * pages
    actual = os.path.getsize(path)
    if valid_for == change_counter and actual < expected:
        raise DatabaseFileError(f"{path} is truncated ({actual} of {expected} bytes): {_START_AFRESH}")


def _is_version_1(tables: Dict[str, List[str]]) -> bool:
    """True when every table is one of the emulator's as version 1 kept it: (id, doc)."""
    return all(name in TABLES and columns == ["id", "doc"] for name, columns in tables.items())


def _create(conn: sqlite3.Connection, existing: Dict[str, List[str]]) -> None:
    """Creates what version 2 has and the file lacks (tables, columns, indexes), then stamps the header."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for name, spec in TABLES.items():
            columns = list(spec.columns)
            if name not in existing:
                conn.execute(f'CREATE TABLE "{name}" (seq INTEGER PRIMARY KEY, '
                             + ", ".join(f'"{c}"' + (" UNIQUE NOT NULL" if c == "id" else "") for c in columns)
                             + ")")
            else:
                for column in columns:
                    if column not in existing[name]:
                        conn.execute(f'ALTER TABLE "{name}" ADD COLUMN "{column}"')
        for name, found in indexes().items():
            for columns in found:
                conn.execute(f'CREATE INDEX IF NOT EXISTS "{name}__{"__".join(columns)}" ON "{name}" ('
                             + ", ".join(f'"{c}"' for c in columns) + ")")
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _upgrade_from_version_1(path: str, connect: Callable[[str], sqlite3.Connection],
                            normalize_time: Callable) -> None:
    """Converts a version-1 file: a new file is filled from it, then takes its name; the old one stays as the
    backup. Any failure removes the new file and leaves the old one as it was."""
    new_path = path + ".upgrading"
    backup = path + BACKUP_SUFFIX
    for leftover in (new_path, new_path + "-wal", new_path + "-shm"):
        if os.path.exists(leftover):  # an earlier conversion that did not finish
            os.remove(leftover)
    try:
        conn = _new_file(new_path)
        try:
            conn.create_function("canonical_time", 1, normalize_time, deterministic=True)
            _create(conn, {})
            conn.execute("ATTACH DATABASE ? AS old", (f"file:{path}?mode=ro",))
            old_tables = {name for (name,) in conn.execute("SELECT name FROM old.sqlite_master WHERE type = 'table'")}
            conn.execute("BEGIN IMMEDIATE")
            for name, spec in TABLES.items():
                if name not in old_tables:
                    continue
                # jsonb: the value's JSON text, JSON null as SQL NULL (as the store writes them); others: the
                # SQL value (true and false become 1 and 0, the store's Booleans)
                values = [f"NULLIF(doc -> '$.\"{c}\"', 'null')" if kind == JSONB else f"doc ->> '$.\"{c}\"'"
                          for c, kind in spec.columns.items()]
                conn.execute(f'INSERT INTO "{name}" (' + ", ".join(f'"{c}"' for c in spec.columns) + ") SELECT "
                             + ", ".join(values) + f' FROM old."{name}" ORDER BY rowid')
                for column, kind in spec.columns.items():
                    if kind == TIME:  # version 1 kept what it was given; version 2 compares canonical forms
                        conn.execute(f'UPDATE "{name}" SET "{column}" = canonical_time("{column}") '
                                     f'WHERE typeof("{column}") = \'text\' AND "{column}" NOT GLOB ?',
                                     (_CANONICAL_GLOB,))
            conn.execute("COMMIT")
            conn.execute("DETACH DATABASE old")
        finally:
            conn.close()
        if os.path.exists(backup):
            os.remove(backup)
        try:
            os.link(path, backup)  # instant, and the old file is never without a name
        except OSError:
            shutil.copy2(path, backup)
        os.replace(new_path, path)
    except BaseException as exc:
        for leftover in (new_path, new_path + "-wal", new_path + "-shm"):
            if os.path.exists(leftover):
                os.remove(leftover)
        if isinstance(exc, sqlite3.DatabaseError):
            raise DatabaseFileError(f"{path} could not be converted from the emulator's version-1 layout ({exc});"
                                    " the file is unchanged: keep it, and report the error") from exc
        raise
