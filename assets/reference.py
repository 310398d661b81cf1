"""Stage: the Kemendagri region reference, four vintages, loaded into the warehouse."""

import hashlib

import dagster as dg

from pipelines.resources import WAREHOUSE_WRITER, Warehouse
from schemas.reference import LEVELS, REFERENCE_DIR, verify_checksums, vintages

_LEVEL_SQL = "CASE tingkat " + " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in LEVELS.items()) + " END"


@dg.asset(
    kinds={"duckdb", "csv"}, group_name="reference", **WAREHOUSE_WRITER,
    code_version=hashlib.sha256((REFERENCE_DIR / "vintages.csv").read_bytes()).hexdigest()[:16],
    description="Kemendagri region codes, every vintage, with the date each is in force from.",
)
def region_reference(context: dg.AssetExecutionContext, warehouse: Warehouse):
    problems = verify_checksums()
    if problems:
        raise dg.Failure("reference files do not match vintages.csv: " + "; ".join(problems),
                         allow_retries=False)
    want = [(v.vintage, v.file_sha256) for v in vintages()]
    with warehouse.connect() as con:
        have = con.execute("SELECT vintage, file_sha256 FROM ref_vintage ORDER BY in_force_from")
        if have.fetchall() != want:
            con.begin()
            con.execute("DELETE FROM ref_vintage")
            con.execute("DELETE FROM ref_region")
            for v in vintages():
                con.execute(
                    f"INSERT INTO ref_region SELECT ?, kode, nama, {_LEVEL_SQL}, "
                    "nullif(kode_induk, ''), substr(kode, 1, 2), "
                    "CASE WHEN length(kode) >= 5 THEN substr(kode, 1, 5) END "
                    "FROM read_csv(?, header=true, all_varchar=true)", [v.vintage, str(v.file)])
                con.execute("INSERT INTO ref_vintage VALUES (?, ?, ?, ?)",
                            [v.vintage, v.in_force_from, v.decree, v.file_sha256])
            con.commit()
            context.log.info("reference vintages (re)loaded")
        counts = con.execute(
            "SELECT vintage, level, count(*) FROM ref_region GROUP BY ALL ORDER BY ALL").fetchall()
    total = sum(n for *_, n in counts)
    table = "\n".join(["| vintage | level | codes |", "|---|---|---:|"]
                      + [f"| {v} | {lvl} | {n:,} |" for v, lvl, n in counts])
    return dg.MaterializeResult(metadata={"dagster/row_count": total,
                                          "codes": dg.MetadataValue.md(table)})
