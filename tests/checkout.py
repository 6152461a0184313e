"""A copy of the checkout as a clone would have it, for tests that edit files or follow the README in it."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from prefect_emulator.testing import REPO_ROOT


def copy_checkout(target: Path, wheels: bool = True) -> None:
    """Copies what a clone has (tracked files, with their uncommitted edits, and new files git does not
    ignore) into `target`, plus the wheelhouse that scripts/prepare-offline.sh would otherwise download.

    Args:
        target: an existing folder; its name is the compose project name of a stack started there
        wheels: also copy wheels/ (needed to build the image or a venv without an index)
    """
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO_ROOT, capture_output=True, check=True, timeout=60).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    if wheels and (REPO_ROOT / "wheels").is_dir():
        shutil.copytree(REPO_ROOT / "wheels", target / "wheels")
