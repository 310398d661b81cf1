"""The whole pipeline on a demo landing zone (13 month-end snapshots), figure by figure against
the generator's own bookkeeping (demo_manifest.json): tiers, national, provinces and regencies,
every file's load_log row, the planted bad rows, flows and month-on-month and year-on-year
change, region flows, the published figures' reconciliation; then the late office's delivery
and what it changes (and what it leaves alone). At scale 1 (slow), the published tier figures.
"""
from __future__ import annotations

import shutil
from fractions import Fraction

import pytest

from harness import dicts, pipeline
from pipelines.demo import generate_landing

# RDP Komisi IX, 15 Nov 2021 (docs/contract.md): the tiers' active figures, exactly.
ARTICLE_ACTIVE = {"KL": 103_942, "PROV": 23_523, "KABKOTA": 1_547_500, "KEC": 204_578,
                  "DESA": 764_400, "RTRW": 160_000}
ARTICLE_POTENTIAL = {"KL": 350_000, "PROV": 345_933, "KABKOTA": 2_500_000, "KEC": 205_000,
                     "DESA": 1_200_000, "RTRW": 9_000_000}
FLOWS = ("active", "active_prev", "new", "reactivated", "lapsed", "left")


def compare(serving, expected: dict, days=None) -> list[str]:
    """Every difference between the serving file and the manifest's ``expected``."""
    q = lambda sql, p: dicts(serving, sql, p)  # noqa: E731
    problems = []
    for day, e in expected.items():
        if days is not None and day not in days:
            continue
        tiers = {r["tier"]: r for r in q(
            "SELECT * FROM coverage_by_tier WHERE snapshot_date = ?", [day])}
        for tier, want in e["tiers"].items():
            got = tiers.get(tier, {})
            if (got.get("active"), got.get("inactive")) != (want["active"], want["inactive"]):
                problems.append(f"{day} {tier}: {got} != {want}")
        [nat] = q("SELECT * FROM coverage_national WHERE snapshot_date = ?", [day]) or [{}]
        want = e["national"]
        if (nat.get("active"), nat.get("inactive"), nat.get("active_tier_sum"),
                nat.get("offices_delivered")) != (want["active"], want["inactive"],
                                                  want["active_tier_sum"], e["offices_delivered"]):
            problems.append(f"{day} national: {nat} != {want}")
        for level, key in (("province", "provinces"), ("regency", "regencies")):
            got = {(r["region_code"], r["tier"]): (r["active"], r["inactive"]) for r in q(
                "SELECT * FROM coverage_by_region WHERE snapshot_date = ? AND region_level = ? "
                "AND active + inactive > 0", [day, level])}
            wanted = {(c, t): (v["active"], v["inactive"])
                      for c, ts in e[key].items() for t, v in ts.items()
                      if v["active"] + v["inactive"] > 0}
            if got != wanted:
                problems.append(f"{day} {key}: {sorted(set(got.items()) ^ set(wanted.items()))[:5]}")
        for src, want in e["files"].items():
            [got] = q("SELECT * FROM load_log WHERE source_file = ?", [src]) or [{}]
            if want["status"] == "superseded":
                ok = got.get("status") == "superseded"
            else:
                ok = (got.get("status"), got.get("rows_read"), got.get("rows_rejected")) == (
                    want["status"], want["rows_read"], want["rows_rejected"])
            if not ok:
                problems.append(f"{src}: {got} != {want}")
        problems += _flows(q, day, e)
    return problems


def _flows(q, day, e) -> list[str]:
    problems = []
    trend = {r["tier"]: r for r in q("SELECT * FROM coverage_trend_tier WHERE snapshot_date = ?",
                                     [day])}
    [nat] = q("SELECT * FROM coverage_trend_national WHERE snapshot_date = ?", [day])
    if nat["previous_snapshot"] != (e["previous_snapshot"] and
                                    __import__("datetime").date.fromisoformat(
                                        e["previous_snapshot"])):
        problems.append(f"{day} previous snapshot {nat['previous_snapshot']}")
    if e["flows"] is None:
        if nat["active_prev"] is not None or any(r["active_prev"] is not None
                                                 for r in trend.values()):
            problems.append(f"{day}: flows where none are expected")
        return problems
    for tier, f in e["flows"]["tiers"].items():
        got = trend[tier]
        if tuple(got[k] for k in FLOWS) != tuple(f[k] for k in FLOWS) or \
                got["comparable"] != e["comparable"]:
            problems.append(f"{day} {tier} flows: {got} != {f}")
    f = e["flows"]["national"]
    if tuple(nat[k] for k in FLOWS) != tuple(f[k] for k in FLOWS):
        problems.append(f"{day} national flows: {nat} != {f}")
    if nat["comparable_yoy"] != e["comparable_yoy"]:
        problems.append(f"{day} comparable_yoy {nat['comparable_yoy']}")
    for level, key in (("province", "provinces"), ("regency", "regencies")):
        got = {(r["tier"], r["region_code"]): (r["active"], r["active_prev"], r["gained"],
                                               r["lost"])
               for r in q("SELECT * FROM coverage_trend_region WHERE snapshot_date = ? "
                          "AND region_level = ?", [day, level])}
        for code, tiers in e["region_flows"][key].items():
            for tier, f in tiers.items():
                want = (f["active"], f["active_prev"], f["gained"], f["lost"])
                if got.get((tier, code)) != want:
                    problems.append(f"{day} {level} {code} {tier}: {got.get((tier, code))} "
                                    f"!= {want}")
    return problems


def materialized(p, asset: str) -> list[str]:
    """The partitions of every materialization of ``asset`` in the pipeline's Dagster
    instance, oldest first (a partition twice when it was materialized twice)."""
    import dagster as dg

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(p.base / "dagster_home"))
        with dg.DagsterInstance.get() as instance:
            records = instance.fetch_materializations(dg.AssetKey(asset), limit=10_000,
                                                      ascending=True).records
            return [r.asset_materialization.partition for r in records]


@pytest.fixture(scope="module")
def demo():
    with pipeline("e2e") as p:
        manifest = generate_landing(p.landing.root, scale=0.004, seed=11,
                                    progress=lambda _: None)
        result = p.run()
        assert result.code == 0, result.err
        yield p, manifest, result


def test_every_figure_of_every_snapshot_matches_the_bookkeeping(demo):
    p, manifest, _ = demo
    assert len(manifest["snapshots"]) == 13
    assert compare(p.serving, manifest["expected"]) == []


def test_year_on_year_change_is_against_the_same_month_a_year_before(demo):
    p, manifest, _ = demo
    last, first = manifest["snapshots"][-1], manifest["snapshots"][0]
    e = manifest["expected"]
    assert e[last]["year_ago_snapshot"] == first
    rows = {r["tier"]: r for r in dicts(
        p.serving, "SELECT * FROM coverage_trend_tier WHERE snapshot_date = ?", [last])}
    for tier, want in e[last]["tiers"].items():
        assert rows[tier]["active_change_yoy"] == want["active"] - e[first]["tiers"][tier][
            "active"], tier
    assert all(r["active_change_yoy"] is None
               for r in dicts(p.serving, "SELECT * FROM coverage_trend_tier "
                                         "WHERE snapshot_date = ?", [manifest["snapshots"][5]]))


def test_the_quarantine_holds_exactly_the_planted_rows(demo):
    p, manifest, _ = demo
    planted = set()
    with open(p.landing.root / manifest["bad_rows_file"], encoding="utf-8") as fh:
        header = fh.readline().strip().split(",")
        for line in fh:
            rec = dict(zip(header, line.rstrip("\n").split(",")))
            planted.add((rec["snapshot_date"], rec["source_file"], int(rec["row_number"])))
    got = {(str(r["snapshot_date"]), r["source_file"], r["row_number"])
           for r in dicts(p.warehouse, "SELECT * FROM quarantine")}
    assert got == planted


def test_the_published_figures_are_reconciled_against_the_data(demo):
    p, manifest, _ = demo
    pub = manifest["published"]
    snap = max(d for d in manifest["snapshots"] if d <= pub["published_date"])
    e = manifest["expected"][snap]
    rows = {r["row_number"]: r for r in dicts(p.serving, "SELECT * FROM reconciliation")}
    assert set(rows) == {r["row_number"] for r in pub["rows"]}
    for r in pub["rows"]:
        got = rows[r["row_number"]]
        assert str(got["snapshot_date"]) == snap
        if r["metrik"] not in ("active", "potential"):
            continue
        computed = (e["national"]["active"] if r["tingkat"] == "NASIONAL" else
                    e["tiers"][r["tingkat"]]["active"]) if r["metrik"] == "active" else (
            sum(manifest["potential_national"].values()) if r["tingkat"] == "NASIONAL"
            else manifest["potential_national"][r["tingkat"]])
        assert got["computed_value"] == computed, r
        assert got["difference"] == int(r["value"]) - computed
        assert got["verdict"] == ("match" if int(r["value"]) == computed else "differs")
    # penetration: the exact fraction behind the published rounding
    kl = next(r for r in pub["rows"] if r["tingkat"] == "KL" and r["metrik"] == "penetration_pct")
    got = rows[kl["row_number"]]
    assert got["computed_value"] == pytest.approx(float(Fraction(
        100 * e["tiers"]["KL"]["active"], manifest["potential_national"]["KL"])))


def test_a_second_run_with_nothing_new_changes_nothing(demo):
    p, _, _ = demo
    before = p.serving.read_bytes()
    again = p.run()
    assert again.code == 0 and "nothing new was delivered" in again.out
    assert p.serving.read_bytes() == before


def test_the_late_office_changes_its_month_and_the_next_one_only(demo):
    p, manifest, _ = demo
    late = manifest["late"]
    untouched = [d for d in manifest["snapshots"] if d not in late["expected_if_delivered"]]
    before = {d: dicts(p.serving, "SELECT * FROM coverage_by_region WHERE snapshot_date = ? "
                                  "ORDER BY ALL", [d]) for d in untouched}
    counts = {a: materialized(p, a) for a in ("coverage_by_tier", "coverage_trend_tier")}
    target = p.landing.root / late["delivered_as"]
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(p.landing.root / late["file"], target)   # its delivery time too
    result = p.run()
    assert result.code == 0, result.err
    assert compare(p.serving, late["expected_if_delivered"]) == []
    for d in untouched:
        assert dicts(p.serving, "SELECT * FROM coverage_by_region WHERE snapshot_date = ? "
                                "ORDER BY ALL", [d]) == before[d], d
    # what was recomputed: the late month's tables; the month after only for its trend
    assert materialized(p, "coverage_by_tier") == counts["coverage_by_tier"] + [late["snapshot"]]
    assert materialized(p, "coverage_trend_tier") == counts["coverage_trend_tier"] + sorted(
        late["expected_if_delivered"])
    bad = {(str(r["snapshot_date"]), r["row_number"]) for r in dicts(
        p.warehouse, "SELECT * FROM quarantine WHERE source_file = ?", [late["delivered_as"]])}
    assert bad == {(late["snapshot"], n) for n, _ in late["bad_rows"]}


@pytest.mark.slow
def test_scale_1_reproduces_the_published_tier_figures():
    with pipeline("scale1") as p:
        manifest = generate_landing(p.landing.root, scale=1.0, snapshots=2,
                                    progress=lambda _: None)
        result = p.run()
        assert result.code == 0, result.err
        latest = manifest["snapshots"][-1]
        got = {r["tier"]: (r["active"], r["potential"]) for r in dicts(
            p.serving, "SELECT * FROM coverage_by_tier WHERE snapshot_date = ?", [latest])}
        assert got == {t: (ARTICLE_ACTIVE[t], ARTICLE_POTENTIAL[t]) for t in ARTICLE_ACTIVE}
        assert compare(p.serving, manifest["expected"]) == []
        verdicts = {(r["tier"], r["metric"]): r["verdict"]
                    for r in dicts(p.serving, "SELECT * FROM reconciliation")}
        for tier in ("KL", "KEC", "RTRW"):   # the published tier counts, to the person
            assert verdicts[(tier, "active")] == "match"
            assert verdicts[(tier, "potential")] == "match"
        assert verdicts[("RTRW", "penetration_pct")] == "match"   # 1.78 %
