"""Stage: one row per snapshot, tier and person, as the contract's counting rules decide.

Among one NIK's rows in one tier of one snapshot (across every delivery of the date), the row
with the latest ``bulan_iuran_terakhir`` decides (never paid sorts below every month); ties: the
latest ``tgl_kepesertaan``, then the greater ``source_file``, then the greater ``row_number``
(the key of ``arg_max`` below, compared field by field). That row gives the person's status and
region. Active: ``months(snapshot) - months(paid) <= grace``. Written to the lake as
``people/<date>.parquet``: the person-level history the flows are computed from.
"""
from __future__ import annotations

import datetime as dt

from readers.storage import copy_to_parquet

from assets import versions
from assets.history import Inputs, LakeInputs

KEY = "enrollment"
# arg_max over the tie-break key (a hash aggregate) rather than a window sort: same row, faster
# ``rows`` is read three times, from the Parquet files each time (NOT MATERIALIZED): buffering it
# holds every row in memory, and a scale-5 snapshot (16 M rows) then spilled (11.0 s against
# 7.6 s at a 1 GB memory_limit; the same at scale 1)
DEDUPE_SQL = """
WITH rows AS NOT MATERIALIZED (@ROWS@),
-- most people have one row per tier: only the others need the tie-break (a small aggregate;
-- counting is cheap and spills to disk when memory is short)
repeated AS (SELECT tier, person FROM rows GROUP BY tier, person HAVING count(*) > 1),
decided AS (
    SELECT tier, person, paid_month, segmen, region_province, region_regency, file, row_number
    FROM rows ANTI JOIN repeated USING (tier, person)
    UNION ALL
    SELECT tier, person, d.paid_month, d.segmen, d.region_province, d.region_regency, d.file,
           d.row_number
    FROM (
        SELECT tier, person,
               arg_max({'paid_month': paid_month, 'segmen': segmen,
                        'region_province': region_province, 'region_regency': region_regency,
                        'file': file, 'row_number': row_number},
                       {'month': coalesce(paid_month, -1), 'registered': tgl_kepesertaan,
                        'file': file, 'row': row_number}) AS d
        FROM rows SEMI JOIN repeated USING (tier, person)
        GROUP BY tier, person
    )
)
SELECT CAST($day AS DATE) AS snapshot_date, tier, person,
       paid_month IS NOT NULL AND months(CAST($day AS DATE)) - paid_month <= $grace AS active,
       paid_month, segmen, region_province, region_regency, f.source_file, row_number
FROM decided JOIN dedupe_files f USING (file)
"""
# each delivery's rows; ``file`` numbers the files in source_file order, so comparing numbers
# compares names (an integer in the aggregate state instead of a long string)
_ROWS = ("SELECT $n{i}::USMALLINT AS file, row_number, nik_hmac AS person, segmen, tier, "
         "region_province, region_regency, tgl_kepesertaan, paid_month FROM read_parquet($f{i}) "
         "WHERE valid")
_EMPTY = ("SELECT NULL::USMALLINT AS file, NULL::BIGINT AS row_number, NULL::UUID AS "
          "person, NULL::VARCHAR AS segmen, NULL::VARCHAR AS tier, NULL::VARCHAR AS "
          "region_province, NULL::VARCHAR AS region_regency, NULL::DATE AS tgl_kepesertaan, "
          "NULL::INTEGER AS paid_month LIMIT 0")


def code_version(grace_months: int) -> str:
    return versions.code_version("enrollment", DEDUPE_SQL, _ROWS, f"grace={grace_months}")


def version(inp: Inputs, day: dt.date, grace_months: int) -> str:
    return versions.per_snapshot(code_version(grace_months), inp.store, inp.deliveries(day))


def build(inp: LakeInputs, day: dt.date, version_: str, grace_months: int) -> dict:
    files = sorted(inp.row_files(day), key=lambda f: f[1])
    params = {"day": day, "grace": grace_months}
    parts = []
    for i, (path, source, _) in enumerate(files):
        parts.append(_ROWS.replace("{i}", str(i)))
        params[f"n{i}"], params[f"f{i}"] = i, str(path)
    rows_sql = " UNION ALL ".join(parts) or _EMPTY
    inp.con.execute("CREATE OR REPLACE TEMP TABLE dedupe_files (file USMALLINT, "
                    "source_file VARCHAR)")
    if files:   # a snapshot whose deliveries were all rejected has none
        inp.con.executemany("INSERT INTO dedupe_files VALUES (?, ?)",
                            [(i, source) for i, (_, source, _) in enumerate(files)])
    n = copy_to_parquet(inp.con, DEDUPE_SQL.replace("@ROWS@", rows_sql), params,
                        inp.lake.people_path(day), metadata={"version": version_})
    active = inp.con.execute("SELECT count(*) FILTER (active) FROM read_parquet($f)",
                             {"f": str(inp.lake.people_path(day))}).fetchone()[0]
    return {"dagster/row_count": n, "active_person_tiers": active, "deliveries": len(files),
            "grace_months": grace_months}
