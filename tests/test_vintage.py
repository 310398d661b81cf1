"""The region reference vintage in force (contract v1.1, "Inputs" 3): a snapshot uses the vintage
with the latest in_force_from on or before its date; one older than every vintage uses the oldest.
Every output row carries the codes and names of that vintage.

reference/vintages.csv: 2020 from 2020-01-01, 2022 from 2022-01-01, 2023 from 2023-01-01 (Papua
split: 93 Papua Selatan, 94, 95), 2025 from 2025-01-01 (adds 96 Papua Barat Daya).
Codes used, checked by hand in reference/wilayah_<year>.csv:
  91 'P A P U A' (2020), 'PAPUA' (2022, 2023); 91.01 KAB. MERAUKE in 2020 and 2022, gone in 2023
  (it became 93.01 KAB. MERAUKE, under 93 PAPUA SELATAN);
  11.72.03 Sukamakmue: a district new in vintage 2022 (absent from 2020); 11.72.01 Sukakarya in all;
  96 / 96.01: only in 2025 ('Papua Barat Daya', 'Kabupaten Sorong');
  32 'JAWA BARAT' / 32.01 'KAB. BOGOR' up to 2023; 'Jawa Barat' / 'Kabupaten Bogor' in 2025.
One real `cakupan run` over one landing zone with seven snapshots on both sides of each date.
"""
from __future__ import annotations

import pytest

from harness import dicts, pipeline


def nik(pp: str, serial: int) -> str:
    return f"{pp}0101" "0101" "90" f"{serial:04d}"


def row(n: str, tingkat: str, kode: str) -> str:
    return f"{n},,Nama,PU,{tingkat},{kode},,,2019-01-15,2019-06"


# snapshot -> file -> rows (row_number = position + 1)
LANDING = {
    "2019-06-30": {   # older than every vintage: 2020
        "91.csv": [row(nik("91", 1), "PROV", "91"), row(nik("91", 2), "KABKOTA", "91.01")],
        "11.csv": [row(nik("11", 1), "KEC", "11.72.03"),    # 1: not in 2020 -> kode_exists
                   row(nik("11", 2), "KEC", "11.72.01")],   # 2: valid
    },
    "2021-12-31": {   # 2020
        "11.csv": [row(nik("11", 1), "KEC", "11.72.03"),    # kode_exists
                   row(nik("11", 2), "KEC", "11.72.01")],
    },
    "2022-01-01": {   # 2022, first day
        "11.csv": [row(nik("11", 1), "KEC", "11.72.03"),    # valid now
                   row(nik("11", 2), "KEC", "11.72.01")],
        "91.csv": [row(nik("91", 1), "PROV", "91")],
    },
    "2022-12-31": {   # 2022, last day
        "93.csv": [row(nik("93", 1), "PROV", "93"),         # 1: kode_exists
                   row(nik("93", 2), "KABKOTA", "93.01"),   # 2: kode_exists
                   row(nik("93", 3), "KABKOTA", "9301"),    # 3: kode_exists (plain)
                   # 4: KL without code passes every row rule, but its file's office 93 does not
                   # exist in vintage 2022 (see test_no_output_row_for_a_province_not_in_force)
                   row(nik("93", 4), "KL", "")],
        "91.csv": [row(nik("91", 1), "KABKOTA", "91.01")],  # Merauke still under 91: valid
    },
    "2023-01-01": {   # 2023, first day
        "93.csv": [row(nik("93", 1), "PROV", "93"),         # valid
                   row(nik("93", 2), "KABKOTA", "93.01"),   # valid
                   row(nik("93", 3), "KABKOTA", "9301")],   # valid
        "91.csv": [row(nik("91", 1), "KABKOTA", "91.01"),   # 1: gone in 2023: kode_exists
                   row(nik("91", 2), "PROV", "91")],        # 2: valid
    },
    "2024-12-31": {   # 2023
        "96.csv": [row(nik("96", 1), "PROV", "96"),         # kode_exists
                   row(nik("96", 2), "KABKOTA", "96.01")],  # kode_exists
        "32.csv": [row(nik("32", 1), "KABKOTA", "32.01")],
    },
    "2025-01-01": {   # 2025
        "96.csv": [row(nik("96", 1), "PROV", "96"),
                   row(nik("96", 2), "KABKOTA", "96.01")],
        "32.csv": [row(nik("32", 1), "KABKOTA", "32.01")],
    },
}
VINTAGE = {"2019-06-30": "2020", "2021-12-31": "2020", "2022-01-01": "2022",
           "2022-12-31": "2022", "2023-01-01": "2023", "2024-12-31": "2023",
           "2025-01-01": "2025"}
# Files of a province office that does not exist in the vintage in force are rejected whole
# (README: "Decisions"): 93 before 2023, 96 before 2025.
REJECTED = {("2022-12-31", "93.csv"), ("2024-12-31", "96.csv")}
# (snapshot, file, row_number) -> reasons; every other row of a loaded file is valid
QUARANTINED = {
    ("2019-06-30", "11.csv", 1): ["kode_exists"],
    ("2021-12-31", "11.csv", 1): ["kode_exists"],
    ("2023-01-01", "91.csv", 1): ["kode_exists"],
}


# A potential set dated 2022-06-01 (vintage 2022 in force on its date, so 91.01 KAB. MERAUKE is a
# valid code). It stays in force for every later snapshot, also after 2023-01-01, when 91.01 no
# longer exists (see test_no_output_row_for_a_code_not_in_force).
POTENTIAL = "tingkat,kode_wilayah,potensi,sumber\nKABKOTA,91.01,50,Pemkab Merauke\n"


@pytest.fixture(scope="module")
def result():
    with pipeline("vintage") as pipe:
        for snap, files in LANDING.items():
            for name, rows in files.items():
                pipe.landing.enrollment(snap, name, rows)
        pipe.landing.write("potential/2022-06-01/potensi.csv", POTENTIAL)
        yield pipe.run()


def regions(result, snap):
    return {(r["tier"], r["region_level"], r["region_code"]): r for r in dicts(
        result.warehouse, "SELECT * FROM coverage_by_region WHERE snapshot_date = ? "
        "AND region_level IN ('province', 'regency')", [snap])}


def test_offices_not_in_the_vintage_in_force_are_rejected(result):
    assert result.code == 2, result.err
    got = {(str(r["snapshot_date"]), r["source_file"].rsplit("/", 1)[1]): r for r in dicts(
        result.warehouse, "SELECT * FROM load_log WHERE status = 'rejected'")}
    assert set(got) == REJECTED
    assert "province 93 does not exist in the Kemendagri vintage 2022" in \
        got[("2022-12-31", "93.csv")]["message"]
    listed = result.err.split("rejected whole:")[-1]
    assert "enrollment/2022-12-31/93.csv" in listed and "enrollment/2024-12-31/96.csv" in listed


def test_codes_are_checked_against_the_vintage_in_force(result):
    got = {(str(r["snapshot_date"]), r["source_file"].rsplit("/", 1)[1], r["row_number"]):
           r["reasons"] for r in dicts(result.warehouse, "SELECT * FROM quarantine")}
    assert got == QUARANTINED


def test_every_other_row_loads(result):
    got = {(str(r["snapshot_date"]), r["source_file"].rsplit("/", 1)[1], r["row_number"])
           for r in dicts(result.warehouse, "SELECT * FROM enrollment_rows")}
    every = {(s, f, i) for s, files in LANDING.items() for f, rows in files.items()
             for i in range(1, len(rows) + 1) if (s, f) not in REJECTED}
    assert got == every - set(QUARANTINED)


def test_output_rows_carry_the_vintage(result):
    for table in ("coverage_by_tier", "coverage_national", "coverage_by_region"):
        got = {str(r["snapshot_date"]): r["vintage"] for r in dicts(
            result.warehouse, f"SELECT DISTINCT snapshot_date, vintage FROM {table}")}
        assert got == VINTAGE, table


def test_region_names_come_from_the_vintage_in_force(result):
    def name(snap, tier, level, code):
        return regions(result, snap)[(tier, level, code)]["region_name"]

    assert name("2019-06-30", "PROV", "province", "91") == "P A P U A"       # 2020
    assert name("2019-06-30", "KABKOTA", "regency", "91.01") == "KAB. MERAUKE"
    assert name("2022-01-01", "PROV", "province", "91") == "PAPUA"           # 2022
    assert name("2022-12-31", "KABKOTA", "province", "91") == "PAPUA"
    assert name("2023-01-01", "PROV", "province", "93") == "PAPUA SELATAN"   # 2023
    assert name("2023-01-01", "KABKOTA", "regency", "93.01") == "KAB. MERAUKE"
    assert name("2023-01-01", "PROV", "province", "91") == "PAPUA"
    assert name("2024-12-31", "KABKOTA", "regency", "32.01") == "KAB. BOGOR"  # 2023
    assert name("2024-12-31", "KABKOTA", "province", "32") == "JAWA BARAT"
    assert name("2025-01-01", "KABKOTA", "regency", "32.01") == "Kabupaten Bogor"  # 2025
    assert name("2025-01-01", "KABKOTA", "province", "32") == "Jawa Barat"
    assert name("2025-01-01", "PROV", "province", "96") == "Papua Barat Daya"
    assert name("2025-01-01", "KABKOTA", "regency", "96.01") == "Kabupaten Sorong"


def test_papua_split_counts(result):
    # 2022-12-31: of the region rows, only 91.csv's Merauke row counts (93.csv is rejected whole)
    got = {k: (r["active"], r["inactive"], r["potential"], r["penetration_pct"])
           for k, r in regions(result, "2022-12-31").items() if k[0] != "KL"}
    assert got == {("KABKOTA", "province", "91"): (0, 1, None, None),  # paid 2019-06: inactive
                   ("KABKOTA", "regency", "91.01"): (0, 1, 50, 0.0)}   # set 2022-06-01: 0/50
    # 2023-01-01: Merauke is 93.01 under 93 (twice: dotted and plain, two people)
    got = {k: (r["active"], r["inactive"], r["parent_code"])
           for k, r in regions(result, "2023-01-01").items() if k[2] != "91.01"}
    assert got == {("PROV", "province", "93"): (0, 1, None),
                   ("PROV", "province", "91"): (0, 1, None),
                   ("KABKOTA", "province", "93"): (0, 2, None),
                   ("KABKOTA", "regency", "93.01"): (0, 2, "93")}


def _codes_not_in_force(result):
    """coverage_by_region rows whose region_code does not exist in the vintage of their
    snapshot (checked against the shipped reference files, read here with the csv module)."""
    import csv
    from pathlib import Path

    ref = Path(__file__).resolve().parent.parent / "reference"
    codes = {}
    for v in ("2020", "2022", "2023", "2025"):
        with open(ref / f"wilayah_{v}.csv", newline="", encoding="utf-8") as fh:
            codes[v] = {r["kode"] for r in csv.DictReader(fh) if r["tingkat"] in
                        ("provinsi", "kabkota")}
    rows = dicts(result.warehouse, "SELECT * FROM coverage_by_region")
    return sorted((str(r["snapshot_date"]), r["tier"], r["region_code"], r["region_name"])
                  for r in rows if r["region_code"] not in codes[VINTAGE[str(r["snapshot_date"])]])


def test_no_output_row_for_a_province_not_in_force(result):
    assert [r for r in _codes_not_in_force(result) if r[0] == "2022-12-31"] == []


def test_no_output_row_for_a_code_not_in_force(result):
    assert [r for r in _codes_not_in_force(result) if r[0] >= "2023-01-01"] == []


def test_codes_in_force_have_names(result):
    for r in dicts(result.warehouse, "SELECT * FROM coverage_by_region"):
        assert r["region_name"], r


def test_snapshot_before_every_vintage_counts(result):
    # 2019-06-30, paid 2019-06: active; 11.72.01 valid, 11.72.03 quarantined
    got = {k: (r["active"], r["inactive"]) for k, r in regions(result, "2019-06-30").items()}
    assert got == {("PROV", "province", "91"): (1, 0),
                   ("KABKOTA", "province", "91"): (1, 0),
                   ("KABKOTA", "regency", "91.01"): (1, 0),
                   ("KEC", "province", "11"): (1, 0),
                   ("KEC", "regency", "11.72"): (1, 0)}
    names = {k: r["region_name"] for k, r in regions(result, "2019-06-30").items()}
    assert names[("KEC", "regency", "11.72")] == "KOTA SABANG"
    assert names[("KEC", "province", "11")] == "ACEH"
