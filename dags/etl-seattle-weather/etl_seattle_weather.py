"""ETL over NOAA's daily Seattle weather (2012-2015) with pandas and matplotlib: monthly aggregates, rejects, a chart.

extract reads the CSV into a DataFrame, validate types it (failing rows go to rejects.csv with their reasons),
transform aggregates it by month, chart draws a PNG with matplotlib's Agg backend (no display), and load writes
monthly.csv, rejects.csv, chart.png, report.md and report.json atomically (agents.dagkit.datafiles): a run that
fails leaves the previous output. Errors name the file and what is wrong with it, never what it holds.

Parameters, confined to the repository's data/ folder (whoever can trigger a run chooses them; relative paths
are taken from the repository root, /app inside the containers):
    input_path   the CSV to read            (default data/seattle-weather.csv)
    output_dir   where the outputs go       (default data/output/etl-seattle-weather)

Run it here with `python dags/etl-seattle-weather/etl_seattle_weather.py --local`.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import socket
from typing import Any, Dict, Tuple

import pandas as pd
import prefect
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from prefect import Flow, Parameter, task
from prefect.run_configs import LocalRun

from agents.dagkit.datafiles import CsvTable, confined_path, read_csv_table, write_files_atomically

PROJECT = "My Tests"
FLOW_NAME = "etl-seattle-weather"
COLUMNS = ("date", "precipitation", "temp_max", "temp_min", "wind", "weather")
WEATHER_TYPES = ("drizzle", "fog", "rain", "snow", "sun")
# plausibility bounds: a value outside them is a data error, not weather (records: Seattle -18..42 degC)
BOUNDS = {"precipitation": (0.0, 500.0), "temp_max": (-60.0, 60.0), "temp_min": (-60.0, 60.0), "wind": (0.0, 100.0)}
Validated = Tuple[pd.DataFrame, pd.DataFrame]  # the accepted days (typed), the rejects (line, code, reason, raw)
# checkpoint=False on every task: the frames travel between tasks in memory, persisting them is of no use


@task(name="extract", checkpoint=False)
def extract(input_path: Any) -> CsvTable:
    """The CSV's records as a DataFrame of text cells, with their line numbers (agents.dagkit.datafiles)."""
    table = read_csv_table(confined_path(input_path, "input_path", example="data/seattle-weather.csv"), COLUMNS,
                           fix=f"pass a CSV with the header line {','.join(COLUMNS)} through the parameter input_path")
    prefect.context.get("logger").info("extract: read %d data rows from %s", len(table.rows), table.path)
    return table


@task(name="validate", checkpoint=False)
def validate(table: CsvTable) -> Validated:
    """Types the rows; a row failing checks is rejected with each check's code and reason, in this order."""
    rows, width = table.rows, table.width
    why = pd.DataFrame(index=rows.index)  # one column per check: why the row fails it, NaN where it passes
    date = pd.to_datetime(rows.date, format="%Y/%m/%d", errors="coerce").fillna(
        pd.to_datetime(rows.date, format="%Y-%m-%d", errors="coerce"))
    why["date"] = ("date " + rows.date.map(repr) + " is not a date in YYYY/MM/DD form").where(date.isna())
    days = pd.DataFrame({"line": rows.line, "date": date, "weather": rows.weather.str.lower()})
    for name, (low, high) in BOUNDS.items():
        days[name] = value = pd.to_numeric(rows[name], errors="coerce")
        why[name] = (f"{name} " + rows[name] + f" is outside {low:g}..{high:g}").where(~value.between(low, high))
        why[name] = why[name].mask(value.isna(), f"{name} " + rows[name].map(repr) + " is not a number")
        why[name] = why[name].mask(rows[name] == "", f"{name} is empty")
    swapped = why.temp_min.isna() & why.temp_max.isna() & (days.temp_min > days.temp_max)
    why["temp_order"] = ("temp_min " + days.temp_min.map("{:g}".format) + " is above temp_max "
                         + days.temp_max.map("{:g}".format)).where(swapped)
    why["weather"] = ("weather " + rows.weather.map(repr) + " is not one of "
                      + ", ".join(WEATHER_TYPES)).where(~days.weather.isin(WEATHER_TYPES))
    why = why.where(rows.fields == width)  # a row of the wrong width has that reason only
    why["field_count"] = (f"expected {width} fields, found " + rows.fields.astype(str)).where(rows.fields != width)
    first = days[why.isna().all(axis=1)].groupby("date").line.transform("first")
    again = first.index[first != days.line[first.index]]
    why.loc[again, "duplicate_date"] = ("date " + days.date[again].dt.strftime("%Y-%m-%d")
                                        + " already seen on line " + first[again].astype(str))
    failed = why.notna().any(axis=1)
    rejects = pd.DataFrame({"line": rows.line, "code": why.notna().apply(lambda r: ",".join(r.index[r]), axis=1),
                            "reason": why.apply(lambda r: "; ".join(r.dropna()), axis=1), "raw": rows.raw})[failed]
    if failed.all():  # codes only: a reason quotes the cell, and an error never quotes the file
        sample = "; ".join(f"line {r.line}: {r.code}" for r in rejects.head(3).itertuples())
        raise ValueError(f"input file {table.path} has no valid row: all {len(rows)} rows were rejected "
                         f"({sample}); fix the file or pass another input_path")
    logger = prefect.context.get("logger")
    logger.info("validate: %d rows read, %d accepted, %d rejected", len(rows), len(rows) - len(rejects), len(rejects))
    for reject in rejects.head(20).itertuples():
        logger.warning("validate: rejected line %d: %s", reject.line, reject.reason)
    if len(rejects) > 20:
        logger.warning("validate: ... and %d more rejected rows (all in rejects.csv)", len(rejects) - 20)
    return days[~failed], rejects


@task(name="transform", checkpoint=False)
def transform(validated: Validated) -> pd.DataFrame:
    """One row per calendar month present, oldest first: counts, sums, means and extremes, days of each weather."""
    days = validated[0]
    month = days.date.dt.strftime("%Y-%m").rename("month")
    monthly = days.assign(wet=days.precipitation > 0).groupby(month).agg(
        days=("line", "size"), precipitation_mm=("precipitation", "sum"), wet_days=("wet", "sum"),
        temp_max_mean=("temp_max", "mean"), temp_min_mean=("temp_min", "mean"), temp_max_highest=("temp_max", "max"),
        temp_min_lowest=("temp_min", "min"), wind_mean=("wind", "mean")).round(2)
    kinds = pd.crosstab(month, days.weather).reindex(columns=list(WEATHER_TYPES), fill_value=0).add_prefix("days_")
    monthly = monthly.join(kinds).reset_index()
    prefect.context.get("logger").info("transform: %d months from %s to %s", len(monthly), *monthly.month.iloc[[0, -1]])
    return monthly


@task(name="chart", checkpoint=False)
def chart(monthly: pd.DataFrame) -> bytes:
    """Monthly precipitation (bars, left axis) and mean daily max/min temperature (lines, right axis): a 1000x560
    PNG, drawn by matplotlib's Agg backend into memory (no display, no pyplot state shared between runs)."""
    figure = Figure(figsize=(10, 5.6), dpi=100)
    FigureCanvasAgg(figure)
    rain = figure.add_subplot()
    rain.bar(monthly.index, monthly.precipitation_mm, color="#78a0dc", label="precipitation (month total)")
    heat = rain.twinx()
    heat.plot(monthly.index, monthly.temp_max_mean, color="#c8281e", marker="o", ms=3, label="mean daily max")
    heat.plot(monthly.index, monthly.temp_min_mean, color="#f0961e", marker="o", ms=3, label="mean daily min")
    rain.set(ylabel="precipitation mm", title=f"Seattle weather by month, {monthly.month.iloc[0]} to "
                                               f"{monthly.month.iloc[-1]}")
    heat.set_ylabel("temperature degC")
    years = monthly.index[(monthly.index == 0) | monthly.month.str.endswith("-01")]
    rain.set_xticks(years, monthly.month[years].str[:4])
    figure.legend(loc="lower center", ncol=3, frameon=False)
    figure.subplots_adjust(bottom=0.17)
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


@task(name="load", checkpoint=False)
def load(table: CsvTable, validated: Validated, monthly: pd.DataFrame, png: bytes, output_dir: Any) -> str:
    """Renders the other outputs and writes them all atomically; report.json last, with the others' checksums."""
    folder, (days, rejects) = confined_path(output_dir, "output_dir", f"data/output/{FLOW_NAME}"), validated
    files = {"monthly.csv": monthly.to_csv(index=False, lineterminator="\n").encode(),
             "rejects.csv": rejects.to_csv(index=False, lineterminator="\n").encode(), "chart.png": png}
    reasons = rejects.code.str.split(",").explode().value_counts().sort_index().rename("rows")
    wet, warm = monthly.loc[monthly.precipitation_mm.idxmax()], monthly.loc[monthly.temp_max_mean.idxmax()]
    first, last = days.date.min().date().isoformat(), days.date.max().date().isoformat()
    summary = {"flow": FLOW_NAME, "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "flow_run_id": prefect.context.get("flow_run_id"), "flow_run_name": prefect.context.get("flow_run_name"),
               # the runtime sets DAGS_AGENT_NAME in the flow-run process to the agent that spawned the run
               "agent_name": os.environ.get("DAGS_AGENT_NAME") or None, "hostname": socket.gethostname(),
               "input": {"path": str(table.path), "sha256": table.sha256}, "output_dir": str(folder),
               "rows": {"read": len(table.rows), "accepted": len(days), "rejected": len(rejects)},
               "rejected_by_reason": {code: int(n) for code, n in reasons.items()},
               "period": {"first_day": first, "last_day": last, "months": len(monthly)},
               "precipitation_mm_total": round(float(days.precipitation.sum()), 2),
               "wettest_month": {"month": wet.month, "precipitation_mm": wet.precipitation_mm},
               "warmest_month": {"month": warm.month, "temp_max_mean": warm.temp_max_mean}}
    by_reason = reasons.rename_axis("reject reason").to_markdown() + "\n\n" if len(reasons) else ""
    files["report.md"] = f"""# {FLOW_NAME} report

- generated at: {summary["generated_at"]}
- flow run: {summary["flow_run_name"] or "-"} ({summary["flow_run_id"] or "local run"})
- agent: {summary["agent_name"] or "-"} on host {summary["hostname"]}
- input: `{table.path}` (sha256 {table.sha256[:16]}...)
- rows: {len(table.rows)} read, {len(days)} accepted, {len(rejects)} rejected (see rejects.csv)
- period: {first} to {last} ({len(monthly)} months)
- wettest month: {wet.month} ({wet.precipitation_mm:g} mm); warmest month: {warm.month} \
(mean daily max {warm.temp_max_mean:g} degC)

![monthly precipitation and temperature](chart.png)

{by_reason}{monthly.iloc[:, :9].to_markdown(index=False, floatfmt="g")}
""".encode()
    summary["files"] = {name: {"bytes": len(b), "sha256": hashlib.sha256(b).hexdigest()} for name, b in files.items()}
    files["report.json"] = (json.dumps(dict(summary, monthly=monthly.to_dict("records")), indent=2) + "\n").encode()
    write_files_atomically(folder, files)
    logger = prefect.context.get("logger")
    logger.info("load: wrote %s to %s", ", ".join(f"{n} ({len(b)} bytes)" for n, b in files.items()), folder)
    logger.info("load: %d rejected rows written to %s", len(rejects), folder / "rejects.csv")
    return str(folder)


with Flow(FLOW_NAME, run_config=LocalRun(labels=["etl"])) as flow:
    input_path = Parameter("input_path", default="data/seattle-weather.csv")
    output_dir = Parameter("output_dir", default=f"data/output/{FLOW_NAME}")
    table = extract(input_path)
    validated = validate(table)
    monthly = transform(validated)
    load(table, validated, monthly, chart(monthly), output_dir)


if __name__ == "__main__":
    from agents.cli.script import main
    main(flow, __file__)
