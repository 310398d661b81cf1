"""Stage: potential (denominator) sets, validated whole per date, rebuilt from the landing zone.

``potential/<YYYY-MM-DD>/*.csv``: the files of one date form a set, accepted or rejected whole
(any invalid row, or a (tier, code) given twice). A set applies to snapshots on or after its date
until a newer accepted set. Nothing already loaded is lost: when a date's set is now rejected, or
its folder is gone, the set accepted earlier for that date stays in force and the log says so.
"""

import dagster as dg

from readers.landing import Hashes, scan, set_fingerprint
from readers.storage import record_version
from schemas import potential as schema
from schemas.reference import vintage_for
from schemas.rules import reasons_sql

from assets import sets, versions
from assets.reference import region_reference
from assets.resources import Settings, Warehouse

_REGION_LEVEL = ("CASE length(kode) WHEN 2 THEN 'province' WHEN 5 THEN 'regency' "
                 "WHEN 8 THEN 'district' WHEN 13 THEN 'village' END")
CODE_VERSION = versions.code_version("potential", schema.PREPARE_SQL,
                                     reasons_sql(schema.ROW_SCHEMA), _REGION_LEVEL)


def validate_set(con, day, files) -> tuple[str, int, str | None]:
    """Stage one date's files as ``potential_staged``; (status, rows, message)."""
    rows, problems = sets.stage(con, files, schema, {"vintage": vintage_for(day).vintage},
                                "potential_staged")
    problems += sets.row_problems(con, "potential_staged")
    if problems:
        return "rejected", rows, f"set rejected: {sets.shown(problems)}"
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
