"""The benchmark's plain-DuckDB reference (bench/reference.py) on hand-made landing zones.

Every expected figure below is worked out by hand in the comments, from the contract
(../shared/contract.md, v1.1), not from running any code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import importlib.util
import os
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_reference", ROOT / "bench" / "reference.py")
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)

KEY = b"test-key-not-a-secret"
SNAP = "2021-10-31"  # snapshot month index 12*2021+10; reference vintage 2020 is in force
HEADER = "nik,nama,segmen,tingkat,kode_wilayah,tgl_kepesertaan,bulan_iuran_terakhir\n"
NBSP = "\u00a0"


def write(path: Path, text: str, mtime: int | None = None, bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def by_tier(result, snap=SNAP):
    return {r["tier"]: (r["active"], r["inactive"]) for r in result["coverage_by_tier"] if r["snapshot_date"] == snap}


def national(result, snap=SNAP):
    (row,) = [r for r in result["coverage_national"] if r["snapshot_date"] == snap]
    return row


POTENTIAL = """tingkat,kode_wilayah,potensi,sumber
KL,,350000,RDP Komisi IX
Provinsi,,345933,RDP Komisi IX
KABKOTA,,2500000,RDP Komisi IX
KEC,,205000,RDP Komisi IX
Kelurahan / Desa,,1200000,RDP Komisi IX
RT/RW,,9000000,RDP Komisi IX
PROV,32,10000,Pemda Jawa Barat
"""


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    day = root / "enrollment" / SNAP
    # First delivery of province 32: superseded by 32_revisi.csv (modified later), so its only row
    # (an active KL person, NIK ...0099) must not count anywhere.
    write(day / "32.csv", HEADER + "3201010101900099,Zed,PU,KL,,2020-01-15,2021-10\n", mtime=1_600_000_000)
    # The re-delivery: BOM, `;`, upper-case headers in another order, an extra column.
    rows = [
        # nik; nama; segmen; tingkat; kode; tgl; bulan            -> verdict (grace 3)
        "3201010101900001;Ani;PU;KL;;2020-01-15;2021-07",            # KL active: 10-7 = 3 <= 3
        "3201010101900002;Budi;pu;Kementerian/Lembaga;32.01;15/01/2020;2021-06",  # KL, 4 months: inactive (active at grace 4)
        "3201010101900003;Cici;BPU;Provinsi;32;2020-01-15;",         # PROV, empty month: inactive
        "3201010101900004;Dedi;BPU;kab / kota;3201;2020-01-15;2022-10",  # KABKOTA prepaid exactly 12: active
        "3201010101900005;Euis;PU;KEC;32.01.01;2020-01-15;2022-11",  # 13 months ahead: invalid
        "3201010101900006;Fajar;PU;DESA;32.01.01.1001;2020-01-15;2021-01",  # DESA, older row of 006
        "3201010101900006;Fajar;PU;Kelurahan/Desa;3201011001;2020-02-01;2021-09-30",  # latest month decides: active
        "3201010101900006;Fajar;PU;RT/RW;32.01.01.1002;2020-01-15;",  # RTRW, never paid: inactive
        "320101010190007;Gita;PU;KL;;2020-01-15;2021-10",            # 15-digit NIK: invalid
        "3201013201900008;Hadi;PU;KL;;2020-01-15;2021-10",           # NIK day 32: invalid
        f"{NBSP}3201014501900009\u3000;Ina; bpu ;KL;;2020-01-15;2021-10",  # trimmed; day 45 (woman): KL active
        "3201010101900010;Joko;PU;KL;;2021-11-01;2021-10",           # registered after the snapshot: invalid
        "3201010101900011;Kiki;PU;KABKOTA;33.01;2020-01-15;2021-10",  # code outside province 32: invalid
        "3201010101900012;Lina;PU;KEC;32.01;2020-01-15;2021-10",     # level does not match tier: invalid
        "3201010101900013;Mira;PU;KEC;32.01.01;2021-03-01;2021-02",  # paid before registration month: invalid
        "3201010101900014;Nana;XX;KL;;2020-01-15;2021-10",           # bad segmen: invalid
        "3201010101900004;Dedi;BPU;KL;;2020-01-15;",                 # 004 again, in KL, never paid: KL inactive
        "3201010101900015;Oki;PU;RTRW;32.01.01.1001;31/02/2020;2021-10",  # 31 Feb: invalid
        "3201010101900016;Putu;PU;KEC;32.01.01;2020-01-15;2021-10-15",  # full date read as month: KEC active
        "3.20101E+15;Rudi;PU;KL;;2020-01-15;2021-10",                # NIK as a float: invalid
        "3201010101900017;Sari;PU;KL; null ;2020-01-15;NULL",          # the word null is empty: KL inactive
    ]
    text = "NIK;NAMA;SEGMEN;TINGKAT;KODE_WILAYAH;TGL_KEPESERTAAN;BULAN_IURAN_TERAKHIR;CATATAN\n"
    text += "".join(r + ";x\n" for r in rows)
    write(day / "32_revisi.csv", text, mtime=1_600_000_100, bom=True)
    # Province 33: header only (accepted, 0 rows). Province 35: a required column is missing.
    write(day / "33_kosong.csv", HEADER)
    write(day / "35.csv", "nik,nama,segmen,tingkat,kode_wilayah,tgl_kepesertaan\n3501010101900001,A,PU,KL,,2020-01-01\n")
    # Province 36: `nik` twice (after lower-casing): ambiguous, rejected whole.
    write(day / "36.csv", "nik,NIK,nama,segmen,tingkat,kode_wilayah,tgl_kepesertaan,bulan_iuran_terakhir\n"
                          "3601010101900001,3601010101900002,A,PU,KL,,2020-01-01,2021-10\n")
    # Potential: the 2021-01-01 set is in force; 2021-06-01 repeats (KL, national) and is rejected,
    # so the older set stays; 2021-11-01 is after the snapshot.
    write(root / "potential" / "2021-01-01" / "potensi.csv", POTENTIAL)
    write(root / "potential" / "2021-06-01" / "a.csv", "tingkat;kode_wilayah;potensi;sumber\nKL;;1;x\n")
    write(root / "potential" / "2021-06-01" / "b.csv", "tingkat,kode_wilayah,potensi,sumber\nK/L,,2,y\n")
    write(root / "potential" / "2021-11-01" / "potensi.csv", POTENTIAL.replace("350000", "7"))
    return root


def test_figures_grace_3(landing):
    res = reference.compute(landing, grace_months=3, hmac_key=KEY)
    # KL: 001 active, 009 active, 002 inactive (4 months), 004 and 017 inactive (never paid).
    # 0099 is in the superseded file.
    # PROV: 003 inactive. KABKOTA: 004 active (prepaid 12). KEC: 016 active (005, 012, 013 invalid).
    # DESA: 006 active (its 2021-09 row beats its 2021-01 row). RTRW: 006 inactive (015 invalid).
    assert by_tier(res) == {
        "KL": (2, 3), "PROV": (0, 1), "KABKOTA": (1, 0), "KEC": (1, 0), "DESA": (1, 0), "RTRW": (0, 1),
    }
    n = national(res)
    # distinct valid NIKs: 001 002 003 004 006 009 016 017 = 8; active in some tier: 001 004 006 009 016
    assert (n["active"], n["inactive"], n["active_tier_sum"]) == (5, 3, 5)
    assert n["potential"] == 350000 + 345933 + 2500000 + 205000 + 1200000 + 9000000  # 13,600,933
    assert n["penetration_pct"] == pytest.approx(5 / 13_600_933 * 100, rel=1e-12)
    kl = [r for r in res["coverage_by_tier"] if r["tier"] == "KL"][0]
    assert kl["potential"] == 350000 and kl["penetration_pct"] == pytest.approx(2 / 350000 * 100, rel=1e-12)
    prov = [r for r in res["coverage_by_tier"] if r["tier"] == "PROV"][0]
    assert prov["potential"] == 345933 and prov["penetration_pct"] == 0.0
    log = {r["source_file"].rsplit("/", 1)[-1]: r for r in res["load_log"]}
    assert log["32.csv"]["status"] == "superseded"
    assert (log["32_revisi.csv"]["status"], log["32_revisi.csv"]["rows_read"], log["32_revisi.csv"]["rows_rejected"]) \
        == ("loaded", 21, 10)
    assert (log["33_kosong.csv"]["status"], log["33_kosong.csv"]["rows_read"]) == ("loaded", 0)
    assert log["35.csv"]["status"] == "rejected" and "bulan_iuran_terakhir" in log["35.csv"]["message"]
    assert log["36.csv"]["status"] == "rejected" and "duplicate" in log["36.csv"]["message"]


def test_grace_boundary_4(landing):
    res = reference.compute(landing, grace_months=4, hmac_key=KEY)
    # 002 paid 2021-06: 4 months before 2021-10, active once grace is 4.
    assert by_tier(res)["KL"] == (3, 2)
    n = national(res)
    assert (n["active"], n["inactive"], n["active_tier_sum"]) == (6, 2, 6)


def test_name_tie_and_no_potential(tmp_path):
    root = tmp_path / "l"
    day = root / "enrollment" / "2021-10-31"
    # Same mtime: the greater file name wins ('32_b.csv' > '32_a.csv' > '32.csv').
    write(day / "32.csv", HEADER + "3201010101900001,A,PU,KL,,2020-01-15,2021-10\n", mtime=1_600_000_000)
    write(day / "32_a.csv", HEADER + "3201010101900002,B,PU,KL,,2020-01-15,2021-10\n", mtime=1_600_000_000)
    write(day / "32_b.csv", HEADER + "3201010101900003,C,PU,KL,,2020-01-15,\n", mtime=1_600_000_000)
    res = reference.compute(root, hmac_key=KEY)
    # only 32_b.csv counts: one KL person, never paid
    assert by_tier(res)["KL"] == (0, 1)
    n = national(res)
    # no potential files at all: every potential and penetration is NULL, never 0
    assert (n["active"], n["inactive"], n["potential"], n["penetration_pct"]) == (0, 1, None, None)
    assert all(r["potential"] is None and r["penetration_pct"] is None for r in res["coverage_by_tier"])


def test_xlsx_and_parquet_cell_types(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "l"
    day = root / "enrollment" / "2021-10-31"
    day.mkdir(parents=True)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Nik", "Nama", "Segmen", "Tingkat", "Kode_Wilayah", "Tgl_Kepesertaan", "Bulan_Iuran_Terakhir"])
    ws.append(["3201010101900001", "A", "PU", "KL", None, dt.date(2020, 1, 15), "2021-10"])  # native date: active
    ws.append([3201010101900002, "B", "PU", "KL", None, dt.date(2020, 1, 15), "2021-10"])    # NIK as number: invalid
    ws.append(["3201010101900003", "C", "PU", "KL", None, 43845, "2021-10"])                # Excel serial: invalid
    ws.append(["3201010101900004", "D", "PU", "PROV", 32, dt.date(2020, 1, 15), dt.date(2021, 5, 1)])  # inactive
    wb.save(day / "32.xlsx")
    pq.write_table(pa.table({
        "NIK": pa.array([3101010101900005], pa.int64()),  # NIK as a number: invalid
        "nama": ["E"], "segmen": ["PU"], "tingkat": ["KL"], "kode_wilayah": [None],
        "tgl_kepesertaan": pa.array([dt.date(2020, 1, 15)]), "bulan_iuran_terakhir": ["2021-10"],
    }), day / "31.parquet")
    pq.write_table(pa.table({
        "nik": ["3101010101900006"], "nama": ["F"], "segmen": ["BPU"], "tingkat": ["KL"], "kode_wilayah": ["31.71"],
        "tgl_kepesertaan": pa.array([dt.date(2020, 1, 15)]), "bulan_iuran_terakhir": ["2021-09"],
    }), day / "31_revisi.parquet")
    os.utime(day / "31.parquet", (1_600_000_000, 1_600_000_000))
    res = reference.compute(root, hmac_key=KEY)
    # KL: 001 active (xlsx), 006 active (31_revisi.parquet wins over 31.parquet); PROV: 004 inactive
    assert by_tier(res)["KL"] == (2, 0)
    assert by_tier(res)["PROV"] == (0, 1)
    assert (national(res)["active"], national(res)["inactive"]) == (2, 1)


def test_hmac_in_sql_matches_rfc2104():
    ipad, opad = reference.hmac_pads(KEY)
    got = duckdb.connect().execute(
        "SELECT sha256($o || unhex(sha256($i || encode($n))))",
        {"o": opad, "i": ipad, "n": "3201010101900001"},
    ).fetchone()[0]
    assert got == hmac.new(KEY, b"3201010101900001", hashlib.sha256).hexdigest()
    long_key = b"k" * 100  # longer than the block: hashed first
    ipad, opad = reference.hmac_pads(long_key)
    got = duckdb.connect().execute("SELECT sha256($o || unhex(sha256($i || encode('x'))))", {"o": opad, "i": ipad}).fetchone()[0]
    assert got == hmac.new(long_key, b"x", hashlib.sha256).hexdigest()


def test_unreadable_files_are_rejected_whole(tmp_path):
    root = tmp_path / "l"
    day = root / "enrollment" / "2021-10-31"
    write(day / "32.csv", "")                                                   # zero bytes
    (day / "33.csv").write_bytes((HEADER + "3301010101900001,Jos\xe9,PU,KL,,2020-01-15,2021-10\n").encode("latin-1"))
    write(day / "34.csv", HEADER + "3401010101900001,A,PU,KL,,2020-01-15,2021-10\n")  # same layout as 33.csv
    (day / "35.xlsx").write_bytes(b"not a zip file")
    (day / "36.parquet").write_bytes(b"PAR1 nope")
    write(day / "README.txt", "not a delivery: ignored")
    res = reference.compute(root, hmac_key=KEY)
    status = {r["source_file"].rsplit("/", 1)[-1]: r["status"] for r in res["load_log"]}
    assert status == {"32.csv": "rejected", "33.csv": "rejected", "34.csv": "loaded",
                      "35.xlsx": "rejected", "36.parquet": "rejected"}
    # only 34.csv's one active KL person counts
    assert by_tier(res)["KL"] == (1, 0) and national(res)["active"] == 1
