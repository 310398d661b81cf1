"""Reading delivered files into DuckDB as text, whatever their format.

Every reader leaves the temp view ``raw_file`` on the connection with the schema's text columns
(absent optional ones NULL), ``nik_is_number`` and a 1-based ``row_number`` in file order.
Identifiers are never parsed as numbers: CSV is read with every column VARCHAR and no sniffing;
spreadsheet and Parquet cells that arrive as numbers keep that fact (a NIK that was a number is
invalid). A file that cannot be read raises :class:`FileRejected` with a message for people.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path

import duckdb
import pyarrow as pa

from schemas.rules import UNICODE_WHITESPACE

SUPPORTED = (".csv", ".xlsx", ".parquet")
_STRIP = "".join(chr(c) for c in UNICODE_WHITESPACE)


class FileRejected(Exception):
    """The whole file is rejected; ``rows_read`` is None when it could not be read."""

    def __init__(self, message: str, rows_read: int | None = None):
        super().__init__(message)
        self.message = message
        self.rows_read = rows_read


def _normalise(name: object) -> str:
    return str(name if name is not None else "").strip(_STRIP).lower()


# DuckDB's CSV errors quote the offending line ("Original Line: ..."), which may hold a NIK or
# a name: only these lines of an error may reach load_log, logs or the terminal.
_SAFE_ERROR_LINES = re.compile(
    r"^(.*Error: CSV Error on Line: \d+.*|Expected Number of Columns: \d+ Found: \d+|"
    r"Invalid unicode .*|Value with unterminated quote.*|The CSV Parser state machine .*)$")


def _duckdb_message(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines()]
    safe = [ln for ln in lines if _SAFE_ERROR_LINES.match(ln)]
    return " ".join(safe)[:300] or lines[0].split(":")[0]


def _positions(header: list[str], columns: tuple[str, ...], required: list[str],
               rows_read=lambda: None) -> dict[str, int]:
    names = [_normalise(h) for h in header]
    seen = [n for n in names if n]
    dupes = sorted({n for n in seen if seen.count(n) > 1 and n in columns})
    if dupes:
        raise FileRejected(f"duplicate column(s): {', '.join(dupes)}", rows_read())
    missing = [c for c in required if c not in names]
    if missing:
        raise FileRejected(f"missing required column(s): {', '.join(missing)}", rows_read())
    return {c: names.index(c) for c in columns if c in names}


def _csv_header(path: Path) -> tuple[list[str], str]:
    with open(path, "rb") as fh:
        first = fh.readline(1 << 20)
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRejected(f"not UTF-8 text (byte {exc.start} of the header line: "
                           f"{first[exc.start:exc.start + 1]!r})") from None
    line = text.rstrip("\r\n")
    delim = ";" if line.count(";") > line.count(",") else ","
    header = next(csv.reader(io.StringIO(line), delimiter=delim), [])
    return header, delim


def _read_csv(con, path: Path, columns, required, table: str) -> None:
    header, delim = _csv_header(path)
    struct = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(max(len(header), 1))) + "}"
    source = (f"read_csv(?, columns={struct}, header=true, auto_detect=false, delim=?, "
              "quote='\"', escape='\"', strict_mode=true, null_padding=false, encoding='utf-8')")

    def count():
        try:
            return con.execute(f"SELECT count(*) FROM {source}", [str(path), delim]).fetchone()[0]
        except duckdb.Error:
            return None

    pos = _positions(header, columns, required, count)
    select = ", ".join(
        (f"#{pos[c] + 1} AS {c}" if c in pos else f"CAST(NULL AS VARCHAR) AS {c}")
        for c in columns
    )
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT {select}, "
                    f"false AS nik_is_number FROM {source}", [str(path), delim])
    except duckdb.Error as exc:
        raise FileRejected(f"unreadable CSV: {_duckdb_message(exc)}") from None


def _cell_text(value) -> tuple[str | None, bool]:
    """(text, was_a_number) for one spreadsheet cell."""
    if value is None or value == "":
        return None, False
    if isinstance(value, bool):
        return ("TRUE" if value else "FALSE"), False
    if isinstance(value, (int, float)):
        if isinstance(value, float) and value.is_integer() and abs(value) < 1e17:
            return str(int(value)), True
        return repr(value), True
    if isinstance(value, dt.datetime):
        return value.date().isoformat(), False
    if isinstance(value, dt.date):
        return value.isoformat(), False
    return str(value), False


def _read_xlsx(con, path: Path, columns, required, table: str) -> None:
    import python_calamine

    try:
        rows = python_calamine.CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0) \
            .to_python(skip_empty_area=False)
    except Exception as exc:  # calamine raises its own error types
        raise FileRejected(f"not a readable XLSX workbook: {str(exc).splitlines()[0][:200]}") \
            from None
    header = rows[0] if rows else []
    body = [r for r in rows[1:] if any(v not in (None, "") for v in r)]
    pos = _positions(header, columns, required, lambda: len(body))
    arrays, nik_number = {}, [False] * len(body)
    for c in columns:
        if c not in pos:
            arrays[c] = pa.nulls(len(body), pa.string())
            continue
        i = pos[c]
        texts = []
        for n, r in enumerate(body):
            text, number = _cell_text(r[i] if i < len(r) else None)
            texts.append(text)
            if c == "nik" and number:
                nik_number[n] = True
        arrays[c] = pa.array(texts, pa.string())
    arrays["nik_is_number"] = pa.array(nik_number, pa.bool_())
    _table_from_arrow(con, pa.table(arrays), table)


def _read_parquet(con, path: Path, columns, required, table: str) -> None:
    try:
        described = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
    except duckdb.Error as exc:
        raise FileRejected(f"unreadable Parquet: {_duckdb_message(exc)}") from None
    types = [row[1] for row in described]

    def count():
        return con.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchone()[0]

    pos = _positions([row[0] for row in described], columns, required, count)

    def text(c: str) -> str:
        if c not in pos:
            return f"CAST(NULL AS VARCHAR) AS {c}"
        ref, typ = f"#{pos[c] + 1}", types[pos[c]]
        if typ == "DATE" or typ.startswith("TIMESTAMP"):
            return f"strftime(CAST({ref} AS DATE), '%Y-%m-%d') AS {c}"
        return f"CAST({ref} AS VARCHAR) AS {c}"

    nik_numeric = "nik" in pos and types[pos["nik"]] not in ("VARCHAR", "BLOB")
    number_flag = f"#{pos['nik'] + 1} IS NOT NULL" if nik_numeric else "false"
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT "
                    f"{', '.join(text(c) for c in columns)}, {number_flag} AS nik_is_number "
                    "FROM read_parquet(?)", [str(path)])
    except duckdb.Error as exc:
        raise FileRejected(f"unreadable Parquet: {_duckdb_message(exc)}") from None


def _table_from_arrow(con, data: pa.Table, table: str) -> None:
    con.register("arrow_input", data)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM arrow_input")
    finally:
        con.unregister("arrow_input")


READERS = {".csv": _read_csv, ".xlsx": _read_xlsx, ".parquet": _read_parquet}


def read_into(con: duckdb.DuckDBPyConnection, path: Path, columns: tuple[str, ...],
              required: list[str], table: str = "raw_table") -> int:
    """Load ``path`` into the temp table ``table`` (text columns and ``nik_is_number``, in file
    order: ``rowid + 1`` is the data row number) and the view ``raw_file`` over it (with
    ``row_number``); return the data row count. ``table`` is an identifier chosen by the
    caller, never derived from the file name."""
    if path.stat().st_size == 0:
        raise FileRejected("file is empty (0 bytes)")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise FileRejected(f"unsupported file type {path.suffix!r} (CSV, XLSX or Parquet)")
    reader(con, path, columns, required, table)
    con.execute(f"CREATE OR REPLACE TEMP VIEW raw_file AS "
                f"SELECT rowid + 1 AS row_number, * FROM {table}")
    return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
