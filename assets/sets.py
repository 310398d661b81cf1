"""Small sets of CSV files read together and validated by a schema (potential sets, targets,
published figures): each file read as text, every row checked against every rule."""
from __future__ import annotations

from readers.files import FileRejected, read_table
from schemas.rules import install_macros, messages_sql, reasons_sql, required_columns


def stage(con, files, schema_module, params: dict | None = None,
          table: str = "set_staged") -> tuple[int, list[str]]:
    """Read ``files`` into the temp table ``table`` (the module's PREPARE_SQL over them, with
    ``reasons``); return (data rows, problems of whole files)."""
    columns = schema_module.TEXT_COLUMNS
    install_macros(con, getattr(schema_module, "MACROS", None))
    con.execute("CREATE OR REPLACE TEMP TABLE set_raw (source_file VARCHAR, row_number BIGINT, "
                + ", ".join(f"{c} VARCHAR" for c in columns) + ")")
    problems, rows = [], 0
    for f in files:
        try:
            if f.problem:
                raise FileRejected(f.problem)
            rows += read_table(con, f.path, columns, required_columns(schema_module.ROW_SCHEMA),
                               "set_file")
            con.execute(f"INSERT INTO set_raw SELECT ?, row_number, {', '.join(columns)} "
                        "FROM set_file", [f.relpath])
        except FileRejected as exc:
            problems.append(f"{f.relpath}: {exc.message}")
    con.execute("CREATE OR REPLACE TEMP VIEW raw_input AS SELECT * FROM set_raw")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT *, "
                f"{messages_sql(schema_module.ROW_SCHEMA)} AS reason_text "
                f"FROM (SELECT *, {reasons_sql(schema_module.ROW_SCHEMA)} AS reasons "
                f"FROM ({schema_module.PREPARE_SQL}))", params or {})
    return rows, problems


def row_problems(con, table: str = "set_staged") -> list[str]:
    return [f"{src} row {n}: {msg}" for src, n, msg in con.execute(
        f"SELECT source_file, row_number, reason_text FROM {table} WHERE len(reasons) > 0 "
        "ORDER BY source_file, row_number").fetchall()]


def shown(problems: list[str], limit: int = 10) -> str:
    return "; ".join(problems[:limit]) + (f"; ... {len(problems) - limit} more"
                                          if len(problems) > limit else "")
