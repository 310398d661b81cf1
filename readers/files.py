"""Reading delivered files as text, whatever their format, without copying them first.

:func:`open_source` checks a file and returns a :class:`Source`: a SELECT over the file (DuckDB's
``read_csv`` or ``read_parquet`` with bound parameters, or an Arrow table for XLSX) yielding
``row_number`` (1-based data row, file order), ``nik_is_number`` and the schema's text columns
(absent optional ones NULL). The ingest runs its validation straight over it.

Identifiers are never parsed as numbers: CSV columns are all VARCHAR with no sniffing;
spreadsheet and Parquet cells that arrive as numbers keep that fact (a NIK that was a number is
invalid). A file that cannot be read raises :class:`FileRejected` with one line for people,
never the file's content (DuckDB's CSV errors quote the offending line, which may hold a NIK).
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from schemas.rules import UNICODE_WHITESPACE

MAX_LINE = 1 << 20                 # contract v1.2: a physical CSV line longer than 1 MiB rejects
_DUCKDB_MAX_LINE = 1 << 22         # a quoted row may span physical lines (64 MiB would cost DuckDB its parallel scan)
_STRIP = "".join(chr(c) for c in UNICODE_WHITESPACE)
_GZIP, _ZIP, _PARQUET = b"\x1f\x8b", b"PK\x03\x04", b"PAR1"


class FileRejected(Exception):
    """The whole file is rejected; ``rows_read`` is None when it could not be read."""

    def __init__(self, message: str, rows_read: int | None = None):
        super().__init__(message)
        self.message = message
        self.rows_read = rows_read


@dataclass
class Scan:
    """What one pass over a file's bytes found (the ingest hashes every file it reads)."""
    sha256: str
    size: int
    has_nul: bool
    long_line: int | None      # 1-based number of the first physical line over MAX_LINE
    head: bytes
    bad_utf8: int | None = None   # 1-based line of the first byte that is not UTF-8


def _line_at(path: Path, offset: int) -> int:
    """The 1-based line holding byte ``offset`` of ``path`` (a second read, for a bad file only:
    counting every file's newlines in :func:`scan_bytes` cost 0.3 ns a byte, 0.7 s a night)."""
    lines = 0
    with open(path, "rb") as fh:
        while offset > 0 and (block := fh.read(min(MAX_LINE, offset))):
            lines += block.count(b"\n")
            offset -= len(block)
    return lines + 1


def scan_bytes(path: Path, sha256: str | None = None) -> Scan:
    """sha256, NUL bytes, invalid UTF-8 and the first physical line longer than 1 MiB, in one
    read (only blocks that are not plain ASCII are decoded). ``sha256``: the file's hash when the
    caller already has it for the file's current stat (it is then not computed again)."""
    import codecs
    import hashlib

    h = hashlib.sha256()
    size = 0
    line_start = 0                  # byte offset where the current physical line begins
    has_nul, long_at, head, bad_at = False, None, b"", None
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as fh:
        while block := fh.read(MAX_LINE):   # a line inside one block is shorter than MAX_LINE
            if not head:
                head = block[:64]   # enough for every magic number checked (kept in memos)
            if sha256 is None:
                h.update(block)
            if not has_nul and b"\0" in block:
                has_nul = True
            if bad_at is None and (not block.isascii() or decoder.getstate()[0]):
                pending = len(decoder.getstate()[0])
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    bad_at = max(size + exc.start - pending, 0)
            if long_at is None:
                first = block.find(b"\n")
                if (first < 0 and size + len(block) - line_start > MAX_LINE) or (
                        first >= 0 and size + first - line_start > MAX_LINE):
                    long_at = line_start
            last = block.rfind(b"\n")
            if last >= 0:
                line_start = size + last + 1
            size += len(block)
    if long_at is None and size - line_start > MAX_LINE:
        long_at = line_start
    if bad_at is None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            bad_at = size
    return Scan(sha256 or h.hexdigest(), size, has_nul,
                None if long_at is None else _line_at(path, long_at), head,
                None if bad_at is None else _line_at(path, bad_at))


@dataclass
class Source:
    """A SELECT over a delivered file: ``sql`` with ``params`` (bound, never formatted)."""
    sql: str
    params: dict = field(default_factory=dict)
    arrow: pa.Table | None = None      # registered under ``name`` for XLSX
    name: str | None = None
    count: int | None = None


def _normalise(name: object) -> str:
    return str(name if name is not None else "").strip(_STRIP).lower()


_SAFE_ERROR = re.compile(
    r"(CSV Error on Line: \d+|Expected Number of Columns: \d+ Found: \d+|"
    r"Value with unterminated quote|Invalid unicode|unterminated quote|"
    r"Maximum line size of \d+ bytes exceeded)", re.IGNORECASE)


def line_ending_break(path: Path) -> int | None:
    """The first physical line whose ending differs from the first line's (CRLF against LF),
    1-based; None when every line ends alike."""
    first = None
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, 1):
            if not line.endswith(b"\n"):
                break
            crlf = line.endswith(b"\r\n")
            if first is None:
                first = crlf
            elif crlf != first:
                return n
    return None


def duckdb_message(exc: Exception) -> str:
    """The parts of a DuckDB error that hold no delivered data, on one line."""
    text = str(exc)
    parts = list(dict.fromkeys(m.group(0) for m in _SAFE_ERROR.finditer(text)))
    return "; ".join(parts)[:300] or text.splitlines()[0].split(":")[0]


def _positions(header: list, columns: tuple[str, ...], required: list[str], rows_read=None):
    names = [_normalise(h) for h in header]
    seen = [n for n in names if n]
    dupes = sorted({n for n in seen if seen.count(n) > 1})
    if dupes:
        raise FileRejected(f"the header names a column twice: {', '.join(dupes)}",
                           rows_read() if rows_read else None)
    missing = [c for c in required if c not in names]
    if missing:
        raise FileRejected(f"missing required column(s): {', '.join(missing)}",
                           rows_read() if rows_read else None)
    return {c: names.index(c) for c in columns if c in names}


def _text_checks(path: Path, scan: Scan) -> None:
    head = scan.head
    if head.startswith(_GZIP):
        raise FileRejected("compressed (gzip) bytes, not CSV text: unreadable")
    if head.startswith(_ZIP):
        raise FileRejected("compressed (zip) bytes, not CSV text: unreadable")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise FileRejected("UTF-16 text; the contract requires UTF-8 (with or without BOM)")
    if scan.has_nul:
        raise FileRejected("NUL bytes in the file (binary data or UTF-16 text, not UTF-8)")
    if scan.long_line is not None:
        raise FileRejected(f"line {scan.long_line} is longer than 1 MiB")
    if scan.bad_utf8 is not None:
        raise FileRejected(f"not UTF-8 text (line {scan.bad_utf8}); the contract requires UTF-8 "
                           "(with or without BOM)")


def _csv_header(path: Path) -> tuple[list[str], str]:
    with open(path, "rb") as fh:
        first = fh.readline(MAX_LINE + 2)
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRejected(f"not UTF-8 text (line 1, byte {exc.start + 1})") from None
    line = text.rstrip("\r\n")
    if not line.strip(_STRIP):
        raise FileRejected("no header row (the first line is empty)")
    delim = ";" if line.count(";") > line.count(",") else ","
    limit = csv.field_size_limit()
    try:
        csv.field_size_limit(MAX_LINE + 2)
        header = next(csv.reader(io.StringIO(line), delimiter=delim), [])
    except csv.Error as exc:
        raise FileRejected(f"unreadable header line: {exc}") from None
    finally:
        csv.field_size_limit(limit)
    return header, delim


def _csv(con, path: Path, columns, required, scan: Scan) -> Source:
    _text_checks(path, scan)
    header, delim = _csv_header(path)
    struct = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(max(len(header), 1))) + "}"
    reader = (f"read_csv($path, columns={struct}, header=true, auto_detect=false, delim=$delim, "
              "quote='\"', escape='\"', strict_mode=true, null_padding=false, "
              f"encoding='utf-8', max_line_size={_DUCKDB_MAX_LINE})")
    params = {"path": str(path), "delim": delim}

    def count():
        try:
            return con.execute(f"SELECT count(*) FROM {reader}", params).fetchone()[0]
        except duckdb.Error:
            return None

    pos = _positions(header, columns, required, count)
    select = ", ".join((f"c{pos[c]} AS {c}" if c in pos else f"CAST(NULL AS VARCHAR) AS {c}")
                       for c in columns)
    return Source(f"SELECT ordinality AS row_number, false AS nik_is_number, {select} "
                  f"FROM {reader} WITH ORDINALITY", params)


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
    if isinstance(value, dt.time):
        return value.isoformat(), True
    return str(value), False


def _xlsx(con, path: Path, columns, required, scan: Scan, name: str) -> Source:
    import python_calamine

    if not scan.head.startswith(_ZIP):
        raise FileRejected("not an XLSX workbook (no zip container): unreadable")
    try:
        # formula cells come as their cached value (empty without one); a merged range holds
        # its value in its top-left cell only
        rows = python_calamine.CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0) \
            .to_python(skip_empty_area=False)
    except Exception as exc:  # calamine raises its own error types
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise FileRejected(f"not a readable XLSX workbook ({first})") from None
    header = rows[0] if rows else []
    body = [r for r in rows[1:] if any(v not in (None, "") for v in r)]
    pos = _positions(header, columns, required, lambda: len(body))
    arrays, nik_number = {}, [False] * len(body)
    for c in columns:
        if c not in pos:
            arrays[c] = pa.nulls(len(body), pa.string())
            continue
        i, texts = pos[c], []
        for n, r in enumerate(body):
            text, number = _cell_text(r[i] if i < len(r) else None)
            texts.append(text)
            if c == "nik" and number:
                nik_number[n] = True
        arrays[c] = pa.array(texts, pa.string())
    table = pa.table({"row_number": pa.array(range(1, len(body) + 1), pa.int64()),
                      "nik_is_number": pa.array(nik_number, pa.bool_()), **arrays})
    return Source(f"SELECT row_number, nik_is_number, {', '.join(columns)} FROM {name}",
                  arrow=table, name=name, count=len(body))


_NESTED = re.compile(r"(\[\]|^STRUCT|^MAP|^UNION|^LIST)", re.IGNORECASE)


def _parquet(con, path: Path, columns, required, scan: Scan) -> Source:
    if not scan.head.startswith(_PARQUET):
        kind = ("gzip" if scan.head.startswith(_GZIP) else "zip" if scan.head.startswith(_ZIP)
                else "other")
        raise FileRejected(f"not a Parquet file ({kind} bytes): unreadable")
    import pyarrow.parquet as pq

    params = {"path": str(path)}
    try:
        described = con.execute("DESCRIBE SELECT * FROM read_parquet($path)", params).fetchall()
        rows = con.execute("SELECT count(*) FROM read_parquet($path)", params).fetchone()[0]
        # DuckDB renames a repeated column (NIK -> NIK_1): the file's own names decide
        names = pq.read_schema(path).names
    except (duckdb.Error, pa.ArrowException, OSError) as exc:
        raise FileRejected(f"unreadable Parquet: {duckdb_message(exc)}") from None
    types = [r[1] for r in described]
    if len(names) != len(types):
        names = [r[0] for r in described]
    pos = _positions(names, columns, required, lambda: rows)
    nested = [c for c in columns if c in pos and _NESTED.search(types[pos[c]])]
    if nested:
        raise FileRejected(f"nested Parquet column(s) where text is expected: "
                           f"{', '.join(nested)} ({', '.join(types[pos[c]] for c in nested)})",
                           rows)

    def text(c: str) -> str:
        if c not in pos:
            return f"CAST(NULL AS VARCHAR) AS {c}"
        ref, typ = f"#{pos[c] + 1}", types[pos[c]]
        if typ == "DATE" or typ.startswith("TIMESTAMP"):
            return f"strftime(CAST({ref} AS DATE), '%Y-%m-%d') AS {c}"
        return f"CAST({ref} AS VARCHAR) AS {c}"

    nik_numeric = "nik" in pos and types[pos["nik"]] not in ("VARCHAR", "BLOB")
    number_flag = f"#{pos['nik'] + 1} IS NOT NULL" if nik_numeric else "false"
    select = [text(c) for c in columns]
    if nik_numeric:   # its digits as a whole number, like a spreadsheet number cell
        ref = f"#{pos['nik'] + 1}"
        select[columns.index("nik")] = (
            f"CASE WHEN TRY_CAST({ref} AS DOUBLE) = trunc(TRY_CAST({ref} AS DOUBLE)) "
            f"THEN CAST(TRY_CAST({ref} AS HUGEINT) AS VARCHAR) ELSE CAST({ref} AS VARCHAR) END "
            "AS nik")
    return Source(f"SELECT file_row_number + 1 AS row_number, {number_flag} AS nik_is_number, "
                  f"{', '.join(select)} FROM read_parquet($path, file_row_number=true)", params,
                  count=rows)


def open_source(con: duckdb.DuckDBPyConnection, path: Path, columns: tuple[str, ...],
                required: list[str], scan: Scan, name: str = "xlsx_input") -> Source:
    """Check ``path`` (already scanned) and return a SELECT over its rows as text.

    ``name`` is an identifier chosen by the caller for an XLSX Arrow table, never derived from
    the file name."""
    if scan.size == 0:
        raise FileRejected("the file is empty (0 bytes)")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _csv(con, path, columns, required, scan)
    if suffix == ".xlsx":
        return _xlsx(con, path, columns, required, scan, name)
    if suffix == ".parquet":
        return _parquet(con, path, columns, required, scan)
    raise FileRejected(f"unsupported file type {suffix!r} (CSV, XLSX or Parquet)")


def read_table(con, path: Path, columns: tuple[str, ...], required: list[str],
               table: str) -> int:
    """Materialise a small file (potential, targets, published) as the temp table ``table``
    (``row_number`` and text columns); return its data rows."""
    scan = scan_bytes(path)
    src = open_source(con, path, columns, required, scan, name=f"{table}_arrow")
    if src.arrow is not None:
        con.register(src.name, src.arrow)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {src.sql}", src.params)
    except duckdb.Error as exc:
        raise FileRejected(f"unreadable {path.suffix.lstrip('.').upper()}: "
                           f"{duckdb_message(exc)}") from None
    finally:
        if src.arrow is not None:
            con.unregister(src.name)
    return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
