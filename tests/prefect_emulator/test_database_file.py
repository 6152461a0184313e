"""The --db file: a corrupt, truncated, foreign or newer file is refused with a message naming the file and the fix,
and left as it was; a file of the emulator's earlier format (JSON documents) is converted at start, once, with
a backup beside it that holds what the write-ahead log held, and a conversion that fails leaves it untouched."""
from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Callable, Dict, List

import pytest

from prefect_emulator.dbfile import APPLICATION_ID, BACKUP_SUFFIX, SCHEMA_VERSION, BadDatabase
from prefect_emulator.store import Store
from prefect_emulator.tables import TABLES
from tests.prefect_emulator import v0_database
from tests.prefect_emulator.test_indexes import fill, same_both_ways, wheres
from prefect_emulator.testing import REPO_ROOT, free_port


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def start(db: Path) -> subprocess.CompletedProcess:
    """Runs the emulator on `db` until it exits (a refused file makes it exit at once)."""
    return subprocess.run([sys.executable, "-m", "prefect_emulator", "--port", str(free_port()), "--db", str(db)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)


def filled_file(path: Path) -> Path:
    store = Store(str(path))
    fill(store, 300)
    store.close()
    return path


def corrupt(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 64)


def truncated(path: Path) -> None:
    whole = filled_file(path).read_bytes()
    path.write_bytes(whole[: len(whole) // 2])


def foreign(path: Path) -> None:
    with closing(sqlite3.connect(str(path))) as conn, conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO customers (name) VALUES ('someone')")


def newer(path: Path) -> None:
    filled_file(path)
    with closing(sqlite3.connect(str(path))) as conn:  # closed: the last connection folds the log into the file
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")


def damaged_schema(path: Path) -> None:
    whole = bytearray(filled_file(path).read_bytes())
    page_size = int.from_bytes(whole[16:18], "big")
    whole[100:page_size] = b"\xff" * (page_size - 100)  # the schema page after the header: garbage
    path.write_bytes(bytes(whole))


@pytest.mark.parametrize("make, expected, fix", [
    (corrupt, "is not a SQLite database", "give --db a new file name"),
    (truncated, "is truncated", "restore it from a backup"),
    (foreign, "is not an emulator database (it holds tables customers)", "give --db a new file name"),
    (newer, "was written by a newer emulator", "run that emulator"),
    (damaged_schema, "it is corrupt", "give --db a new file name"),
], ids=["corrupt", "truncated", "foreign", "newer", "damaged schema"])
def test_a_file_that_cannot_be_served_is_refused_naming_it_and_the_fix(
        tmp_path: Path, make: Callable[[Path], None], expected: str, fix: str) -> None:
    db = tmp_path / "emulator.db"
    make(db)
    before = digest(db)
    done = start(db)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"error: {db} " in done.stderr and expected in done.stderr and fix in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert digest(db) == before, "a refused file must be left as it was"


def documents(history: Dict[str, List[dict]]) -> Dict[str, List[dict]]:
    """Rows as format 0 holds them: {table: [{id, doc}]}, in table order."""
    return {name: [{"id": row["id"], "doc": json.dumps(row)} for row in rows] for name, rows in history.items()}


@pytest.fixture(scope="module")
def history() -> Dict[str, List[dict]]:
    """The rows of a store with runs, task runs and states (ties, nulls, labels), and a row with a key that is
    no column (format 0 kept any key)."""
    store = Store()
    fill(store, 200, seed=3)
    with store.transaction():
        store.insert("log", {"flow_run_id": store.all("flow_run")[0]["id"], "message": "kept", "level": "INFO",
                             "info": {"nested": [1, 2]}, "not_a_column": "also kept"})
    rows = {name: store.all(name) for name in TABLES}
    store.close()
    return rows


def test_a_file_of_the_earlier_format_is_converted_once_with_a_backup(tmp_path: Path,
                                                                      history: Dict[str, List[dict]]) -> None:
    db = tmp_path / "emulator.db"
    v0_database.write(db, documents(history))
    assert Path(f"{db}-wal").stat().st_size > 0, "the fixture must leave its writes in the write-ahead log"

    store = Store(str(db))
    try:
        assert store.upgraded_from == 0
        for name, rows in history.items():
            assert store.all(name) == rows, name  # every row, every value, in table order
        for where in wheres(store):
            same_both_ways(store, where, [{"start_time": "desc"}], 10, 2)
    finally:
        store.close()

    with sqlite3.connect(f"{db}{BACKUP_SUFFIX}") as backup:
        counts = {name: backup.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0] for name in TABLES}
        assert backup.execute("PRAGMA user_version").fetchone()[0] == 0
    assert counts == {name: len(rows) for name, rows in history.items()}, "the backup holds the log's rows"
    with sqlite3.connect(str(db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental, for retention

    again = Store(str(db))
    try:
        assert again.upgraded_from is None  # once
        assert again.all("flow_run") == history["flow_run"]
    finally:
        again.close()


def test_a_conversion_that_fails_leaves_the_file_as_it_was(tmp_path: Path, history: Dict[str, List[dict]]) -> None:
    db = tmp_path / "emulator.db"
    tables = documents(history)
    tables["log"][-1]["doc"] = "{not json"
    v0_database.write(db, tables)
    with pytest.raises(BadDatabase, match="could not be upgraded.*left as it was"):
        Store(str(db))
    done = start(db)
    assert done.returncode == 2 and f"error: {db} could not be upgraded" in done.stderr, done.stderr
    with sqlite3.connect(str(db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
        assert [r[1] for r in conn.execute('PRAGMA table_info("flow_run")')] == ["id", "doc"]
        for name, rows in tables.items():
            assert [tuple(r) for r in conn.execute(f'SELECT id, doc FROM "{name}" ORDER BY rowid')] == [
                (r["id"], r["doc"]) for r in rows], name

