"""Stage: one row per snapshot, tier and person, as the contract's counting rules decide.

Among one NIK's rows in one tier of one snapshot, the row with the latest
``bulan_iuran_terakhir`` decides (never paid sorts below every month); ties: the latest
``tgl_kepesertaan``, then the greater ``source_file``, then the greater ``row_number``. That row
gives the person's status and region. Active: ``months(snapshot) - months(paid) <= grace``.
"""

import dagster as dg

from pipelines.partitions import BY_DATE, SNAPSHOTS, snapshot_key
from pipelines.resources import Settings, Warehouse

DEDUPE_SQL = """
INSERT INTO enrollment
SELECT snapshot_date, tier, nik_hmac,
       paid_month IS NOT NULL AND months($day) - paid_month <= $grace AS active,
       paid_month, segmen, region_province, region_regency, source_file, row_number
FROM enrollment_rows
WHERE snapshot_date = $day
QUALIFY row_number() OVER (
    PARTITION BY tier, nik_hmac
    ORDER BY paid_month DESC NULLS LAST, tgl_kepesertaan DESC, source_file DESC, row_number DESC
) = 1
"""


def snapshot_asset(**kwargs):
    """The common shape of every per-snapshot stage: partitioned by snapshot date, one run for
    many snapshots, and a warehouse writer."""
    return dg.asset(partitions_def=SNAPSHOTS, backfill_policy=dg.BackfillPolicy.single_run(),
                    pool="warehouse", kinds={"duckdb"}, **kwargs)


def replace_snapshot(con, table: str, day, sql: str, params: dict) -> int:
    """Replace one snapshot's rows of ``table`` by ``sql`` in one transaction."""
    con.begin()
    try:
        con.execute(f"DELETE FROM {table} WHERE snapshot_date = ?", [day])
        con.execute(sql, {"day": day, **params})
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return con.execute(f"SELECT count(*) FROM {table} WHERE snapshot_date = ?", [day]).fetchone()[0]


@snapshot_asset(
    group_name="counting",
    deps=[dg.AssetDep("enrollment_rows", partition_mapping=BY_DATE)],
    description="One row per snapshot, tier and person (keyed HMAC): the deciding row of the "
                "contract's dedupe, with its status (active within the grace months) and region.",
)
def enrollment(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: Settings):
    rows = 0
    with warehouse.connect() as con:
        for key in context.partition_keys:
            n = replace_snapshot(con, "enrollment", snapshot_key(key), DEDUPE_SQL,
                                 {"grace": settings.grace_months})
            context.log.info(f"enrollment {key}: {n:,} person-tier rows")
            rows += n
    return dg.MaterializeResult(metadata={"dagster/row_count": rows,
                                          "grace_months": settings.grace_months})
