"""Stage: potential (denominator) sets, validated whole per date."""

import dagster as dg

from pipelines.extracts import FileRejected, read_into
from pipelines.landing import fingerprint, scan_potential
from pipelines.resources import WAREHOUSE_WRITER, Settings, Warehouse
from schemas import potential as schema
from schemas.reference import vintage_for
from schemas.rules import messages_sql, reasons_sql, required_columns

from assets.reference import region_reference

_REGION_LEVEL = ("CASE length(kode) WHEN 2 THEN 'province' WHEN 5 THEN 'regency' "
                 "WHEN 8 THEN 'district' WHEN 13 THEN 'village' END")


def _load_set(con, day, files) -> tuple[str, int, str | None]:
    """Stage one date's files as ``potential_staged``; (status, rows, message)."""
    con.execute("CREATE OR REPLACE TEMP TABLE potential_raw (source_file VARCHAR, "
                "row_number BIGINT, tingkat VARCHAR, kode_wilayah VARCHAR, potensi VARCHAR, "
                "sumber VARCHAR)")
    problems, rows = [], 0
    for f in files:
        try:
            rows += read_into(con, f.path, schema.TEXT_COLUMNS,
                              required_columns(schema.ROW_SCHEMA))
            con.execute("INSERT INTO potential_raw SELECT ?, row_number, tingkat, kode_wilayah, "
                        "potensi, sumber FROM raw_file", [f.relpath])
        except FileRejected as exc:
            problems.append(f"{f.relpath}: {exc.message}")
    con.execute("CREATE OR REPLACE TEMP VIEW raw_input AS SELECT * FROM potential_raw")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE potential_staged AS SELECT *, "
        f"{reasons_sql(schema.ROW_SCHEMA)} AS reasons FROM ({schema.PREPARE_SQL})",
        {"vintage": vintage_for(day).vintage})
    bad = con.execute(
        f"SELECT source_file, row_number, {messages_sql(schema.ROW_SCHEMA)} FROM potential_staged "
        "WHERE len(reasons) > 0 ORDER BY source_file, row_number").fetchall()
    problems += [f"{src} row {n}: {msg}" for src, n, msg in bad]
    if problems:
        shown = "; ".join(problems[:10]) + (f"; ... {len(problems) - 10} more"
                                            if len(problems) > 10 else "")
        return "rejected", rows, f"set rejected, the older set stays in force: {shown}"
    return "loaded", rows, None


@dg.asset(
    kinds={"duckdb", "csv"}, group_name="inputs", **WAREHOUSE_WRITER, deps=[region_reference],
    description="Potential workers per tier (national and regional), one set per date; a set "
                "applies to snapshots on or after its date until a newer set arrives.",
)
def potential(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: Settings):
    sets = scan_potential(settings.landing_path)
    with warehouse.connect() as con:
        for day, files in sets.items():
            fp = fingerprint(files)
            seen = con.execute("SELECT fingerprint FROM potential_set WHERE valid_from = ?",
                               [day]).fetchone()
            if seen and seen[0] == fp:
                continue
            status, rows, message = _load_set(con, day, files)
            con.begin()
            if status == "loaded":
                con.execute("DELETE FROM potential WHERE valid_from = ?", [day])
                con.execute(
                    f"INSERT INTO potential SELECT ?, tier, kode, coalesce({_REGION_LEVEL}, "
                    "'national'), potensi_value, sumber, source_file FROM potential_staged",
                    [day])
            con.execute("DELETE FROM potential_set WHERE valid_from = ?", [day])
            con.execute("INSERT INTO potential_set VALUES (?, ?, ?, ?, ?, now()::TIMESTAMP)",
                        [day, status, fp, rows, message])
            con.commit()
            (context.log.warning if message else context.log.info)(
                f"potential {day}: {status}" + (f" — {message}" if message else ""))
        summary = con.execute(
            "SELECT s.valid_from, s.status, count(p.tier), s.message FROM potential_set s "
            "LEFT JOIN potential p USING (valid_from) GROUP BY ALL ORDER BY 1").fetchall()
    table = "\n".join(["| set | status | rows in force | message |", "|---|---|---:|---|"]
                      + [f"| {d} | {s} | {n} | {m or ''} |" for d, s, n, m in summary])
    return dg.MaterializeResult(metadata={
        "dagster/row_count": sum(n for _, _, n, _ in summary),
        "sets": dg.MetadataValue.md(table),
        "rejected_sets": sum(1 for _, s, _, _ in summary if s == "rejected"),
    })
