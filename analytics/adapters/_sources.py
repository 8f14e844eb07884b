"""Reading a source file into DuckDB as numbered rows, and validating them in one SQL pass.

A ``Source`` hides whether the rows came from CSV or Parquet: every adapter asks it for column
expressions (``text``, ``identifier``, ``timestamp``, ``number``) and hands a list of checks to
``check_rows``, which materialises one table with a row per input row: the converted values, the
first failing check as ``reason`` (structural problems first) and, for rejected rows only, the
text to keep in ``rejects.raw`` with the customer id replaced by ``MARKER`` (the loader swaps in
the pseudonym, so no raw customer id reaches the database).

CSV files are read as whole physical lines (``read_csv`` with a NUL delimiter and no quoting),
so a row's position is its line number, and are split into fields in SQL (RFC-4180 quotes
honoured); Parquet rows are numbered by ``file_row_number``.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from analytics.adapters import reasons as R
from analytics.adapters._files import scan_text
from errors import RecsightError

__all__ = [
    "MARKER", "MIN_UTC_OFFSET_HOURS", "MAX_UTC_OFFSET_HOURS", "Source", "Lines", "load_lines", "csv_source",
    "parquet_source", "open_source",
    "check_rows", "most_frequent", "one", "sql_str", "not_in_format", "EVENT_COLUMNS", "accepted_events", "rejects_of",
]

# Stands for the customer id inside a reject's text until the loader replaces it by the pseudonym.
MARKER = "\ue000customer\ue000"
WITHHELD = "(text withheld: more fields than expected, so the customer id cannot be located)"
_QUOTED_FIELD = '("(?:[^"]|"")*"|[^,"]*),'
# "TEXT" marks a column the relation already trimmed (NULL when empty): text is only computed once.
_TEXT_TYPES = ("TEXT", "VARCHAR")
_INT_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
_FLOAT_TYPES = ("FLOAT", "DOUBLE", "REAL")


def one(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] | None = None) -> tuple | None:
    """The first row of a query, with the result fully consumed (DuckDB 2 refuses new work on a
    connection while a result is still open)."""
    rows = con.execute(sql, params).fetchall() if params is not None else con.execute(sql).fetchall()
    return rows[0] if rows else None


def sql_str(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def not_in_format(name: str, fmt: str, detail: str) -> RecsightError:
    """The one error for a file that is not what its format claims."""
    return RecsightError(f"file {name} is not in the {fmt} format: {detail}")


# --------------------------------------------------------------------------- time-zone offsets

# Real UTC offsets run from -12:00 (Baker Island) to +14:00 (Line Islands); DuckDB's TIMESTAMPTZ
# parse takes anything up to +-99 h, which would store an event days away from when it happened.
MIN_UTC_OFFSET_HOURS, MAX_UTC_OFFSET_HOURS = -12, 14


def _has_offset(text: str) -> str:
    """SQL: the ISO text carries a numeric offset (a '+', or a '-' after the date part)."""
    return f"(contains({text}, '+') OR contains({text}[11:], '-'))"


def _zoned_utc(text: str) -> str:
    """SQL: the instant the text names, read with its offset, as a naive UTC TIMESTAMP."""
    return f"timezone('UTC', TRY_CAST({text} AS TIMESTAMPTZ))"


def _offset_outside(text: str) -> str:
    """SQL: the text's offset (its wall-clock time, which the plain TIMESTAMP cast reads, minus the
    instant) is outside the real range; NULL when either reading fails."""
    offset_us = f"(epoch_us(TRY_CAST({text} AS TIMESTAMP)) - epoch_us({_zoned_utc(text)}))"
    hour = 3_600_000_000
    return f"({offset_us} NOT BETWEEN {MIN_UTC_OFFSET_HOURS * hour} AND {MAX_UTC_OFFSET_HOURS * hour})"


# --------------------------------------------------------------------------- lines


@dataclass
class Lines:
    """A text file loaded as one row per physical line: ``relation`` has ``_line``, ``raw``, ``_bad``."""

    relation: str
    count: int
    ends_with_newline: bool
    first: str | None
    bad_lines: dict[int, str]  # 1-based line -> reason, from the byte scan


def load_lines(con: duckdb.DuckDBPyConnection, path: Path, tag: str) -> Lines:
    """Load ``path`` line by line into a temp table; ``_bad`` is the byte-level reason or NULL."""
    scan = scan_text(path)
    table, bad = f"{tag}_lines", f"{tag}_bad"
    try:
        con.execute(
            f"CREATE TEMP TABLE {table} AS SELECT raw FROM read_csv({sql_str(str(scan.path))}, "
            "columns = {'raw': 'VARCHAR'}, header = false, delim = '\\0', quote = '', escape = '', "
            "auto_detect = false, strict_mode = false, max_line_size = 67108864)"
        )
    except duckdb.Error as exc:
        raise RecsightError(f"cannot read {path.name}: {_first_line(exc)}") from None
    finally:
        scan.close()  # the lines are in the table now; a cleaned copy is no longer needed
    # Row ids follow insertion order (= line order) but, inside a transaction, start at an
    # internal offset: number the lines from the smallest one.
    base, top, count = one(con, f"SELECT min(rowid), max(rowid), count(*) FROM {table}")
    if count != scan.lines or (count and top - base + 1 != count):
        raise RecsightError(f"cannot split {path.name} into lines: found {count} rows in {scan.lines} lines")
    base = base or 0
    con.execute(f"CREATE TEMP TABLE {bad} (line BIGINT, reason VARCHAR)")
    if scan.bad_lines:
        con.executemany(f"INSERT INTO {bad} VALUES (?, ?)", list(scan.bad_lines.items()))
    number = f"t.rowid - {base} + 1"
    relation = (
        f"(SELECT {number} AS _line, t.raw, b.reason AS _bad FROM {table} t LEFT JOIN {bad} b ON b.line = {number})"
        if scan.bad_lines else f"(SELECT {number} AS _line, t.raw, NULL::VARCHAR AS _bad FROM {table} t)"
    )
    first = one(con, f"SELECT raw FROM {table} WHERE rowid = {base}")
    return Lines(relation=relation, count=count, ends_with_newline=scan.ends_with_newline,
                 first=first[0] if first else None, bad_lines=scan.bad_lines)


# --------------------------------------------------------------------------- sources


@dataclass
class Source:
    """Numbered rows of one file with named columns, whatever the file type."""

    name: str
    relation: str                        # FROM-able; has _line and the passthrough columns
    rows: int                            # rows read, counted independently of the validation SQL
    columns: dict[str, tuple[str, str]]  # lower-case column name -> (SQL expression, DuckDB type)
    passthrough: tuple[str, ...]         # columns the structural check and reject text need
    structural: str                      # SQL: reason for a row that could not be split, or NULL
    template: str                        # SQL: reject text with MARKER for the customer id

    def has(self, column: str) -> bool:
        return column.lower() in self.columns

    # ----------------------------------------------------------------- value expressions

    def text(self, column: str) -> str:
        """Trimmed text, NULL when empty or absent."""
        if not self.has(column):
            return "NULL::VARCHAR"
        expr, kind = self.columns[column.lower()]
        if kind == "TEXT":
            return expr
        if kind == "VARCHAR":
            return f"nullif(trim({expr}), '')"
        return f"nullif(trim(CAST({expr} AS VARCHAR)), '')"

    def given(self, column: str) -> str:
        """SQL: TRUE when the row has a value in ``column``."""
        return f"({self.text(column)} IS NOT NULL)" if self.has(column) else "FALSE"

    def identifier(self, column: str, integral_text: bool = False) -> str:
        """An id as text; integral floats become integers (17850.0 -> "17850").

        ``integral_text`` applies the same to text ids ("17850.0"), for customer ids that a
        spreadsheet or pandas wrote as floats.
        """
        if not self.has(column):
            return "NULL::VARCHAR"
        expr, kind = self.columns[column.lower()]
        if kind in _FLOAT_TYPES:
            return (f"CASE WHEN isfinite({expr}) AND {expr} = trunc({expr}) "
                    f"THEN CAST(TRY_CAST({expr} AS HUGEINT) AS VARCHAR) ELSE CAST({expr} AS VARCHAR) END")
        text = self.text(column)
        if integral_text:
            return (f"CASE WHEN contains({text}, '.') "
                    f"THEN regexp_replace({text}, '^([0-9]+)\\.0+$', '\\1') ELSE {text} END")
        return text

    def timestamp(self, column: str, formats: Sequence[str] = ()) -> str:
        """A TIMESTAMP (UTC for text with an offset), NULL when unparseable or absent.

        Text is read as ISO 8601 (with an optional offset or " UTC"), then with each of ``formats``
        (strptime patterns) in turn.
        """
        if not self.has(column):
            return "NULL::TIMESTAMP"
        expr, kind = self.columns[column.lower()]
        if kind in _TEXT_TYPES:
            text = self.text(column)
            # An offset (+02:00, -05) needs the slower TIMESTAMPTZ parse: a plain TIMESTAMP cast
            # would drop it. "Z" and " UTC" are read right by the plain cast. An impossible offset
            # (DuckDB reads up to +-99 h) gives NULL, not an instant shifted by days.
            zoned = f"CASE WHEN {_offset_outside(text)} THEN NULL ELSE {_zoned_utc(text)} END"
            iso = (f"CASE WHEN {_has_offset(text)} THEN {zoned} "
                   f"ELSE coalesce(TRY_CAST({text} AS TIMESTAMP), {zoned}) END")
            tries = [iso] + [f"try_strptime({text}, {sql_str(f)})" for f in formats]
            return f"coalesce({', '.join(tries)})" if len(tries) > 1 else iso
        if kind == "TIMESTAMP WITH TIME ZONE":
            return f"timezone('UTC', {expr})"
        if kind.startswith("TIMESTAMP") or kind == "DATE":
            return f"CAST({expr} AS TIMESTAMP)"
        raise RecsightError(f"file {self.name}: column {column} has type {kind}; expected a timestamp or text")

    def offset_outside_range(self, column: str) -> str:
        """SQL: TRUE when ``column`` is text whose UTC offset lies outside
        :data:`MIN_UTC_OFFSET_HOURS`..:data:`MAX_UTC_OFFSET_HOURS` (``timestamp`` gives NULL for it),
        so a check can name the reason (:data:`analytics.adapters.reasons.BAD_UTC_OFFSET`)."""
        if not self.has(column) or self.columns[column.lower()][1] not in _TEXT_TYPES:
            return "FALSE"
        text = self.text(column)
        return f"coalesce({_has_offset(text)} AND {_offset_outside(text)}, FALSE)"

    def number(self, column: str) -> str:
        """A finite DOUBLE, NULL when unparseable or absent."""
        if not self.has(column):
            return "NULL::DOUBLE"
        expr, kind = self.columns[column.lower()]
        if kind in _TEXT_TYPES:
            value = f"TRY_CAST({self.text(column)} AS DOUBLE)"
        elif kind in _INT_TYPES or kind in _FLOAT_TYPES or kind.startswith("DECIMAL"):
            value = f"CAST({expr} AS DOUBLE)"
        else:
            raise RecsightError(f"file {self.name}: column {column} has type {kind}; expected a number or text")
        return f"CASE WHEN isfinite({value}) THEN {value} END"

    def integer(self, column: str) -> str:
        """A whole number as INTEGER, NULL when unparseable, fractional or absent."""
        value = self.number(column)
        return f"CASE WHEN {value} = trunc({value}) THEN TRY_CAST({value} AS INTEGER) END"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _header_fields(line: str | None, delimiter: str) -> list[str]:
    if line is None:
        return []
    fields = next(csv.reader([line.lstrip("\ufeff")], delimiter=delimiter), [])
    return [f.strip() for f in fields]


def csv_source(con: duckdb.DuckDBPyConnection, path: Path, tag: str, fmt: str, *,
               required: Sequence[str], header: Sequence[str] | None = None,
               user_column: str | None = None, delimiter: str = ",") -> Source:
    """A delimited text file as a Source.

    With ``header`` None the first line names the columns; otherwise the file has no header and
    ``header`` names its fields. ``delimiter`` "," honours double quotes; a tab does not (TSV).
    """
    lines = load_lines(con, path, tag)
    if header is None:
        if lines.first is None or 1 in lines.bad_lines:
            raise not_in_format(path.name, fmt, "its first line is not a readable header")
        names = _header_fields(lines.first, delimiter)
        first_data = 2
    else:
        names = list(header)
        first_data = 1
    positions: dict[str, int] = {}
    for i, name in enumerate(names, start=1):
        positions.setdefault(name.lower(), i)
    for column in required:
        if column.lower() not in positions:
            raise not_in_format(path.name, fmt, f"missing column {column}")
    n = len(names)
    cells = "".join(f", nullif(trim(f[{pos}]), '') AS c{pos}" for pos in sorted(set(positions.values())))
    relation = (f"(SELECT *{cells} FROM (SELECT _line, raw, _bad, {_split_sql(delimiter)} AS f FROM "
                f"(SELECT *, {_matches_sql(delimiter)} AS _m FROM {lines.relation}) WHERE _line >= {first_data}))")
    truncated = (f"WHEN _line = {lines.count} AND len(f) < {n} THEN {sql_str(R.TRUNCATED_LAST_LINE)} "
                 if not lines.ends_with_newline else "")
    structural = (
        "CASE WHEN _bad IS NOT NULL THEN _bad "
        f"WHEN raw IS NULL OR trim(raw) = '' THEN {sql_str(R.EMPTY_LINE)} "
        f"WHEN f IS NULL THEN {sql_str(R.MALFORMED_QUOTES)} "
        f"{truncated}WHEN len(f) <> {n} THEN {sql_str(R.WRONG_FIELD_COUNT)} END"
    )
    columns = {name: (f"c{pos}", "TEXT") for name, pos in positions.items()}
    user_pos = positions.get(user_column.lower()) if user_column else None
    return Source(name=path.name, relation=relation, rows=lines.count - first_data + 1,
                  columns=columns, passthrough=("raw", "f"), structural=structural,
                  template=_csv_template(user_pos, n, delimiter))


def _matches_sql(delimiter: str) -> str:
    if delimiter != ",":
        return "NULL::VARCHAR[]"
    return f"CASE WHEN contains(raw, '\"') THEN regexp_extract_all(raw || ',', {sql_str(_QUOTED_FIELD)}, 1) END"


def _split_sql(delimiter: str) -> str:
    """Fields of ``raw``; NULL for a line whose quotes do not pair up."""
    plain = f"string_split(raw, {sql_str(delimiter)})"
    if delimiter != ",":
        return plain
    unquote = "lambda x: CASE WHEN starts_with(x, '\"') THEN replace(x[2:-2], '\"\"', '\"') ELSE x END"
    return (f"CASE WHEN raw IS NULL THEN NULL WHEN _m IS NULL THEN {plain} "
            f"WHEN array_to_string(_m, ',') = raw THEN list_transform(_m, {unquote}) END")


def _csv_template(user_pos: int | None, n: int, delimiter: str) -> str:
    if user_pos is None:
        return "coalesce(raw, '')"
    d = sql_str(delimiter)
    fields = f"coalesce(f, string_split(raw, {d}))"
    requote = _csv_quote("x") if delimiter == "," else "x"
    return (f"CASE WHEN raw IS NULL THEN '' "
            f"WHEN len({fields}) > {n} THEN {sql_str(WITHHELD)} "
            f"WHEN len({fields}) < {user_pos} THEN raw "
            f"ELSE array_to_string(list_transform({fields}, lambda x, i: "
            f"CASE WHEN i = {user_pos} THEN {sql_str(MARKER)} ELSE {requote} END), {d}) END")


def _csv_quote(value: str) -> str:
    """SQL: ``value`` as a CSV field (quoted when it holds a comma or a quote)."""
    return (f"CASE WHEN contains({value}, ',') OR contains({value}, '\"') "
            f"THEN '\"' || replace({value}, '\"', '\"\"') || '\"' ELSE {value} END")


def parquet_source(con: duckdb.DuckDBPyConnection, path: Path, fmt: str, *,
                   required: Sequence[str], user_column: str | None = None) -> Source:
    """A Parquet file as a Source; a row's ``line`` is its 1-based row number in the file."""
    scan = f"read_parquet({sql_str(str(path))}, file_row_number = true)"
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM read_parquet({sql_str(str(path))})").fetchall()
        rows = one(con, f"SELECT count(*) FROM read_parquet({sql_str(str(path))})")[0]
    except duckdb.Error as exc:
        raise RecsightError(f"cannot read {path.name} as Parquet: {_first_line(exc)}") from None
    columns: dict[str, tuple[str, str]] = {}
    select = ["file_row_number + 1 AS _line"]
    cells = []
    for i, (name, kind, *_rest) in enumerate(described):
        alias, quoted = f"c{i}", '"' + name.replace('"', '""') + '"'
        select.append(f"{quoted} AS {alias}")
        if kind == "VARCHAR":
            select.append(f"nullif(trim({quoted}), '') AS t{i}")
            columns.setdefault(name.lower(), (f"t{i}", "TEXT"))
        else:
            columns.setdefault(name.lower(), (alias, kind))
        is_user = user_column is not None and name.lower() == user_column.lower()
        cells.append(sql_str(MARKER) if is_user else _csv_quote(f"coalesce(CAST({alias} AS VARCHAR), '')"))
    for column in required:
        if column.lower() not in columns:
            raise not_in_format(path.name, fmt, f"missing column {column}")
    aliases = tuple(f"c{i}" for i in range(len(described)))
    return Source(name=path.name, relation=f"(SELECT {', '.join(select)} FROM {scan})", rows=rows,
                  columns=columns, passthrough=aliases, structural="NULL::VARCHAR",
                  template=f"array_to_string([{', '.join(cells)}], ',')")


def open_source(con: duckdb.DuckDBPyConnection, path: Path, tag: str, fmt: str, *,
                required: Sequence[str], user_column: str | None = None) -> Source:
    """CSV or Parquet by file suffix."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return parquet_source(con, path, fmt, required=required, user_column=user_column)
    if suffix == ".csv":
        return csv_source(con, path, tag, fmt, required=required, user_column=user_column)
    raise not_in_format(path.name, fmt, "expected a .csv or .parquet file")


# --------------------------------------------------------------------------- validation


def check_rows(con: duckdb.DuckDBPyConnection, src: Source, table: str, outputs: dict[str, str],
               checks: Sequence[tuple[str, str]], aux: dict[str, str] | None = None,
               unique: tuple[str, str] | None = None) -> None:
    """Materialise ``table``: one row per source row with ``line``, the outputs, ``reason``, ``reject_raw``.

    ``checks`` are (SQL condition over output and ``aux`` names, reason), tried in order after
    the structural check; the first that holds is the row's reason. ``unique`` = (key, reason)
    rejects every valid row after the first with the same key (e.g. a duplicate item id).
    """
    aux = aux or {}
    names = ", ".join(outputs)
    computed = ", ".join(f"{expr} AS {name}" for name, expr in {**outputs, **aux}.items())
    passthrough = ", ".join(src.passthrough)
    reason = "CASE WHEN _struct IS NOT NULL THEN _struct " + " ".join(
        f"WHEN {cond} THEN {sql_str(why)}" for cond, why in checks) + " END"
    rows = (f"SELECT _line AS line, {names}, {passthrough}, {reason} AS reason FROM "
            f"(SELECT _line, {passthrough}, {src.structural} AS _struct, {computed} FROM {src.relation})")
    if unique is not None:
        key, why = unique
        rows = (f"SELECT * REPLACE (CASE WHEN reason IS NULL AND row_number() OVER "
                f"(PARTITION BY {key}, reason IS NULL ORDER BY line) > 1 THEN {sql_str(why)} ELSE reason END "
                f"AS reason) FROM ({rows})")
    con.execute(
        f"CREATE TEMP TABLE {table} AS SELECT line, {names}, reason, "
        f"CASE WHEN reason IS NOT NULL THEN {src.template} END AS reject_raw FROM ({rows})"
    )


EVENT_COLUMNS = "line, user_raw, item_id, event_type, ts, session_id, quantity, price, rating"


def accepted_events(table: str) -> str:
    """The loader's ``events`` query over a checked table with the event outputs."""
    return f"SELECT {EVENT_COLUMNS} FROM {table} WHERE reason IS NULL"


def rejects_of(table: str, with_user: bool = True) -> str:
    """The loader's ``rejects`` query over a checked table."""
    user = "user_raw" if with_user else "NULL::VARCHAR AS user_raw"
    return f"SELECT line, reason, {user}, reject_raw AS raw_template FROM {table} WHERE reason IS NOT NULL"


def most_frequent(value: str, key: str, table: str) -> str:
    """SQL: per ``key``, the most frequent non-NULL ``value`` among the accepted rows of ``table``
    (ties: the alphabetically first), as a query of (key, value). A deterministic mode."""
    return (f"SELECT {key}, first({value} ORDER BY n DESC, {value}) AS {value} FROM "
            f"(SELECT {key}, {value}, count(*) AS n FROM {table} WHERE reason IS NULL AND {value} IS NOT NULL "
            f"GROUP BY ALL) GROUP BY {key}")
