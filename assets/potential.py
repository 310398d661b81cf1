"""Stage: potential (denominator) sets, validated whole per date, rebuilt from the landing zone.

``potential/<YYYY-MM-DD>/*.csv``: the files of one date form a set, accepted or rejected whole
(any invalid row, or a (tier, code) given twice). A set applies to snapshots on or after its date
until a newer accepted set. Nothing already loaded is lost: when a date's set is now rejected, or
its folder is gone, the set accepted earlier for that date stays in force and the log says so.
"""

import dagster as dg

from readers.files import FileRejected, read_table
from readers.landing import Hashes, scan, set_fingerprint
from readers.storage import record_version
from schemas import potential as schema
from schemas.reference import vintage_for
from schemas.rules import messages_sql, reasons_sql, required_columns

from assets import versions
from assets.reference import region_reference
from assets.resources import Settings, Warehouse

_REGION_LEVEL = ("CASE length(kode) WHEN 2 THEN 'province' WHEN 5 THEN 'regency' "
                 "WHEN 8 THEN 'district' WHEN 13 THEN 'village' END")
CODE_VERSION = versions.code_version("potential", schema.PREPARE_SQL,
                                     reasons_sql(schema.ROW_SCHEMA), _REGION_LEVEL)


def validate_set(con, day, files) -> tuple[str, int, str | None]:
    """Stage one date's files as ``potential_staged``; (status, rows, message)."""
    con.execute("CREATE OR REPLACE TEMP TABLE potential_raw (source_file VARCHAR, "
                "row_number BIGINT, tingkat VARCHAR, kode_wilayah VARCHAR, potensi VARCHAR, "
                "sumber VARCHAR)")
    problems, rows = [], 0
    for f in files:
        try:
            if f.problem:
                raise FileRejected(f.problem)
            rows += read_table(con, f.path, schema.TEXT_COLUMNS,
                               required_columns(schema.ROW_SCHEMA), "potential_file")
            con.execute("INSERT INTO potential_raw SELECT ?, row_number, tingkat, kode_wilayah, "
                        "potensi, sumber FROM potential_file", [f.relpath])
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
        return "rejected", rows, f"set rejected: {shown}"
    return "loaded", rows, None


def version_of(landing, hashes: Hashes, store: str) -> str:
    files = [f for group in landing.potential.values() for f in group]
    return versions.of_inputs(CODE_VERSION, store, files=set_fingerprint(files, hashes))


@dg.asset(
    kinds={"duckdb", "csv"}, group_name="inputs", deps=[region_reference],
    code_version=CODE_VERSION,
    description="Potential workers per tier (national and regional), one set per date; a set "
                "applies to snapshots on or after its date until a newer accepted set.",
)
def potential(context: dg.AssetExecutionContext, warehouse: Warehouse,
              settings: Settings) -> dg.MaterializeResult:
    store = warehouse.store_id()
    landing = scan(settings.landing_path)
    version = version_of(landing, Hashes(), store)
    with warehouse.connect() as con:
        had = {r[0] for r in con.execute("SELECT DISTINCT valid_from FROM potential").fetchall()}
        con.begin()
        for day, files in sorted(landing.potential.items()):
            status, rows, message = validate_set(con, day, files)
            if status == "loaded":
                con.execute("DELETE FROM potential WHERE valid_from = ?", [day])
                con.execute(
                    f"INSERT INTO potential SELECT ?, tier, kode, coalesce({_REGION_LEVEL}, "
                    "'national'), potensi_value, sumber, source_file FROM potential_staged", [day])
            elif day in had:
                message += "; the set accepted earlier for this date stays in force"
            else:
                message += "; an older set stays in force"
            con.execute("DELETE FROM potential_set WHERE valid_from = ?", [day])
            con.execute("INSERT INTO potential_set VALUES (?, ?, ?, ?, now()::TIMESTAMP)",
                        [day, status, rows, message])
            (context.log.warning if message else context.log.info)(
                f"potential {day}: {status}" + (f" — {message}" if message else ""))
        for day in sorted(had - set(landing.potential)):
            con.execute("UPDATE potential_set SET message = 'no longer in the landing zone; the "
                        "set accepted earlier stays in force' WHERE valid_from = ?", [day])
        record_version(con, "potential", None, version)
        con.commit()
        summary = con.execute(
            "SELECT s.valid_from, s.status, count(p.tier), s.message FROM potential_set s "
            "LEFT JOIN potential p USING (valid_from) GROUP BY ALL ORDER BY 1").fetchall()
    table = "\n".join(["| set | status | rows in force | message |", "|---|---|---:|---|"]
                      + [f"| {d} | {s} | {n} | {m or ''} |" for d, s, n, m in summary])
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={"dagster/row_count": sum(n for _, _, n, _ in summary),
                  "sets": dg.MetadataValue.md(table),
                  "rejected_sets": sum(1 for _, s, _, _ in summary if s == "rejected")})
