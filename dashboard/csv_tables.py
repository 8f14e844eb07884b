"""What a "Download CSV" button hands out: the rows and columns a table or figure shows, as CSV.

Why one small type for it: every download must hold exactly what the page shows, so the page
builds a :class:`ShownTable` from the very frame it draws (never a second query that could
disagree), keeps it beside the figure, and the download renders that table and nothing else.
Values hidden for k-anonymity arrive as missing and stay empty cells: a download never holds a
number the page hides.

The table travels through the browser (a ``dcc.Store``) between the drawing and the click, so
:func:`table_from_store` reads it back defensively: a damaged or forged store is a one-line
refusal, never a crash, and can only ever hold what its sender already had.

Pure functions, no Dash: the pages call them, the tests call them directly.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from errors import RecsightError

__all__ = ["Cell", "ShownTable", "shown_table", "table_from_rows", "table_from_store", "csv_text", "csv_filename",
           "MAX_ROWS", "MISSING"]

Cell = str | int | float | None
MAX_ROWS = 20_000  # far more than any table or figure on the pages shows (the audit log: 5,000)
MISSING = ""  # how a hidden or missing value is written: an empty cell, never a number
_MAX_COLUMNS, _MAX_TEXT = 64, 2_000
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet would run as a formula
_UNREADABLE = "the table on the page is not readable: reload the page and download again"


@dataclass(frozen=True)
class ShownTable:
    """A table as the page shows it: readable ``columns`` and ``rows`` of plain values (None for
    a hidden or missing value)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]

    def to_store(self) -> dict[str, Any]:
        """The table as JSON for a ``dcc.Store`` (read back by :func:`table_from_store`)."""
        return {"columns": list(self.columns), "rows": [list(row) for row in self.rows]}


def shown_table(frame: pd.DataFrame, columns: Mapping[str, str], counts: Iterable[str] = ()) -> ShownTable:
    """The ``columns`` of ``frame`` (column -> header, in that order) as a :class:`ShownTable`.

    ``counts`` are whole numbers (a hidden value turns an integer column into floats: 12.0 is
    written 12); NaN and None become missing; timestamps become ISO dates (a day or a week's Monday).
    """
    whole = set(counts)
    rows = [tuple(_cell(value, name in whole) for name, value in zip(columns, values))
            for values in frame[list(columns)].itertuples(index=False, name=None)]
    return table_from_rows(list(columns.values()), rows)


def table_from_rows(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> ShownTable:
    """A :class:`ShownTable` from headers and rows of values (plain, numpy or pandas)."""
    return ShownTable(tuple(str(c) for c in columns), tuple(tuple(_cell(v) for v in row) for row in rows))


def table_from_store(data: Any) -> ShownTable:
    """The table a ``dcc.Store`` holds (:meth:`ShownTable.to_store`), checked: headers are text,
    every row as long as the headers, cells plain values. RecsightError for anything else."""
    if not isinstance(data, dict) or set(data) != {"columns", "rows"}:
        raise RecsightError(_UNREADABLE)
    columns, rows = data["columns"], data["rows"]
    if not isinstance(columns, list) or not 0 < len(columns) <= _MAX_COLUMNS or not all(
            isinstance(c, str) and len(c) <= _MAX_TEXT for c in columns):
        raise RecsightError(_UNREADABLE)
    if not isinstance(rows, list) or len(rows) > MAX_ROWS:
        raise RecsightError(_UNREADABLE)
    for row in rows:
        if not isinstance(row, list) or len(row) != len(columns) or not all(_plain(cell) for cell in row):
            raise RecsightError(_UNREADABLE)
    return ShownTable(tuple(columns), tuple(tuple(row) for row in rows))


def csv_text(table: ShownTable) -> str:
    """The table as CSV: a header row, then one line per row.

    Numbers are written exactly (``repr`` of a float round-trips), missing values as empty
    cells, and text a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``) gets a
    leading ``'``: shop names and sign-in names are other people's text.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([_text(column) for column in table.columns])
    writer.writerows([_written(cell) for cell in row] for row in table.rows)
    return buffer.getvalue()


def csv_filename(page: str, table: str, day: date) -> str:
    """``recsight-<page>-<table>-<YYYYMMDD>.csv``: which page, which table, which day (UTC)."""
    for part in (page, table):
        if not _SLUG.fullmatch(part):
            raise RecsightError(f"not a file name part: {part[:40]!r}")
    return f"recsight-{page}-{table}-{day:%Y%m%d}.csv"


# --------------------------------------------------------------------------- cells


def _cell(value: Any, whole: bool = False) -> Cell:
    """A plain value for one cell: text, a whole number, a finite float or None."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if not math.isfinite(number):
            return None
        return int(number) if whole and number.is_integer() else number
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.date().isoformat() if (value.hour, value.minute, value.second) == (0, 0, 0) \
            else value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _plain(cell: Any) -> bool:
    if cell is None or (isinstance(cell, int) and not isinstance(cell, bool)):
        return True
    if isinstance(cell, float):
        return math.isfinite(cell)
    return isinstance(cell, str) and len(cell) <= _MAX_TEXT


def _written(cell: Cell) -> str:
    if cell is None:
        return MISSING
    if isinstance(cell, float):
        return repr(cell)
    if isinstance(cell, int):
        return str(cell)
    return _text(cell)


def _text(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_TRIGGERS) else value
