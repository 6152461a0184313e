"""A database file as emulators before the SQL store wrote it (format 0), for the upgrade tests.

Format 0, as that store made it: every table of tables.py as `(id TEXT PRIMARY KEY, doc TEXT NOT NULL)` with the
row as a JSON document, in WAL mode with synchronous=NORMAL, each transaction an upsert of the rows it touched.
`python -m tests.prefect_emulator.v0_database FILE` reads {table: [rows]} as JSON on stdin, writes them and
exits without closing the database, as a killed emulator would: what it wrote stays in the write-ahead log,
which the upgrade has to carry over (and its backup to hold).
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

from prefect_emulator.tables import TABLES
from prefect_emulator.testing import REPO_ROOT


def write(path: Path, tables: Dict[str, List[dict]]) -> None:
    """Writes `tables` as format 0 in a process that ends without a checkpoint (see the module doc)."""
    subprocess.run([sys.executable, "-m", "tests.prefect_emulator.v0_database", str(path)], cwd=REPO_ROOT,
                   input=json.dumps(tables), text=True, check=True, timeout=120)


def main(path: str) -> None:
    tables = json.load(sys.stdin)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")  # keep every write in the log, as a busy emulator's last ones
    for name in TABLES:
        conn.execute(f'CREATE TABLE IF NOT EXISTS "{name}" (id TEXT PRIMARY KEY, doc TEXT NOT NULL)')
    conn.execute("BEGIN IMMEDIATE")
    for name, rows in tables.items():
        for row in rows:
            conn.execute(f'INSERT INTO "{name}" (id, doc) VALUES (?, ?) '
                         "ON CONFLICT(id) DO UPDATE SET doc = excluded.doc", (row["id"], row["doc"]))
    conn.execute("COMMIT")
    os._exit(0)  # no close, no checkpoint


if __name__ == "__main__":
    main(sys.argv[1])
