"""Orchestration the Dagster way (issue 8), through Dagster's own code paths.

One landing zone (three monthly snapshots, two province offices), one warehouse and one Dagster
instance per test (``pipeline``). Runs are launched the way the UI launches them (its GraphQL
API), re-executed from failure the same way, and requested by the sensors; `cakupan run` is the
real command line. Expected figures are worked out by hand below.

KL people (no region code, potential KL = 100):
  2021-08-31  32: A1 A2 A3 paid 2021-08          33: B1 B2 paid 2021-08        active 5
  2021-09-30  32: A1 A2 A3 A4 paid 2021-09       33: B1 paid 2021-09, B2 paid 2021-05
              -> active 5 (B2 inactive: 4 months), new 1 (A4), lapsed 1 (B2)
  2021-10-31  32: A1 A2 paid 2021-10             33: B1 B2 paid 2021-10
              -> active 4, left 2 (A3, A4), reactivated 1 (B2)
"""
from __future__ import annotations

import datetime as dt
import json
import shutil

import dagster as dg
import duckdb
import pytest

from harness import dicts, pipeline
from dagster_api import (drain_backfills, launch, reexecute, sensor_context,
                         submit_sensor_result, workspace)

NIK = {"A1": "3201014101900001", "A2": "3201014101900002", "A3": "3201014101900003",
       "A4": "3201014101900004", "B1": "3301014101900005", "B2": "3301014101900006"}
PAID = {  # snapshot -> office -> [(person, last paid month)]
    "2021-08-31": {"32": [("A1", "2021-08"), ("A2", "2021-08"), ("A3", "2021-08")],
                   "33": [("B1", "2021-08"), ("B2", "2021-08")]},
    "2021-09-30": {"32": [("A1", "2021-09"), ("A2", "2021-09"), ("A3", "2021-09"),
                          ("A4", "2021-09")],
                   "33": [("B1", "2021-09"), ("B2", "2021-05")]},
    "2021-10-31": {"32": [("A1", "2021-10"), ("A2", "2021-10")],
                   "33": [("B1", "2021-10"), ("B2", "2021-10")]},
}
KL_ACTIVE = {"2021-08-31": 5, "2021-09-30": 5, "2021-10-31": 4}


def write_landing(p, snapshots=PAID):
    p.landing.potential("2021-01-01", ["KL,,100,RDP"])
    for day, offices in snapshots.items():
        for office, people in offices.items():
            p.landing.enrollment(day, f"{office}.csv", [
                f"{NIK[who]},K{who},{who},PU,KL,,N1,X,2020-01-15,{paid}" for who, paid in people])


def kl(run_or_path, serving=True) -> dict[str, int]:
    path = run_or_path if not hasattr(run_or_path, "serving") else (
        run_or_path.serving if serving else run_or_path.warehouse)
    return {str(r["snapshot_date"]): r["active"] for r in dicts(
        path, "SELECT snapshot_date, active FROM coverage_by_tier WHERE tier = 'KL'")}


@pytest.fixture
def loaded():
    with pipeline("orchestration") as p:
        write_landing(p)
        first = p.run()
        assert first.code == 0, first.err
        assert kl(first) == KL_ACTIVE
        yield p


def test_flows_by_hand(loaded):
    rows = {str(r["snapshot_date"]): r for r in dicts(
        loaded.serving, 'SELECT snapshot_date, active, active_prev, new, reactivated, lapsed, '
        '"left", comparable FROM coverage_trend_tier WHERE tier = \'KL\'')}
    assert rows["2021-08-31"]["active_prev"] is None and rows["2021-08-31"]["comparable"] is None
    assert [rows["2021-09-30"][k] for k in ("active_prev", "new", "reactivated", "lapsed",
                                             "left")] == [5, 1, 0, 1, 0]
    assert [rows["2021-10-31"][k] for k in ("active_prev", "new", "reactivated", "lapsed",
                                             "left")] == [5, 0, 1, 0, 2]
    assert rows["2021-10-31"]["comparable"] is True


def test_a_second_run_with_nothing_new_launches_nothing(loaded):
    again = loaded.run("--summary-json", str(loaded.base / "again.json"))
    assert again.code == 0, again.err
    assert json.loads((loaded.base / "again.json").read_text())["runs"] == []


def test_runs_of_one_invocation_share_a_tag_and_are_launchable(loaded):
    summary = loaded.base / "first.json"
    (loaded.landing.root / "enrollment" / "2021-10-31" / "33.csv").unlink()
    loaded.landing.enrollment("2021-10-31", "33.csv", [
        f"{NIK['B1']},KB1,B1,PU,KL,,N1,X,2020-01-15,2021-10"])
    result = loaded.run("--summary-json", str(summary))
    assert result.code == 0, result.err
    outcome = json.loads(summary.read_text())
    with workspace(loaded) as (instance, _):
        runs = instance.get_runs(filters=dg.RunsFilter(
            tags={"cakupan/invocation": outcome["invocation"]}))
        assert sorted(r.run_id for r in runs) == sorted(outcome["runs"])
        assert len(runs) >= 3   # the delivery, the snapshot tables, the serving file
        for run in runs:
            assert run.status == dg.DagsterRunStatus.SUCCESS
            assert run.remote_job_origin is not None
            assert run.remote_job_origin.location_name == "cakupan"
            assert "cakupan/parent_run_id" not in run.tags and run.parent_run_id is None
        # only what changed: the 33 delivery of 2021-10-31 and that snapshot's tables
        rows = [r for r in runs if "enrollment_rows" in
                {k.to_user_string() for k in r.asset_selection or []}]
        assert [(r.tags["dagster/asset_partition_range_start"],
                 r.tags["dagster/asset_partition_range_end"]) for r in rows] == [
            ("2021-10-31|33", "2021-10-31|33")]
    assert kl(result)["2021-10-31"] == 3


def test_rematerializing_an_unchanged_partition_restores_deleted_rows(loaded):
    lake = loaded.warehouse.with_name("warehouse.lake")
    shutil.rmtree(lake / "deliveries" / "2021-10-31" / "32")
    (lake / "people" / "2021-10-31.parquet").unlink()
    con = duckdb.connect(str(loaded.warehouse))
    con.execute("DELETE FROM load_log WHERE source_file = 'enrollment/2021-10-31/32.csv'")
    con.close()
    with workspace(loaded) as (instance, ctx):
        run_ids = [launch(ctx, ["enrollment_rows"], "2021-10-31|32")]
        run_ids.append(launch(ctx, ["load_log", "quarantine", "enrollment", "coverage_by_tier",
                                    "coverage_national", "coverage_by_region"], "2021-10-31"))
        run_ids.append(launch(ctx, ["serving_file"]))
        for run_id in run_ids:
            assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
        rows = instance.get_latest_materialization_event(dg.AssetKey("enrollment_rows"))
        assert rows.asset_materialization.partition == "2021-10-31|32"
        assert rows.asset_materialization.metadata["rows_loaded"].value == 2
    assert (lake / "deliveries" / "2021-10-31" / "32" / "manifest.json").exists()
    assert kl(loaded.serving)["2021-10-31"] == 4
    assert dicts(loaded.warehouse, "SELECT status, rows_loaded FROM load_log WHERE source_file = "
                 "'enrollment/2021-10-31/32.csv'") == [{"status": "loaded", "rows_loaded": 2}]


def _corrupt(p) -> None:
    con = duckdb.connect(str(p.warehouse))
    con.execute("INSERT INTO coverage_by_tier SELECT * FROM coverage_by_tier WHERE tier = 'KL' "
                "AND snapshot_date = DATE '2021-10-31'")
    con.close()


def test_a_failed_blocking_check_keeps_the_serving_file_until_repaired(loaded):
    before = loaded.serving.read_bytes()
    _corrupt(loaded)
    with workspace(loaded) as (instance, ctx):   # the checks, executed from the UI
        run_id = launch(ctx, [], "2021-10-31", checks=[("coverage_by_tier", "matches_schema")])
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
    failed = loaded.run()
    assert failed.code == 1
    assert "coverage_by_tier:matches_schema" in failed.err
    assert loaded.serving.read_bytes() == before
    # the next nightly refresh, as the daemon runs it: the same refusal
    with workspace(loaded) as (instance, ctx):
        sensor, context = sensor_context(ctx, "nightly_refresh", json.dumps(
            {"last": (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)).timestamp()}))
        result = sensor(context)
        assert result.run_requests, result.skip_reason
        submit_sensor_result(ctx, result)
        drain_backfills(ctx)
        serving_runs = [r for r in instance.get_runs(filters=dg.RunsFilter(
            tags={"cakupan/trigger": "nightly"}))]
        assert serving_runs and all(r.status == dg.DagsterRunStatus.FAILURE
                                    for r in serving_runs)
    assert loaded.serving.read_bytes() == before
    # repaired (the duplicate removed): publishing resumes
    con = duckdb.connect(str(loaded.warehouse))
    con.execute("CREATE TEMP TABLE keep AS SELECT DISTINCT * FROM coverage_by_tier")
    con.execute("DELETE FROM coverage_by_tier")
    con.execute("INSERT INTO coverage_by_tier SELECT * FROM keep")
    con.close()
    repaired = loaded.run()
    assert repaired.code == 0, repaired.err
    assert kl(repaired) == KL_ACTIVE


def test_a_failed_run_is_reexecuted_from_failure_through_the_ui_api(loaded, monkeypatch):
    blocker = loaded.base / "blocked"
    blocker.write_text("a file where the serving folder should be")
    target = blocker / "cakupan.duckdb"
    write_landing(loaded, {"2021-10-31": {"33": [("B1", "2021-10")]}})   # a change to publish
    failed = loaded.run("--serving", str(target))
    assert failed.code == 1 and "cannot write the serving file" in failed.err
    blocker.unlink()
    monkeypatch.setattr(loaded, "serving", target)
    with workspace(loaded) as (instance, ctx):
        failed_run = [r for r in instance.get_runs() if r.status == dg.DagsterRunStatus.FAILURE]
        assert len(failed_run) == 1
        new_id = reexecute(ctx, failed_run[0].run_id)
        new = instance.get_run_by_id(new_id)
        assert new.status == dg.DagsterRunStatus.SUCCESS
        assert new.parent_run_id == failed_run[0].run_id
        steps = {e.step_key for e in instance.all_logs(new_id, of_type=dg.DagsterEventType.STEP_SUCCESS)}
        # from failure: the failed publish and the report it held back, nothing upstream again
        assert steps == {"serving_file", "report_html"}
    assert kl(target)["2021-10-31"] == 3


STALE_QUERY = """
query($key: AssetKeyInput!, $parts: [String!]) {
  assetNodeOrError(assetKey: $key) { ... on AssetNode {
    staleStatusByPartition(partitions: $parts)
    staleCausesByPartition(partitions: $parts) { reason category }
  } }
}"""


def test_a_setting_change_marks_exactly_the_dependent_partitions_stale(loaded, monkeypatch):
    from dagster_api import graphql

    from pipelines import planner
    from pipelines.definitions import defs

    monkeypatch.setenv("CAKUPAN_GRACE_MONTHS", "4")   # B2's 2021-05 payment is active in 09-30
    with workspace(loaded) as (instance, ctx):
        def stale(key, parts):   # what the UI shows on the asset's partitions page
            node = graphql(ctx, STALE_QUERY, {"key": {"path": [key]}, "parts": parts})
            return node["assetNodeOrError"]
        node = stale("enrollment", ["2021-08-31", "2021-09-30", "2021-10-31"])
        assert node["staleStatusByPartition"] == ["STALE"] * 3
        assert all(any(c["category"] == "CODE" for c in causes)
                   for causes in node["staleCausesByPartition"])
        assert stale("enrollment_rows", ["2021-09-30|33"])["staleStatusByPartition"] == ["FRESH"]
        definitions = defs()
        settings = definitions.resources["settings"]
        warehouse = definitions.resources["warehouse"]
        plan = planner.plan(settings, warehouse, instance)
        assert "enrollment_rows" not in plan.requested and "potential" not in plan.requested
        assert plan.requested["enrollment"] == {"2021-08-31", "2021-09-30", "2021-10-31"}
    rerun = loaded.run(env={"CAKUPAN_GRACE_MONTHS": "4"})
    assert rerun.code == 0, rerun.err
    assert kl(rerun) == {"2021-08-31": 5, "2021-09-30": 6, "2021-10-31": 4}


def test_a_deleted_delivery_keeps_its_rows_and_is_flagged(loaded):
    (loaded.landing.root / "enrollment" / "2021-09-30" / "33.csv").unlink()
    result = loaded.run()
    assert result.code == 0, result.err
    assert kl(result) == KL_ACTIVE
    assert dicts(loaded.serving, "SELECT status, file_present FROM load_log WHERE source_file = "
                 "'enrollment/2021-09-30/33.csv'") == [{"status": "loaded",
                                                        "file_present": False}]
    assert "deleted" in result.err or "no longer" in result.err


def test_an_instance_serves_one_warehouse(loaded, tmp_path, monkeypatch):
    other = tmp_path / "other" / "warehouse.duckdb"
    result = loaded.run("--warehouse", str(other))   # DAGSTER_HOME is the first warehouse's
    assert result.code == 1
    assert "serves the warehouse" in result.err and "\n" not in result.err.strip()
    assert not (tmp_path / "other" / "warehouse.lake" / "deliveries").exists()


def test_a_redelivery_recomputes_the_next_snapshots_flows_in_one_round(loaded):
    """2021-09-30's office 32 delivered again without A4: that snapshot has 4 active (new 0,
    lapsed 1: B2), and 2021-10-31 compares with it: active_prev 4, left 1 (A3; A4 is now absent
    at both), reactivated 1 (B2). `cakupan run` runs the trend partition of 2021-10-31 after the
    tables of 2021-09-30 in the same round (its runs go in order), not in a second one."""
    summary = loaded.base / "again.json"
    (loaded.landing.root / "enrollment" / "2021-09-30" / "32.csv").unlink()
    loaded.landing.enrollment("2021-09-30", "32.csv", [
        f"{NIK[who]},K{who},{who},PU,KL,,N1,X,2020-01-15,2021-09" for who in ("A1", "A2", "A3")])
    result = loaded.run("--summary-json", str(summary))
    assert result.code == 0, result.err
    stages = json.loads(summary.read_text())["stages"]
    # one round: the trends of both snapshots in one run (deferred, 2021-10-31's would be a run
    # of its own in a second round)
    assert ("coverage_trend_national, coverage_trend_region, coverage_trend_tier "
            "[2021-09-30 .. 2021-10-31]") in stages, stages
    rows = {str(r["snapshot_date"]): r for r in dicts(
        loaded.serving, 'SELECT snapshot_date, active, active_prev, new, reactivated, lapsed, '
        '"left" FROM coverage_trend_tier WHERE tier = \'KL\'')}
    keys_ = ("active", "active_prev", "new", "reactivated", "lapsed", "left")
    assert [rows["2021-09-30"][k] for k in keys_] == [4, 5, 0, 0, 1, 0]
    assert [rows["2021-10-31"][k] for k in keys_] == [4, 4, 0, 1, 0, 1]


def test_the_command_exits_quickly_with_its_code_and_all_its_output(loaded):
    """`python -m pipelines.cli run` (the `cakupan` entry point) leaves with os._exit after a
    run: the exit code (2: a file rejected whole), the whole tier table on stdout, the warnings
    on stderr and the summary file are all there. Office 32's 2021-10-31 file is overwritten,
    under the same name, with one that lacks required columns."""
    import os
    import subprocess
    import sys

    broken = loaded.landing.root / "enrollment" / "2021-10-31" / "32.csv"
    broken.write_text("nik,nama,segmen\n3201014101900001,A1,PU\n", encoding="utf-8")
    os.utime(broken, (broken.stat().st_mtime + 60, broken.stat().st_mtime - 3600))
    summary = loaded.base / "exit.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAKUPAN_")}
    env.update(CAKUPAN_HMAC_KEY="test-key-not-a-secret-0123456789abcdef",
               DAGSTER_HOME=str(loaded.base / "dagster_home"))
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "--landing", str(loaded.landing.root),
         "--warehouse", str(loaded.warehouse), "--serving", str(loaded.serving),
         "--summary-json", str(summary)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert json.loads(summary.read_text())["exit_code"] == 2
    assert "KL " in done.stdout and done.stdout.rstrip().splitlines()[-1].startswith("report: ")
    assert "enrollment/2021-10-31/32.csv" in done.stdout + done.stderr
    # one load_log row per file name (the contract's key), the broken file's; the rows loaded
    # earlier from that name stay in force (KL at 2021-10-31: A1 A2 B1 B2, as before)
    assert [(r["status"], r["rows_loaded"]) for r in dicts(
        loaded.serving, "SELECT status, rows_loaded FROM load_log WHERE snapshot_date = "
        "'2021-10-31' AND source_file = 'enrollment/2021-10-31/32.csv'")] == [("rejected", 0)]
    assert kl(loaded)["2021-10-31"] == 4
