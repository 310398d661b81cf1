"""Stage: the Kemendagri region reference, four vintages, loaded into the warehouse."""

import dagster as dg

from readers.storage import record_version

from schemas.reference import REF_REGION_SELECT, REFERENCE_DIR, verify_checksums, vintages

from assets import versions
from assets.resources import PermanentError, Warehouse

CODE_VERSION = versions.code_version(
    "reference", (REFERENCE_DIR / "vintages.csv").read_bytes().decode(), REF_REGION_SELECT)


@dg.asset(
    kinds={"duckdb", "csv"}, group_name="inputs", code_version=CODE_VERSION,
    description="Kemendagri region codes, every vintage, with the date each is in force from "
                "(reference/, checksums verified).",
)
def region_reference(warehouse: Warehouse) -> dg.MaterializeResult:
    problems = verify_checksums()
    if problems:
        raise PermanentError("reference files do not match vintages.csv: " + "; ".join(problems))
    version = versions.of_inputs(CODE_VERSION, warehouse.store_id())
    with warehouse.connect() as con:
        con.begin()
        con.execute("DELETE FROM ref_vintage")
        con.execute("DELETE FROM ref_region")
        for v in vintages():
            con.execute(f"INSERT INTO ref_region {REF_REGION_SELECT}",
                        {"vintage": v.vintage, "file": str(v.file)})
            con.execute("INSERT INTO ref_vintage VALUES (?, ?, ?, ?)",
                        [v.vintage, v.in_force_from, v.decree, v.file_sha256])
        record_version(con, "region_reference", None, version)
        con.commit()
        counts = con.execute(
            "SELECT vintage, level, count(*) FROM ref_region GROUP BY ALL ORDER BY ALL").fetchall()
    table = "\n".join(["| vintage | level | codes |", "|---|---|---:|"]
                      + [f"| {v} | {lvl} | {n:,} |" for v, lvl, n in counts])
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={"dagster/row_count": sum(n for *_, n in counts),
                  "codes": dg.MetadataValue.md(table)})
