"""A backfill over many snapshot partitions is ONE run (BackfillPolicy.single_run()).

A landing zone with three historical snapshot dates; after a first `cakupan run`, one run of
``coverage_job`` over the whole range of snapshot partitions (the partition-range tags
pipelines/runner.py uses) recounts all three snapshots in that single run, with its checks.
"""
from __future__ import annotations

import dagster as dg

from pipelines.definitions import build_definitions
from pipelines.partitions import SNAPSHOTS
from pipelines.resources import Settings, Warehouse

DAYS = ["2021-08-31", "2021-09-30", "2021-10-31"]
COVERAGE = [dg.AssetKey(n) for n in ("coverage_by_tier", "coverage_national",
                                     "coverage_by_region")]


def _runs(instance: dg.DagsterInstance, job: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(job_name=job)))


def test_one_run_backfills_every_snapshot(landing, run_cakupan):
    for day in DAYS:
        landing.enrollment(day, "32.csv", [
            "3201014101900001,K1,A,PU,KL,,N1,X,2020-01-15,2021-08",
            "3201014101900002,K2,B,PU,KABKOTA,32.01,N2,Y,2020-01-15,2021-08",
        ])
    first = run_cakupan(landing)
    assert first.code == 0, first.err
    instance = dg.DagsterInstance.get()
    assert instance.get_dynamic_partitions(SNAPSHOTS.name) == DAYS
    assert len(_runs(instance, "coverage_job")) == 1  # `cakupan run` itself: one run, 3 dates

    defs = build_definitions(Settings(landing=str(landing.root), serving=str(first.serving)),
                             Warehouse(database=str(first.warehouse)))
    result = defs.resolve_job_def("coverage_job").execute_in_process(
        instance=instance, tags={"dagster/asset_partition_range_start": DAYS[0],
                                 "dagster/asset_partition_range_end": DAYS[-1]})
    assert result.success

    runs = _runs(instance, "coverage_job")
    assert len(runs) == 2 and runs[0].run_id == result.run_id  # newest first: the backfill
    materialized = {}
    for event in result.get_asset_materialization_events():
        m = event.event_specific_data.materialization
        materialized.setdefault(m.asset_key, set()).add(m.partition)
    # one materialization per asset and partition, all within the one run
    assert materialized == {key: set(DAYS) for key in COVERAGE}
    for key in COVERAGE:
        assert instance.get_materialized_partitions(key) == set(DAYS)
        latest = instance.get_latest_materialization_event(key)
        assert latest.run_id == result.run_id
    evaluations = result.get_asset_check_evaluations()
    assert {e.asset_check_key.name for e in evaluations} >= {
        "matches_schema", "region_codes_in_vintage", "fresh"}
    assert all(e.passed for e in evaluations if e.severity == dg.AssetCheckSeverity.ERROR)
    # each check ran once for the whole range, not once per partition
    assert len(evaluations) == len({e.asset_check_key for e in evaluations})
    assert first.query("SELECT count(DISTINCT snapshot_date) FROM coverage_national")[0][0] == 3
