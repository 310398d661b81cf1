"""Whole files: formats, encodings, rejections, supersession, re-delivery and re-runs
(contract v1.1, "Inputs" 1, "Command line" and "Resolved details / Files").

One landing zone, three real `cakupan run`s over the same warehouse:

1. snapshot 2021-10-31 with one delivery per case, each from its own province office
   (province codes known in the reference; every person is a KL row without a code, so
   `coverage_by_region` KL at province level shows exactly which files were counted);
   plus an earlier snapshot (2021-09-30) that no later run touches;
2. a re-delivery of province 33 (replaces its rows), a broken re-delivery of province 34
   (rejected; the rows of 34.csv stay) and two potential sets arriving late (they must
   recount both snapshots);
3. nothing new: the same tables and the same exit code.

Snapshot month 2021-10, grace 3: paid 2021-07 or later is active.
"""
from __future__ import annotations

import datetime as dt
import os

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness import HEADER, dicts, find_text, pipeline

SNAP = "2021-10-31"
DAY = f"enrollment/{SNAP}"
EARLIER = "2021-09-30"

NIKS: set[str] = set()   # every raw NIK written into this landing zone


def nik(pp: str, serial: int) -> str:
    n = f"{pp}0101" "0101" "90" f"{serial:04d}"
    NIKS.add(n)
    return n


def kl(n: str, bulan: str = "2021-10", tgl: str = "2020-01-15") -> str:
    return f"{n},,Nama Orang,PU,KL,,,,{tgl},{bulan}"


PNG_JUNK = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + bytes(range(256)) * 8


def write_xlsx(path):
    wb = openpyxl.Workbook()
    ws = wb.active
    # header in other case and order, an extra column
    ws.append(["Bulan_Iuran_Terakhir", "NIK", "Nama", "SEGMEN", "Tingkat", "Kode_Wilayah",
               "Tgl_Kepesertaan", "Catatan"])
    ws.append(["2021-10", nik("19", 1), "A", "PU", "KL", None, dt.date(2020, 1, 15), "x"])
    # 2: NIK as a number cell: its digits cannot be trusted
    ws.append(["2021-10", int(nik("19", 2)), "B", "PU", "KL", None, dt.date(2020, 1, 15), "x"])
    # 3: an Excel serial (a bare number) in a date column
    ws.append(["2021-10", nik("19", 3), "C", "PU", "KL", None, 43845, "x"])
    # 4: the paid month as a native date cell: read as its month, 2021-09: active
    ws.append([dt.date(2021, 9, 1), nik("19", 4), "D", "BPU", "KL", None, dt.date(2020, 1, 15),
               None])
    # 5: native datetime cell for the registration; never paid: inactive
    ws.append([None, nik("19", 5), "E", "PU", "KL", None, dt.datetime(2020, 1, 15, 0, 0), None])
    junk = wb.create_sheet("Catatan")  # only the first sheet is read
    junk.append(["not", "an", "extract"])
    junk.append([1, 2, 3])
    wb.save(path)


def write_parquet_text(path):
    pq.write_table(pa.table({
        "nik": [nik("21", 1), nik("21", 2)], "nama": ["A", "B"], "segmen": ["PU", "BPU"],
        "tingkat": ["KL", "Kementerian/Lembaga"], "kode_wilayah": pa.array([None, ""], pa.string()),
        "tgl_kepesertaan": ["2020-01-15", "15/01/2020"],
        "bulan_iuran_terakhir": ["2021-10", "2021-09"],
    }), path)


def write_parquet_int_nik(path):
    pq.write_table(pa.table({
        "nik": pa.array([int(nik("31", 1)), int(nik("31", 2))], pa.int64()),
        "nama": ["A", "B"], "segmen": ["PU", "PU"], "tingkat": ["KL", "KL"],
        "kode_wilayah": pa.array([None, None], pa.string()),
        "tgl_kepesertaan": pa.array([dt.date(2020, 1, 15)] * 2, pa.date32()),
        "bulan_iuran_terakhir": ["2021-10", "2021-10"],
    }), path)


@pytest.fixture(scope="module")
def runs():
    with pipeline("files") as pipe:
        land = pipe.landing
        land.write(f"{DAY}/11.csv", b"")                                        # zero bytes
        land.write(f"{DAY}/12.csv", (HEADER + "\n" + kl(nik("12", 1)) + "\n").encode()
                   + kl(nik("12", 2)).replace("Nama Orang", "Jos\xe9").encode("latin-1")
                   + b"\n")                                                   # Latin-1 e-acute
        land.write(f"{DAY}/13.csv", HEADER + "\n" + kl(nik("13", 1)) + "\n",
                   encoding="utf-16")                                          # UTF-16 with BOM
        land.write(f"{DAY}/14.csv", PNG_JUNK)                                   # binary junk
        land.write(f"{DAY}/15.xlsx", b"this is not a workbook\n")               # junk .xlsx
        land.write(f"{DAY}/16.csv", "nik,nama,tingkat,kode_wilayah,npp\n"
                   f"{nik('16', 1)},A,KL,,\n")                                 # 3 columns missing
        land.write(f"{DAY}/17_kosong.csv", HEADER + "\n")                       # header only
        # BOM, ';', headers upper/mixed case in another order, an extra column
        land.write(f"{DAY}/18.csv", "\ufeffTINGKAT;Nik;NAMA;Segmen;Kode_Wilayah;"
                   "BULAN_IURAN_TERAKHIR;Tgl_Kepesertaan;CATATAN\n"
                   f"KL;{nik('18', 1)};A;PU;;2021-10;2020-01-15;x\n"            # active
                   f"KL;{nik('18', 2)};B;BPU;;2021-06;15/01/2020;y\n"           # 4 months: inactive
                   f"KL;{nik('18', 3)}X;C;PU;;2021-10;2020-01-15;z\n")          # bad NIK
        write_xlsx(land.write(f"{DAY}/19.xlsx", b"placeholder"))
        write_parquet_text(land.write(f"{DAY}/21.parquet", b"placeholder"))
        write_parquet_int_nik(land.write(f"{DAY}/31.parquet", b"placeholder"))
        # CRLF line ends and a quoted field holding the delimiter
        land.write(f"{DAY}/35.csv", HEADER + "\r\n"
                   f'{nik("35", 1)},,"Siti, S.Pd",PU,KL,,,"Dinas A, B",2020-01-15,2021-10\r\n'
                   f'{nik("35", 2)},,Ani,PU,KL,,,,2020-01-15,\r\n')
        land.write(f"{DAY}/99.csv", HEADER + "\n" + kl(nik("32", 99)) + "\n")     # no province 99
        land.write(f"{DAY}/jabar.csv", HEADER + "\n" + kl(nik("32", 98)) + "\n")  # not a code
        # 32.csv first, 32_revisi.csv modified later: only the latter counts
        land.enrollment(SNAP, "32.csv", [kl(nik("32", 1)), kl(nik("32", 2)), kl(nik("32", 3))])
        land.enrollment(SNAP, "32_revisi.csv", [kl(nik("32", 11)), kl(nik("32", 12), "")])
        # same modification time: the greater file name wins ('36_b.csv' > '36.csv')
        a = land.enrollment(SNAP, "36.csv", [kl(nik("36", 1)), kl(nik("36", 2))])
        b = land.enrollment(SNAP, "36_b.csv", [kl(nik("36", 3), "")])
        os.utime(b, (a.stat().st_mtime, a.stat().st_mtime))
        # the one modified last wins even with the smaller name
        land.enrollment(SNAP, "51_z.csv", [kl(nik("51", 1)), kl(nik("51", 2))])
        land.enrollment(SNAP, "51_a.csv", [kl(nik("51", 3), "")])
        land.enrollment(SNAP, "33.csv", [kl(nik("33", 1)), kl("330101010190001")])  # 2nd: 15 digits
        land.enrollment(SNAP, "34.csv", [kl(nik("34", 1))])
        # a second, earlier snapshot that no later run touches: one active KL person
        land.enrollment(EARLIER, "32.csv", [kl(nik("32", 50), "2021-09")])
        first = pipe.run()
        after_first = snapshot_tables(pipe)

        land.enrollment(SNAP, "33_revisi.csv", [kl(nik("33", 3)), kl(nik("33", 4), "2021-01")])
        # potential sets arriving on a later run. 2021-09-01 applies to both snapshots, also to
        # 2021-09-30 whose deliveries did not change; 2021-11-01 is after both and must not apply
        land.write("potential/2021-09-01/potensi.csv",
                   "tingkat,kode_wilayah,potensi,sumber\nKL,,90,x\nPROV,32,5,x\n")
        land.write("potential/2021-11-01/potensi.csv",
                   "tingkat,kode_wilayah,potensi,sumber\nKL,,1,x\n")
        land.write(f"{DAY}/34_revisi.csv", "nik,nama,segmen,kode_wilayah,tgl_kepesertaan,"
                   f"bulan_iuran_terakhir\n{nik('34', 9)},A,PU,,2020-01-15,2021-10\n")
        second = pipe.run()
        after_second = snapshot_tables(pipe)

        third = pipe.run()
        after_third = snapshot_tables(pipe)
        yield {"first": (first, after_first), "second": (second, after_second),
               "third": (third, after_third)}


CONTRACT_TABLES = ("coverage_by_tier", "coverage_national", "coverage_by_region", "load_log",
                   "quarantine")


def snapshot_tables(pipe) -> dict:
    out = {t: dicts(pipe.warehouse, f"SELECT * FROM {t} ORDER BY ALL") for t in CONTRACT_TABLES}
    out["enrollment_rows"] = dicts(pipe.warehouse, "SELECT * FROM enrollment_rows ORDER BY ALL")
    for t in CONTRACT_TABLES[:4]:
        out[f"serving.{t}"] = dicts(pipe.serving, f"SELECT * FROM {t} ORDER BY ALL")
    return out


def of(tables, name: str, snap: str = SNAP) -> list[dict]:
    return [r for r in tables[name] if str(r["snapshot_date"]) == snap]


def log_of(tables) -> dict[str, dict]:
    return {r["source_file"].removeprefix(DAY + "/"): r for r in of(tables, "load_log")}


def kl_by_province(tables, snap: str = SNAP) -> dict[str, tuple[int, int]]:
    return {r["region_code"]: (r["active"], r["inactive"])
            for r in of(tables, "coverage_by_region", snap)
            if r["tier"] == "KL" and r["region_level"] == "province"
            and r["active"] + r["inactive"] > 0}


# ------------------------------------------------------------------------------ first run
REJECTED_UNREADABLE = ("11.csv", "12.csv", "13.csv", "14.csv", "15.xlsx")


def test_first_run_exit_code_2_and_lists_rejected_files(runs):
    run, _ = runs["first"]
    assert run.code == 2, run.err
    # the list printed at the end: "<n> file(s) rejected whole:" then "  <file>: <why>"
    listed = run.err.split("rejected whole:")[-1]
    assert listed.count(f"  {DAY}/") == 8
    for name in (*REJECTED_UNREADABLE, "16.csv", "99.csv", "jabar.csv"):
        assert f"{DAY}/{name}: " in listed, name
    for name in ("17_kosong.csv", "18.csv", "19.xlsx", "32_revisi.csv", "32.csv"):
        assert f"{DAY}/{name}:" not in listed, name


def test_first_run_load_log_statuses(runs):
    _, tables = runs["first"]
    log = log_of(tables)
    assert {name: r["status"] for name, r in log.items()} == {
        "11.csv": "rejected", "12.csv": "rejected", "13.csv": "rejected", "14.csv": "rejected",
        "15.xlsx": "rejected", "16.csv": "rejected", "17_kosong.csv": "loaded",
        "18.csv": "loaded", "19.xlsx": "loaded", "21.parquet": "loaded", "31.parquet": "loaded",
        "35.csv": "loaded", "99.csv": "rejected", "jabar.csv": "rejected",
        "32.csv": "superseded", "32_revisi.csv": "loaded", "33.csv": "loaded",
        "34.csv": "loaded", "36.csv": "superseded", "36_b.csv": "loaded",
        "51_z.csv": "superseded", "51_a.csv": "loaded",
    }
    for name, r in log.items():
        assert str(r["snapshot_date"]) == SNAP
        if r["status"] != "loaded":
            assert r["message"], name                       # every rejection says why
            assert (r["rows_loaded"], r["rows_rejected"]) == (0, 0), name


def test_unreadable_files_have_no_row_count_and_a_clear_message(runs):
    log = log_of(runs["first"][1])
    for name in REJECTED_UNREADABLE:
        assert log[name]["rows_read"] is None, name
    assert "empty" in log["11.csv"]["message"].lower()
    assert "utf-8" in log["12.csv"]["message"].lower()
    assert "utf-8" in log["13.csv"]["message"].lower()
    assert "xlsx" in log["15.xlsx"]["message"].lower()
    assert log["12.csv"]["province_code"] == "12"


def test_rejection_messages_hold_no_raw_nik(runs):
    run, _ = runs["third"]
    assert find_text(run.warehouse, sorted(NIKS)) == []
    assert find_text(run.serving, sorted(NIKS)) == []


def test_missing_columns_are_all_named(runs):
    msg = log_of(runs["first"][1])["16.csv"]["message"]
    for col in ("segmen", "tgl_kepesertaan", "bulan_iuran_terakhir"):
        assert col in msg


def test_header_only_file_is_loaded_with_zero_rows(runs):
    r = log_of(runs["first"][1])["17_kosong.csv"]
    assert (r["status"], r["rows_read"], r["rows_loaded"], r["rows_rejected"]) == \
        ("loaded", 0, 0, 0)


def test_row_counts_of_loaded_files(runs):
    log = log_of(runs["first"][1])
    got = {n: (log[n]["rows_read"], log[n]["rows_loaded"], log[n]["rows_rejected"])
           for n in ("18.csv", "19.xlsx", "21.parquet", "31.parquet", "35.csv",
                     "32_revisi.csv", "33.csv", "34.csv")}
    assert got == {
        "18.csv": (3, 2, 1),       # third NIK has a letter
        "19.xlsx": (5, 3, 2),      # NIK as number, Excel serial date
        "21.parquet": (2, 2, 0),
        "31.parquet": (2, 0, 2),   # int64 NIK column: both rows
        "35.csv": (2, 2, 0),
        "32_revisi.csv": (2, 2, 0),
        "33.csv": (2, 1, 1),       # 15-digit NIK
        "34.csv": (1, 1, 0),
    }


def test_cell_types_decide_validity(runs):
    q = {(r["source_file"].removeprefix(DAY + "/"), r["row_number"]): set(r["reasons"])
         for r in runs["first"][1]["quarantine"]}
    assert q == {
        ("18.csv", 3): {"nik_16_digits"},
        ("19.xlsx", 2): {"nik_is_text"},     # number cell
        ("19.xlsx", 3): {"tgl_format"},      # Excel serial 43845
        ("31.parquet", 1): {"nik_is_text"},  # int64 column
        ("31.parquet", 2): {"nik_is_text"},
        ("33.csv", 2): {"nik_16_digits"},
    }


def test_only_loaded_and_winning_files_are_counted(runs):
    assert kl_by_province(runs["first"][1]) == {
        "18": (1, 1),   # 2021-10 active; 2021-06 inactive
        "19": (2, 1),   # rows 1 and 4 active (2021-10, native date 2021-09-01); row 5 never paid
        "21": (2, 0),
        "35": (1, 1),   # quoted comma kept the columns aligned; second never paid
        "32": (1, 1),   # 32_revisi.csv only: ...0011 active, ...0012 never paid; 32.csv ignored
        "33": (1, 0),
        "34": (1, 0),
        "36": (0, 1),   # 36_b.csv only (same mtime, greater name): one person, never paid
        "51": (0, 1),   # 51_a.csv only (modified last): one person, never paid
        # nothing from the rejected 11-16, 99, jabar, nor 31.parquet (all its rows quarantined)
    }
    (n,) = of(runs["first"][1], "coverage_national")
    assert (n["active"], n["inactive"]) == (1 + 2 + 2 + 1 + 1 + 1 + 1, 1 + 1 + 1 + 1 + 1 + 1)


def test_superseded_file_is_logged_and_contributes_nothing(runs):
    tables = runs["first"][1]
    r = log_of(tables)["32.csv"]
    assert r["status"] == "superseded"
    assert "32_revisi.csv" in r["message"]
    assert r["rows_loaded"] == 0
    assert {e["source_file"] for e in of(tables, "enrollment_rows")
            if e["province_code"] == "32"} == {f"{DAY}/32_revisi.csv"}


def test_mtime_then_name_decides_between_deliveries(runs):
    log = log_of(runs["first"][1])
    assert "36_b.csv" in log["36.csv"]["message"]
    assert "51_a.csv" in log["51_z.csv"]["message"]


def test_misfit_names_are_rejected(runs):
    log = log_of(runs["first"][1])
    for name in ("99.csv", "jabar.csv"):
        assert log[name]["status"] == "rejected"
        assert "province" in log[name]["message"]


def test_source_file_is_relative_with_slashes(runs):
    for r in runs["first"][1]["load_log"]:
        assert r["source_file"].startswith(f"enrollment/{r['snapshot_date']}/")
        assert "\\" not in r["source_file"]


# ------------------------------------------------------------------------------ second run
def test_second_run_redelivery_replaces_rows(runs):
    run, tables = runs["second"]
    assert run.code == 2, run.err   # 34_revisi.csv (and the old rejects) are still rejected
    log = log_of(tables)
    assert (log["33_revisi.csv"]["status"], log["33_revisi.csv"]["rows_read"],
            log["33_revisi.csv"]["rows_loaded"]) == ("loaded", 2, 2)
    assert log["33.csv"]["status"] == "superseded"
    # 33.csv's rows (valid and quarantined) are gone; 33_revisi's count: ...0003 active,
    # ...0004 paid 2021-01 inactive
    assert {e["source_file"] for e in of(tables, "enrollment_rows")
            if e["province_code"] == "33"} == {f"{DAY}/33_revisi.csv"}
    assert not [q for q in tables["quarantine"] if q["province_code"] == "33"]
    assert kl_by_province(tables)["33"] == (1, 1)


def test_second_run_broken_redelivery_keeps_what_was_loaded(runs):
    _, tables = runs["second"]
    log = log_of(tables)
    assert log["34_revisi.csv"]["status"] == "rejected"
    assert "tingkat" in log["34_revisi.csv"]["message"]
    assert log["34.csv"]["status"] == "loaded"
    assert log["34.csv"]["rows_loaded"] == 1
    assert kl_by_province(tables)["34"] == (1, 0)   # 34.csv's person still counts
    assert {e["source_file"] for e in of(tables, "enrollment_rows")
            if e["province_code"] == "34"} == {f"{DAY}/34.csv"}


def test_second_run_other_deliveries_untouched(runs):
    first, second = runs["first"][1], runs["second"][1]
    keep = lambda t: [r for r in t["enrollment_rows"] if r["province_code"] not in ("33", "34")]
    assert keep(first) == keep(second)
    got = kl_by_province(second)
    assert {k: v for k, v in got.items() if k not in ("33",)} == \
        {k: v for k, v in kl_by_province(first).items() if k not in ("33",)}
    (n,) = of(second, "coverage_national")
    # first run (9, 6); province 33 went from (1, 0) to (1, 1)
    assert (n["active"], n["inactive"]) == (9, 7)


def test_potential_arriving_later_applies_from_its_date(runs):
    first, second = runs["first"][1], runs["second"][1]
    assert all(r["potential"] is None and r["penetration_pct"] is None
               for r in first["coverage_by_tier"])
    # 2021-10-31: KL 9 active (test_second_run_other_deliveries_untouched) / 90 of the
    # 2021-09-01 set = 10.0; the 2021-11-01 set (KL 1) is dated after the snapshot
    # 2021-09-30: its one KL person / 90, although no delivery of that snapshot changed
    for snap, active in ((SNAP, 9), (EARLIER, 1)):
        tiers = {r["tier"]: r for r in of(second, "coverage_by_tier", snap)}
        assert (tiers["KL"]["active"], tiers["KL"]["potential"]) == (active, 90), snap
        assert tiers["KL"]["penetration_pct"] == pytest.approx(active / 90 * 100, rel=1e-12)
        assert all(r["potential"] is None for t, r in tiers.items() if t != "KL"), snap
        (n,) = of(second, "coverage_national", snap)
        assert (n["potential"], n["penetration_pct"]) == (None, None)  # 1 national figure of 6
    # PROV 32 = 5 is a regional figure: no PROV person, so a row with 0 active and 0 %
    (prov,) = [r for r in of(second, "coverage_by_region", EARLIER) if r["tier"] == "PROV"]
    assert (prov["region_code"], prov["active"], prov["potential"], prov["penetration_pct"]) \
        == ("32", 0, 5, 0.0)


def test_earlier_snapshot_untouched_by_later_runs(runs):
    first, second = runs["first"][1], runs["second"][1]
    assert of(first, "load_log", EARLIER) == of(second, "load_log", EARLIER)
    assert kl_by_province(first, EARLIER) == kl_by_province(second, EARLIER) == {"32": (1, 0)}


# ------------------------------------------------------------------------------ third run
def test_third_run_with_nothing_new_is_idempotent(runs):
    (second, t2), (third, t3) = runs["second"], runs["third"]
    assert third.code == second.code == 2
    for name in t2:
        assert t2[name] == t3[name], name


def test_a_snapshot_whose_only_delivery_is_rejected_is_logged_not_counted():
    """No office delivered: the snapshot is not a 0 % month in the coverage tables, but its
    rejection is in the served load log and on stderr."""
    with pipeline("only-rejected") as p:
        p.landing.potential("2021-01-01", ["KL,,100,RDP"])
        p.landing.enrollment("2021-11-30", "kanreg_31.csv", [
            "3171010101800001,K1,A,PU,KL,,N1,X,2021-01-05,2021-10"])
        run = p.run()
        assert run.code == 2, run.out + run.err
        assert "enrollment/2021-11-30/kanreg_31.csv" in run.err and "misnamed" in run.err
        assert "no tier table: the serving file holds no snapshot yet" in run.out
        assert "Traceback" not in run.err
        assert dicts(p.serving, "SELECT source_file, status FROM load_log") == [
            {"source_file": "enrollment/2021-11-30/kanreg_31.csv", "status": "rejected"}]
        assert dicts(p.serving, "SELECT count(*) AS n FROM coverage_by_tier") == [{"n": 0}]


def test_the_connection_reading_untrusted_files_is_confined(tmp_path):
    """After ``confine``, the ingest connection reads only the landing zone, writes only the lake,
    and no statement can lift that (a file name crafted into SQL would still reach nothing)."""
    import duckdb

    from assets.resources import confine

    landing, lake, outside = tmp_path / "landing", tmp_path / "lake", tmp_path / "outside"
    for folder in (landing, lake, outside):
        folder.mkdir()
        (folder / "f.csv").write_text("a\n1\n")
    con = duckdb.connect()
    confine(con, readable=[landing], writable=[lake])
    assert con.execute("SELECT a FROM read_csv(?)", [str(landing / "f.csv")]).fetchall() == [(1,)]
    con.execute("COPY (SELECT 1 AS a) TO $f (FORMAT parquet)", {"f": str(lake / "x.parquet")})
    assert (lake / "x.parquet").exists()
    refused = [
        ("SELECT * FROM read_csv(?)", [str(outside / "f.csv")]),
        ("SELECT * FROM read_csv(?)", [str(landing / ".." / "outside" / "f.csv")]),
        ("SELECT * FROM read_text(?)", ["/etc/passwd"]),
        ("COPY (SELECT 1) TO $f (FORMAT csv)", {"f": str(outside / "y.csv")}),
        ("SET enable_external_access = true", None),
        ("SET allowed_directories = ['/']", None),
    ]
    for sql, params in refused:
        with pytest.raises(duckdb.Error):
            con.execute(sql, params)
    assert not (outside / "y.csv").exists()
