"""The generated asset checks fire on bad tables, and a failing blocking check stops publishing.

One real `cakupan run` builds a good store (module scope, tests/harness.py). Each check test
copies that warehouse and lake, corrupts the copy with plain DuckDB SQL and executes the one
check through Dagster (a run of that check alone, the real definitions and resources), then
reads the AssetCheckEvaluation. Nothing is mocked.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil

import dagster as dg
import duckdb
import pytest

from harness import TEST_KEY, pipeline
from assets.checks import CHECKS
from assets.resources import Settings, Warehouse
from pipelines.definitions import build_definitions
from readers.storage import Lake

DAYS = ("2021-09-30", "2021-10-31")
ROWS = {
    "32": ["3201014101900001,K1,A,PU,KL,,N1,X,2020-01-15,2021-09",
           "3201014101900002,K2,B,PU,KABKOTA,32.01,N2,Y,2020-01-15,2021-09",
           "3201014101900003,K3,C,PU,PROV,32,N3,Z,2020-01-15,2021-01"],
    "33": ["3301014101900004,K4,D,PU,KABKOTA,33.01,N4,W,2020-01-15,2021-09"],
}


@pytest.fixture(scope="module")
def good():
    with pipeline("checks") as p:
        p.landing.potential("2021-01-01", ["KL,,100,RDP", "PROV,32,10,RDP",
                                           "KABKOTA,32.01,5,RDP"])
        for day in DAYS:
            for province, rows in ROWS.items():
                p.landing.enrollment(day, f"{province}.csv", rows)
        result = p.run()
        assert result.code == 0, result.err
        yield p


@pytest.fixture
def copy(good, tmp_path, monkeypatch):
    """A private copy of the good store (warehouse file and lake), corrupted by the test, and a
    way to run one generated check on it through Dagster: a run of that check alone, as the
    UI's "Execute" on a check launches it, with the real definitions and resources."""
    monkeypatch.setenv("CAKUPAN_HMAC_KEY", TEST_KEY)
    wh = tmp_path / "warehouse.duckdb"
    shutil.copy(good.warehouse, wh)
    shutil.copytree(Lake.beside(good.warehouse).root, Lake.beside(wh).root)
    instance = dg.DagsterInstance.ephemeral()
    defs = build_definitions(Settings(landing=str(good.landing.root),
                                      serving=str(tmp_path / "serving.duckdb")),
                             Warehouse(database=str(wh)))

    class Copy:
        path = wh

        def sql(self, statement: str, params=None) -> None:
            con = duckdb.connect(str(wh))
            try:
                con.execute(statement, params or [])
            finally:
                con.close()

        def check(self, asset: str, name: str, snapshot: str | None = None
                  ) -> dg.AssetCheckEvaluation:
            key = dg.AssetCheckKey(dg.AssetKey(asset), name)
            result = dg.materialize(
                [*defs.assets, *defs.asset_checks], selection=dg.AssetSelection.checks(key),
                instance=instance, resources=defs.resources,
                tags={"dagster/partition": snapshot} if snapshot else {}, raise_on_error=False)
            evaluations = result.get_asset_check_evaluations()
            assert [e.asset_check_key for e in evaluations] == [key]
            return evaluations[0]

    return Copy()


def _samples(evaluation: dg.AssetCheckEvaluation) -> str:
    return evaluation.metadata["failing_samples"].value


@pytest.mark.parametrize("asset,name", [
    ("coverage_by_tier", "matches_schema"), ("coverage_national", "matches_schema"),
    ("coverage_by_region", "matches_schema"), ("load_log", "matches_schema"),
    ("quarantine", "matches_schema"), ("coverage_by_region", "region_codes_in_vintage"),
    ("load_log", "has_every_delivery"), ("coverage_trend_tier", "flows_balance"),
    ("coverage_trend_national", "flows_balance"), ("target_progress", "matches_schema"),
])
def test_every_blocking_check_passes_on_the_good_warehouse(copy, asset, name):
    evaluation = copy.check(asset, name)
    assert evaluation.passed, evaluation.metadata


def test_the_generated_checks_are_in_the_code_location():
    defs = build_definitions(Settings(), Warehouse(database="unused.duckdb"))
    graph = defs.resolve_asset_graph()
    keys = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    # every warehouse table has its schema check; the extra rules written by hand here
    for table in ("load_log", "quarantine", "coverage_by_tier", "coverage_national",
                  "coverage_by_region", "coverage_trend_tier", "coverage_trend_national",
                  "coverage_trend_region", "target_progress", "reconciliation",
                  "published_consistency"):
        assert (table, "matches_schema") in keys, table
    for extra in [("coverage_by_region", "region_codes_in_vintage"),
                  ("load_log", "has_every_delivery"), ("coverage_national", "fresh"),
                  ("coverage_trend_tier", "flows_balance"),
                  ("coverage_trend_national", "flows_balance")]:
        assert extra in keys, extra
    blocking = {(c.table, c.name): c.blocking for checks in CHECKS.values() for c in checks}
    assert blocking[("coverage_national", "fresh")] is False
    assert all(v for k, v in blocking.items() if k[1] != "fresh")


def test_duplicate_key_fails_the_schema_check(copy):
    copy.sql("INSERT INTO coverage_by_tier SELECT * FROM coverage_by_tier "
             "WHERE snapshot_date = ? AND tier = 'KL'", [DAYS[0]])
    evaluation = copy.check("coverage_by_tier", "matches_schema")
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert "KL" in _samples(evaluation)


def test_negative_count_fails_the_schema_check(copy):
    copy.sql("UPDATE coverage_by_region SET inactive = -7 WHERE region_code = '32.01'")
    evaluation = copy.check("coverage_by_region", "matches_schema")
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert "-7" in _samples(evaluation) and "must be >= 0" in _samples(evaluation)


def test_national_active_above_tier_sum_fails_the_schema_check(copy):
    copy.sql("UPDATE coverage_national SET active = active_tier_sum + 1 WHERE snapshot_date = ?",
             [DAYS[1]])
    evaluation = copy.check("coverage_national", "matches_schema")
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert "national active exceeds the sum of the tiers" in _samples(evaluation)


def test_penetration_above_100_is_only_flagged(copy):
    copy.sql("UPDATE coverage_by_tier SET penetration_pct = 250 WHERE tier = 'KL'")
    evaluation = copy.check("coverage_by_tier", "matches_schema")
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert "above 100" in evaluation.metadata["flagged"].value


def test_bad_load_log_status_fails_the_schema_check(copy):
    copy.sql("UPDATE load_log SET status = 'lost' WHERE province_code = '33'")
    evaluation = copy.check("load_log", "matches_schema")
    assert not evaluation.passed and "lost" in _samples(evaluation)


def test_region_code_missing_from_its_vintage_fails(copy):
    vintage = copy_vintage(copy.path)
    # a code from no vintage, and a real regency code filed under the wrong vintage
    copy.sql("UPDATE coverage_by_region SET region_code = '32.99' "
             "WHERE region_code = '32.01' AND snapshot_date = ?", [DAYS[0]])
    copy.sql("UPDATE coverage_by_region SET vintage = 'no-such-vintage' "
             "WHERE region_code = '33.01' AND snapshot_date = ?", [DAYS[1]])
    evaluation = copy.check("coverage_by_region", "region_codes_in_vintage")
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    samples = _samples(evaluation)
    assert "32.99" in samples and "no-such-vintage" in samples and "33.01" in samples
    assert vintage in samples
    assert "| snapshot_date | tier | region_level | region_code | vintage |" in samples
    assert evaluation.metadata["failures"].value == 2


def test_region_code_at_the_wrong_level_fails(copy):
    copy.sql("UPDATE coverage_by_region SET region_level = 'province' "
             "WHERE region_code = '33.01' AND snapshot_date = ?", [DAYS[0]])
    evaluation = copy.check("coverage_by_region", "region_codes_in_vintage")
    assert not evaluation.passed and "33.01" in _samples(evaluation)


def copy_vintage(path) -> str:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT any_value(vintage) FROM coverage_by_region "
                           "WHERE snapshot_date = ?", [DAYS[0]]).fetchone()[0]
    finally:
        con.close()


def test_a_delivery_without_load_log_row_fails(copy):
    copy.sql("DELETE FROM load_log WHERE snapshot_date = ? AND province_code = '33'", [DAYS[1]])
    evaluation = copy.check("load_log", "has_every_delivery")
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    samples = _samples(evaluation)
    assert f"| {DAYS[1]} | 33 | enrollment/{DAYS[1]}/33.csv |" in samples
    assert evaluation.metadata["failures"].value == 1
    assert evaluation.metadata["deliveries"].value == 4


def test_the_delivery_check_looks_at_the_run_snapshots_only(copy):
    copy.sql("DELETE FROM load_log WHERE snapshot_date = ?", [DAYS[1]])
    assert copy.check("load_log", "has_every_delivery", snapshot=DAYS[0]).passed
    evaluation = copy.check("load_log", "has_every_delivery")
    assert not evaluation.passed and evaluation.metadata["failures"].value == 2


def test_freshness_is_a_warning(copy, monkeypatch):
    age = (dt.date.today() - dt.date.fromisoformat(DAYS[-1])).days
    monkeypatch.setenv("CAKUPAN_FRESHNESS_DAYS", str(age + 1))
    fresh = copy.check("coverage_national", "fresh")
    assert fresh.passed and fresh.metadata["age_days"].value == age
    monkeypatch.delenv("CAKUPAN_FRESHNESS_DAYS")
    stale = copy.check("coverage_national", "fresh")  # default 45 days: 2021 is long ago
    assert not stale.passed and stale.severity == dg.AssetCheckSeverity.WARN
    assert stale.metadata["max_age_days"].value == 45
    assert stale.metadata["newest"].value == DAYS[-1]


def test_a_failing_blocking_check_stops_publishing():
    with pipeline("blocking") as p:
        for day in DAYS:
            p.landing.enrollment(day, "32.csv", ROWS["32"])
        assert p.run().code == 0
        before = p.serving.read_bytes()
        # corrupt the first snapshot, then re-deliver a file of the second one: the coverage
        # stage recounts only the second snapshot, and its checks read the whole table
        con = duckdb.connect(str(p.warehouse))
        con.execute("UPDATE coverage_by_tier SET active = -1 WHERE snapshot_date = ? "
                    "AND tier = 'KL'", [DAYS[0]])
        con.close()
        p.landing.enrollment(DAYS[1], "32.csv", ROWS["32"] + [
            "3201014101900009,K9,E,PU,KL,,N1,X,2020-01-15,2021-10"])
        result = p.run()
        assert result.code == 1, result.out + result.err
        assert "blocking check(s) coverage_by_tier:matches_schema fail" in result.err
        assert "previous good state" in result.err
        assert p.serving.read_bytes() == before
        assert not [f for f in os.listdir(p.serving.parent) if f.endswith(".tmp")]
