"""A DAG's files: path parameters confined to the repository's `data/` folder, text inputs read with clear
errors, outputs written atomically.

A run's parameters come from whoever can trigger it (the UI, the API, `trigger --param`): a path among them must
not make the agent read or write anywhere else it can. `confined_path` turns such a parameter into an absolute
path inside `data/` (a relative path is taken from the repository root, /app in the image; symlinks are followed
before the check), or refuses it with an error naming the parameter and the fix. `read_text` reads an input
file, failing with an error that names the file and what is wrong with it (missing, a folder, empty, binary,
not UTF-8), never what it holds; `read_csv_table` reads a CSV input that way into a pandas DataFrame of text
cells, one row per record with the line it was on (which pandas' read_csv does not tell), so that a DAG can
reject rows naming their lines.

`write_files_atomically` writes a run's output files so that a run that fails leaves the previous output as it
was: every file first goes to a temporary file in the target folder (the same filesystem, so that a rename is
atomic) and is fsynced; only once all of them are on disk are they moved into place with os.replace, in order,
and the folder is fsynced so that the renames survive a crash. The renames take microseconds; a machine that
dies among them leaves some new files beside old ones, so a DAG that needs to tell writes last a file that
records the others' checksums: `write_files_with_manifest` does (the ETL DAG's report.json).

In a DAG::

    from agents.dagkit.datafiles import confined_path, read_text, write_files_atomically

    @task
    def extract(input_path: str) -> str:
        text, sha256 = read_text(confined_path(input_path, "input_path", example="data/my-input.csv"),
                                 fix="pass a CSV file through the parameter input_path")
        return text

    @task
    def load(report: bytes, output_dir: str) -> None:
        folder = confined_path(output_dir, "output_dir", example="data/output/my-dag")
        write_files_atomically(folder, {"report.json": report})
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Sequence, Tuple, Union

if TYPE_CHECKING:
    import pandas

from agents import settings


def data_root() -> Path:
    """The only folder path parameters may point into: the `data/` of the DAGs' repository
    (agents.settings.project_root: beside DAGS_FOLDER), inputs shipped with it and outputs of runs,
    symlinks resolved."""
    return (settings.project_root() / "data").resolve()


def confined_path(value: Any, parameter: str, example: str) -> Path:
    """Turns a path parameter into an absolute path inside `data/`, a relative one being taken from the
    repository root.

    Args:
        value: the parameter's value
        parameter: its name, for the error message (e.g. "output_dir")
        example: a path the message suggests (e.g. "data/output/my-dag")

    Returns:
        The absolute path with every symlink resolved (what `write_files_atomically` expects).

    Raises:
        ValueError: not a path, or a path that resolves outside `data/`; the message names the parameter and
            the fix, and says nothing of what the file holds.
    """
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise ValueError(f"parameter {parameter} must be a non-empty path, got {value!r}: "
                         f"pass e.g. --param {parameter}={example}")
    path = Path(str(value).strip()).expanduser()
    path = path if path.is_absolute() else settings.project_root() / path
    root, resolved = data_root(), path.resolve()
    if resolved != root and root not in resolved.parents:
        raise ValueError(f"parameter {parameter} must point inside the data folder {root}, but {path} resolves "
                         f"to {resolved} (symlinks followed): keep it under data/ and pass a path such as "
                         f"{example}")
    return resolved


def read_text(path: Path, fix: str, kind: str = "text") -> Tuple[str, str]:
    """Reads a UTF-8 text input file (a byte order mark is dropped).

    Args:
        path: the file (as `confined_path` returns it)
        fix: what the user should do, ending every error message (e.g. "pass a CSV file through the
            parameter input_path")
        kind: what the file should be, for the messages (e.g. "CSV text": "is binary, not a CSV text file")

    Returns:
        The text, and the sha256 of the file's bytes (hex), for a report to say which input it read.

    Raises:
        ValueError: "input file <path> <what is wrong>: <fix>"; it never quotes the file's content.
    """
    problem = "does not exist" if not path.exists() else "is a folder, not a file" if path.is_dir() else None
    data = b""
    if problem is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            problem = f"cannot be read ({exc.strerror or exc})"
    if problem is None and not data.strip():
        problem = "is empty"
    elif problem is None and b"\x00" in data:
        problem = f"is binary, not a {kind} file (NUL byte at offset {data.index(0)})"
    if problem is None:
        try:
            return data.decode("utf-8-sig"), hashlib.sha256(data).hexdigest()
        except UnicodeDecodeError as exc:
            problem = f"is not UTF-8 text, so not a {kind} file (invalid byte at offset {exc.start})"
    raise ValueError(f"input file {path} {problem}: {fix}")


@dataclass
class CsvTable:
    """A CSV input read by `read_csv_table`.

    Attributes:
        path: the file
        sha256: the sha256 of its bytes (hex)
        width: how many fields its header has (a row of another width is malformed)
        rows: one row per record after the header, blank lines left out: `line` (the line number where the
            record ends: a quoted cell may span lines), `raw` (its fields joined with commas), `fields` (how
            many), then one column per wanted column with the cell's text stripped ("" in a row of the wrong
            width)
    """

    path: Path
    sha256: str
    width: int
    rows: "pandas.DataFrame"


def read_csv_table(path: Path, columns: Sequence[str], fix: str) -> CsvTable:
    """Reads a CSV input with a header line naming at least `columns` (others are ignored, in any order).

    Args:
        path: the file (as `confined_path` returns it)
        columns: the columns the DAG needs
        fix: what the user should do, ending every error message

    Returns:
        The table (see CsvTable).

    Raises:
        ValueError: what `read_text` raises, or the file is no valid CSV, its header lacks or repeats a wanted
            column, or it has no data row; the message names the file and the problem, and of the header only
            the wanted columns' names, never the file's content.
    """
    import pandas as pd  # here: only a DAG that reads a CSV pays for importing pandas

    text, sha256 = read_text(path, fix, kind="CSV text")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        records = [(reader.line_num, record) for record in reader if record]
    except csv.Error as exc:
        raise ValueError(f"input file {path} is not a valid CSV file (line {reader.line_num}: {exc}): {fix}") from exc
    header = [cell.strip() for cell in records[0][1]]
    missing, twice = [c for c in columns if c not in header], [c for c in columns if header.count(c) > 1]
    if missing or twice:
        wrong = "; ".join(f"{what} column(s) {', '.join(names)}"
                          for what, names in (("missing", missing), ("duplicated", twice)) if names)
        raise ValueError(f"input file {path} has the wrong header: {wrong} (extra columns would be ignored): {fix}")
    body = records[1:]
    if not body:
        raise ValueError(f"input file {path} has a header but no data rows: {fix}")
    rows = pd.DataFrame({"line": [n for n, _ in body], "raw": [",".join(r) for _, r in body],
                         "fields": [len(r) for _, r in body]})
    cells = pd.DataFrame([dict(zip(header, r)) if len(r) == len(header) else {} for _, r in body],
                         columns=list(columns)).fillna("").apply(lambda column: column.str.strip())
    return CsvTable(path=path, sha256=sha256, width=len(header), rows=rows.join(cells))


def write_files_atomically(folder: Path, files: Mapping[str, Union[bytes, str]],
                           parameter: str = "output_dir") -> None:
    """Writes `files` into `folder` so that a failure anywhere leaves the previous files as they were.

    Args:
        folder: the output folder as `confined_path` returns it (absolute, symlinks resolved); created when
            missing
        files: file name (no folder in it) -> content (str is written as UTF-8), in the order the new files
            replace the old ones
        parameter: the parameter the folder came from, named in the errors' fixes

    Raises:
        ValueError: a file name with a folder in it.
        RuntimeError: the folder cannot be made, resolves elsewhere than given (a symlink in its path, or
            one that appeared while it was made), a folder is in the way of a file, or a write failed; the
            message says whether the previous files are intact (they are unless a rename itself failed).
    """
    for name in files:
        if not name or name in (".", "..") or os.sep in name or (os.altsep and os.altsep in name):
            raise ValueError(f"output file name {name!r} must be a plain file name: write the files of each "
                             "folder with a call of their own")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RuntimeError(f"cannot create the output folder {folder}: {exc.strerror or exc}; "
                           f"pass a writable folder with the parameter {parameter}") from exc
    if folder.resolve() != folder:
        raise RuntimeError(f"the output folder {folder} resolves to {folder.resolve()} (a symlink in its path, or "
                           "one that appeared while it was made); nothing was written: pass the folder that "
                           "confined_path returns")
    for name in files:
        if (folder / name).is_dir():
            raise RuntimeError(f"cannot write {folder / name}: a folder of that name is in the way; "
                               f"remove it or pass another {parameter}")
    staged: List[Tuple[str, Path]] = []
    replaced: List[str] = []
    try:
        for name, payload in files.items():
            fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=str(folder))
            staged.append((temporary, folder / name))
            with os.fdopen(fd, "wb") as out:
                out.write(payload.encode("utf-8") if isinstance(payload, str) else payload)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o644)  # mkstemp makes 0600 files; outputs are for everyone to read
        for temporary, target in staged:
            os.replace(temporary, target)
            replaced.append(target.name)
        folder_fd = os.open(str(folder), os.O_RDONLY)
        try:
            os.fsync(folder_fd)
        finally:
            os.close(folder_fd)
    except OSError as exc:
        left = ("the previous outputs are left as they were" if not replaced else
                "every file had been replaced" if len(replaced) == len(staged) else
                f"{', '.join(replaced)} had already been replaced, the other files are the previous ones")
        raise RuntimeError(f"writing the outputs to {folder} failed ({exc}); {left}") from exc
    finally:
        for temporary, _ in staged:
            try:
                os.unlink(temporary)
            except FileNotFoundError:
                pass  # renamed into place


def write_files_with_manifest(folder: Path, files: Mapping[str, Union[bytes, str]], manifest: str,
                              document: Mapping[str, Any], parameter: str = "output_dir") -> Dict[str, bytes]:
    """Writes `files` as `write_files_atomically` does and, last, `manifest`: `document` as indented JSON with
    "files" added, each other file's size and sha256, so that a reader can tell whether the files beside it
    are the ones it describes (a machine that dies among the renames leaves new files beside old ones).

    Args:
        folder: the output folder as `confined_path` returns it
        files: file name -> content (str is written as UTF-8), the manifest's name not among them
        manifest: the manifest's file name, e.g. "report.json"
        document: what the manifest says besides "files" (JSON-serializable)
        parameter: the parameter the folder came from, named in the errors' fixes

    Returns:
        Every file written, by name, as bytes, the manifest last (for a log line).

    Raises:
        ValueError, RuntimeError: as `write_files_atomically`.
    """
    payloads = {name: p.encode("utf-8") if isinstance(p, str) else bytes(p) for name, p in files.items()}
    if manifest in payloads:
        raise ValueError(f"{manifest} is the manifest, written from the document: leave it out of the files")
    listing = {name: {"bytes": len(b), "sha256": hashlib.sha256(b).hexdigest()} for name, b in payloads.items()}
    payloads[manifest] = (json.dumps(dict(document, files=listing), indent=2) + "\n").encode()
    write_files_atomically(folder, payloads, parameter)
    return payloads
