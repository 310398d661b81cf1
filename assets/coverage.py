"""Stage: coverage tables per snapshot (by tier, national, by region), with penetration.

Penetration = active / potential x 100, only where a potential exists at exactly that tier and
region (and is not zero); otherwise NULL. Potential comes from the newest accepted set dated on
or before the snapshot.
"""

import dagster as dg

from pipelines.partitions import SNAPSHOTS, snapshot_key
from pipelines.resources import Warehouse
from schemas.reference import vintage_for

from assets.enrollment import enrollment, replace_snapshot, snapshot_asset
from assets.potential import potential
from assets.reference import region_reference

_PENETRATION = "CASE WHEN {p} > 0 THEN CAST({a} AS DOUBLE) / {p} * 100 END"
_SET = "(SELECT max(valid_from) FROM potential WHERE valid_from <= $day)"
_COUNTS = "count(*) FILTER (active) AS active, count(*) FILTER (NOT active) AS inactive"

BY_TIER_SQL = f"""
INSERT INTO coverage_by_tier
WITH e AS (SELECT tier, {_COUNTS} FROM enrollment WHERE snapshot_date = $day GROUP BY tier),
pot AS (SELECT tier, potensi FROM potential
        WHERE valid_from = {_SET} AND region_code IS NULL)
SELECT $day, t.tier, t.tier_label, coalesce(e.active, 0), coalesce(e.inactive, 0), pot.potensi,
       {_PENETRATION.format(a="coalesce(e.active, 0)", p="pot.potensi")}, $vintage, {_SET}
FROM tier_ref t LEFT JOIN e USING (tier) LEFT JOIN pot USING (tier)
ORDER BY t.ord
"""

NATIONAL_SQL = f"""
INSERT INTO coverage_national
WITH person AS (SELECT nik_hmac, bool_or(active) AS active FROM enrollment
                WHERE snapshot_date = $day GROUP BY nik_hmac),
tiers AS (SELECT count(*) FILTER (active) AS tier_sum FROM enrollment WHERE snapshot_date = $day),
pot AS (SELECT CASE WHEN count(DISTINCT tier) = 6 THEN sum(potensi) END AS potensi
        FROM potential WHERE valid_from = {_SET} AND region_code IS NULL)
SELECT $day, count(*) FILTER (person.active), any_value(tiers.tier_sum),
       count(*) FILTER (NOT person.active), any_value(pot.potensi),
       {_PENETRATION.format(a="count(*) FILTER (person.active)", p="any_value(pot.potensi)")},
       $vintage, {_SET}
FROM tiers CROSS JOIN pot LEFT JOIN person ON true
"""

BY_REGION_SQL = f"""
INSERT INTO coverage_by_region
WITH e AS (SELECT tier, active, region_province, region_regency FROM enrollment
           WHERE snapshot_date = $day),
counts AS (
    SELECT tier, 'province' AS region_level, region_province AS region_code, {_COUNTS}
    FROM e GROUP BY ALL
    UNION ALL
    SELECT tier, 'regency', region_regency, {_COUNTS}
    FROM e WHERE region_regency IS NOT NULL GROUP BY ALL
),
pot AS (SELECT tier, region_level, region_code, potensi FROM potential
        JOIN ref_region r ON r.vintage = $vintage AND r.kode = potential.region_code
        WHERE valid_from = {_SET} AND region_level IN ('province', 'regency'))
SELECT $day, tier, t.tier_label, region_level, region_code, r.nama,
       CASE region_level WHEN 'regency' THEN substr(region_code, 1, 2) END,
       coalesce(counts.active, 0), coalesce(counts.inactive, 0), pot.potensi,
       {_PENETRATION.format(a="coalesce(counts.active, 0)", p="pot.potensi")}, $vintage, {_SET}
FROM counts FULL JOIN pot USING (tier, region_level, region_code)
JOIN tier_ref t USING (tier)
LEFT JOIN ref_region r ON r.vintage = $vintage AND r.kode = region_code
ORDER BY t.ord, region_level, region_code
"""

TABLE_SQL = {"coverage_by_tier": BY_TIER_SQL, "coverage_national": NATIONAL_SQL,
             "coverage_by_region": BY_REGION_SQL}


def _coverage_asset(table: str, description: str):
    @snapshot_asset(
        name=table, group_name="coverage", description=description,
        deps=[enrollment, potential,
              region_reference],
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: Warehouse):
        rows = 0
        with warehouse.connect() as con:
            for key in context.partition_keys:
                day = snapshot_key(key)
                rows += replace_snapshot(con, table, day, TABLE_SQL[table],
                                         {"vintage": vintage_for(day).vintage})
        return dg.MaterializeResult(metadata={"dagster/row_count": rows})

    return _asset


coverage_by_tier = _coverage_asset(
    "coverage_by_tier", "Active, inactive, potential and penetration per tier and snapshot.")
coverage_national = _coverage_asset(
    "coverage_national", "National coverage per snapshot: each person once across tiers.")
coverage_by_region = _coverage_asset(
    "coverage_by_region", "Coverage per tier, province and regency/city, and snapshot.")
