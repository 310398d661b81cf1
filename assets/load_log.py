"""Stage: the load log of a snapshot, complete.

Ingest writes a row for every file of a delivery (loaded, rejected or superseded). This stage adds
the files that belong to no delivery (a supported file whose name does not start with a province
code known in any reference vintage) as rejected, and reports the snapshot's totals.
"""

import dagster as dg

from pipelines.landing import scan_enrollment
from pipelines.partitions import BY_DATE, snapshot_key
from pipelines.resources import Settings, Warehouse

from assets.enrollment import snapshot_asset

MISFIT = ("file name must start with the two-digit province code of the office "
          "(<PP>[_anything].csv|xlsx|parquet) known in a reference vintage")


@snapshot_asset(
    group_name="ingest",
    deps=[dg.AssetDep("enrollment_rows", partition_mapping=BY_DATE)],
    description="One row per delivered enrollment file: loaded, rejected (with why) or "
                "superseded; rows read, loaded and quarantined.",
)
def load_log(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: Settings):
    _, misfits = scan_enrollment(settings.landing_path)
    totals = {}
    with warehouse.connect() as con:
        for key in context.partition_keys:
            day = snapshot_key(key)
            con.begin()
            con.execute("DELETE FROM load_log WHERE snapshot_date = ? AND province_code IS NULL",
                        [day])
            for f in (m for m in misfits if m.snapshot == day):
                con.execute("INSERT INTO load_log VALUES (?, ?, NULL, ?, NULL, 0, 0, 'rejected', "
                            "?, now()::TIMESTAMP)", [day, f.relpath, f.sha256(), MISFIT])
            con.commit()
        days = [snapshot_key(k) for k in context.partition_keys]
        for status, n in con.execute(
                "SELECT status, count(*) FROM load_log WHERE snapshot_date IN "
                "(SELECT unnest(?)) GROUP BY status", [days]).fetchall():
            totals[f"files_{status}"] = n
    return dg.MaterializeResult(metadata={"dagster/row_count": sum(totals.values()), **totals})
