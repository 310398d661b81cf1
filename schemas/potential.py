"""Potential (denominator) tables: ``potential/<YYYY-MM-DD>/*.csv`` (contract v1.1, input 2).

The files of one date form a set that is accepted or rejected whole: any row breaking a rule
(including a (tier, code) given twice across the set) rejects the set, and the older set stays in
force. Parsed like enrollment files: tier labels, dotted or plain codes, ``;`` or ``,``.
"""
from __future__ import annotations

import pandera.pandas as pa

from schemas.rules import clean_sql, rule

TEXT_COLUMNS = ("tingkat", "kode_wilayah", "potensi", "sumber")

# ``raw_input``: TEXT_COLUMNS, ``source_file``, ``row_number``. Parameter: $vintage.
PREPARE_SQL = f"""
WITH cleaned AS (
    {clean_sql(TEXT_COLUMNS, "raw_input", "source_file, row_number")}
), derived AS (
    SELECT cleaned.*, tier_code(tingkat) AS tier, kode_dotted(kode_wilayah) AS kode,
           TRY_CAST(potensi AS BIGINT) AS potensi_value
    FROM cleaned
)
SELECT derived.*, r.level AS ref_level
FROM derived
LEFT JOIN ref_region AS r ON r.vintage = $vintage AND r.kode = derived.kode
"""

ROW_SCHEMA = pa.DataFrameSchema(
    name="potential_row",
    description="One row of a potential (denominator) file, after cleaning.",
    strict=False,
    columns={
        "tingkat": pa.Column(nullable=False, description="tier code or label"),
        "kode_wilayah": pa.Column(nullable=True, description="empty = national figure"),
        "potensi": pa.Column(nullable=False, description="potential workers, whole number"),
        "sumber": pa.Column(nullable=True, description="source of the figure"),
    },
    checks=[
        rule("tingkat_known", "tingkat IS NULL OR tier IS NOT NULL",
             "tingkat is not a known tier code or label", "tingkat"),
        rule("kode_format", "kode_wilayah IS NULL OR kode IS NOT NULL",
             "kode_wilayah is not a Kemendagri code", "kode_wilayah"),
        rule("kode_exists", "kode IS NULL OR ref_level IS NOT NULL",
             "kode_wilayah does not exist in the reference vintage in force on the set's date",
             "kode_wilayah"),
        rule("potensi_whole_number",
             "potensi IS NULL OR (regexp_full_match(potensi, '[0-9]+') AND potensi_value >= 0)",
             "potensi must be a whole number >= 0", "potensi"),
        rule("tier_region_unique",
             "tier IS NULL OR count(*) OVER (PARTITION BY tier, coalesce(kode, '')) = 1",
             "this (tingkat, kode_wilayah) appears more than once in the set", "kode_wilayah"),
    ],
)
