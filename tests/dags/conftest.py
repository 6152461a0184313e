"""Fixtures of the DAG tests: scratch folders under the repository's data/ folder, the only place the ETL DAG's
parameters may point into (removed after the test, so the repo's data/ and data/output/ stay as they were)."""
from __future__ import annotations

import contextlib
import shutil
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from tests.dags.dag_files import REPO_ROOT

DATA = REPO_ROOT / "data"


@contextlib.contextmanager
def data_scratch() -> Iterator[Path]:
    """A new folder `data/.pytest-<random>/`, removed with everything in it on exit."""
    folder = DATA / f".pytest-{uuid.uuid4().hex[:12]}"
    folder.mkdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def data_tmp() -> Iterator[Path]:
    """A scratch folder under data/ for one test."""
    with data_scratch() as folder:
        yield folder
