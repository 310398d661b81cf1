"""Enrollment extracts: columns, normalisation and every row rule of the contract (v1.1).

Rows are validated in two steps, both declared here:

1. ``PREPARE_SQL`` cleans the delivered text (Unicode trim, empties) and derives the values the
   rules talk about: the tier code, the dotted region code, parsed dates, and the reference facts
   of that code in the vintage in force (level, province, regency).
2. ``ROW_SCHEMA`` (pandera) holds the rules over that prepared row; the pipeline compiles it with
   :func:`schemas.rules.reasons_sql`, pandera validates pandas frames with it directly.
"""
from __future__ import annotations

import pandera.pandas as pa

from schemas.reference import provinces_in_any_vintage
from schemas.rules import clean_sql, rule

# tier code -> (label, level its kode_wilayah must have, accepted spellings after squeezing
# out whitespace and upper-casing). KL may carry any existing code of its province, or none.
TIERS: dict[str, tuple[str, str | None, tuple[str, ...]]] = {
    "KL": ("Kementerian/Lembaga", None, ("KL", "KEMENTERIAN/LEMBAGA", "K/L")),
    "PROV": ("Provinsi", "province", ("PROV", "PROVINSI")),
    "KABKOTA": ("Kabupaten/Kota", "regency",
                ("KABKOTA", "KABUPATEN/KOTA", "KAB/KOTA", "KABUPATEN", "KOTA")),
    "KEC": ("Kecamatan", "district", ("KEC", "KECAMATAN")),
    "DESA": ("Kelurahan/Desa", "village", ("DESA", "KELURAHAN/DESA", "KELURAHAN")),
    "RTRW": ("RT/RW", "village", ("RTRW", "RT/RW", "RT", "RW")),
}

# Targets and published figures also name the national distinct count; the tier of such a row
# (after clean_sql's cleaning): NASIONAL, a tier code, or NULL.
NATIONAL = "NASIONAL"
TIER_OR_NATIONAL_SQL = (f"CASE WHEN squeeze(tingkat) = '{NATIONAL}' THEN '{NATIONAL}'\n"
                        "                ELSE tier_code(tingkat) END")

SEGMENTS = ("PU", "BPU")
GRACE_MONTHS_DEFAULT = 3
PREPAID_LIMIT_MONTHS = 12


def _sql_list(values) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


_TIER_CASE = " ".join(f"WHEN '{alias}' THEN '{code}'"
                     for code, (_, _, aliases) in TIERS.items() for alias in aliases)
# the spelling as delivered first; squeezing out inner whitespace (a regex) only when it fails
TIER_SQL = f"coalesce(CASE upper(x) {_TIER_CASE} END, CASE squeeze(x) {_TIER_CASE} END)"

TIER_LEVEL_SQL = "CASE tier " + " ".join(
    f"WHEN '{code}' THEN '{level}'" for code, (_, level, _) in TIERS.items() if level
) + " END"

# dotted Kemendagri code from dotted or plain digits; NULL when it has neither shape
KODE_SQL = (
    r"CASE WHEN regexp_full_match(x, '[0-9]{2}(\.[0-9]{2}(\.[0-9]{2}(\.[0-9]{4})?)?)?') THEN x "
    r"WHEN regexp_full_match(x, '[0-9]{2}|[0-9]{4}|[0-9]{6}|[0-9]{10}') THEN concat_ws('.', "
    r"substr(x, 1, 2), nullif(substr(x, 3, 2), ''), nullif(substr(x, 5, 2), ''), "
    r"nullif(substr(x, 7, 4), '')) END"
)

# Macros the prepare step needs besides schemas.rules.MACROS.
MACROS = {"tier_code": TIER_SQL, "kode_dotted": KODE_SQL}

TEXT_COLUMNS = (
    "nik", "kpj", "nama", "segmen", "tingkat", "kode_wilayah", "npp", "nama_instansi",
    "tgl_kepesertaan", "bulan_iuran_terakhir",
)
# The columns rules read (cleaned for every row), and those only kept for quarantined rows
# (cleaned only there). ``nama`` is required in the header but never read past it.
RULE_COLUMNS = ("nik", "segmen", "tingkat", "kode_wilayah", "tgl_kepesertaan",
                "bulan_iuran_terakhir")
KEPT_COLUMNS = ("kpj", "npp", "nama_instansi")

# The relation ``raw_input`` has one row per delivered row: RULE_COLUMNS and KEPT_COLUMNS
# (absent optional ones NULL), ``nik_is_number``, ``row_number`` and the delivery's context:
# ``snapshot_date``, ``file_province``, ``source_file`` and the reference ``vintage`` in force.
PREPARE_SQL = f"""
WITH cleaned AS (
    {clean_sql(RULE_COLUMNS, "raw_input", "snapshot_date, file_province, source_file, vintage, "
               "row_number, coalesce(nik_is_number, false) AS nik_is_number, "
               + ", ".join(KEPT_COLUMNS))}
), derived AS (
    SELECT cleaned.*,
           regexp_full_match(coalesce(nik, ''), '[0-9]{{16}}') AS nik_digits,
           tier_code(tingkat) AS tier,
           kode_dotted(kode_wilayah) AS kode,
           parse_date(tgl_kepesertaan) AS tgl,
           parse_month(bulan_iuran_terakhir) AS paid_month
    FROM cleaned
)
SELECT derived.*, {TIER_LEVEL_SQL} AS tier_level,
       CASE WHEN nik_digits THEN CAST(substr(nik, 7, 2) AS INTEGER) END AS nik_day,
       CASE WHEN nik_digits THEN CAST(substr(nik, 9, 2) AS INTEGER) END AS nik_month,
       r.level AS ref_level, r.province_code AS ref_province, r.regency_code AS ref_regency
FROM derived
LEFT JOIN ref_region AS r ON r.vintage = derived.vintage AND r.kode = derived.kode
"""



def _text(nullable: bool, required: bool = True, description: str = "") -> pa.Column:
    return pa.Column(nullable=nullable, required=required, description=description)


ROW_SCHEMA = pa.DataFrameSchema(
    name="enrollment_row",
    description="One delivered enrollment row, after cleaning (contract v1.1, input 1).",
    strict=False,
    columns={
        "nik": _text(False, description="16-digit NIK, delivered as text"),
        "kpj": _text(True, required=False, description="membership number"),
        "nama": _text(True, description="name: read, never stored"),
        "segmen": _text(False, description="PU or BPU"),
        "tingkat": _text(False, description="tier code or label"),
        "kode_wilayah": _text(True, description="Kemendagri code, dotted or plain"),
        "npp": _text(True, required=False, description="employer registration number"),
        "nama_instansi": _text(True, required=False, description="employer name"),
        "tgl_kepesertaan": _text(False, description="registration date"),
        "bulan_iuran_terakhir": _text(True, description="last paid month; empty = never paid"),
    },
    checks=[
        rule("nik_is_text", "NOT nik_is_number",
             "NIK was delivered as a number; its digits cannot be trusted", "nik"),
        rule("nik_16_digits", "nik IS NULL OR nik_digits", "NIK must be exactly 16 digits", "nik"),
        rule("nik_province", "NOT nik_digits OR substr(nik, 1, 2) IN "
             f"{_sql_list(provinces_in_any_vintage())}",
             "NIK digits 1-2 are not a province code of any reference vintage", "nik"),
        rule("nik_day", "NOT nik_digits OR nik_day BETWEEN 1 AND 31 OR nik_day BETWEEN 41 AND 71",
             "NIK digits 7-8 (day of birth) must be 01-31 or 41-71", "nik"),
        rule("nik_month", "NOT nik_digits OR nik_month BETWEEN 1 AND 12",
             "NIK digits 9-10 (month of birth) must be 01-12", "nik"),
        rule("segmen_known", f"segmen IS NULL OR upper(segmen) IN {_sql_list(SEGMENTS)}",
             "segmen must be PU or BPU", "segmen"),
        rule("tingkat_known", "tingkat IS NULL OR tier IS NOT NULL",
             "tingkat is not a known tier code or label", "tingkat"),
        rule("kode_required", "tier IS NULL OR tier = 'KL' OR kode_wilayah IS NOT NULL",
             "kode_wilayah is required for this tier", "kode_wilayah"),
        rule("kode_format", "kode_wilayah IS NULL OR kode IS NOT NULL",
             "kode_wilayah is not a Kemendagri code (dotted or plain digits)", "kode_wilayah"),
        rule("kode_exists", "kode IS NULL OR ref_level IS NOT NULL",
             "kode_wilayah does not exist in the reference vintage in force on the snapshot date",
             "kode_wilayah"),
        rule("kode_level", "tier IS NULL OR tier = 'KL' OR ref_level IS NULL "
             "OR ref_level = tier_level",
             "kode_wilayah level does not match the tier", "kode_wilayah"),
        rule("kode_in_province", "ref_province IS NULL OR ref_province = file_province",
             "kode_wilayah lies outside the file's province", "kode_wilayah"),
        rule("tgl_format", "tgl_kepesertaan IS NULL OR tgl IS NOT NULL",
             "tgl_kepesertaan is not a calendar date as YYYY-MM-DD or DD/MM/YYYY",
             "tgl_kepesertaan"),
        rule("tgl_not_after_snapshot", "tgl IS NULL OR tgl <= snapshot_date",
             "tgl_kepesertaan is after the snapshot date", "tgl_kepesertaan"),
        rule("bulan_format", "bulan_iuran_terakhir IS NULL OR paid_month IS NOT NULL",
             "bulan_iuran_terakhir is not YYYY-MM or a calendar date", "bulan_iuran_terakhir"),
        rule("bulan_prepaid_limit",
             f"paid_month IS NULL OR paid_month <= months(snapshot_date) + {PREPAID_LIMIT_MONTHS}",
             f"bulan_iuran_terakhir is more than {PREPAID_LIMIT_MONTHS} months after the "
             "snapshot month", "bulan_iuran_terakhir"),
        rule("bulan_not_before_registration",
             "paid_month IS NULL OR tgl IS NULL OR paid_month >= months(tgl)",
             "bulan_iuran_terakhir is before the registration month", "bulan_iuran_terakhir"),
    ],
)
