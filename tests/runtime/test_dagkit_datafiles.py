"""A DAG's files (agents.dagkit.datafiles) on real files and real symlinks: path parameters confined to the
repository's data/ folder, text and CSV inputs read with errors that name the file and never quote it, and outputs
written atomically (a write that fails midway, in a real process hitting a real file-size limit, leaves the
previous files and no temporary file)."""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator

import pytest

from agents.dagkit.datafiles import confined_path, data_root, read_csv_table, read_text, write_files_atomically
from prefect_emulator.testing import REPO_ROOT
from tests.dags.conftest import data_scratch

SECRET = "TOPSECRET-hunter2"


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A scratch folder under the repository's data/ (removed after the test)."""
    with data_scratch() as folder:
        yield folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside data/ holding a file whose content is a secret."""
    (tmp_path / "secret.csv").write_text(f"{SECRET}\n")
    return tmp_path


def snapshot(folder: Path) -> Dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ------------------------------------------------------------------------------------------ confined_path

def test_the_data_folder_is_the_repositorys() -> None:
    assert data_root() == (REPO_ROOT / "data").resolve()


def test_the_data_folder_is_beside_the_dags_folder_a_copy_of_the_dags_uses_its_own(tmp_path: Path,
                                                                                    monkeypatch) -> None:
    # DAGS_FOLDER elsewhere (a copy of the DAGs, run by this checkout's runtime): its data/ is the copy's
    (tmp_path / "dags").mkdir()
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("DAGS_FOLDER", str(tmp_path / "dags"))
    assert data_root() == (tmp_path / "data").resolve()
    assert confined_path("data/output/x", "output_dir", "data/output/x") == (tmp_path / "data/output/x").resolve()
    with pytest.raises(ValueError, match="must point inside the data folder"):
        confined_path(str(REPO_ROOT / "data" / "seattle-weather.csv"), "input_path", "data/x.csv")


def test_relative_paths_are_taken_from_the_repository_root_whatever_the_working_folder(scratch: Path,
                                                                                      monkeypatch) -> None:
    monkeypatch.chdir(scratch)
    relative = scratch.relative_to(REPO_ROOT) / "out"
    assert confined_path(str(relative), "output_dir", "data/output/x") == scratch.resolve() / "out"
    assert confined_path(relative, "output_dir", "data/output/x") == scratch.resolve() / "out"  # a PathLike too
    assert confined_path("data", "output_dir", "data/output/x") == data_root()
    assert confined_path(f"  data/output/../{scratch.name}/./a  ", "p", "e") == scratch.resolve() / "a"


def test_a_symlink_that_stays_inside_data_is_followed(scratch: Path) -> None:
    (scratch / "real").mkdir()
    (scratch / "link").symlink_to(scratch / "real", target_is_directory=True)
    assert confined_path(str(scratch / "link" / "f.csv"), "input_path", "e") == scratch.resolve() / "real" / "f.csv"


@pytest.mark.parametrize("kind", ["absolute", "dot-dot", "home", "symlinked-file", "symlinked-folder"])
def test_a_path_that_resolves_outside_data_is_refused_naming_the_parameter_and_the_fix(
        scratch: Path, outside: Path, kind: str) -> None:
    given = {"absolute": str(outside / "secret.csv"),
             "dot-dot": "data/" + "../" * 30 + str((outside / "secret.csv").relative_to("/")),
             "home": "~/secret.csv"}.get(kind)
    if kind == "symlinked-file":
        (scratch / "link.csv").symlink_to(outside / "secret.csv")
        given = str(scratch / "link.csv")
    elif kind == "symlinked-folder":
        (scratch / "elsewhere").symlink_to(outside, target_is_directory=True)
        given = str(scratch / "elsewhere" / "secret.csv")
    with pytest.raises(ValueError) as info:
        confined_path(given, "input_path", example="data/seattle-weather.csv")
    message = str(info.value)
    assert message.startswith(f"parameter input_path must point inside the data folder {data_root()}, but ")
    assert "(symlinks followed): keep it under data/ and pass a path such as data/seattle-weather.csv" in message
    assert SECRET not in message


@pytest.mark.parametrize("value", ["", "   ", None, 42, ["data/x"]])
def test_a_value_that_is_no_path_is_refused(value) -> None:
    with pytest.raises(ValueError, match=r"parameter output_dir must be a non-empty path, got .*: "
                                         r"pass e.g. --param output_dir=data/output/my-dag"):
        confined_path(value, "output_dir", example="data/output/my-dag")


# ------------------------------------------------------------------------------------------ read_text, read_csv_table

FIX = "pass a CSV through the parameter input_path"


@pytest.mark.parametrize("content, problem", [
    (None, "does not exist"),
    (b"", "is empty"),
    (b" \n\t\n", "is empty"),
    (SECRET.encode() + b"\x00" + SECRET.encode(), f"is binary, not a CSV text file (NUL byte at offset {len(SECRET)})"),
    (SECRET.encode() + "é".encode("latin-1"), f"is not UTF-8 text, so not a CSV text file (invalid byte at offset "
                                              f"{len(SECRET)})"),
])
def test_an_unreadable_input_names_the_file_and_the_problem_never_its_content(scratch: Path, content, problem) -> None:
    path = scratch / "input.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        read_text(path, FIX, kind="CSV text")
    assert str(info.value) == f"input file {path} {problem}: {FIX}"


def test_a_folder_is_no_input(scratch: Path) -> None:
    with pytest.raises(ValueError, match="is a folder, not a file: pass a CSV"):
        read_text(scratch, FIX)


def test_text_comes_without_its_byte_order_mark_and_with_the_files_checksum(scratch: Path) -> None:
    import hashlib

    path = scratch / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfa,b\n")
    assert read_text(path, FIX) == ("a,b\n", hashlib.sha256(b"\xef\xbb\xbfa,b\n").hexdigest())


def test_csv_rows_keep_their_lines_width_and_raw_fields_with_extra_columns_ignored(scratch: Path) -> None:
    path = scratch / "t.csv"
    path.write_bytes(b'extra,b,a\r\n'
                     b'x, 1 ,2\r\n'
                     b'\r\n'                      # a blank line is no row
                     b'y,"two\nlines",3\r\n'      # a quoted cell spanning lines ends on line 5
                     b'z,4\r\n'                   # the wrong width
                     b'w,5,6,7\r\n')
    table = read_csv_table(path, ("a", "b"), FIX)
    assert table.width == 3 and table.path == path
    rows = table.rows.to_dict("records")
    assert rows == [
        {"line": 2, "raw": "x, 1 ,2", "fields": 3, "a": "2", "b": "1"},
        {"line": 5, "raw": "y,two\nlines,3", "fields": 3, "a": "3", "b": "two\nlines"},
        {"line": 6, "raw": "z,4", "fields": 2, "a": "", "b": ""},
        {"line": 7, "raw": "w,5,6,7", "fields": 4, "a": "", "b": ""},
    ]


@pytest.mark.parametrize("content, problem", [
    (f"{SECRET},b\n1,2\n", "has the wrong header: missing column(s) a (extra columns would be ignored)"),
    (f"a,a,b,b,{SECRET}\n1,2,3,4,5\n", "has the wrong header: duplicated column(s) a, b"),
    (f"a,a,{SECRET}\n1,2,3\n", "has the wrong header: missing column(s) b; duplicated column(s) a (extra"),
    ("b,a\n", "has a header but no data rows"),
])
def test_a_csv_with_a_wrong_header_or_no_rows_is_refused_without_quoting_it(scratch: Path, content: str,
                                                                            problem: str) -> None:
    path = scratch / "t.csv"
    path.write_text(content)
    with pytest.raises(ValueError) as info:
        read_csv_table(path, ("a", "b"), FIX)
    message = str(info.value)
    assert message.startswith(f"input file {path} ") and problem in message and message.endswith(FIX), message
    assert SECRET not in message


# ------------------------------------------------------------------------------------------ write_files_atomically

def test_files_are_written_readable_by_all_with_no_temporary_file_left(scratch: Path) -> None:
    out = scratch / "new" / "deeper"
    write_files_atomically(out, {"a.csv": b"1\n", "b.md": "é\n"})
    assert snapshot(out) == {"a.csv": b"1\n", "b.md": "é\n".encode()}
    assert {oct(p.stat().st_mode & 0o777) for p in out.iterdir()} == {"0o644"}
    write_files_atomically(out, {"a.csv": b"2\n"})
    assert snapshot(out) == {"a.csv": b"2\n", "b.md": "é\n".encode()}, "only the named files are replaced"


WRITER = """
import sys
from pathlib import Path
from agents.dagkit.datafiles import write_files_atomically
write_files_atomically(Path(sys.argv[1]), {"first.csv": b"new first\\n", "big.png": b"x" * 65536,
                                           "last.json": b"{}\\n"})
"""


def test_a_write_that_fails_midway_leaves_the_previous_files_and_no_temporary_file(scratch: Path) -> None:
    """A real process with a file-size limit (as a full disk would fail it): first.csv is staged, big.png fails."""
    out = scratch / "out"
    write_files_atomically(out, {"first.csv": b"old first\n", "big.png": b"old png", "last.json": b"old\n"})
    before = snapshot(out)

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so that write() fails with EFBIG instead of killing it
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))

    proc = subprocess.run([sys.executable, "-c", WRITER, str(out)], capture_output=True, text=True,
                          cwd=str(REPO_ROOT), preexec_fn=limit_file_size, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"RuntimeError: writing the outputs to {out} failed ([Errno 27] File too large); the previous outputs " \
           "are left as they were" in proc.stderr, proc.stderr
    assert snapshot(out) == before


def test_a_folder_in_the_way_fails_before_anything_is_written(scratch: Path) -> None:
    write_files_atomically(scratch, {"a.csv": b"old\n"})
    (scratch / "b.png").mkdir()
    with pytest.raises(RuntimeError, match=f"cannot write {scratch / 'b.png'}: a folder of that name is in the way; "
                                           "remove it or pass another output_dir"):
        write_files_atomically(scratch, {"a.csv": b"new\n", "b.png": b"png"})
    assert (scratch / "a.csv").read_bytes() == b"old\n"
    assert sorted(p.name for p in scratch.iterdir()) == ["a.csv", "b.png"]


def test_a_folder_that_cannot_be_made_names_the_parameter_to_change(scratch: Path) -> None:
    (scratch / "a-file").write_text("not a folder")
    with pytest.raises(RuntimeError, match=f"cannot create the output folder {scratch / 'a-file' / 'out'}: .*; "
                                           "pass a writable folder with the parameter result_dir"):
        write_files_atomically(scratch / "a-file" / "out", {"a": b""}, parameter="result_dir")


def test_a_folder_reached_through_a_symlink_is_refused_and_nothing_is_written(scratch: Path, outside: Path) -> None:
    """A path checked by confined_path has no symlink left in it: one found at write time (put there since, or
    a folder that did not come from confined_path) may lead anywhere, so nothing is written through it."""
    (scratch / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(RuntimeError) as info:
        write_files_atomically(scratch / "link", {"a.csv": b"x"})
    assert f"the output folder {scratch / 'link'} resolves to {outside.resolve()}" in str(info.value)
    assert "nothing was written: pass the folder that confined_path returns" in str(info.value)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.csv"]


@pytest.mark.parametrize("name", ["runs/x.json", "", "..", "."])
def test_file_names_with_a_folder_are_refused(scratch: Path, name: str) -> None:
    with pytest.raises(ValueError, match="must be a plain file name"):
        write_files_atomically(scratch, {name: b"x"})
    assert list(scratch.iterdir()) == []


def test_the_folder_is_never_left_with_a_temporary_file_of_a_failed_write(scratch: Path) -> None:
    # a payload that is neither bytes nor str fails while it is written: the staged files are removed
    with pytest.raises(TypeError):
        write_files_atomically(scratch, {"a.csv": b"ok", "b.csv": 42})  # type: ignore[dict-item]
    assert os.listdir(scratch) == []


# -------------------------------------------------------------------------------- write_files_with_manifest

def test_the_manifest_is_written_last_with_each_other_files_size_and_checksum(scratch: Path) -> None:
    import hashlib
    import json

    from agents.dagkit.datafiles import write_files_with_manifest

    written = write_files_with_manifest(scratch, {"a.csv": "x,y\n", "b.bin": b"\x00\x01"}, "report.json",
                                        {"rows": 1})
    assert list(written) == ["a.csv", "b.bin", "report.json"]
    assert snapshot(scratch) == written
    report = json.loads((scratch / "report.json").read_text())
    assert report == {"rows": 1, "files": {
        "a.csv": {"bytes": 4, "sha256": hashlib.sha256(b"x,y\n").hexdigest()},
        "b.bin": {"bytes": 2, "sha256": hashlib.sha256(b"\x00\x01").hexdigest()}}}


def test_a_manifest_among_the_files_is_refused_and_nothing_is_written(scratch: Path) -> None:
    from agents.dagkit.datafiles import write_files_with_manifest

    with pytest.raises(ValueError, match="report.json is the manifest"):
        write_files_with_manifest(scratch / "out", {"report.json": "{}"}, "report.json", {})
    assert not (scratch / "out").exists()
