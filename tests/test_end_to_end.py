"""The whole pipeline on demo landing zones, against the generator's own bookkeeping
(demo_manifest.json), and at scale 1 against the published tier figures."""
from __future__ import annotations

import json
import shutil

import pytest

from pipelines.demo import generate_landing
from tests.conftest import Landing

# RDP Komisi IX, 15 Nov 2021 (docs/contract.md): the tiers' active figures, exactly.
ARTICLE_ACTIVE = {"KL": 103_942, "PROV": 23_523, "KABKOTA": 1_547_500, "KEC": 204_578,
                  "DESA": 764_400, "RTRW": 160_000}
ARTICLE_POTENTIAL = {"KL": 350_000, "PROV": 345_933, "KABKOTA": 2_500_000, "KEC": 205_000,
                     "DESA": 1_200_000, "RTRW": 9_000_000}


def _compare_with_manifest(result, manifest) -> list[str]:
    problems = []
    for day, expected in manifest["expected"].items():
        tiers = {t: (a, i) for t, a, i in result.query(
            "SELECT tier, active, inactive FROM coverage_by_tier WHERE snapshot_date = ?",
            [day], serving=True)}
        for tier, want in expected["tiers"].items():
            if tiers.get(tier) != (want["active"], want["inactive"]):
                problems.append(f"{day} {tier}: {tiers.get(tier)} != {want}")
        national = result.query("SELECT active, inactive, active_tier_sum FROM coverage_national "
                                "WHERE snapshot_date = ?", [day], serving=True)
        want = expected["national"]
        if national != [(want["active"], want["inactive"], want["active_tier_sum"])]:
            problems.append(f"{day} national: {national} != {want}")
        regions = {(p, t): (a, i) for p, t, a, i in result.query(
            "SELECT region_code, tier, active, inactive FROM coverage_by_region "
            "WHERE snapshot_date = ? AND region_level = 'province' AND active + inactive > 0",
            [day], serving=True)}
        wanted = {(p, t): (v["active"], v["inactive"]) for p, tiers_ in
                  expected["provinces"].items() for t, v in tiers_.items()}
        if regions != wanted:
            problems.append(f"{day} provinces differ: {set(regions.items()) ^ set(wanted.items())}")
        for src, want in expected["files"].items():
            got = result.query("SELECT status, rows_read, rows_rejected FROM load_log "
                               "WHERE source_file = ?", [src], serving=True)
            if want["status"] == "superseded":
                ok = got and got[0][0] == "superseded"
            else:
                ok = got == [(want["status"], want["rows_read"], want["rows_rejected"])]
            if not ok:
                problems.append(f"{src}: {got} != {want}")
    return problems


def test_demo_small_scale_matches_the_generator_bookkeeping(tmp_path, run_cakupan):
    landing = Landing(tmp_path / "landing")
    manifest = generate_landing(landing.root, scale=0.005, snapshots=3, seed=7,
                                progress=lambda _: None)
    result = run_cakupan(landing)
    assert result.code == 0, result.err
    assert _compare_with_manifest(result, manifest) == []
    # the quarantine holds exactly the rows the generator planted, row by row
    planted = set()
    with open(landing.root / manifest["bad_rows_file"], encoding="utf-8") as fh:
        header = fh.readline().strip().split(",")
        for line in fh:
            rec = dict(zip(header, line.rstrip("\n").split(",")))
            planted.add((rec["snapshot_date"], rec["source_file"], int(rec["row_number"])))
    got = {(str(d), s, n) for d, s, n in result.query(
        "SELECT snapshot_date, source_file, row_number FROM quarantine")}
    assert got == planted
    # a second run with nothing new changes nothing
    before = result.query("SELECT * FROM coverage_by_region ORDER BY ALL", serving=True)
    again = run_cakupan(landing)
    assert again.code == 0
    assert again.query("SELECT * FROM coverage_by_region ORDER BY ALL", serving=True) == before
    assert "nothing new was delivered" in again.out


@pytest.mark.slow
def test_scale_1_reproduces_the_published_tier_figures(tmp_path, run_cakupan):
    landing = Landing(tmp_path / "landing")
    manifest = generate_landing(landing.root, scale=1.0, progress=lambda _: None)
    try:
        result = run_cakupan(landing)
        assert result.code == 0, result.err
        latest = manifest["snapshots"][-1]
        got = {t: (a, p) for t, a, p in result.query(
            "SELECT tier, active, potential FROM coverage_by_tier WHERE snapshot_date = ?",
            [latest], serving=True)}
        assert got == {t: (ARTICLE_ACTIVE[t], ARTICLE_POTENTIAL[t]) for t in ARTICLE_ACTIVE}
        assert _compare_with_manifest(result, manifest) == []
    finally:
        shutil.rmtree(landing.root, ignore_errors=True)
