"""The --db file: a file of today's layout opens again after a hard kill, a version-1 file (rows as JSON
documents, written by earlier emulators) is converted once with a backup beside it, and a file that is not the
emulator's is refused with a message that names it and the fix, and is left as it was."""
from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from prefect_emulator.dbfile import APPLICATION_ID, BACKUP_SUFFIX, SCHEMA_VERSION, DatabaseFileError
from prefect_emulator.store import Store
from prefect_emulator.testing import Emulator
from tests.prefect_emulator.prefect_session import prefect_session
from tests.prefect_emulator.test_persistence import snapshot

FIXTURES = Path(__file__).parent / "fixtures"
REPO_ROOT = Path(__file__).resolve().parents[2]


def header(path: Path) -> tuple:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA application_id").fetchone()[0], conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def test_a_version_1_file_is_converted_once_and_answers_as_before(tmp_path: Path) -> None:
    db = tmp_path / "emulator.db"
    shutil.copy(FIXTURES / "emulator-v1.db", db)
    before = json.loads((FIXTURES / "emulator-v1.json").read_text())
    with Emulator(tmp_path, db=db) as emu, prefect_session(emu.url, tmp_path / "home") as client:
        assert snapshot(client, before["run_id"], "upgraded") == before["finished"]
        assert snapshot(client, before["waiting_id"], "upgraded") == before["waiting"]
        info = client.get_flow_run_info(before["waiting_id"])
        assert info.state.is_scheduled() and info.name == "waiting"
    assert header(db) == (APPLICATION_ID, SCHEMA_VERSION)
    backup = Path(str(db) + BACKUP_SUFFIX)
    assert backup.read_bytes() == (FIXTURES / "emulator-v1.db").read_bytes()  # the old file, as it was
    assert not list(tmp_path.glob("*.upgrading*"))
    stamp = backup.stat().st_mtime_ns
    Store(str(db)).close()  # a second start converts nothing again
    assert backup.stat().st_mtime_ns == stamp and header(db) == (APPLICATION_ID, SCHEMA_VERSION)


def test_a_version_1_file_whose_checkpoint_is_pending_keeps_its_last_rows(tmp_path: Path) -> None:
    """Rows still in the write-ahead log (the emulator was killed) reach both the new file and the backup."""
    db = tmp_path / "emulator.db"
    shutil.copy(FIXTURES / "emulator-v1.db", db)
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    doc = {"id": "00000000-0000-4000-8000-0000000000aa", "name": "in-the-log", "slug": "in-the-log"}
    writer.execute("INSERT INTO tenant (id, doc) VALUES (?, ?)", (doc["id"], json.dumps(doc)))
    assert Path(str(db) + "-wal").stat().st_size > 0
    store = Store(str(db))  # the writer is still open: its log has not been checkpointed by anyone
    try:
        assert store.get("tenant", doc["id"])["name"] == "in-the-log"
    finally:
        store.close()
        writer.close()
    backup = sqlite3.connect(str(db) + BACKUP_SUFFIX)
    assert backup.execute("SELECT count(*) FROM tenant WHERE id = ?", (doc["id"],)).fetchone()[0] == 1
    backup.close()


def test_a_conversion_that_fails_leaves_the_file_untouched(tmp_path: Path) -> None:
    db = tmp_path / "emulator.db"
    shutil.copy(FIXTURES / "emulator-v1.db", db)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE log SET doc = '{not json' WHERE rowid = (SELECT min(rowid) FROM log)")
    conn.commit()
    conn.close()
    original = db.read_bytes()
    with pytest.raises(DatabaseFileError, match=r"could not be converted .* the file is unchanged"):
        Store(str(db))
    assert db.read_bytes() == original
    assert not list(tmp_path.glob("*.upgrading*")) and not Path(str(db) + BACKUP_SUFFIX).exists()


def foreign_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('ada')")
    conn.commit()
    conn.close()


def other_application(path: Path) -> None:
    foreign_database(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 1234")
    conn.commit()
    conn.close()


def newer_emulator(path: Path) -> None:
    Store(str(path)).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()


def filled(path: Path) -> None:
    store = Store(str(path))
    with store.transaction():
        for n in range(300):
            store.insert("log", {"message": "x" * 500, "level": "INFO", "name": str(n)})
    store.close()


def truncated(path: Path) -> None:
    filled(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def corrupt_pages(path: Path) -> None:
    filled(path)
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the first page's b-tree, past the header
    path.write_bytes(bytes(data))


BAD_FILES = {
    "not SQLite": (lambda p: p.write_text("name,state\nhello,Success\n"), "is not an SQLite database"),
    "truncated": (truncated, "is truncated"),
    "corrupt": (corrupt_pages, "is not a usable SQLite database"),
    "another program's tables": (foreign_database, "holds tables that are not the emulator's (customers)"),
    "another program's id": (other_application, "is another program's SQLite database"),
    "a newer emulator's": (newer_emulator, "was written by a newer emulator"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_a_file_that_is_not_the_emulators_is_refused_and_left_as_it_was(tmp_path: Path, kind: str) -> None:
    make, message = BAD_FILES[kind]
    db = tmp_path / "emulator.db"
    make(db)
    original = db.read_bytes()
    with pytest.raises(DatabaseFileError) as refused:
        Store(str(db))
    assert message in str(refused.value) and str(db) in str(refused.value)
    assert "--db" in str(refused.value) or "move it away" in str(refused.value)  # the fix is named
    assert db.read_bytes() == original
    Store(str(tmp_path / "another.db")).close()  # the refusal released the file's lock: nothing is held


def test_the_command_line_names_the_refused_file_and_exits_2(tmp_path: Path) -> None:
    db = tmp_path / "emulator.db"
    foreign_database(db)
    result = subprocess.run([sys.executable, "-m", "prefect_emulator", "--db", str(db), "--port", "0"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {db} holds tables that are not the emulator's"), result.stderr
    assert "Traceback" not in result.stderr
