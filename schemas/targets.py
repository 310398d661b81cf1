"""Targets: ``targets/*.csv`` in the landing zone (contract v1.2, "Targets").

Columns ``tingkat, kode_wilayah, target_pct, target_date, sumber``. All files together form one
set, accepted or rejected whole: any invalid row, or a (tingkat, kode_wilayah) given twice,
rejects the set and the previous accepted set stays in force. ``target_pct`` is kept exactly:
as a DECIMAL, and as an integer of 10^-12 percentage points (``pct_e12``) for exact arithmetic.
"""
from __future__ import annotations

import pandera.pandas as pa

from schemas.enrollment import NATIONAL, TIER_OR_NATIONAL_SQL
from schemas.reference import vintages
from schemas.rules import clean_sql, rule

TEXT_COLUMNS = ("tingkat", "kode_wilayah", "target_pct", "target_date", "sumber")
DECIMALS = 12

# the vintage in force on a date (the oldest before every vintage)
VINTAGE_AT = "CASE " + " ".join(
    f"WHEN x >= DATE '{v.in_force_from}' THEN '{v.vintage}'"
    for v in sorted(vintages(), key=lambda v: v.in_force_from, reverse=True)
) + f" ELSE '{min(vintages(), key=lambda v: v.in_force_from).vintage}' END"
# '43,92' / '43.92%' / '100' -> '43.92' (NULL unless it has that shape)
_PCT_TEXT = r"CASE WHEN regexp_full_match(x, '[0-9]+([.,][0-9]+)?[ ]*%?') THEN " \
            r"replace(rtrim(rtrim(x, '%'), ' '), ',', '.') END"
MACROS = {
    "vintage_at": VINTAGE_AT,
    "pct_text": _PCT_TEXT,
    # the exact value in units of 10^-12 (NULL for more than 12 decimals)
    "pct_e12": (f"CASE WHEN strlen(coalesce(split_part(x, '.', 2), '')) <= {DECIMALS} THEN "
                f"CAST(split_part(x, '.', 1) || rpad(coalesce(split_part(x, '.', 2), ''), "
                f"{DECIMALS}, '0') AS HUGEINT) END"),
}

# ``raw_input``: TEXT_COLUMNS, ``source_file``, ``row_number``.
PREPARE_SQL = f"""
WITH cleaned AS (
    {clean_sql(TEXT_COLUMNS, "raw_input", "source_file, row_number")}
), derived AS (
    SELECT cleaned.*,
           {TIER_OR_NATIONAL_SQL} AS tier,
           kode_dotted(kode_wilayah) AS kode,
           pct_text(target_pct) AS pct_norm,
           parse_date(target_date) AS tdate
    FROM cleaned
)
SELECT derived.*, pct_e12(pct_norm) AS pct_e12, r.level AS ref_level,
       CASE length(derived.kode) WHEN 2 THEN 'province' WHEN 5 THEN 'regency' END
           AS region_level
FROM derived
LEFT JOIN ref_region AS r ON r.vintage = vintage_at(tdate) AND r.kode = derived.kode
"""

ROW_SCHEMA = pa.DataFrameSchema(
    name="target_row",
    description="One row of a targets file, after cleaning.",
    strict=False,
    columns={
        "tingkat": pa.Column(nullable=False, description="tier code or label, or NASIONAL"),
        "kode_wilayah": pa.Column(nullable=True, description="empty = the national target"),
        "target_pct": pa.Column(nullable=False, description="target penetration, in percent"),
        "target_date": pa.Column(nullable=False, description="date to meet it by"),
        "sumber": pa.Column(nullable=True, description="source of the target"),
    },
    checks=[
        rule("tingkat_known", "tingkat IS NULL OR tier IS NOT NULL",
             "tingkat is not a tier code or label, nor NASIONAL", "tingkat"),
        rule("national_without_code", f"tier IS DISTINCT FROM '{NATIONAL}' OR kode_wilayah IS NULL",
             "a NASIONAL target takes no kode_wilayah", "kode_wilayah"),
        rule("kode_format", "kode_wilayah IS NULL OR kode IS NOT NULL",
             "kode_wilayah is not a Kemendagri code", "kode_wilayah"),
        rule("kode_level", "kode IS NULL OR length(kode) IN (2, 5)",
             "kode_wilayah must be a province or a regency/city", "kode_wilayah"),
        rule("kode_exists", "kode IS NULL OR length(kode) NOT IN (2, 5) OR tdate IS NULL "
             "OR ref_level IS NOT NULL",
             "kode_wilayah does not exist in the reference vintage in force on target_date",
             "kode_wilayah"),
        rule("target_pct_format", "target_pct IS NULL OR pct_e12 IS NOT NULL",
             f"target_pct must be a number (decimal mark . or ,, at most {DECIMALS} decimals), "
             "optionally with %", "target_pct"),
        rule("target_date_format", "target_date IS NULL OR tdate IS NOT NULL",
             "target_date is not a calendar date as YYYY-MM-DD or DD/MM/YYYY", "target_date"),
        rule("target_unique",
             "tier IS NULL OR count(*) OVER (PARTITION BY tier, coalesce(kode, '')) = 1",
             "this (tingkat, kode_wilayah) appears more than once in the set", "kode_wilayah"),
    ],
)
