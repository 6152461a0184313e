"""A DAG's checks of what a run is given: integer parameters, and the rows of a CSV input (rejects with reasons).

A run's parameters come from whoever triggers it: JSON from the UI or the API, text from `trigger --param k=v`
when the value is not JSON. `int_parameter` takes an integer however it came (an int, digits as text, a float
with no fraction; never a bool) within bounds, or fails with an error naming the parameter and the fix.

`RowChecks` keeps the bookkeeping of rejecting a CSV input's bad rows (as `read_csv_table` reads them), so that
a DAG states only what a good row is, as vectorized pandas checks: one column of reasons per check, in the
order the checks were made (NaN where a row passes); a row of the wrong width fails `field_count` only (its
cells are empty: the other checks would only add noise); `number` parses a column within bounds, `date` in
one of some formats, `one_of` checks a column against a list, `fail` adds a check of the DAG's own, `unique`
rejects a row repeating an earlier good row's key. `outcome` gives which rows passed and the rejects (`line,
code, reason, raw`: the codes of the checks a row fails and their reasons, in that order), logged in the task's
log, or fails when no row passed, naming the file and the first rejects' codes, never what the file holds.

In a DAG::

    from agents.dagkit.checks import RowChecks, int_parameter

    @task
    def validate(table: CsvTable) -> Tuple[pd.DataFrame, pd.DataFrame]:
        checks = RowChecks(table)
        paid = pd.DataFrame({"id": table.rows.id, "day": checks.date("day", ["%Y-%m-%d"], "YYYY-MM-DD"),
                             "amount": checks.number("amount", 0, 10_000)})
        checks.one_of("currency", ["EUR", "USD"], table.rows.currency.str.upper())
        checks.fail("weekend", ("day " + table.rows.day + " is a weekend").where(paid.day.dt.dayofweek >= 5))
        checks.unique("duplicate_id", table.rows.id, "id")
        accepted, rejects = checks.outcome(fix="fix the file or pass another input_path")
        return paid[accepted], rejects
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence, Tuple

import prefect

from agents.dagkit.datafiles import CsvTable

if TYPE_CHECKING:
    import pandas


def int_parameter(value: Any, name: str, minimum: int, maximum: int) -> int:
    """An integer parameter: an int, digits as text (from `--param k=v`) or a float with no fraction.

    Args:
        value: the parameter's value
        name: its name, for the error message
        minimum, maximum: the bounds, both allowed

    Returns:
        The integer.

    Raises:
        ValueError: not an integer (a bool is none) or out of bounds; the message names the parameter and the fix.
    """
    number: Optional[int] = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        number = int(value.strip())
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    if number is None or not minimum <= number <= maximum:
        raise ValueError(f"parameter {name} must be an integer from {minimum} to {maximum}, got {value!r}: "
                         f"pass e.g. --param {name}={min(max(minimum, 8), maximum)}")
    return number


class RowChecks:
    """The checks of a CSV table's rows, and the rejects they make (see the module).

    Args:
        table: the input as `read_csv_table` reads it

    Attributes:
        why: one column per check, named by its code, in the order they were made: why each row fails it,
            NaN where the row passes
    """

    def __init__(self, table: CsvTable) -> None:
        import pandas as pd  # here: only a DAG that checks rows pays for importing pandas

        rows = table.rows
        self.table = table
        self._right_width = rows.fields == table.width
        self.why = pd.DataFrame(index=rows.index)
        self.why["field_count"] = (f"expected {table.width} fields, found "
                                   + rows.fields.astype(str)).where(~self._right_width)

    def fail(self, code: str, reasons: "pandas.Series") -> None:
        """Adds the check `code`: `reasons` says why each row fails it, NaN where the row passes (a row of the
        wrong width keeps only its field_count reason)."""
        self.why[code] = reasons.where(self._right_width)

    def failed(self, code: str) -> "pandas.Series":
        """Whether each row fails the check `code`."""
        return self.why[code].notna()

    def number(self, column: str, low: float, high: float) -> "pandas.Series":
        """The column's cells as numbers (NaN where they are none), checked under the column's name: a row fails
        it when its cell is empty, not a number, or outside low..high.

        Returns:
            The numbers, for every row (a rejected row's too).
        """
        import pandas as pd

        cells = self.table.rows[column]
        value = pd.to_numeric(cells, errors="coerce")
        reasons = (f"{column} " + cells + f" is outside {low:g}..{high:g}").where(~value.between(low, high))
        reasons = reasons.mask(value.isna(), f"{column} " + cells.map(repr) + " is not a number")
        self.fail(column, reasons.mask(cells == "", f"{column} is empty"))
        return value

    def date(self, column: str, formats: Sequence[str], form: str) -> "pandas.Series":
        """The column's cells as dates, the first of `formats` that parses each (NaT where none does), checked
        under the column's name: a row fails it when no format parses its cell ("is not a date in <form> form").

        Returns:
            The dates, for every row.
        """
        import pandas as pd

        cells = self.table.rows[column]
        value = pd.to_datetime(cells, format=formats[0], errors="coerce")
        for other in formats[1:]:
            value = value.fillna(pd.to_datetime(cells, format=other, errors="coerce"))
        self.fail(column, (f"{column} " + cells.map(repr) + f" is not a date in {form} form").where(value.isna()))
        return value

    def one_of(self, column: str, allowed: Sequence[str], values: Optional["pandas.Series"] = None) -> None:
        """Checks under the column's name that each row's value is among `allowed`; the value is the cell, or
        what `values` makes of it (e.g. the cell lowercased), and the reason quotes the cell."""
        cells = self.table.rows[column]
        values = cells if values is None else values
        self.fail(column, (f"{column} " + cells.map(repr) + " is not one of "
                           + ", ".join(allowed)).where(~values.isin(allowed)))

    def unique(self, code: str, keys: "pandas.Series", name: str) -> None:
        """Adds the check `code`: of the rows that pass every check so far, the first with each key is kept and
        each later one fails with "<name> <key> already seen on line <line>" (call it after the other checks).

        Args:
            code: the check's code, e.g. "duplicate_date"
            keys: each row's key as text (a row without one, NaN, repeats nothing)
            name: what the key is, for the reason, e.g. "date"
        """
        lines = self.table.rows.line
        passing = self.why.isna().all(axis=1)
        first = lines[passing].groupby(keys[passing]).transform("first")  # NaN where the key is NaN
        again = first.index[first.notna() & (first != lines[first.index])]
        reasons = f"{name} " + keys[again] + " already seen on line " + first[again].astype(int).astype(str)
        self.why[code] = reasons.reindex(self.why.index)

    def outcome(self, fix: str, kept_in: str = "rejects.csv") -> Tuple["pandas.Series", "pandas.DataFrame"]:
        """Which rows passed every check, and the rejects, logged in the task's log (counts, then the first 20
        rejects with their reasons, as warnings).

        Args:
            fix: what the user should do, ending the error when no row passed
            kept_in: where the DAG keeps the rejects, for the log line about those not logged

        Returns:
            (True for each row that passed, the rejects: line, code, reason, raw, in the rows' order)

        Raises:
            ValueError: no row passed; the message names the file and the first rejects' lines and codes (a
                reason quotes the cell: an error never quotes the file).
        """
        import pandas as pd

        rows, failing = self.table.rows, self.why.notna()
        failed = failing.any(axis=1)
        rejects = pd.DataFrame({"line": rows.line, "code": failing.apply(lambda r: ",".join(r.index[r]), axis=1),
                                "reason": self.why.apply(lambda r: "; ".join(r.dropna()), axis=1),
                                "raw": rows.raw})[failed]
        if failed.all():
            sample = "; ".join(f"line {r.line}: {r.code}" for r in rejects.head(3).itertuples())
            raise ValueError(f"input file {self.table.path} has no valid row: all {len(rows)} rows were rejected "
                             f"({sample}); {fix}")
        logger, step = prefect.context.get("logger"), prefect.context.get("task_name") or "checks"
        logger.info("%s: %d rows read, %d accepted, %d rejected", step, len(rows), len(rows) - len(rejects),
                    len(rejects))
        for reject in rejects.head(20).itertuples():
            logger.warning("%s: rejected line %d: %s", step, reject.line, reject.reason)
        if len(rejects) > 20:
            logger.warning("%s: ... and %d more rejected rows (all in %s)", step, len(rejects) - 20, kept_in)
        return ~failed, rejects
