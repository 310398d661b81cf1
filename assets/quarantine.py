"""Stage: the quarantine of a snapshot, accounted for.

Ingest writes a delivery's quarantined rows in the same transaction as its valid rows (the raw
NIK exists only inside that step, so it is masked there). This stage reports each snapshot's
quarantine: rows per rule, as metadata the UI shows.
"""
import dagster as dg

from pipelines.partitions import BY_DATE, snapshot_key
from pipelines.resources import Warehouse

from assets.enrollment import snapshot_asset


@snapshot_asset(
    group_name="ingest",
    deps=[dg.AssetDep("enrollment_rows", partition_mapping=BY_DATE)],
    description="Rows that broke a rule, with every reason; NIK masked, no name "
                "(warehouse only, never published).",
)
def quarantine(context: dg.AssetExecutionContext, warehouse: Warehouse):
    days = [snapshot_key(k) for k in context.partition_keys]
    with warehouse.connect() as con:
        total = con.execute("SELECT count(*) FROM quarantine WHERE snapshot_date IN "
                            "(SELECT unnest(?))", [days]).fetchone()[0]
        by_rule = con.execute(
            "SELECT r, count(*) FROM (SELECT unnest(reasons) AS r FROM quarantine "
            "WHERE snapshot_date IN (SELECT unnest(?))) GROUP BY r ORDER BY 2 DESC, 1",
            [days]).fetchall()
    table = "\n".join(["| rule | rows |", "|---|---:|"] + [f"| {r} | {n:,} |" for r, n in by_rule])
    return dg.MaterializeResult(metadata={"dagster/row_count": total,
                                          "rows_by_rule": dg.MetadataValue.md(table)})
