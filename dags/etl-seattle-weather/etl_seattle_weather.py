"""ETL over NOAA's daily Seattle weather (2012-2015) with pandas and matplotlib: monthly aggregates, rejects, a chart.

extract reads the CSV into a DataFrame, validate types it (the DAG says what a good row is, agents.dagkit.checks
keeps the reasons: failing rows go to rejects.csv with theirs), transform aggregates it by month, chart draws a
PNG with matplotlib's Agg backend (no display), and load writes monthly.csv, rejects.csv, chart.png, report.md
and report.json atomically (agents.dagkit.datafiles): a run that fails leaves the previous output. Errors name
the file and what is wrong with it, never what it holds.

Parameters, confined to the repository's data/ folder (whoever can trigger a run chooses them; relative paths
are taken from the repository root, /app inside the containers):
    input_path   the CSV to read            (default data/seattle-weather.csv)
    output_dir   where the outputs go       (default data/output/etl-seattle-weather)

Run it here with `python dags/etl-seattle-weather/etl_seattle_weather.py --local`.
"""
from __future__ import annotations

import datetime as dt
import io
import os
import socket
from typing import Any, Tuple

import pandas as pd
import prefect
from matplotlib.figure import Figure
from prefect import Flow, Parameter, task
from prefect.run_configs import LocalRun

from agents.dagkit.checks import RowChecks
from agents.dagkit.datafiles import CsvTable, confined_path, read_csv_table, write_files_with_manifest

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
    """Types the rows; a row failing checks is rejected with each check's code and reason, in this order
    (agents.dagkit.checks keeps the reasons, rejects a row of the wrong width, logs the rejects)."""
    rows, checks = table.rows, RowChecks(table)
    days = pd.DataFrame({"line": rows.line, "date": checks.date("date", ["%Y/%m/%d", "%Y-%m-%d"], "YYYY/MM/DD"),
                         "weather": rows.weather.str.lower()})
    for name, (low, high) in BOUNDS.items():
        days[name] = checks.number(name, low, high)
    # a rule of our own: two temperatures that each passed, in the wrong order
    swapped = ~checks.failed("temp_min") & ~checks.failed("temp_max") & (days.temp_min > days.temp_max)
    checks.fail("temp_order", ("temp_min " + days.temp_min.map("{:g}".format) + " is above temp_max "
                               + days.temp_max.map("{:g}".format)).where(swapped))
    checks.one_of("weather", WEATHER_TYPES, days.weather)
    checks.unique("duplicate_date", days.date.dt.strftime("%Y-%m-%d"), "date")
    accepted, rejects = checks.outcome(fix="fix the file or pass another input_path")
    return days[accepted], rejects


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
    PNG in memory. A bare Figure, not pyplot: no display, no state shared between runs; it saves a PNG through
    matplotlib's Agg backend whatever the default backend."""
    figure = Figure(figsize=(10, 5.6), dpi=100)
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
    # report.json last, with the sizes and checksums of the files beside it
    files = write_files_with_manifest(folder, files, "report.json", dict(summary, monthly=monthly.to_dict("records")))
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
