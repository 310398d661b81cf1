"""Stage: one row per snapshot, tier and person, as the contract's counting rules decide.

Among one NIK's rows in one tier of one snapshot, the row with the latest
``bulan_iuran_terakhir`` decides (never paid sorts below every month); ties: the latest
``tgl_kepesertaan``, then the greater ``source_file``, then the greater ``row_number``
(the key of ``arg_max`` below, compared field by field). That row
gives the person's status and region. Active: ``months(snapshot) - months(paid) <= grace``.
"""

import dagster as dg

from pipelines.partitions import BY_DATE, SNAPSHOTS, snapshot_key
from pipelines.resources import WAREHOUSE_WRITER, Settings, Warehouse

# arg_max over the tie-break key (a hash aggregate) rather than a window sort: same row, faster
DEDUPE_SQL = """
INSERT INTO enrollment
SELECT $day, tier, nik_hmac,
       d.paid_month IS NOT NULL AND months($day) - d.paid_month <= $grace AS active,
       d.paid_month, d.segmen, d.region_province, d.region_regency, d.source_file, d.row_number
FROM (
    SELECT tier, nik_hmac,
           arg_max({'paid_month': paid_month, 'segmen': segmen,
                    'region_province': region_province, 'region_regency': region_regency,
                    'source_file': source_file, 'row_number': row_number},
                   {'month': coalesce(paid_month, -1), 'registered': tgl_kepesertaan,
                    'file': source_file, 'row': row_number}) AS d
    FROM enrollment_rows
    WHERE snapshot_date = $day
    GROUP BY tier, nik_hmac
)
"""


def snapshot_asset(**kwargs):
    """The common shape of every per-snapshot stage: partitioned by snapshot date, one run for
    many snapshots, and a warehouse writer."""
    return dg.asset(partitions_def=SNAPSHOTS, backfill_policy=dg.BackfillPolicy.single_run(),
                    **WAREHOUSE_WRITER, kinds={"duckdb"}, **kwargs)


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
