"""The ETL DAG (dags/etl-seattle-weather) run for real with prefect: rejects, aggregates, chart, atomic load."""
from __future__ import annotations

import calendar
import csv
import hashlib
import json
import logging
import os
import resource
import shutil
import signal
import statistics
import struct
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from PIL import Image

from tests.dags.conftest import DATA, data_scratch
from tests.dags.dag_files import (ESCAPES, ETL_DAG, FIXTURES, WEATHER_CSV, dag_env, escaping_path, load_flow, run_local,
                                   task_state)

# the fixture lives with the tests, outside data/: each test copies it into its scratch folder under data/
DIRTY_SOURCE = FIXTURES / "dirty-weather.csv"
# monthly.csv rounds to 2 decimals: half a cent, plus float noise
ROUNDING = 0.005 + 1e-9
OUTPUTS = {"monthly.csv", "rejects.csv", "chart.png", "report.md", "report.json"}

# The fixture's bad rows, by line number, with the check each one breaks (worked out by reading the file).
DIRTY_REJECTS = {
    4: "precipitation",     # abc
    6: "date",              # month 13
    7: "duplicate_date",    # 2013/01/02 again (first on line 3)
    8: "temp_order",        # min 5.0 above max 3.0
    9: "weather",           # hail
    10: "field_count",      # 4 fields
    12: "precipitation",    # -2.0
    15: "precipitation",    # empty
    17: "temp_max",         # nan
    18: "wind",             # 150 m/s
}
# The fixture's good rows: (date, precipitation, temp_max, temp_min, wind, weather), copied from the file.
DIRTY_ACCEPTED = [
    ("2013-01-01", 0.0, 5.0, 1.0, 2.0, "sun"),
    ("2013-01-02", 10.5, 7.5, 2.5, 3.0, "rain"),
    ("2013-01-04", 1.5, 6.0, -1.0, 4.0, "drizzle"),
    ("2013-02-01", 2.0, 10.0, 4.0, 5.0, "rain"),
    ("2013-02-02", 0.0, 12.0, 3.0, 1.0, "sun"),
    ("2013-02-04", 0.0, 12.5, 3.5, 1.5, "fog"),
    ("2013-02-07", 0.3, 1.0, -2.0, 6.0, "snow"),
]


def run_flow(input_path: Path, output_dir: Path):
    """Runs the ETL flow in this process, loaded as script storage loads it."""
    return load_flow(ETL_DAG).run(parameters={"input_path": str(input_path), "output_dir": str(output_dir)})


def snapshot(folder: Path) -> Dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def failure_messages(state) -> List[str]:
    return [str(s.result) for s in state.result.values() if type(s).__name__ == "Failed"]


@pytest.fixture
def dirty(data_tmp: Path) -> Path:
    """The dirty fixture, copied into the test's scratch folder under data/."""
    return Path(shutil.copy(DIRTY_SOURCE, data_tmp / DIRTY_SOURCE.name))


@pytest.fixture(scope="module")
def dirty_run():
    """One run over the dirty fixture, shared by the tests that read its outputs (keeps the suite quick)."""
    with data_scratch() as scratch:
        yield run_dirty(scratch)


def run_dirty(scratch: Path):
    out = scratch / "out"
    dirty = Path(shutil.copy(DIRTY_SOURCE, scratch / DIRTY_SOURCE.name))
    records: List[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[assignment]
    logger = logging.getLogger("prefect")
    logger.addHandler(handler)
    mp = pytest.MonkeyPatch()
    mp.setenv("DAGS_AGENT_NAME", "agent-under-test")
    try:
        state = run_flow(dirty, out)
    finally:
        mp.undo()
        logger.removeHandler(handler)
    assert state.is_successful(), state.result
    return out, [r.getMessage() for r in records]


def test_dirty_rows_go_to_rejects_file_with_their_reason(dirty_run):
    out, _ = dirty_run
    with (out / "rejects.csv").open(newline="") as fh:
        rejects = list(csv.DictReader(fh))
    assert {int(r["line"]): r["code"] for r in rejects} == DIRTY_REJECTS
    by_line = {int(r["line"]): r for r in rejects}
    assert "abc" in by_line[4]["reason"] and "not a number" in by_line[4]["reason"]
    assert "already seen on line 3" in by_line[7]["reason"]
    assert by_line[10]["reason"] == "expected 6 fields, found 4"
    assert "hail" in by_line[9]["reason"]
    assert by_line[18]["raw"] == "2013/02/06,0.3,11.0,6.0,150,sun"


def test_log_says_how_many_rows_were_accepted_and_rejected(dirty_run):
    _, messages = dirty_run
    assert "validate: 17 rows read, 7 accepted, 10 rejected" in messages
    assert any(m.startswith("validate: rejected line 8: temp_min 5 is above temp_max 3") for m in messages)
    assert any(m.startswith("load: 10 rejected rows written to ") for m in messages)


def test_monthly_aggregates_match_an_independent_computation(dirty_run):
    out, _ = dirty_run
    with (out / "monthly.csv").open(newline="") as fh:
        monthly = {row["month"]: row for row in csv.DictReader(fh)}
    assert sorted(monthly) == ["2013-01", "2013-02"]
    for month in monthly:
        days = [r for r in DIRTY_ACCEPTED if r[0].startswith(month)]
        got = monthly[month]
        assert int(got["days"]) == len(days)
        assert float(got["precipitation_mm"]) == pytest.approx(sum(d[1] for d in days), abs=ROUNDING)
        assert int(got["wet_days"]) == len([d for d in days if d[1] > 0])
        assert float(got["temp_max_mean"]) == pytest.approx(statistics.mean(d[2] for d in days), abs=ROUNDING)
        assert float(got["temp_min_mean"]) == pytest.approx(statistics.mean(d[3] for d in days), abs=ROUNDING)
        assert float(got["temp_max_highest"]) == max(d[2] for d in days)
        assert float(got["temp_min_lowest"]) == min(d[3] for d in days)
        assert float(got["wind_mean"]) == pytest.approx(statistics.mean(d[4] for d in days), abs=ROUNDING)
        for kind in ("drizzle", "fog", "rain", "snow", "sun"):
            assert int(got[f"days_{kind}"]) == len([d for d in days if d[5] == kind]), kind
    # the numbers above, by hand, so that a shared mistake in the lists cannot hide
    assert float(monthly["2013-01"]["precipitation_mm"]) == 12.0
    assert float(monthly["2013-02"]["temp_max_mean"]) == pytest.approx(8.875, abs=ROUNDING)


def test_report_records_counts_agent_and_checksums_of_the_files_it_came_with(dirty_run):
    out, _ = dirty_run
    report = json.loads((out / "report.json").read_text())
    assert report["rows"] == {"read": 17, "accepted": 7, "rejected": 10}
    assert report["agent_name"] == "agent-under-test"
    assert report["rejected_by_reason"]["precipitation"] == 3
    assert report["input"]["sha256"] == hashlib.sha256(DIRTY_SOURCE.read_bytes()).hexdigest()
    for name in ("monthly.csv", "rejects.csv", "chart.png", "report.md"):
        assert report["files"][name]["sha256"] == hashlib.sha256((out / name).read_bytes()).hexdigest(), name
    markdown = (out / "report.md").read_text()
    assert "7 accepted, 10 rejected" in markdown and "agent-under-test" in markdown
    assert "![monthly precipitation and temperature](chart.png)" in markdown
    assert {p.name for p in out.iterdir()} == OUTPUTS


def png_size(payload: bytes) -> Tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, which must come first, after the signature."""
    assert payload[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    length, kind, width, height = struct.unpack(">I4sII", payload[8:24])
    assert (length, kind) == (13, b"IHDR")
    assert payload[-12:] == b"\x00\x00\x00\x00IEND\xaeB`\x82", "the PNG does not end with its IEND chunk"
    return width, height


def test_chart_is_a_valid_png_of_sensible_size(dirty_run):
    """matplotlib's Agg output: a complete PNG of the figure's size (10 x 5.6 in at 100 dpi), with content."""
    out, _ = dirty_run
    payload = (out / "chart.png").read_bytes()
    assert png_size(payload) == (1000, 560)
    with Image.open(out / "chart.png") as image:  # Pillow, matplotlib's own dependency, checks every chunk's CRC
        image.verify()
    with Image.open(out / "chart.png") as image:
        colours = {c for _, c in image.convert("RGB").getcolors(maxcolors=1 << 16) or []}
    assert (120, 160, 220) in colours, "the precipitation bars (a solid fill) were drawn"
    assert len(colours) > 50, "lines, text and antialiasing: not an empty frame"
    assert len(payload) > 10_000


def test_real_dataset_loads_every_day_of_2012_to_2015(data_tmp):
    state = run_flow(WEATHER_CSV, data_tmp / "out")
    assert state.is_successful(), state.result
    report = json.loads((data_tmp / "out" / "report.json").read_text())
    assert report["rows"] == {"read": 1461, "accepted": 1461, "rejected": 0}
    with WEATHER_CSV.open(newline="") as fh:
        total = sum(float(r["precipitation"]) for r in csv.DictReader(fh))
    assert report["precipitation_mm_total"] == pytest.approx(total, abs=0.01)
    assert len(report["monthly"]) == 48
    for month in report["monthly"]:
        year, number = map(int, month["month"].split("-"))
        assert month["days"] == calendar.monthrange(year, number)[1], month["month"]
    assert png_size((data_tmp / "out" / "chart.png").read_bytes()) == (1000, 560)


@pytest.mark.parametrize("name, content, expected", [
    ("missing.csv", None, "does not exist"),
    ("semicolons.csv", b"date;precipitation;temp_max;temp_min;wind;weather\n2012/01/01;0;1;0;1;sun\n",
     "has the wrong header: missing column(s) date, precipitation, temp_max, temp_min, wind, weather"),
    ("no-wind.csv", b"date,precipitation,temp_max,temp_min,weather\n2012/01/01,0,1,0,sun\n",
     "has the wrong header: missing column(s) wind"),
    ("garbage.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "is binary, not a CSV text file"),
    ("latin1.csv", "date,précipitation\n".encode("latin-1"), "is not UTF-8 text"),
    ("empty.csv", b"", "is empty"),
    ("header-only.csv", b"date,precipitation,temp_max,temp_min,wind,weather\n", "has a header but no data rows"),
    ("all-bad.csv", b"date,precipitation,temp_max,temp_min,wind,weather\nx,y,z,w,v,u\n", "has no valid row"),
])
def test_malformed_input_fails_with_an_error_naming_the_file_and_the_problem(data_tmp, name, content, expected):
    path = data_tmp / name
    if content is not None:
        path.write_bytes(content)
    state = run_flow(path, data_tmp / "out")
    assert state.is_failed()
    failed = [s for s in state.result.values() if type(s).__name__ == "Failed"]
    assert len(failed) == 1, failed
    message = str(failed[0].result)
    assert str(path) in message and expected in message, message
    assert "input_path" in message or "another input_path" in message, "the error says how to fix it"
    assert not (data_tmp / "out").exists(), "nothing is written when the input is bad"


def test_input_path_that_is_a_folder_is_refused(data_tmp):
    state = run_flow(data_tmp, data_tmp / "out")
    message = str(task_state(state, "extract").result)
    assert f"input file {data_tmp} is a folder, not a file" in message


def test_run_killed_mid_load_leaves_the_previous_output_intact_and_no_temp_files(tmp_path, data_tmp, dirty):
    """The second run's chart.png write hits a file-size limit (as a full disk would) after monthly.csv and
    rejects.csv have been written to their temporary files: nothing of it may show in the output folder."""
    out = data_tmp / "out"
    first = run_local(ETL_DAG, {"input_path": str(dirty), "output_dir": str(out)}, dag_env(tmp_path / "home"))
    assert first.returncode == 0, first.stdout + first.stderr
    before = snapshot(out)
    assert set(before) == OUTPUTS
    # the full dataset's chart (~12 KB) is over the limit, its monthly.csv (~3 KB) and rejects.csv are not
    limit = 8192
    assert len(before["monthly.csv"]) < limit

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so write() fails with EFBIG instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    second = run_local(ETL_DAG, {"input_path": str(WEATHER_CSV), "output_dir": str(out)},
                       dag_env(tmp_path / "home"), preexec_fn=limit_file_size)
    log = second.stdout + second.stderr
    assert second.returncode == 1, log
    assert f"writing the outputs to {out} failed" in log and "File too large" in log, log
    assert "the previous outputs are left as they were" in log
    assert snapshot(out) == before, "a failed load changed the previous outputs"
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS), "temporary files were left behind"


def test_folder_in_the_way_of_an_output_fails_before_anything_is_replaced(data_tmp, dirty):
    out = data_tmp / "out"
    assert run_flow(dirty, out).is_successful()
    (out / "chart.png").unlink()
    (out / "chart.png").mkdir()
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    state = run_flow(WEATHER_CSV, out)
    message = str(task_state(state, "load").result)
    assert f"cannot write {out / 'chart.png'}: a folder of that name is in the way" in message
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)


def test_unwritable_output_path_gives_a_clear_error(data_tmp, dirty):
    blocker = data_tmp / "a-file"
    blocker.write_text("not a folder")
    state = run_flow(dirty, blocker / "out")
    message = str(task_state(state, "load").result)
    assert f"cannot create the output folder {blocker / 'out'}" in message
    assert "pass a writable folder with the parameter output_dir" in message


@pytest.mark.parametrize("value", ["", "   ", 42])
def test_output_dir_that_is_no_path_is_refused(dirty, value):
    state = load_flow(ETL_DAG).run(parameters={"input_path": str(dirty), "output_dir": value})
    assert state.is_failed()
    messages = failure_messages(state)
    assert any("parameter output_dir must be a non-empty path" in m for m in messages), messages


def test_a_row_failing_several_checks_names_each_in_order_and_keeps_its_line(data_tmp):
    source = data_tmp / "several.csv"
    source.write_text("date,precipitation,temp_max,temp_min,wind,weather\n"
                      "2014/03/01,1,9,2,4,rain\n"
                      "\n"
                      "2014/02/30,,99,2,-1,hail\n"
                      '"2014/03/02",0,8,1,"2",sun\n')
    state = run_flow(source, data_tmp / "out")
    assert state.is_successful(), state.result
    with (data_tmp / "out" / "rejects.csv").open(newline="") as fh:
        (reject,) = list(csv.DictReader(fh))
    assert reject["line"] == "4", "blank lines count in the line numbers"
    assert reject["code"] == "date,precipitation,temp_max,wind,weather"
    assert reject["reason"] == ("date '2014/02/30' is not a date in YYYY/MM/DD form; precipitation is empty; "
                                "temp_max 99 is outside -60..60; wind -1 is outside 0..100; "
                                "weather 'hail' is not one of drizzle, fog, rain, snow, sun")
    report = json.loads((data_tmp / "out" / "report.json").read_text())
    assert report["rows"] == {"read": 3, "accepted": 2, "rejected": 1}
    assert report["rejected_by_reason"] == {"date": 1, "precipitation": 1, "temp_max": 1, "weather": 1, "wind": 1}


def test_extra_columns_in_any_order_are_ignored(data_tmp):
    source = data_tmp / "reordered.csv"
    source.write_text("station,weather,date,wind,temp_min,temp_max,precipitation\r\n"
                      "SEA,rain,2014/03/01,4.0,2.0,9.0,5.5\r\n"
                      "SEA,sun,2014/03/02,2.0,1.0,11.0,0\r\n")
    state = run_flow(source, data_tmp / "out")
    assert state.is_successful(), state.result
    with (data_tmp / "out" / "monthly.csv").open(newline="") as fh:
        (march,) = list(csv.DictReader(fh))
    assert (march["month"], march["days"], march["precipitation_mm"]) == ("2014-03", "2", "5.5")
    assert (march["days_rain"], march["days_sun"], march["temp_max_highest"]) == ("1", "1", "11.0")


SECRET = "TOPSECRET-hunter2"


@pytest.fixture
def outside_file(tmp_path: Path) -> Path:
    """A readable file outside data/ whose first line is a secret (what the agent could read elsewhere)."""
    path = tmp_path / "secret.csv"
    path.write_text(f"{SECRET},date,precipitation,temp_max,temp_min,wind,weather\n")
    return path


def assert_refused_outside(state, parameter: str) -> str:
    messages = failure_messages(state)
    assert state.is_failed() and len(messages) == 1, messages
    assert f"parameter {parameter} must point inside the data folder {DATA.resolve()}" in messages[0], messages
    return messages[0]


@pytest.mark.parametrize("kind", ["absolute", "dot-dot", "symlink", "symlinked-folder"])
def test_input_outside_data_is_refused_without_reading_it(data_tmp: Path, outside_file: Path, kind: str) -> None:
    if kind == "absolute":
        given = str(outside_file)
    elif kind == "dot-dot":
        # relative to the repo root: into data/, then up and out of the repository
        given = "data/../" + os.path.relpath(outside_file, DATA.parent)
    elif kind == "symlink":
        (data_tmp / "link.csv").symlink_to(outside_file)
        given = str(data_tmp / "link.csv")
    else:
        (data_tmp / "elsewhere").symlink_to(outside_file.parent, target_is_directory=True)
        given = str(data_tmp / "elsewhere" / outside_file.name)
    state = load_flow(ETL_DAG).run(parameters={"input_path": given, "output_dir": str(data_tmp / "out")})
    message = assert_refused_outside(state, "input_path")
    assert SECRET not in message
    assert not (data_tmp / "out").exists()


@pytest.mark.parametrize("kind", ESCAPES)
def test_output_outside_data_is_refused_and_nothing_is_written_there(tmp_path: Path, data_tmp: Path, dirty: Path,
                                                                    kind: str) -> None:
    target = tmp_path / "escaped"
    given = escaping_path(kind, target, data_tmp)
    state = load_flow(ETL_DAG).run(parameters={"input_path": str(dirty), "output_dir": given})
    assert_refused_outside(state, "output_dir")
    assert not target.exists() or list(target.iterdir()) == []


def test_paths_inside_data_by_any_spelling_are_accepted(data_tmp: Path, dirty: Path) -> None:
    relative_in = dirty.relative_to(DATA.parent)  # data/.pytest-.../dirty-weather.csv
    roundabout_out = f"data/output/../{data_tmp.name}/./out"
    (data_tmp / "inner-link.csv").symlink_to(dirty)  # a symlink that stays inside data/ is fine
    for input_path in (str(relative_in), str(data_tmp / "inner-link.csv")):
        state = load_flow(ETL_DAG).run(parameters={"input_path": input_path, "output_dir": roundabout_out})
        assert state.is_successful(), state.result
    assert sorted(p.name for p in (data_tmp / "out").iterdir()) == sorted(OUTPUTS)


@pytest.mark.parametrize("content", [
    f"{SECRET},precipitation\n2012/01/01,0\n",  # wrong header: the first line must not be quoted
    f"date,precipitation,temp_max,temp_min,wind,weather\n{SECRET},{SECRET},1,0,1,{SECRET}\n",  # no valid row
    f"date,date,precipitation,temp_max,temp_min,wind,weather,{SECRET},{SECRET}\n",  # duplicated columns
])
def test_errors_never_quote_the_input_file(data_tmp: Path, content: str) -> None:
    path = data_tmp / "leaky.csv"
    path.write_text(content)
    state = load_flow(ETL_DAG).run(parameters={"input_path": str(path), "output_dir": str(data_tmp / "out")})
    messages = failure_messages(state)
    assert state.is_failed() and len(messages) == 1, messages
    assert str(path) in messages[0] and SECRET not in messages[0], messages[0]
