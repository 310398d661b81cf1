"""Every table and view of a serving DuckDB file as a sheet of one XLSX workbook.

Codes (region, tier, province), dates, timestamps and every other identifier are written as text
cells, so Excel does not turn `32.01` into a number or `11` into eleven; dates as ISO text
`YYYY-MM-DD`. Counts and percentages are numbers, flags are booleans. The first sheet,
"Keterangan", explains each table and lists its columns with their descriptions (the serving
file's own `COMMENT ON`, else the declarations in `schemas.tables`). Written with openpyxl's
write-only mode, streaming rows from DuckDB, so large tables stay fast and small in memory.
"""
from __future__ import annotations

import os
import re
import time
from datetime import datetime
from pathlib import Path

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from schemas.tables import SERVING_TABLES, SERVING_VIEWS, quote

from .data import Serving

EXCEL_MAX_ROWS = 1_048_576
BATCH = 20_000
NUMERIC = re.compile(r"^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|"
                     r"UBIGINT|UHUGEINT|FLOAT|DOUBLE|REAL|DECIMAL.*)$")
INTEGER = re.compile(r"^(TINYINT|SMALLINT|INTEGER|BIGINT|UTINYINT|USMALLINT|UINTEGER)$")
HEADER_FONT = Font(bold=True, color="FFFFFF")
HEADER_FILL = PatternFill("solid", fgColor="0B4F8A")
TITLE_FONT = Font(bold=True, size=14)
BOLD = Font(bold=True)
WRAP = Alignment(wrap_text=True, vertical="top")


def _declared() -> dict[str, tuple[str, str, dict[str, str]]]:
    """name -> (kind, description, {column: description}) from schemas.tables."""
    out = {t.name: ("tabel", t.description, {c.name: c.description for c in t.cols(True)})
           for t in SERVING_TABLES}
    for name, (description, _, columns) in SERVING_VIEWS.items():
        out[name] = ("view", description, dict(columns))
    return out


def _select_expr(name: str, sql_type: str) -> str:
    """How a column is read for the sheet: numbers stay numbers (DECIMAL as DOUBLE), booleans
    stay booleans, everything else becomes text (dates ISO)."""
    q = quote(name)
    t = sql_type.upper()
    if t == "DATE":
        return f"strftime({q}, '%Y-%m-%d')"
    if t.startswith("TIMESTAMP"):
        return f"strftime({q}, '%Y-%m-%d %H:%M:%S')"
    if t.startswith("DECIMAL") or t in ("HUGEINT", "UHUGEINT", "UBIGINT"):
        return f"CAST({q} AS DOUBLE)"
    if NUMERIC.match(t) or t == "BOOLEAN":
        return q
    if t.endswith("[]"):
        return f"array_to_string({q}, ', ')"
    return f"CAST({q} AS VARCHAR)"


def _text_cell(ws, value: str) -> WriteOnlyCell | str:
    value = ILLEGAL_CHARACTERS_RE.sub("", value)
    if value.startswith("="):          # openpyxl would store it as a formula
        cell = WriteOnlyCell(ws, value=value)
        cell.data_type = "s"
        return cell
    return value


def _header(ws, names: list[str]) -> list[WriteOnlyCell]:
    cells = []
    for name in names:
        c = WriteOnlyCell(ws, value=name)
        c.font, c.fill = HEADER_FONT, HEADER_FILL
        cells.append(c)
    return cells


def _widths(s: Serving, name: str, cols: list[tuple[str, str]]) -> list[float]:
    """Column widths that fit the longest value as written (one scan of the table)."""
    if not cols:
        return []
    exprs = []
    for c, t in cols:
        e = _select_expr(c, t)
        if NUMERIC.match(t.upper()) or t.upper() == "BOOLEAN":
            e = f"CAST({e} AS VARCHAR)"
        exprs.append(f"max(length({e}))")
    lengths = s.con.execute(f"SELECT {', '.join(exprs)} FROM {quote(name)}").fetchone()
    out = []
    for (c, t), n in zip(cols, lengths):
        n = n or 0
        if t.upper() in ("DOUBLE", "FLOAT", "REAL") or t.upper().startswith("DECIMAL"):
            n = min(n, 14)                # Excel shows about 11 significant digits
        out.append(float(max(8, min(60, max(n, len(c)) + 2))))
    return out


def write_xlsx(serving: Path, out: Path) -> dict:
    """Write every serving table and view of `serving` to the workbook `out` (atomically).
    Returns bytes, sheets, rows per sheet and the build seconds."""
    started = time.perf_counter()
    serving, out = Path(serving), Path(out)
    declared = _declared()
    wb = Workbook(write_only=True)
    rows_per_sheet: dict[str, int] = {}
    with Serving(serving) as s:
        names = [n for n in declared] + sorted(n for n in s.relations if n not in declared)
        info = {}
        for name in names:
            if s.has(name):
                comment = s.one(
                    "SELECT comment FROM duckdb_tables() WHERE table_name = ? UNION ALL "
                    "SELECT comment FROM duckdb_views() WHERE view_name = ?", [name, name])
                cols = s.rows("SELECT column_name AS c, data_type AS t, comment FROM "
                              "duckdb_columns() WHERE table_name = ? AND schema_name = 'main' "
                              "ORDER BY column_index", [name])
                count = s.con.execute(f"SELECT count(*) FROM {quote(name)}").fetchone()[0]
            else:
                comment, cols, count = None, [], None
            kind, description, col_desc = declared.get(
                name, ("view" if s.relations.get(name) == "view" else "tabel", "", {}))
            description = (comment or {}).get("comment") or description
            info[name] = (kind, description, cols, col_desc, count)

        _keterangan(wb, serving, info)
        for name in names:
            kind, description, cols, col_desc, count = info[name]
            rows_per_sheet.update(_sheet(wb, s, name, cols, col_desc, count))
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    wb.save(tmp)
    os.replace(tmp, out)
    return {"path": str(out), "bytes": out.stat().st_size, "sheets": ["Keterangan",
            *rows_per_sheet], "rows": rows_per_sheet,
            "seconds": round(time.perf_counter() - started, 3)}


def _keterangan(wb: Workbook, serving: Path, info: dict) -> None:
    ws = wb.create_sheet("Keterangan")
    ws.column_dimensions["A"].width = 30
    ws.column_dimensions["B"].width = 16
    ws.column_dimensions["C"].width = 100
    ws.freeze_panes = "A4"

    def cell(value, font=None, wrap=False):
        c = WriteOnlyCell(ws, value=ILLEGAL_CHARACTERS_RE.sub("", value)
                          if isinstance(value, str) else value)
        if isinstance(value, str) and value.startswith("="):
            c.data_type = "s"
        if font is not None:
            c.font = font
        if wrap:
            c.alignment = WRAP
        return c

    ws.append([cell("Cakupan BPJS Ketenagakerjaan non-ASN: isi file serving", TITLE_FONT)])
    ws.append([cell(f"Sumber: {serving.name}; dibuat {datetime.now().astimezone():%Y-%m-%d %H:%M}. "
                    "Kode wilayah, kode tingkat dan tanggal ditulis sebagai teks (tanggal "
                    "YYYY-MM-DD); jumlah dan persentase sebagai angka.", wrap=False)])
    ws.append([cell("tabel / kolom", BOLD), cell("tipe", BOLD), cell("keterangan", BOLD)])
    for name, (kind, description, cols, col_desc, count) in info.items():
        ws.append([])
        rows_text = ("tidak ada dalam file serving" if count is None
                     else "kosong" if count == 0 else f"{count} baris")
        ws.append([cell(name, Font(bold=True, size=12)), cell(kind, BOLD),
                   cell(f"{description} ({rows_text}; lembar '{_sheet_title(name)}')", BOLD,
                        wrap=True)])
        listed = cols or [{"c": c, "t": "", "comment": d} for c, d in col_desc.items()]
        for col in listed:
            ws.append([cell(col["c"]), cell(col["t"]),
                       cell(col["comment"] or col_desc.get(col["c"], ""), wrap=True)])


def _sheet_title(name: str, part: int = 1) -> str:
    title = name[:31] if part == 1 else f"{name[:25]} ({part})"
    return title


def _sheet(wb: Workbook, s: Serving, name: str, cols: list[dict], col_desc: dict,
           count: int | None) -> dict[str, int]:
    names = [c["c"] for c in cols] or list(col_desc)
    types = [c["t"].upper() for c in cols]
    widths = _widths(s, name, [(c["c"], c["t"]) for c in cols]) if cols and count else \
        [float(max(8, len(n) + 2)) for n in names]
    per_sheet = EXCEL_MAX_ROWS - 1
    parts = max(1, -(-(count or 0) // per_sheet))
    written: dict[str, int] = {}
    cur = None
    if cols and count:
        select = ", ".join(_select_expr(c["c"], c["t"]) for c in cols)
        order = ", ".join(str(i + 1) for i in range(min(len(cols), 4)))
        cur = s.con.cursor().execute(f"SELECT {select} FROM {quote(name)} ORDER BY {order}")
    text_cols = [not (NUMERIC.match(t) or t == "BOOLEAN") for t in types]
    int_cols = [bool(INTEGER.match(t)) for t in types]
    for part in range(1, parts + 1):
        ws = wb.create_sheet(_sheet_title(name, part))
        for i, w in enumerate(widths, start=1):
            ws.column_dimensions[get_column_letter(i)].width = w
        ws.freeze_panes = "A2"
        ws.append(_header(ws, names))
        n = 0
        if cur is not None:
            while n < per_sheet:
                batch = cur.fetchmany(min(BATCH, per_sheet - n))
                if not batch:
                    break
                for row in batch:
                    ws.append([_text_cell(ws, v) if (is_text and isinstance(v, str))
                               else int(v) if (is_int and v is not None) else v
                               for v, is_text, is_int in zip(row, text_cols, int_cols)])
                n += len(batch)
        if names:
            ws.auto_filter.ref = f"A1:{get_column_letter(len(names))}{max(1, n + 1)}"
        written[ws.title] = n
    return written
