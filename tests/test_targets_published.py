"""Targets, target progress, published figures, reconciliation and release consistency
(contract v1.2), on a landing zone built by hand. Every expected figure is worked out below.

Province office 32, four monthly snapshots 2021-06-30 .. 2021-09-30, every row active (paid in
the snapshot's month). People per tier and snapshot:
  KL (no code)                 100 110 120 130   potential KL = 1000 -> 10, 11, 12, 13 %
  RTRW (32.01.01.1001)          10  11  12  13   potential RTRW = 1000 -> 1.0 .. 1.3 %
  KEC (32.01.01)               500 500 500 500   potential KEC = 1000 -> 50 % (flat)
  KABKOTA (32.01)               50  48  46  44   potential KABKOTA/32 = 100 (falling 2/month)
  PROV (32)                      2   2   2   2   potential PROV = 3 -> 66.666... %
The first KL person also holds the first KEC post (same NIK): at 2021-09-30 the tiers add up to
130 + 13 + 500 + 44 + 2 = 689 and the national distinct count is 688.
"""
from __future__ import annotations

import datetime as dt

import pytest

from harness import dicts, pipeline

SNAPS = ["2021-06-30", "2021-07-31", "2021-08-31", "2021-09-30"]
PEOPLE = {"KL": (None, [100, 110, 120, 130]), "RTRW": ("32.01.01.1001", [10, 11, 12, 13]),
          "KEC": ("32.01.01", [500] * 4), "KABKOTA": ("32.01", [50, 48, 46, 44]),
          "PROV": ("32", [2] * 4)}
OFFSET = {"KL": 0, "RTRW": 1000, "KEC": 2000, "KABKOTA": 3000, "PROV": 4000}
POTENTIAL = ["KL,,1000,x", "RTRW,,1000,x", "KEC,,1000,x", "KABKOTA,32,100,x", "PROV,,3,x"]
TARGETS = [
    "tingkat,kode_wilayah,target_pct,target_date,sumber",
    "KL,,\"12,3%\",31/12/2021,boundary: 12.3 x 1000 / 100 is exactly 123",
    "RTRW,,50,2022-12-31,late",
    "KEC,,60%,2022-12-31,flat",
    "Kab/Kota,32,80,2022-12-31,falling",
    "DESA,,10,2022-12-31,no potential",
    "NASIONAL,,\"50,0\",2030-12-31,national",
]


def nik(tier: str, i: int) -> str:
    n = 0 if tier == "KEC" and i == 0 else OFFSET[tier] + i   # KL #0 also holds KEC #0
    return f"320101410190{n:04d}"


def write(p) -> None:
    p.landing.potential("2021-01-01", POTENTIAL)
    for k, day in enumerate(SNAPS):
        rows = []
        for tier, (code, counts) in PEOPLE.items():
            rows += [f"{nik(tier, i)},K,N,PU,{tier},{code or ''},N1,X,2020-01-15,{day[:7]}"
                     for i in range(counts[k])]
        p.landing.enrollment(day, "32.csv", rows)
    p.landing.write("targets/demo.csv", "\n".join(TARGETS) + "\n")


@pytest.fixture(scope="module")
def run():
    with pipeline("targets") as p:
        write(p)
        published_rows(p)
        result = p.run()
        assert result.code == 0, result.err
        yield p, result


def progress(p, day: str) -> dict:
    return {(r["tier"], r["region_code"]): r for r in dicts(
        p.serving, "SELECT * FROM target_progress WHERE snapshot_date = ?", [day])}


def test_national_figures_by_hand(run):
    p, _ = run
    nat = dicts(p.serving, "SELECT active, active_tier_sum FROM coverage_national "
                "WHERE snapshot_date = DATE '2021-09-30'")
    assert nat == [{"active": 688, "active_tier_sum": 689}]


def test_people_to_target_is_exact_at_the_boundary(run):
    p, _ = run
    first = progress(p, "2021-06-30")[("KL", None)]
    # ceil(12.3 x 1000 / 100) = 123 exactly (in DOUBLE 12.3 * 1000 / 100 is 123.00000000000001)
    assert first["people_to_target"] == 23
    assert first["uncovered"] == 900
    assert str(first["target_pct"]) == "12.300000000000"


def test_projection_met(run):
    p, _ = run
    met = progress(p, "2021-09-30")[("KL", None)]   # 13 % >= 12.3 %
    assert met["people_to_target"] == 0
    assert met["projected_date"] == dt.date(2021, 9, 30) and met["on_track"] is True


def test_projection_on_track(run):
    p, _ = run
    row = progress(p, "2021-08-31")[("KL", None)]   # 12 %, slope 1 pp/month over 3 points
    assert row["trend_pp_per_month"] == pytest.approx(1.0)
    # ceil((12.3 - 12) / 1) = 1 month after August: the last day of September
    assert row["projected_date"] == dt.date(2021, 9, 30) and row["on_track"] is True


def test_projection_late(run):
    p, _ = run
    row = progress(p, "2021-09-30")[("RTRW", None)]   # 1.3 %, slope 0.1 over 4 points
    assert row["trend_pp_per_month"] == pytest.approx(0.1)
    # ceil((50 - 1.3) / 0.1) = 487 months after September 2021: April 2062
    assert row["projected_date"] == dt.date(2062, 4, 30) and row["on_track"] is False
    assert row["people_to_target"] == 500 - 13


def test_projection_flat_and_falling(run):
    p, _ = run
    flat = progress(p, "2021-09-30")[("KEC", None)]
    assert flat["trend_pp_per_month"] == 0 and flat["projected_date"] is None
    assert flat["on_track"] is None
    falling = progress(p, "2021-09-30")[("KABKOTA", "32")]
    assert falling["region_level"] == "province"
    assert falling["trend_pp_per_month"] == pytest.approx(-2.0)
    assert falling["projected_date"] is None and falling["on_track"] is None
    assert falling["people_to_target"] == 80 - 44 and falling["uncovered"] == 56


def test_projection_needs_three_points(run):
    p, _ = run
    two = progress(p, "2021-07-31")[("KL", None)]
    assert two["trend_pp_per_month"] is None and two["projected_date"] is None
    assert two["on_track"] is None


def test_no_potential_makes_every_derived_column_null(run):
    p, _ = run
    row = progress(p, "2021-09-30")[("DESA", None)]
    assert row["potential"] is None and row["penetration_pct"] is None
    for column in ("people_to_target", "uncovered", "trend_pp_per_month", "projected_date",
                   "on_track"):
        assert row[column] is None, column


def test_national_target_uses_distinct_people(run):
    p, _ = run
    row = progress(p, "2021-09-30")[("NASIONAL", None)]
    assert row["region_level"] == "national" and row["active"] == 688
    assert row["potential"] is None    # not all six tiers have a national potential


def test_one_row_per_target_and_snapshot(run):
    p, _ = run
    assert dicts(p.serving, "SELECT count(*) AS n FROM target_progress") == [{"n": 6 * 4}]


# -- published figures ---------------------------------------------------------------------

RELEASE = [  # (row, expected verdict) of published/2021-10-15/rilis.csv, compared with 09-30
    ("KL,,active,130", "match"),
    ("KL,,active,1.300", "differs"),              # 1,300 people, not 130
    ("KL,,potential,1.000", "match"),             # the potential in force
    ("KL,,penetration_pct,\"13,0%\"", "match"),
    ("KL,,penetration_pct,13.09", "differs"),
    ("KL,,inactive,0", "match"),
    ("PROV,,penetration_pct,\"66,7%\"", "match"),     # 66.666... rounds to 66.7
    ("PROV,,penetration_pct,\"66,6%\"", "truncated"),
    ("PROV,,penetration_pct,66.66", "truncated"),
    ("PROV,,penetration_pct,\"66,67 %\"", "match"),
    ("PROV,,penetration_pct,66.5", "differs"),
    ("NASIONAL,,active,688", "match"),            # distinct people
    ("NASIONAL,,active,689", "differs"),          # the tier sum is not the national figure
    ("NASIONAL,,penetration_pct,\"20%\"", "no_data"),   # no national potential
    ("Kab/Kota,32,active,44", "match"),           # a province row, against coverage_by_region
    ("KABKOTA,3201,active,44", "match"),          # a regency row
    ("KABKOTA,32.02,active,5", "no_data"),        # nobody counted there
    ("KL,,active,12.5", "unreadable"),            # a count with a decimal part
    ("Honorer,,active,10", "unreadable"),
    ("KL,,members,10", "unreadable"),
    ("KL,,penetration_pct,\"12,3,4%\"", "unreadable"),
]


def published_rows(p) -> None:
    header = "tingkat,kode_wilayah,metrik,nilai,sumber"
    p.landing.write("published/2021-10-15/rilis.csv",
                    "\n".join([header] + [f"{row},uji" for row, _ in RELEASE]) + "\n")
    p.landing.write("published/2021-01-15/lama.csv", f"{header}\nKL,,active,1,uji\n")
    complete = ["KL,,active,130", "PROV,,potential,3", "PROV,,penetration_pct,\"66,6%\"",
                "KABKOTA,,active,44", "KEC,,active,500", "DESA,,active,0",
                "RTRW,,potential,1.000", "RTRW,,penetration_pct,\"1,3%\"",
                "KL,,potential,1000", "KL,,penetration_pct,\"13,0\""]
    p.landing.write("published/2021-10-20/lengkap.csv", "\n".join(
        [header] + [f"{r},uji" for r in complete + ["NASIONAL,,active,689"]]) + "\n")
    p.landing.write("published/2021-10-25/beda.csv", "\n".join(
        [header] + [f"{r},uji" for r in complete[:-1] + ["KL,,penetration_pct,\"12,9\"",
                                                        "NASIONAL,,active,\"3.050\""]]) + "\n")


def test_reconciliation_verdicts(run):
    p, _ = run
    got = dicts(p.serving, "SELECT row_number, verdict, snapshot_date, message FROM "
                "reconciliation WHERE source_file = 'published/2021-10-15/rilis.csv' "
                "ORDER BY row_number")
    assert [(r["row_number"], r["verdict"]) for r in got] == [
        (i + 1, verdict) for i, (_, verdict) in enumerate(RELEASE)]
    readable = [r for r in got if r["verdict"] != "unreadable"]
    assert {r["snapshot_date"] for r in readable if r["verdict"] != "no_data"} == {
        dt.date(2021, 9, 30)}
    assert all(r["message"] and "\n" not in r["message"] for r in got)


def test_reconciliation_values_and_decimals(run):
    p, _ = run
    rows = {r["row_number"]: r for r in dicts(
        p.serving, "SELECT * FROM reconciliation WHERE source_file = "
        "'published/2021-10-15/rilis.csv'")}
    assert rows[2]["published_value"] == 1300 and rows[2]["difference"] == 1300 - 130
    assert rows[8]["published_decimals"] == 1
    assert rows[8]["computed_value"] == pytest.approx(200 / 3)
    assert rows[9]["published_decimals"] == 2 and rows[2]["published_decimals"] is None


def test_a_release_before_every_snapshot_has_no_data(run):
    p, _ = run
    assert dicts(p.serving, "SELECT verdict FROM reconciliation WHERE source_file = "
                 "'published/2021-01-15/lama.csv'") == [{"verdict": "no_data"}]


def test_release_consistency(run):
    p, _ = run
    got = {(str(r["published_date"]), r["check"], r["tier"]): r for r in dicts(
        p.serving, "SELECT * FROM published_consistency")}
    # 130 + round(3 x 66.6 / 100) = 2 + 44 + 500 + 0 + round(1000 x 1.3 / 100) = 13 -> 689
    ok = got[("2021-10-20", "tier_sum_vs_national", None)]
    assert ok["verdict"] == "consistent" and ok["recomputed_value"] == 689
    off = got[("2021-10-25", "tier_sum_vs_national", None)]
    assert off["verdict"] == "inconsistent"
    assert off["published_value"] == 3050 and off["difference"] == 3050 - 689
    assert got[("2021-10-15", "tier_sum_vs_national", None)]["verdict"] == "incomplete"
    assert got[("2021-10-20", "pct_vs_counts", "KL")]["verdict"] == "match"
    assert got[("2021-10-25", "pct_vs_counts", "KL")]["verdict"] == "differs"
    # PROV has a percentage and a potential but no active count: no row
    assert ("2021-10-20", "pct_vs_counts", "PROV") not in got


def test_a_rejected_targets_set_keeps_the_previous_one(run):
    p, _ = run
    before = dicts(p.warehouse, "SELECT * FROM targets ORDER BY tier, region_code")
    p.landing.write("targets/more.csv", "tingkat,kode_wilayah,target_pct,target_date,sumber\n"
                    "KL,,20,2022-12-31,a second KL target\n"      # duplicated (KL, national)
                    "NASIONAL,32,10,2022-12-31,national with a code\n"
                    "KEC,32.01.01,10,2022-12-31,district level\n"
                    "KL,99.99,10,2022-12-31,unknown code\n"
                    "KL,,tinggi,31/02/2022,bad pct and date\n")
    rejected = p.run()
    assert rejected.code == 2
    assert "targets" in rejected.err and "rejected" in rejected.err
    for rule in ("target_unique", "national_without_code", "kode_level", "kode_exists",
                 "target_pct_format", "target_date_format"):
        assert rule in rejected.err, rule
    assert dicts(p.warehouse, "SELECT * FROM targets ORDER BY tier, region_code") == before
    (p.landing.root / "targets" / "more.csv").unlink()
    assert p.run().code == 0
