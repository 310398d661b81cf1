"""Published figures: ``published/<YYYY-MM-DD>/*.csv`` (contract v1.2, "Published figures").

Columns ``tingkat, kode_wilayah, metrik, nilai, sumber``; the folder's date is the publication
date. ``nilai`` is written the way releases write it: a count may group thousands in threes with
``.`` or ``,`` (``3.050.746``, ``3,050,746``); a percentage may use ``.`` or ``,`` as the decimal
mark, with an optional ``%`` (``22,31%``). A row that cannot be read is kept with every reason:
its verdict is ``unreadable``, and it does not stop the rest.
"""
from __future__ import annotations

import pandera.pandas as pa

from schemas.enrollment import NATIONAL, TIER_OR_NATIONAL_SQL
from schemas.rules import clean_sql, rule

TEXT_COLUMNS = ("tingkat", "kode_wilayah", "metrik", "nilai", "sumber")
COUNTS = ("active", "inactive", "potential")
PERCENT = "penetration_pct"
METRICS = (*COUNTS, PERCENT)

MACROS = {
    # a count as published -> its digits (NULL unless grouped in threes by one mark, or plain)
    "count_text": r"CASE WHEN regexp_full_match(x, '[0-9]{1,3}(\.[0-9]{3})+|[0-9]{1,3}(,[0-9]{3})+"
                  r"|[0-9]+') THEN replace(replace(x, '.', ''), ',', '') END",
    # a percentage as published -> '22.31' (NULL unless that shape)
    "percent_text": r"CASE WHEN regexp_full_match(x, '[0-9]+([.,][0-9]+)?[ ]*%?') THEN "
                    r"replace(rtrim(rtrim(x, '%'), ' '), ',', '.') END",
}

# ``raw_input``: TEXT_COLUMNS, ``source_file``, ``row_number``.
PREPARE_SQL = f"""
WITH cleaned AS (
    {clean_sql(TEXT_COLUMNS, "raw_input", "source_file, row_number")}
), derived AS (
    SELECT cleaned.*,
           {TIER_OR_NATIONAL_SQL} AS tier,
           kode_dotted(kode_wilayah) AS kode,
           lower(metrik) AS metric
    FROM cleaned
)
SELECT derived.*,
       CASE WHEN metric = '{PERCENT}' THEN percent_text(nilai)
            WHEN metric IN ('active', 'inactive', 'potential') THEN count_text(nilai) END
           AS value_text,
       CASE length(kode) WHEN 2 THEN 'province' WHEN 5 THEN 'regency' WHEN 8 THEN 'district'
            WHEN 13 THEN 'village' END AS region_level
FROM derived
"""

ROW_SCHEMA = pa.DataFrameSchema(
    name="published_row",
    description="One published figure, after cleaning.",
    strict=False,
    columns={
        "tingkat": pa.Column(nullable=False, description="tier code or label, or NASIONAL"),
        "kode_wilayah": pa.Column(nullable=True, description="empty = the national figure"),
        "metrik": pa.Column(nullable=False, description="active, inactive, potential or "
                            "penetration_pct"),
        "nilai": pa.Column(nullable=False, description="the figure as published"),
        "sumber": pa.Column(nullable=True, description="source"),
    },
    checks=[
        rule("tingkat_known", "tingkat IS NULL OR tier IS NOT NULL",
             "tingkat is not a tier code or label, nor NASIONAL", "tingkat"),
        rule("kode_format", "kode_wilayah IS NULL OR kode IS NOT NULL",
             "kode_wilayah is not a Kemendagri code", "kode_wilayah"),
        rule("metrik_known", f"metrik IS NULL OR metric IN {METRICS!r}",
             "metrik must be active, inactive, potential or penetration_pct", "metrik"),
        rule("nilai_format", "nilai IS NULL OR metric NOT IN "
             f"{METRICS!r} OR value_text IS NOT NULL",
             "nilai is not a count (thousands grouped by . or ,) or a percentage "
             "(decimal mark . or ,, optional %)", "nilai"),
    ],
)
