"""ETL over NOAA's daily Seattle weather (2012-2015): monthly aggregates, a rejects file, a report and a chart.

extract  reads the CSV (a missing file, a binary file or a wrong header fails with an error naming the file
         and what is wrong with it);
validate types every row; rows that fail go to rejects.csv with the reason;
transform aggregates the accepted rows by month;
chart    draws monthly precipitation and temperatures into a PNG with Pillow;
report   writes report.md and report.json (counts, monthly table, agent, checksums of the other files);
load     writes everything to the output folder atomically: every file is first written to a temporary file
         in that folder and fsynced, and only when all of them are on disk are they moved into place with
         os.replace, so a run that fails anywhere leaves the previous output as it was.

Parameters (relative paths are taken from the repository root, /app inside the containers):
    input_path   the CSV to read            (default data/seattle-weather.csv)
    output_dir   where the outputs go       (default data/output/etl-seattle-weather)
Both must stay inside the repository's data/ folder once resolved (symlinks followed): a run's parameters come
from whoever can trigger it, and must not make the agent read or write anywhere else it can. Errors name the
file and what is wrong with it, never what it holds.

Run it here with `python dags/etl-seattle-weather/etl_seattle_weather.py --local`, or register and host it
with `python dags/etl-seattle-weather/etl_seattle_weather.py`.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import math
import os
import pathlib
import socket
import tempfile
from collections import Counter, OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import prefect
from prefect import Flow, Parameter, task
from prefect.run_configs import LocalRun

PROJECT = "My Tests"
FLOW_NAME = "etl-seattle-weather"
# dags/<name>/<file>.py -> the repository root (/app in the image), where data/ lives
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
# the only folder the parameters may point into (inputs shipped with the repo, outputs of runs)
DATA_ROOT = REPO_ROOT / "data"

COLUMNS = ("date", "precipitation", "temp_max", "temp_min", "wind", "weather")
WEATHER_TYPES = ("drizzle", "fog", "rain", "snow", "sun")
# Plausibility bounds: a value outside them is a data error, not weather (records: Seattle -18..42 degC).
NUMERIC_BOUNDS = OrderedDict(
    precipitation=(0.0, 500.0),
    temp_max=(-60.0, 60.0),
    temp_min=(-60.0, 60.0),
    wind=(0.0, 100.0),
)
DATE_FORMATS = ("%Y/%m/%d", "%Y-%m-%d")
MONTHLY_FIELDS = (
    "month", "days", "precipitation_mm", "wet_days", "temp_max_mean", "temp_min_mean",
    "temp_max_highest", "temp_min_lowest", "wind_mean",
) + tuple(f"days_{w}" for w in WEATHER_TYPES)
REJECT_FIELDS = ("line", "code", "reason", "raw")
OUTPUT_FILES = ("monthly.csv", "rejects.csv", "chart.png", "report.md", "report.json")


# ---------------------------------------------------------------- paths and files

def resolve_path(value: Any, parameter: str) -> pathlib.Path:
    """Turns a path parameter into an absolute path inside the data folder, relative ones being taken from the
    repository root.

    Args:
        value: the parameter's value
        parameter: its name, for the error message

    Returns:
        The absolute path with every symlink resolved.

    Raises:
        ValueError: not a path, or a path that resolves outside the data folder.
    """
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise ValueError(f"parameter {parameter} must be a non-empty path, got {value!r}: "
                         f"pass e.g. --param {parameter}=data/seattle-weather.csv")
    path = pathlib.Path(str(value).strip()).expanduser()
    return inside_data(path if path.is_absolute() else REPO_ROOT / path, parameter)


def inside_data(path: pathlib.Path, parameter: str) -> pathlib.Path:
    """Resolves `path` (symlinks followed, missing parts kept) and refuses it unless it is in the data folder.

    Args:
        path: an absolute path
        parameter: the parameter it came from, for the error message

    Returns:
        The resolved path.
    """
    root = DATA_ROOT.resolve()
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise ValueError(f"parameter {parameter} must point inside the data folder {root}, but {path} resolves "
                         f"to {resolved} (symlinks followed): put the file under data/ and pass a path such as "
                         f"data/seattle-weather.csv or data/output/{FLOW_NAME}")
    return resolved


def write_files_atomically(directory: pathlib.Path, files: "OrderedDict[str, bytes]") -> None:
    """Writes files into `directory` so that readers see either all the old ones or all the new ones.

    Every payload goes first to a temporary file in the same folder (same filesystem, so the rename is
    atomic) and is fsynced; only when all of them are safely on disk are they renamed over the targets,
    in order, then the folder itself is fsynced so the renames survive a crash. If anything fails, the
    temporary files are removed and the previous outputs are untouched.

    Args:
        directory: the output folder (created when missing)
        files: file name -> content, in the order they should replace the old ones

    Returns:
        None
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RuntimeError(f"cannot create the output folder {directory}: {exc.strerror or exc}; "
                           f"pass a writable folder with the parameter output_dir") from exc
    if directory.resolve() != directory:
        # it was resolved before; a symlink that appears meanwhile must not redirect the writes
        raise RuntimeError(f"the output folder {directory} changed while it was created (it now resolves to "
                           f"{directory.resolve()}); nothing was written")
    for name in files:
        if (directory / name).is_dir():
            raise RuntimeError(f"cannot write {directory / name}: a folder of that name is in the way; "
                               f"remove it or pass another output_dir")
    staged: List[Tuple[str, pathlib.Path]] = []
    try:
        for name, payload in files.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=str(directory))
            staged.append((tmp, directory / name))
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; outputs are for everyone to read
        for tmp, target in staged:
            os.replace(tmp, target)
        dir_fd = os.open(str(directory), os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise RuntimeError(f"writing the outputs to {directory} failed ({exc}); the previous outputs "
                           f"are left as they were") from exc
    finally:
        for tmp, _ in staged:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass  # already renamed into place


# ---------------------------------------------------------------- extract

def read_weather_csv(path: pathlib.Path) -> Dict[str, Any]:
    """Reads the weather CSV, failing with a clear error when the file is missing or is no such CSV.

    Args:
        path: the CSV file

    Returns:
        {"path", "sha256", "header", "rows"} where rows is a list of (line number, fields).
    """
    fix = "pass a CSV with the header line " + ",".join(COLUMNS) + " through the parameter input_path"
    if not path.exists():
        raise ValueError(f"input file {path} does not exist: {fix}")
    if path.is_dir():
        raise ValueError(f"input file {path} is a folder, not a file: {fix}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"input file {path} cannot be read ({exc.strerror or exc}): {fix}") from exc
    if not data.strip():
        raise ValueError(f"input file {path} is empty: {fix}")
    if b"\x00" in data:
        offset = data.index(b"\x00")
        raise ValueError(f"input file {path} is binary, not a CSV text file (NUL byte at offset "
                         f"{offset}): {fix}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"input file {path} is not UTF-8 text, so not a CSV file (invalid byte at offset "
                         f"{exc.start}): {fix}") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    records: List[Tuple[int, List[str]]] = []
    try:
        for record in reader:
            records.append((reader.line_num, record))  # line_num: a quoted cell may span lines
    except csv.Error as exc:
        raise ValueError(f"input file {path} is not a valid CSV file (line {reader.line_num}: {exc}): "
                         f"{fix}") from exc
    header = [cell.strip() for cell in records[0][1]] if records else []
    missing = [c for c in COLUMNS if c not in header]
    # only our own column names are ever named: the header is the file's content, which errors never quote
    duplicated = [c for c in COLUMNS if header.count(c) > 1]
    if missing or duplicated:
        problems = []
        if missing:
            problems.append("missing column(s) " + ", ".join(missing))
        if duplicated:
            problems.append("duplicated column(s) " + ", ".join(duplicated))
        raise ValueError(f"input file {path} has the wrong header: {'; '.join(problems)} "
                         f"(extra columns would be ignored): {fix}")
    rows = [(number, record) for number, record in records[1:] if record]  # blank lines are empty records
    if not rows:
        raise ValueError(f"input file {path} has a header but no data rows: {fix}")
    return {"path": str(path), "sha256": hashlib.sha256(data).hexdigest(), "header": header, "rows": rows}


# ---------------------------------------------------------------- validate

def parse_date(value: str) -> Optional[dt.date]:
    """Parses a YYYY/MM/DD (or YYYY-MM-DD) date, None when it is none."""
    for fmt in DATE_FORMATS:
        try:
            return dt.datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    return None


def validate_row(header: Sequence[str],
                 fields: Sequence[str]) -> Tuple[Optional[Dict[str, Any]], List[Tuple[str, str]]]:
    """Types one CSV row.

    Args:
        header: the file's column names
        fields: the row's cells

    Returns:
        (row, problems): the typed row (None when invalid) and a list of (code, reason).
    """
    if len(fields) != len(header):
        return None, [("field_count", f"expected {len(header)} fields, found {len(fields)}")]
    cells = {name: value.strip() for name, value in zip(header, fields)}
    problems: List[Tuple[str, str]] = []
    row: Dict[str, Any] = {}
    day = parse_date(cells["date"])
    if day is None:
        problems.append(("date", f"date {cells['date']!r} is not a date in YYYY/MM/DD form"))
    else:
        row["date"] = day.isoformat()
    for name, (low, high) in NUMERIC_BOUNDS.items():
        raw = cells[name]
        if raw == "":
            problems.append((name, f"{name} is empty"))
            continue
        try:
            value = float(raw)
        except ValueError:
            problems.append((name, f"{name} {raw!r} is not a number"))
            continue
        if math.isnan(value) or not low <= value <= high:
            problems.append((name, f"{name} {raw} is outside {low:g}..{high:g}"))
            continue
        row[name] = value
    if "temp_min" in row and "temp_max" in row and row["temp_min"] > row["temp_max"]:
        problems.append(("temp_order", f"temp_min {row['temp_min']:g} is above temp_max {row['temp_max']:g}"))
    weather = cells["weather"].lower()
    if weather not in WEATHER_TYPES:
        problems.append(("weather", f"weather {cells['weather']!r} is not one of {', '.join(WEATHER_TYPES)}"))
    else:
        row["weather"] = weather
    return (None if problems else row), problems


def validate_rows(extracted: Dict[str, Any]) -> Dict[str, Any]:
    """Splits the extracted rows into accepted (typed) rows and rejects with their reasons.

    Args:
        extracted: what read_weather_csv returned

    Returns:
        {"accepted": [row...], "rejected": [{"line", "code", "reason", "raw"}...], "rows_read": int}
    """
    header = extracted["header"]
    accepted: List[Dict[str, Any]] = []
    rejected: List[Dict[str, Any]] = []
    first_seen: Dict[str, int] = {}
    for line, fields in extracted["rows"]:
        row, problems = validate_row(header, fields)
        if row is not None and row["date"] in first_seen:
            problems = [("duplicate_date", f"date {row['date']} already seen on line {first_seen[row['date']]}")]
            row = None
        if row is None:
            rejected.append({
                "line": line,
                "code": ",".join(code for code, _ in problems),
                "reason": "; ".join(reason for _, reason in problems),
                "raw": ",".join(fields),
            })
            continue
        first_seen[row["date"]] = line
        row["line"] = line
        accepted.append(row)
    if not accepted:
        # codes only: a reason quotes the cell, and an error never quotes the file
        sample = "; ".join(f"line {r['line']}: {r['code']}" for r in rejected[:3])
        raise ValueError(f"input file {extracted['path']} has no valid row: all {len(rejected)} rows were "
                         f"rejected ({sample}); fix the file or pass another input_path")
    return {"accepted": accepted, "rejected": rejected, "rows_read": len(extracted["rows"])}


# ---------------------------------------------------------------- transform

def monthly_aggregates(rows: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Aggregates typed daily rows by calendar month.

    Args:
        rows: accepted rows (date as YYYY-MM-DD, numbers as floats)

    Returns:
        One dict per month present, oldest first, with the fields of MONTHLY_FIELDS.
    """
    months: Dict[str, List[Dict[str, Any]]] = {}
    for row in rows:
        months.setdefault(row["date"][:7], []).append(row)
    result = []
    for month in sorted(months):
        days = months[month]
        n = len(days)
        weather = Counter(d["weather"] for d in days)
        entry: Dict[str, Any] = {
            "month": month,
            "days": n,
            "precipitation_mm": round(sum(d["precipitation"] for d in days), 2),
            "wet_days": sum(1 for d in days if d["precipitation"] > 0),
            "temp_max_mean": round(sum(d["temp_max"] for d in days) / n, 2),
            "temp_min_mean": round(sum(d["temp_min"] for d in days) / n, 2),
            "temp_max_highest": max(d["temp_max"] for d in days),
            "temp_min_lowest": min(d["temp_min"] for d in days),
            "wind_mean": round(sum(d["wind"] for d in days) / n, 2),
        }
        for w in WEATHER_TYPES:
            entry[f"days_{w}"] = weather.get(w, 0)
        result.append(entry)
    return result


# ---------------------------------------------------------------- chart

def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is >= value (for axis ranges)."""
    if value <= 0:
        return 1.0
    exponent = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * exponent >= value:
            return step * exponent
    return 10 * exponent


def render_chart(monthly: Sequence[Dict[str, Any]], title: str, width: int = 1000, height: int = 560) -> bytes:
    """Draws monthly precipitation (bars, left axis) and mean max/min temperature (lines, right axis).

    Args:
        monthly: what monthly_aggregates returned (at least one month)
        title: the text on top
        width: image width in pixels
        height: image height in pixels

    Returns:
        The PNG file's bytes.
    """
    from PIL import Image, ImageDraw, ImageFont  # imported here: only the chart needs Pillow

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    left, right, top, bottom = 70, width - 70, 60, height - 70
    n = len(monthly)
    slot = (right - left) / n
    precip_top = nice_ceiling(max(m["precipitation_mm"] for m in monthly))
    t_low = 5 * math.floor(min(m["temp_min_mean"] for m in monthly) / 5)
    t_high = 5 * math.ceil(max(m["temp_max_mean"] for m in monthly) / 5)
    if t_high == t_low:
        t_high = t_low + 5

    def y_precip(v: float) -> float:
        return bottom - (bottom - top) * v / precip_top

    def y_temp(v: float) -> float:
        return bottom - (bottom - top) * (v - t_low) / (t_high - t_low)

    draw.text((left, 20), title, fill="black", font=font)
    # horizontal grid and both axes' tick labels
    for i in range(6):
        y = bottom - (bottom - top) * i / 5
        draw.line([(left, y), (right, y)], fill=(225, 225, 225))
        draw.text((8, y - 6), f"{precip_top * i / 5:g}", fill=(40, 90, 170), font=font)
        draw.text((right + 8, y - 6), f"{t_low + (t_high - t_low) * i / 5:g}", fill=(190, 50, 40), font=font)
    draw.text((8, top - 30), "precipitation mm", fill=(40, 90, 170), font=font)
    draw.text((right - 60, top - 30), "temperature degC", fill=(190, 50, 40), font=font)
    draw.rectangle([left, top, right, bottom], outline="black")
    for i, m in enumerate(monthly):
        x0 = left + i * slot + slot * 0.15
        x1 = left + (i + 1) * slot - slot * 0.15
        draw.rectangle([x0, y_precip(m["precipitation_mm"]), max(x0, x1), bottom], fill=(120, 160, 220))
        if i == 0 or m["month"].endswith("-01"):
            draw.line([(left + i * slot, bottom), (left + i * slot, bottom + 6)], fill="black")
            draw.text((left + i * slot + 2, bottom + 8), m["month"][:4], fill="black", font=font)
    for key, colour in (("temp_max_mean", (200, 40, 30)), ("temp_min_mean", (240, 150, 30))):
        points = [(left + (i + 0.5) * slot, y_temp(m[key])) for i, m in enumerate(monthly)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
    legend = [((120, 160, 220), "precipitation (month total)"), ((200, 40, 30), "mean daily max"),
              ((240, 150, 30), "mean daily min")]
    x = left
    for colour, label in legend:
        draw.rectangle([x, height - 28, x + 12, height - 16], fill=colour)
        draw.text((x + 18, height - 28), label, fill="black", font=font)
        x += 40 + 7 * len(label)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


# ---------------------------------------------------------------- report and serialisation

def csv_bytes(fields: Sequence[str], rows: Sequence[Dict[str, Any]]) -> bytes:
    """Renders dict rows as CSV with a header line."""
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def file_entry(payload: bytes) -> Dict[str, Any]:
    """Size and SHA-256 of an output file, so report.json tells which files belong to the same run."""
    return {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}


def build_outputs(extracted: Dict[str, Any], validated: Dict[str, Any], monthly: List[Dict[str, Any]],
                  chart: bytes, output_dir: pathlib.Path) -> "OrderedDict[str, bytes]":
    """Renders every output file; report.json comes last and lists the checksums of the others.

    Args:
        extracted: what read_weather_csv returned
        validated: what validate_rows returned
        monthly: what monthly_aggregates returned
        chart: the PNG bytes
        output_dir: where they will be written (recorded in the report)

    Returns:
        file name -> bytes, in the order they should be put in place.
    """
    rejected = validated["rejected"]
    files: "OrderedDict[str, bytes]" = OrderedDict()
    files["monthly.csv"] = csv_bytes(MONTHLY_FIELDS, monthly)
    files["rejects.csv"] = csv_bytes(REJECT_FIELDS, rejected)
    files["chart.png"] = chart
    reasons = Counter(code for r in rejected for code in r["code"].split(","))
    accepted = validated["accepted"]
    wettest = max(monthly, key=lambda m: m["precipitation_mm"])
    warmest = max(monthly, key=lambda m: m["temp_max_mean"])
    summary: Dict[str, Any] = {
        "flow": FLOW_NAME,
        "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "flow_run_id": prefect.context.get("flow_run_id"),
        "flow_run_name": prefect.context.get("flow_run_name"),
        # the runtime sets DAGS_AGENT_NAME in the flow-run process to the agent that spawned the run
        "agent_name": os.environ.get("DAGS_AGENT_NAME") or None,
        "hostname": socket.gethostname(),
        "input": {"path": extracted["path"], "sha256": extracted["sha256"]},
        "output_dir": str(output_dir),
        "rows": {"read": validated["rows_read"], "accepted": len(accepted), "rejected": len(rejected)},
        "rejected_by_reason": dict(sorted(reasons.items())),
        "period": {"first_day": min(r["date"] for r in accepted), "last_day": max(r["date"] for r in accepted),
                   "months": len(monthly)},
        "precipitation_mm_total": round(sum(r["precipitation"] for r in accepted), 2),
        "wettest_month": {"month": wettest["month"], "precipitation_mm": wettest["precipitation_mm"]},
        "warmest_month": {"month": warmest["month"], "temp_max_mean": warmest["temp_max_mean"]},
    }
    lines = [
        f"# {FLOW_NAME} report",
        "",
        f"- generated at: {summary['generated_at']}",
        f"- flow run: {summary['flow_run_name'] or '-'} ({summary['flow_run_id'] or 'local run'})",
        f"- agent: {summary['agent_name'] or '-'} on host {summary['hostname']}",
        f"- input: `{extracted['path']}` (sha256 {extracted['sha256'][:16]}...)",
        f"- rows: {len(accepted) + len(rejected)} read, {len(accepted)} accepted, {len(rejected)} rejected "
        "(see rejects.csv)",
        f"- period: {summary['period']['first_day']} to {summary['period']['last_day']} "
        f"({len(monthly)} months)",
        f"- wettest month: {wettest['month']} ({wettest['precipitation_mm']:g} mm); "
        f"warmest month: {warmest['month']} (mean daily max {warmest['temp_max_mean']:g} degC)",
        "",
        "![monthly precipitation and temperature](chart.png)",
        "",
    ]
    if reasons:
        lines += ["| reject reason | rows |", "| --- | ---: |"]
        lines += [f"| {code} | {count} |" for code, count in sorted(reasons.items())]
        lines.append("")
    lines += ["| month | days | precipitation mm | wet days | mean max degC | mean min degC | mean wind m/s |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {m['month']} | {m['days']} | {m['precipitation_mm']:g} | {m['wet_days']} | "
              f"{m['temp_max_mean']:g} | {m['temp_min_mean']:g} | {m['wind_mean']:g} |" for m in monthly]
    files["report.md"] = ("\n".join(lines) + "\n").encode("utf-8")
    summary["files"] = {name: file_entry(payload) for name, payload in files.items()}
    summary["monthly"] = monthly
    files["report.json"] = (json.dumps(summary, indent=2) + "\n").encode("utf-8")
    return files


# ---------------------------------------------------------------- tasks and flow
# checkpoint=False: the rows travel between tasks in memory; persisting them as results is of no use here.

@task(name="extract", checkpoint=False)
def extract(input_path: Any) -> Dict[str, Any]:
    """Reads the input CSV (see read_weather_csv)."""
    path = resolve_path(input_path, "input_path")
    extracted = read_weather_csv(path)
    prefect.context.get("logger").info("extract: read %d data rows from %s", len(extracted["rows"]), path)
    return extracted


@task(name="validate", checkpoint=False)
def validate(extracted: Dict[str, Any]) -> Dict[str, Any]:
    """Types the rows; logs how many were accepted and rejected (see validate_rows)."""
    validated = validate_rows(extracted)
    logger = prefect.context.get("logger")
    logger.info("validate: %d rows read, %d accepted, %d rejected", validated["rows_read"],
                len(validated["accepted"]), len(validated["rejected"]))
    for reject in validated["rejected"][:20]:
        logger.warning("validate: rejected line %d: %s", reject["line"], reject["reason"])
    if len(validated["rejected"]) > 20:
        logger.warning("validate: ... and %d more rejected rows (all in rejects.csv)",
                       len(validated["rejected"]) - 20)
    return validated


@task(name="transform", checkpoint=False)
def transform(validated: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Monthly aggregates of the accepted rows (see monthly_aggregates)."""
    monthly = monthly_aggregates(validated["accepted"])
    prefect.context.get("logger").info("transform: %d months from %s to %s", len(monthly),
                                       monthly[0]["month"], monthly[-1]["month"])
    return monthly


@task(name="chart", checkpoint=False)
def chart(monthly: List[Dict[str, Any]]) -> bytes:
    """Renders chart.png (see render_chart)."""
    return render_chart(monthly, f"Seattle weather by month, {monthly[0]['month']} to {monthly[-1]['month']}: "
                                 "precipitation (bars, mm, left) and mean daily max/min temperature "
                                 "(lines, degC, right)")


@task(name="report", checkpoint=False)
def report(extracted: Dict[str, Any], validated: Dict[str, Any], monthly: List[Dict[str, Any]],
           png: bytes, output_dir: Any) -> "OrderedDict[str, bytes]":
    """Renders all output files in memory (see build_outputs)."""
    return build_outputs(extracted, validated, monthly, png, resolve_path(output_dir, "output_dir"))


@task(name="load", checkpoint=False)
def load(files: "OrderedDict[str, bytes]", output_dir: Any) -> str:
    """Writes the outputs atomically (see write_files_atomically) and returns the output folder."""
    directory = resolve_path(output_dir, "output_dir")
    write_files_atomically(directory, files)
    logger = prefect.context.get("logger")
    logger.info("load: wrote %s to %s", ", ".join(f"{n} ({len(b)} bytes)" for n, b in files.items()), directory)
    summary = json.loads(files["report.json"])
    logger.info("load: %d rejected rows written to %s", summary["rows"]["rejected"], directory / "rejects.csv")
    return str(directory)


with Flow(FLOW_NAME, run_config=LocalRun(labels=["etl"])) as flow:
    input_path = Parameter("input_path", default="data/seattle-weather.csv")
    output_dir = Parameter("output_dir", default=f"data/output/{FLOW_NAME}")
    extracted = extract(input_path)
    validated = validate(extracted)
    monthly = transform(validated)
    png = chart(monthly)
    files = report(extracted, validated, monthly, png, output_dir)
    load(files, output_dir)


if __name__ == "__main__":
    from agents.cli.script import main
    main(flow, __file__)
