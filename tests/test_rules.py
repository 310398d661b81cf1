"""Every row rule of the contract (../shared/contract.md v1.1, "Inputs" 1 and "Resolved details /
Values"), a good and a bad example each, through one real `cakupan run`.

One CSV (`enrollment/2021-10-31/32.csv`, office of province 32 Jawa Barat) holds one row per case.
Each case below is annotated with the exact set of rule codes the row must be quarantined with
(empty set: the row is valid and loads). Expected sets are worked out by hand from the contract.

Facts used throughout (snapshot 2021-10-31, so the 2020 reference vintage is in force; codes
checked by hand in reference/wilayah_2020.csv):
  32 JAWA BARAT (province), 32.01 KAB. BOGOR, 32.71 KOTA BOGOR (regencies), 32.01.01 Cibinong
  (district), 32.01.01.1001 Pondok Rajeg, 32.71.01.1001 Batu Tulis (villages);
  33 JAWA TENGAH, 33.01 KAB. CILACAP, 33.01.01 Kedungreja: real codes of another province;
  32.99 and 32.01.99 do not exist.
  Snapshot month = 2021-10, so the prepaid limit is 2022-10 (12 months later).
NIK layout: PP KK CC DD MM YY SSSS (digits 1-2 province, 7-8 day, 9-10 month). `{n}` in a NIK
below is replaced by the case's 4-digit row number so that every NIK is distinct.
"""
from __future__ import annotations

import hashlib
import hmac

import pytest

from harness import TEST_KEY, dicts, find_text, pipeline

SNAP = "2021-10-31"
SOURCE = f"enrollment/{SNAP}/32.csv"
NBSP, IDEO, EM = "\u00a0", "\u3000", "\u2003"

DEFAULTS = dict(nik="320101010190{n}", kpj="KPJ{n}", nama="Nama{n} Rahasia",
                segmen="PU", tingkat="KL", kode="", npp="NPP1", instansi="Dinas X",
                tgl="2020-01-15", bulan="2021-10")
FIELDS = ("nik", "kpj", "nama", "segmen", "tingkat", "kode", "npp", "instansi", "tgl", "bulan")

# (why, expected reason codes, field overrides); row_number = position in this list + 1.
CASES: list[tuple[str, set[str], dict]] = [
    # ---------------------------------------------------------------- NIK
    ("baseline valid row: 32.., day 01, month 01", set(), {}),
    ("NIK 15 digits", {"nik_16_digits"}, dict(nik="32010101019{n}")),
    ("NIK 17 digits", {"nik_16_digits"}, dict(nik="320101010190{n}7")),
    ("NIK with letters (16 characters)", {"nik_16_digits"}, dict(nik="3201010101AB{n}")),
    ("NIK in scientific notation", {"nik_16_digits"}, dict(nik="3.20101E+15")),
    ("NIK as a float text with .0", {"nik_16_digits"}, dict(nik="320101010190{n}.0")),
    ("NIK with an inner space", {"nik_16_digits"}, dict(nik="3201 01010190{n}")),
    ("NIK province 99 is in no vintage", {"nik_province"}, dict(nik="990101010190{n}")),
    ("NIK province 96 exists only in vintage 2025: any vintage counts", set(),
     dict(nik="960101010190{n}")),
    ("NIK province 93 exists from vintage 2023: any vintage counts", set(),
     dict(nik="930101010190{n}")),
    ("NIK day 00", {"nik_day"}, dict(nik="320101000190{n}")),
    ("NIK day 32", {"nik_day"}, dict(nik="320101320190{n}")),
    ("NIK day 40 (between men's 31 and women's 41)", {"nik_day"}, dict(nik="320101400190{n}")),
    ("NIK day 72 (women's day 32)", {"nik_day"}, dict(nik="320101720190{n}")),
    ("NIK day 31", set(), dict(nik="320101310190{n}")),
    ("NIK day 41 (woman born on the 1st)", set(), dict(nik="320101410190{n}")),
    ("NIK day 71 (woman born on the 31st)", set(), dict(nik="320101710190{n}")),
    ("NIK month 00", {"nik_month"}, dict(nik="320101010090{n}")),
    ("NIK month 13", {"nik_month"}, dict(nik="320101011390{n}")),
    ("NIK month 12", set(), dict(nik="320101011290{n}")),
    ("NIK day 00 and month 13: both reasons", {"nik_day", "nik_month"},
     dict(nik="320101001390{n}")),
    ("NIK empty", {"nik_required"}, dict(nik="")),
    ("NIK the word null", {"nik_required"}, dict(nik="null")),
    ("NIK whitespace only (NBSP, tab)", {"nik_required"}, dict(nik=f"{NBSP}\t ")),
    ("NIK with NBSP and tab around it: trimmed, valid", set(),
     dict(nik=f"{NBSP}\t320101010190{{n}}\t{NBSP}")),
    ("NIK with ideographic space around it: trimmed, valid", set(),
     dict(nik=f"{IDEO}320101010190{{n}}{EM}")),
    # ---------------------------------------------------------------- segmen
    ("segmen BPU", set(), dict(segmen="BPU")),
    ("segmen bpu (any case)", set(), dict(segmen="bpu")),
    ("segmen pU padded with tab/NBSP", set(), dict(segmen=f"\tpU{NBSP}")),
    ("segmen XX", {"segmen_known"}, dict(segmen="XX")),
    ("segmen empty", {"segmen_required"}, dict(segmen="")),
    ("segmen null", {"segmen_required"}, dict(segmen="NULL")),
    # ---------------------------------------------------------------- tingkat (every spelling)
    ("tingkat KL", set(), dict(tingkat="KL")),
    ("tingkat kl", set(), dict(tingkat="kl")),
    ("tingkat Kementerian/Lembaga", set(), dict(tingkat="Kementerian/Lembaga")),
    ("tingkat 'kementerian / lembaga'", set(), dict(tingkat="kementerian / lembaga")),
    ("tingkat K/L", set(), dict(tingkat="K/L")),
    ("tingkat k/l", set(), dict(tingkat="k/l")),
    ("tingkat PROV", set(), dict(tingkat="PROV", kode="32")),
    ("tingkat Provinsi", set(), dict(tingkat="Provinsi", kode="32")),
    ("tingkat 'p r o v'", set(), dict(tingkat="p r o v", kode="32")),
    ("tingkat KABKOTA", set(), dict(tingkat="KABKOTA", kode="32.01")),
    ("tingkat Kabupaten/Kota", set(), dict(tingkat="Kabupaten/Kota", kode="32.01")),
    ("tingkat Kab/Kota", set(), dict(tingkat="Kab/Kota", kode="32.01")),
    ("tingkat 'Kab / Kota'", set(), dict(tingkat="Kab / Kota", kode="32.01")),
    ("tingkat Kabupaten", set(), dict(tingkat="Kabupaten", kode="32.01")),
    ("tingkat Kota", set(), dict(tingkat="Kota", kode="32.71")),
    ("tingkat KEC", set(), dict(tingkat="KEC", kode="32.01.01")),
    ("tingkat Kecamatan", set(), dict(tingkat="Kecamatan", kode="32.01.01")),
    ("tingkat DESA", set(), dict(tingkat="DESA", kode="32.01.01.1001")),
    ("tingkat Kelurahan/Desa", set(), dict(tingkat="Kelurahan/Desa", kode="32.01.01.1001")),
    ("tingkat Kelurahan", set(), dict(tingkat="Kelurahan", kode="32.01.01.1001")),
    ("tingkat Desa", set(), dict(tingkat="Desa", kode="32.01.01.1001")),
    ("tingkat RTRW", set(), dict(tingkat="RTRW", kode="32.71.01.1001")),
    ("tingkat RT/RW", set(), dict(tingkat="RT/RW", kode="32.71.01.1001")),
    ("tingkat RT", set(), dict(tingkat="RT", kode="32.71.01.1001")),
    ("tingkat rw", set(), dict(tingkat="rw", kode="32.71.01.1001")),
    ("tingkat 'Rt / Rw' with ideographic space", set(),
     dict(tingkat=f"Rt /{IDEO}Rw", kode="32.71.01.1001")),
    ("tingkat Honorer (no tier: no code needed, so only one reason)", {"tingkat_known"},
     dict(tingkat="Honorer")),
    ("tingkat empty", {"tingkat_required"}, dict(tingkat="")),
    # ---------------------------------------------------------------- kode_wilayah
    ("KABKOTA plain code 3201", set(), dict(tingkat="KABKOTA", kode="3201")),
    ("KEC plain code 320101", set(), dict(tingkat="KEC", kode="320101")),
    ("DESA plain code 3201011001", set(), dict(tingkat="DESA", kode="3201011001")),
    ("PROV plain code 32", set(), dict(tingkat="PROV", kode="32")),
    ("KABKOTA code padded with NBSP/tab", set(), dict(tingkat="KABKOTA", kode=f"{NBSP}32.01\t")),
    ("PROV without code", {"kode_required"}, dict(tingkat="PROV", kode="")),
    ("KEC without code", {"kode_required"}, dict(tingkat="KEC", kode="")),
    ("DESA with code 'null'", {"kode_required"}, dict(tingkat="DESA", kode="null")),
    ("KL empty code", set(), dict(tingkat="KL", kode="")),
    ("KL with a district of its province", set(), dict(tingkat="KL", kode="32.01.01")),
    ("KL with a village of its province", set(), dict(tingkat="KL", kode="32.71.01.1001")),
    ("KL with its province itself", set(), dict(tingkat="KL", kode="32")),
    ("KL with a regency of another province", {"kode_in_province"},
     dict(tingkat="KL", kode="33.01")),
    ("KL with a code that does not exist", {"kode_exists"}, dict(tingkat="KL", kode="32.99")),
    ("KEC with a village code", {"kode_level"}, dict(tingkat="KEC", kode="32.01.01.1001")),
    ("PROV with a regency code", {"kode_level"}, dict(tingkat="PROV", kode="32.01")),
    ("KABKOTA with the province code", {"kode_level"}, dict(tingkat="KABKOTA", kode="32")),
    ("DESA with a district code", {"kode_level"}, dict(tingkat="DESA", kode="32.01.01")),
    ("RTRW with a regency code", {"kode_level"}, dict(tingkat="RTRW", kode="3271")),
    ("KEC with a district code not in the vintage", {"kode_exists"},
     dict(tingkat="KEC", kode="32.01.99")),
    ("KEC with the same, plain", {"kode_exists"}, dict(tingkat="KEC", kode="320199")),
    ("KABKOTA with a regency of province 33", {"kode_in_province"},
     dict(tingkat="KABKOTA", kode="33.01")),
    ("KEC with a district of province 33", {"kode_in_province"},
     dict(tingkat="KEC", kode="330101")),
    ("KEC with a regency of province 33: wrong level and wrong province",
     {"kode_level", "kode_in_province"}, dict(tingkat="KEC", kode="33.01")),
    ("code with a dash", {"kode_format"}, dict(tingkat="KABKOTA", kode="32-01")),
    ("code half dotted", {"kode_format"}, dict(tingkat="KEC", kode="3201.01")),
    ("code of 5 digits", {"kode_format"}, dict(tingkat="KABKOTA", kode="32010")),
    # ---------------------------------------------------------------- tgl_kepesertaan
    ("tgl DD/MM/YYYY", set(), dict(tgl="15/01/2020")),
    ("tgl on the snapshot date (YYYY-MM-DD)", set(), dict(tgl="2021-10-31")),
    ("tgl on the snapshot date (DD/MM/YYYY)", set(), dict(tgl="31/10/2021")),
    ("tgl 29 Feb of a leap year", set(), dict(tgl="29/02/2020")),
    ("tgl 31/02/2021 does not exist", {"tgl_format"}, dict(tgl="31/02/2021")),
    ("tgl 2021-02-29 does not exist", {"tgl_format"}, dict(tgl="2021-02-29")),
    ("tgl not zero-padded", {"tgl_format"}, dict(tgl="2021-2-3")),
    ("tgl as an Excel serial", {"tgl_format"}, dict(tgl="44197")),
    ("tgl with slashes in ISO order", {"tgl_format"}, dict(tgl="2021/01/15")),
    ("tgl the day after the snapshot (paid month = its month)", {"tgl_not_after_snapshot"},
     dict(tgl="2021-11-01", bulan="2021-11")),
    ("tgl after the snapshot, DD/MM/YYYY, never paid", {"tgl_not_after_snapshot"},
     dict(tgl="01/11/2021", bulan="")),
    ("tgl empty", {"tgl_kepesertaan_required"}, dict(tgl="")),
    ("tgl padded with tabs", set(), dict(tgl="\t2020-01-15\t")),
    # ---------------------------------------------------------------- bulan_iuran_terakhir
    ("bulan full date YYYY-MM-DD", set(), dict(bulan="2021-10-15")),
    ("bulan full date DD/MM/YYYY", set(), dict(bulan="15/10/2021")),
    ("bulan empty (never paid)", set(), dict(bulan="")),
    ("bulan the word null", set(), dict(bulan="null")),
    ("bulan NULL padded", set(), dict(bulan=f" NULL{NBSP}")),
    ("bulan whitespace only", set(), dict(bulan=f"{IDEO}\t")),
    ("bulan month 13", {"bulan_format"}, dict(bulan="2021-13")),
    ("bulan month 00", {"bulan_format"}, dict(bulan="2021-00")),
    ("bulan not zero-padded", {"bulan_format"}, dict(bulan="2021-1")),
    ("bulan as an Excel serial", {"bulan_format"}, dict(bulan="44197")),
    ("bulan a date that does not exist", {"bulan_format"}, dict(bulan="31/02/2021")),
    ("bulan exactly 12 months after the snapshot month", set(), dict(bulan="2022-10")),
    ("bulan exactly 12 months ahead, as a full date", set(), dict(bulan="31/10/2022")),
    ("bulan 13 months after the snapshot month", {"bulan_prepaid_limit"},
     dict(bulan="2022-11")),
    ("bulan 13 months ahead, as a full date", {"bulan_prepaid_limit"},
     dict(bulan="2022-11-01")),
    ("bulan the month before registration", {"bulan_not_before_registration"},
     dict(tgl="2021-03-01", bulan="2021-02")),
    ("bulan the month before registration, full dates", {"bulan_not_before_registration"},
     dict(tgl="15/03/2021", bulan="28/02/2021")),
    ("bulan the registration month itself", set(), dict(tgl="2021-03-31", bulan="2021-03")),
    # ---------------------------------------------------------------- several faults at once
    ("six faults in one row",
     {"nik_16_digits", "segmen_known", "tingkat_known", "kode_in_province", "tgl_format",
      "bulan_format"},
     dict(nik="320101010190{n}9", segmen="XX", tingkat="Honorer", kode="33.01",
          tgl="31/02/2021", bulan="2021-13")),
    ("NIK day+month, KEC without code, registered after the snapshot, prepaid too far",
     {"nik_day", "nik_month", "kode_required", "tgl_not_after_snapshot", "bulan_prepaid_limit"},
     # bulan 2023-01 is 15 months after 2021-10 but not before the registration month 2021-11
     dict(nik="320101001390{n}", tingkat="KEC", kode="", tgl="2021-11-01", bulan="2023-01")),
    ("every required field empty",
     {"nik_required", "segmen_required", "tingkat_required", "tgl_kepesertaan_required"},
     dict(nik="", kpj="", nama="", segmen="", tingkat="", kode="", npp="", instansi="", tgl="",
          bulan="")),
    ("letters in NIK, empty segmen, KL with another province's code",
     {"nik_16_digits", "segmen_required", "kode_in_province"},
     dict(nik="32O1010101900{n}", segmen=" ", kode="33")),
    # ---------------------------------------------------------------- whitespace everywhere
    ("every field padded with Unicode whitespace: valid KABKOTA row", set(),
     dict(nik=f"\t320101010190{{n}}{NBSP}", segmen=f"{EM}bpu ", tingkat=f"{NBSP}Kab / Kota{IDEO}",
          kode="\u20093201\t", tgl=f" 15/01/2020{NBSP}", bulan=f"\u202f2021-09\t")),
    ("nama, kpj, npp, instansi empty or null: optional", set(),
     dict(kpj="null", nama="", npp=" ", instansi="NULL")),
]
GOOD = {i for i, (_, reasons, _) in enumerate(CASES, 1) if not reasons}
BAD = {i: reasons for i, (_, reasons, _) in enumerate(CASES, 1) if reasons}


def _fields(n: int, overrides: dict) -> dict:
    f = {**DEFAULTS, **overrides}
    return {k: v.replace("{n}", f"{n:04d}") for k, v in f.items()}


ROWS = {n: _fields(n, o) for n, (_, _, o) in enumerate(CASES, 1)}

# Hand-written: which tier code each good row's tingkat spelling means, and the dotted code its
# kode_wilayah means.
TIER_OF = {
    "KL": "KL", "kl": "KL", "Kementerian/Lembaga": "KL", "kementerian / lembaga": "KL",
    "K/L": "KL", "k/l": "KL", "PROV": "PROV", "Provinsi": "PROV", "p r o v": "PROV",
    "KABKOTA": "KABKOTA", "Kabupaten/Kota": "KABKOTA", "Kab/Kota": "KABKOTA",
    "Kab / Kota": "KABKOTA", "Kabupaten": "KABKOTA", "Kota": "KABKOTA", "KEC": "KEC",
    "Kecamatan": "KEC", "DESA": "DESA", "Kelurahan/Desa": "DESA", "Kelurahan": "DESA",
    "Desa": "DESA", "RTRW": "RTRW", "RT/RW": "RTRW", "RT": "RTRW", "rw": "RTRW",
    f"Rt /{IDEO}Rw": "RTRW", f"{NBSP}Kab / Kota{IDEO}": "KABKOTA",
}
DOTTED_OF = {
    "": None, "32": "32", "32.01": "32.01", "3201": "32.01", "32.71": "32.71",
    "32.01.01": "32.01.01", "320101": "32.01.01", "32.01.01.1001": "32.01.01.1001",
    "3201011001": "32.01.01.1001", "32.71.01.1001": "32.71.01.1001",
    f"{NBSP}32.01\t": "32.01", "\u20093201\t": "32.01",
}


@pytest.fixture(scope="module")
def result():
    with pipeline("rules") as pipe:
        lines = [",".join(ROWS[n][k] for k in FIELDS) for n in sorted(ROWS)]
        pipe.landing.enrollment(SNAP, "32.csv", lines)
        yield pipe.run()


def test_run_loads_the_file(result):
    # the file is read whole; bad rows go to quarantine, so nothing is rejected whole: exit 0
    assert result.code == 0, result.err


def test_every_bad_row_is_quarantined_with_exactly_its_reasons(result):
    got = {r["row_number"]: set(r["reasons"]) for r in dicts(
        result.warehouse, "SELECT row_number, reasons FROM quarantine WHERE source_file = ?",
        [SOURCE])}
    wrong = {n: (CASES[n - 1][0], BAD.get(n, set()), got.get(n, set()))
             for n in set(got) | set(BAD) if got.get(n, set()) != BAD.get(n, set())}
    assert not wrong, "row: (case, expected, got)\n" + "\n".join(
        f"{n}: {v}" for n, v in sorted(wrong.items()))


def test_every_good_row_is_loaded(result):
    got = {r["row_number"] for r in dicts(
        result.warehouse, "SELECT row_number FROM enrollment_rows WHERE source_file = ?",
        [SOURCE])}
    missing = sorted(GOOD - got)
    extra = sorted(got - GOOD)
    assert not missing and not extra, (
        [CASES[n - 1][0] for n in missing], [CASES[n - 1][0] for n in extra])


def test_tier_spellings_and_code_forms_are_normalised(result):
    rows = {r["row_number"]: r for r in dicts(
        result.warehouse, "SELECT row_number, tier, region_code, segmen FROM enrollment_rows "
        "WHERE source_file = ?", [SOURCE])}
    for n in sorted(GOOD):
        f = ROWS[n]
        assert rows[n]["tier"] == TIER_OF[f["tingkat"]], CASES[n - 1][0]
        assert rows[n]["region_code"] == DOTTED_OF[f["kode"]], CASES[n - 1][0]
        # segmen is stored as its code whatever the case/padding it came in
        assert rows[n]["segmen"] in ("PU", "BPU"), CASES[n - 1][0]


def test_load_log_counts(result):
    (log,) = dicts(result.warehouse, "SELECT * FROM load_log WHERE source_file = ?", [SOURCE])
    # rows_read: every data row; rows_rejected: the quarantined ones; rows_loaded the rest
    assert log["status"] == "loaded"
    assert log["province_code"] == "32"
    assert log["rows_read"] == len(CASES)
    assert log["rows_rejected"] == len(BAD)
    assert log["rows_loaded"] == len(GOOD) == len(CASES) - len(BAD)
    assert len(BAD) > 60 and len(GOOD) > 60  # the sample is broad on both sides


def test_reason_text_explains_every_code(result):
    for r in dicts(result.warehouse, "SELECT reasons, reason_text FROM quarantine"):
        for code in r["reasons"]:
            assert code in r["reason_text"]


def test_quarantine_masks_the_nik(result):
    rows = dicts(result.warehouse, "SELECT row_number, nik_masked FROM quarantine "
                 "WHERE source_file = ?", [SOURCE])
    assert rows
    for r in rows:
        raw = ROWS[r["row_number"]]["nik"].strip("\t \u00a0\u3000\u2003")
        if not raw or raw.lower() == "null":
            continue
        assert r["nik_masked"] is not None
        assert r["nik_masked"] != raw
        # never more than the first six characters (the region of the NIK office) in the clear
        assert r["nik_masked"][6:].strip("*") == ""


def test_quarantine_keeps_the_offending_values_trimmed(result):
    n = next(i for i, c in enumerate(CASES, 1) if c[0] == "six faults in one row")
    (row,) = dicts(result.warehouse, "SELECT * FROM quarantine WHERE source_file = ? AND "
                   "row_number = ?", [SOURCE, n])
    assert (row["segmen"], row["tingkat"], row["kode_wilayah"], row["tgl_kepesertaan"],
            row["bulan_iuran_terakhir"]) == ("XX", "Honorer", "33.01", "31/02/2021", "2021-13")
    assert row["province_code"] == "32"
    assert str(row["snapshot_date"]) == SNAP


def test_no_raw_nik_or_name_anywhere(result):
    # a raw NIK (15+ characters as delivered) or a delivered name must appear in no table of
    # either file, not even inside another value
    niks = {ROWS[n]["nik"].strip("\t \u00a0\u3000\u2003") for n in ROWS}
    needles = sorted({k for k in niks if len(k) >= 15} | {ROWS[n]["nama"] for n in ROWS
                                                          if ROWS[n]["nama"]})
    assert len(needles) > 100
    assert find_text(result.warehouse, needles) == []
    assert find_text(result.serving, needles) == []


def test_nik_is_stored_as_keyed_hmac(result):
    # HMAC-SHA256 under CAKUPAN_HMAC_KEY of the trimmed NIK, computed here with the standard
    # library: equal for every loaded row, so the key is used and nothing else is stored
    rows = dicts(result.warehouse, "SELECT row_number, replace(nik_hmac::VARCHAR, '-', '') AS h "
                 "FROM enrollment_rows "
                 "WHERE source_file = ?", [SOURCE])
    assert len(rows) == len(GOOD)
    for r in rows:
        raw = ROWS[r["row_number"]]["nik"].strip("\t \u00a0\u3000\u2003")
        want = hmac.new(TEST_KEY.encode(), raw.encode(), hashlib.sha256).hexdigest()
        plain = hashlib.sha256(raw.encode()).hexdigest()
        assert r["h"] == want[:32] != plain[:32]   # HMAC-SHA256's first 128 bits


def test_serving_has_no_personal_columns_or_hashes(result):
    from schemas.tables import SERVING_TABLES, SERVING_VIEWS

    cols = dicts(result.serving, "SELECT table_name, column_name FROM information_schema.columns")
    assert {c["table_name"] for c in cols} == {t.name for t in SERVING_TABLES} | set(SERVING_VIEWS)
    assert not [c for c in cols if "nik" in c["column_name"] or "nama" == c["column_name"]
                or "hmac" in c["column_name"]]
    hashes = [r["nik_hmac"] for r in dicts(result.warehouse,
                                           "SELECT nik_hmac FROM enrollment_rows")]
    assert hashes
    raw = result.serving.read_bytes()
    assert not [h for h in hashes if h.bytes in raw or h.hex.encode() in raw
                or str(h).encode() in raw]
