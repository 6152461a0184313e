"""A DAG's checks (agents.dagkit.checks) on real CSV files: integer parameters however they come, and the rows of
an input rejected with a code and a reason per failed check, in order, logged in the task's log, the file never
quoted in an error. The ETL DAG's tests (tests/dags/test_etl_seattle_weather.py) check them through a real run."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, List, Tuple

import pandas as pd
import prefect
import pytest

from agents.dagkit.checks import RowChecks, int_parameter
from agents.dagkit.datafiles import CsvTable, read_csv_table

SECRET = "TOPSECRET-hunter2"


@pytest.mark.parametrize("value, expected", [(1000, 1000), ("1000", 1000), (" +12 ", 12), (1000.0, 1000),
                                             (2, 2), (10 ** 9, 10 ** 9)])
def test_an_integer_parameter_is_taken_however_it_came(value, expected) -> None:
    assert int_parameter(value, "limit", 2, 10 ** 9) == expected


@pytest.mark.parametrize("value", [True, False, 1.5, "many", "", None, [3], 1, 11, "-3"])
def test_a_bad_integer_parameter_names_the_parameter_its_bounds_and_the_fix(value) -> None:
    with pytest.raises(ValueError) as info:
        int_parameter(value, "partitions", 2, 10)
    assert str(info.value) == (f"parameter partitions must be an integer from 2 to 10, got {value!r}: "
                               "pass e.g. --param partitions=8")


def table(tmp_path: Path, text: str) -> CsvTable:
    path = tmp_path / "input.csv"
    path.write_text(text)
    return read_csv_table(path, ["id", "day", "amount", "currency"], fix="pass another input_path")


def in_task(run: Callable[[], Any]) -> Tuple[Any, List[str]]:
    """Calls `run` in the context prefect gives a task named "validate"; returns its result and what it logged."""
    records: List[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[assignment]
    logging.getLogger("prefect").addHandler(handler)
    try:
        with prefect.context(task_name="validate", logger=logging.getLogger("prefect.validate")):
            result = run()
    finally:
        logging.getLogger("prefect").removeHandler(handler)
    return result, [r.getMessage() for r in records]


PAYMENTS = ("id,day,amount,currency\n"
            "1,2024-03-01,10,EUR\n"        # line 2: good
            "2,2024-03-32,-5,GBP\n"        # 3: date, amount, currency, in that order
            "3,2024-03-02,,eur\n"          # 4: amount empty (currency lowercased passes)
            "1,2024-03-04,7,USD\n"         # 5: id 1 again
            "4,2024-03-05\n"               # 6: two fields of four
            "\n"
            "5,2024-03-06,abc,USD\n"       # 8: amount not a number
            "6,2024/03/07,1e6,USD\n")      # 9: the other date format; amount outside the bounds


def check_payments(checks: RowChecks):
    rows = checks.table.rows
    days = checks.date("day", ["%Y-%m-%d", "%Y/%m/%d"], "YYYY-MM-DD")
    amounts = checks.number("amount", 0, 10_000)
    checks.one_of("currency", ["EUR", "USD"], rows.currency.str.upper())
    checks.unique("duplicate_id", rows.id, "id")
    return days, amounts


def test_each_failed_check_is_a_code_and_a_reason_in_the_order_the_checks_were_made(tmp_path: Path) -> None:
    checks = RowChecks(table(tmp_path, PAYMENTS))
    days, amounts = check_payments(checks)
    (accepted, rejects), messages = in_task(lambda: checks.outcome(fix="fix the file"))
    assert list(checks.table.rows.line[accepted]) == [2]
    assert list(rejects.columns) == ["line", "code", "reason", "raw"]
    by_line = {r.line: (r.code, r.reason) for r in rejects.itertuples()}
    assert by_line == {
        3: ("day,amount,currency", "day '2024-03-32' is not a date in YYYY-MM-DD form; amount -5 is outside 0..10000; "
                                   "currency 'GBP' is not one of EUR, USD"),
        4: ("amount", "amount is empty"),
        5: ("duplicate_id", "id 1 already seen on line 2"),
        6: ("field_count", "expected 4 fields, found 2"),
        8: ("amount", "amount 'abc' is not a number"),
        9: ("amount", "amount 1e6 is outside 0..10000"),
    }
    assert rejects.set_index("line").raw[6] == "4,2024-03-05"
    assert days[checks.table.rows.line == 9].iloc[0] == pd.Timestamp("2024-03-07"), "the second format parses"
    assert amounts.iloc[0] == 10.0
    assert messages[0] == "validate: 7 rows read, 1 accepted, 6 rejected", "the blank line is no row"
    assert messages[1:] == [f"validate: rejected line {line}: {reason}" for line, (_, reason) in by_line.items()]


def test_a_row_repeating_a_rejected_rows_key_is_no_duplicate(tmp_path: Path) -> None:
    """Only good rows count as seen: the first good row with a key is kept, whatever bad rows had it before."""
    checks = RowChecks(table(tmp_path, "id,day,amount,currency\n7,2024-13-01,1,EUR\n7,2024-01-01,1,EUR\n"
                                       "7,2024-01-02,1,EUR\n"))
    check_payments(checks)
    (accepted, rejects), _ = in_task(lambda: checks.outcome(fix="fix the file"))
    assert list(checks.table.rows.line[accepted]) == [3]
    assert list(rejects.code) == ["day", "duplicate_id"]
    assert rejects.reason.iloc[1] == "id 7 already seen on line 3"


def test_past_twenty_rejects_the_log_says_how_many_more_and_where_they_are(tmp_path: Path) -> None:
    text = "id,day,amount,currency\n1,2024-01-01,1,EUR\n" + "".join(f"{i},2024-01-01,x,EUR\n" for i in range(2, 27))
    checks = RowChecks(table(tmp_path, text))
    checks.number("amount", 0, 10)
    _, messages = in_task(lambda: checks.outcome(fix="fix the file", kept_in="bad-rows.csv"))
    assert messages[0] == "validate: 26 rows read, 1 accepted, 25 rejected"
    assert len(messages) == 1 + 20 + 1
    assert messages[-1] == "validate: ... and 5 more rejected rows (all in bad-rows.csv)"


def test_no_valid_row_is_an_error_naming_the_file_and_the_first_codes_never_the_content(tmp_path: Path) -> None:
    source = table(tmp_path, f"id,day,amount,currency\n{SECRET},{SECRET},{SECRET},{SECRET}\n1,2\n"
                             f"2,2024-01-01,{SECRET},EUR\n3,2024-01-01,{SECRET},EUR\n")
    checks = RowChecks(source)
    check_payments(checks)
    with pytest.raises(ValueError) as info:
        checks.outcome(fix="fix the file or pass another input_path")
    message = str(info.value)
    assert message == (f"input file {source.path} has no valid row: all 4 rows were rejected (line 2: "
                       "day,amount,currency; line 3: field_count; line 4: amount); fix the file or pass another "
                       "input_path")
    assert SECRET not in message
