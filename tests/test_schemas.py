"""The schemas are the single source of the rules: pandera and the compiled SQL agree."""
from __future__ import annotations

import duckdb
import pandas as pd
import pandera.pandas as pa
import pytest

from schemas import enrollment
from schemas.rules import install_macros, reasons_sql, rules_of

# A prepared frame (what PREPARE_SQL yields), one row per case; expected codes by hand.
BASE = dict(nik="3201014101900001", kpj=None, nama="x", segmen="PU", tingkat="KL",
            kode_wilayah=None, npp=None, nama_instansi=None, tgl_kepesertaan="2020-01-15",
            bulan_iuran_terakhir="2021-10", nik_is_number=False, tier="KL", kode=None,
            tgl=pd.Timestamp("2020-01-15"), paid_month=2021 * 12 + 10,
            snapshot_date=pd.Timestamp("2021-10-31"), file_province="32", ref_level=None,
            ref_province=None, ref_regency=None,
            # derived once in PREPARE_SQL from the NIK and the tier (digits 7-8 and 9-10)
            nik_digits=True, nik_day=41, nik_month=1, tier_level=None)
NO_DIGITS = dict(nik_digits=False, nik_day=None, nik_month=None)
CASES = [
    ({}, set()),
    ({"nik": "320101410190001", **NO_DIGITS}, {"nik_16_digits"}),
    ({"nik": None, **NO_DIGITS}, {"nik_required"}),
    ({"nik": "9901014101900001"}, {"nik_province"}),
    ({"nik": "3201017201900001", "nik_day": 72}, {"nik_day"}),
    ({"nik": "3201014113900001", "nik_month": 13}, {"nik_month"}),
    ({"nik_is_number": True}, {"nik_is_text"}),
    ({"segmen": "XX"}, {"segmen_known"}),
    ({"tingkat": "Honorer", "tier": None}, {"tingkat_known"}),
    ({"tier": "KEC", "tingkat": "KEC", "tier_level": "district"}, {"kode_required"}),
    ({"kode_wilayah": "32-01", "kode": None}, {"kode_format"}),
    ({"kode_wilayah": "32.99", "kode": "32.99"}, {"kode_exists"}),
    ({"tier": "KEC", "tingkat": "KEC", "tier_level": "district", "kode_wilayah": "32.01",
      "kode": "32.01", "ref_level": "regency", "ref_province": "32"}, {"kode_level"}),
    ({"kode_wilayah": "33.01", "kode": "33.01", "ref_level": "regency", "ref_province": "33"},
     {"kode_in_province"}),
    ({"tgl_kepesertaan": "31/02/2021", "tgl": None}, {"tgl_format"}),
    ({"tgl": pd.Timestamp("2021-11-01"), "paid_month": 2021 * 12 + 11}, {"tgl_not_after_snapshot"}),
    ({"bulan_iuran_terakhir": "2021-13", "paid_month": None}, {"bulan_format"}),
    ({"paid_month": 2022 * 12 + 11}, {"bulan_prepaid_limit"}),
    ({"paid_month": 2019 * 12 + 12}, {"bulan_not_before_registration"}),
]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return pd.DataFrame([{**BASE, **override} for override, _ in CASES])


def test_compiled_sql_gives_the_expected_reasons(frame):
    con = duckdb.connect()
    install_macros(con, enrollment.MACROS)
    con.register("frame", frame)
    got = [set(r[0]) for r in con.execute(
        f"SELECT {reasons_sql(enrollment.ROW_SCHEMA)} FROM frame").fetchall()]
    assert got == [expected for _, expected in CASES]


def test_pandera_reports_the_same_failures(frame):
    with pytest.raises(pa.errors.SchemaErrors) as info:
        enrollment.ROW_SCHEMA.validate(frame, lazy=True)
    cases = info.value.failure_cases
    by_row: dict[int, set[str]] = {}
    for _, case in cases.iterrows():
        code = case["check"]
        code = {"not_nullable": f"{case['column']}_required"}.get(code, code)
        by_row.setdefault(int(case["index"]), set()).add(code)
    assert by_row == {i: expected for i, (_, expected) in enumerate(CASES) if expected}


def test_every_rule_has_a_case():
    covered = set().union(*(expected for _, expected in CASES))
    declared = {code for code, _, _ in rules_of(enrollment.ROW_SCHEMA)}
    # segmen/tingkat/tgl required are nullable=False columns like nik
    assert declared - covered <= {"segmen_required", "tingkat_required", "tgl_kepesertaan_required"}
