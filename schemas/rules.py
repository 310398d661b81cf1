"""Rules as pandera checks backed by one DuckDB predicate each.

A rule is declared once, as a SQL boolean expression over the columns of a prepared frame. The
same expression serves two engines:

* pandera: :func:`rule` returns a ``pa.Check`` whose function evaluates the expression with DuckDB
  over the pandas frame being validated, so ``schema.validate(df, lazy=True)`` reports every
  failing row of every rule;
* the pipeline: :func:`reasons_sql` compiles a whole ``DataFrameSchema`` (its non-nullable columns
  and its rule checks) to one list expression giving, per row, the codes of every rule it breaks.

A rule passes only when its expression is TRUE: NULL counts as a failure, so each expression
states explicitly when it does not apply.
"""
from __future__ import annotations

import duckdb
import pandas as pd
import pandera.pandas as pa

# Unicode White_Space characters: the contract trims every text field of all of them.
UNICODE_WHITESPACE = [
    0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
    0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF,
]
WS_SQL = "'" + "".join(chr(c) for c in UNICODE_WHITESPACE) + "'"   # a literal: no quote in it
# RE2 character class of them (trim() with a character list is ~8x slower than a regex here)
WS_CLASS = "[" + "".join(f"\\x{{{c:X}}}" for c in UNICODE_WHITESPACE) + "]"

# Macros every warehouse connection defines before running contract SQL (pure functions).
MACROS = {
    # x without leading and trailing Unicode whitespace (the regex only where an end is blank)
    "trim_ws": f"CASE WHEN contains({WS_SQL}, x[1]) OR contains({WS_SQL}, x[-1]) "
               f"THEN regexp_replace(x, '^{WS_CLASS}+|{WS_CLASS}+$', '', 'g') ELSE x END",
    # NULL for a trimmed value that is empty or the word null (any case)
    "blank_to_null": "CASE WHEN x = '' OR (strlen(x) = 4 AND lower(x) = 'null') THEN NULL "
                     "ELSE x END",
    "squeeze": f"upper(regexp_replace(x, '{WS_CLASS}', '', 'g'))",
    "months": "12 * year(x) + month(x)",
    # zero-padded YYYY-MM-DD or DD/MM/YYYY that exists on the calendar, else NULL
    # (TRY_CAST of a zero-padded ISO date is NULL for a day not on the calendar)
    "parse_date": (
        "CASE WHEN strlen(x) <> 10 THEN NULL "
        "WHEN regexp_full_match(x, '[0-9]{4}-[0-9]{2}-[0-9]{2}') THEN TRY_CAST(x AS DATE) "
        "WHEN regexp_full_match(x, '[0-9]{2}/[0-9]{2}/[0-9]{4}') "
        "THEN TRY_CAST(x[7:10] || '-' || x[4:5] || '-' || x[1:2] AS DATE) END"
    ),
    # YYYY-MM, or a full date read as its month, as 12*year+month; else NULL
    "parse_month": (
        "CASE WHEN regexp_full_match(x, '[0-9]{4}-(0[1-9]|1[0-2])') "
        "THEN 12 * CAST(substr(x, 1, 4) AS INTEGER) + CAST(substr(x, 6, 2) AS INTEGER) "
        "ELSE months(parse_date(x)) END"
    ),
}


def install_macros(con: duckdb.DuckDBPyConnection, extra: dict[str, str] | None = None) -> None:
    for name, body in {**MACROS, **(extra or {})}.items():
        con.execute(f"CREATE OR REPLACE TEMP MACRO {name}(x) AS ({body})")


def rule(code: str, sql: str, message: str, column: str | None = None) -> pa.Check:
    """A pandera check whose truth is the DuckDB expression ``sql`` (TRUE passes)."""

    def evaluate(df: pd.DataFrame) -> pd.Series:
        con = duckdb.connect()
        try:
            install_macros(con)
            con.register("frame", df)
            ok = con.execute(f"SELECT ({sql}) IS TRUE AS ok FROM frame").df()["ok"]
        finally:
            con.close()
        ok.index = df.index
        return ok

    return pa.Check(
        evaluate,
        name=code,
        description=message,
        ignore_na=False,
        statistics={"sql": sql, "column": column, "message": message},
    )


def rules_of(schema: pa.DataFrameSchema) -> list[tuple[str, str, str]]:
    """(code, sql, message) for every rule of ``schema``, in declaration order.

    A column declared ``nullable=False`` is the rule ``<column>_required``.
    """
    out: list[tuple[str, str, str]] = []
    for name, col in schema.columns.items():
        if not col.nullable:
            out.append((f"{name}_required", f"{name} IS NOT NULL", f"{name} is empty"))
    for check in schema.checks:
        stats = check.statistics or {}
        if "sql" not in stats:
            raise TypeError(f"check {check.name!r} of {schema.name} has no SQL form")
        out.append((check.name, stats["sql"], stats["message"]))
    return out


def valid_sql(schema: pa.DataFrameSchema) -> str:
    """One DuckDB expression: TRUE when a row satisfies every rule of ``schema``."""
    return "(" + " AND ".join(f"({sql})" for _, sql, _ in rules_of(schema)) + ") IS TRUE"


def broken_sql(schema: pa.DataFrameSchema) -> str:
    """The list of rule codes a row breaks (for rows known to be invalid)."""
    cases = ", ".join(f"CASE WHEN ({sql}) IS NOT TRUE THEN '{code}' END"
                      for code, sql, _ in rules_of(schema))
    return f"list_filter([{cases}], lambda r: r IS NOT NULL)"


def reasons_sql(schema: pa.DataFrameSchema) -> str:
    """One DuckDB expression: the list of rule codes a row breaks (empty list = valid).

    The conjunction of all rules is evaluated first (cheap, and true for almost every row);
    the list of broken rules is built only for the rows that fail it.
    """
    return (f"CASE WHEN {valid_sql(schema)} THEN CAST([] AS VARCHAR[]) "
            f"ELSE {broken_sql(schema)} END")


def clean_sql(columns, source: str, keep: str) -> str:
    """SELECT of ``keep`` and every text column trimmed and emptied to NULL, from ``source``."""
    trimmed = ", ".join(f"trim_ws({c}) AS {c}" for c in columns)
    cleaned = ", ".join(f"blank_to_null({c}) AS {c}" for c in columns)
    return (f"SELECT {keep}, {cleaned} FROM (SELECT {keep}, {trimmed} FROM {source})")


def messages_sql(schema: pa.DataFrameSchema, reasons_column: str = "reasons") -> str:
    """Human-readable text for a list of rule codes, joined with '; '."""
    whens = " ".join(
        f"WHEN '{code}' THEN '{code}: {msg.replace(chr(39), chr(39) * 2)}'"
        for code, _, msg in rules_of(schema)
    )
    return f"array_to_string(list_transform({reasons_column}, lambda r: CASE r {whens} END), '; ')"


def required_columns(schema: pa.DataFrameSchema) -> list[str]:
    return [name for name, col in schema.columns.items() if col.required]


def optional_columns(schema: pa.DataFrameSchema) -> list[str]:
    return [name for name, col in schema.columns.items() if not col.required]
