"""The nightly schedule, evaluated at a fixed time, and the run it requests executed for real
in a temp DAGSTER_HOME."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import pytest

from pipelines.definitions import build_definitions
from pipelines.instance import get_instance
from pipelines.resources import Settings, Warehouse
from pipelines.schedules import nightly_schedule

JAKARTA = ZoneInfo("Asia/Jakarta")
ROWS = ["3201014101900001,K1,A,PU,KL,,N1,X,2020-01-15,2021-10",
        "3201014101900002,K2,B,PU,PROV,32,N1,X,2020-01-15,2021-09"]


@pytest.fixture
def env(tmp_path, monkeypatch, landing):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.delenv("CAKUPAN_NIGHTLY_CRON", raising=False)
    settings = Settings(landing=str(landing.root), serving=str(tmp_path / "serving.duckdb"))
    warehouse = Warehouse(database=str(tmp_path / "warehouse.duckdb"))
    instance = get_instance()
    try:
        yield instance, settings, warehouse
    finally:
        instance.dispose()


def test_nightly_at_two_in_jakarta_requests_a_full_refresh(env):
    instance, settings, warehouse = env
    defs = build_definitions(settings, warehouse)
    schedule = defs.resolve_schedule_def("nightly_refresh")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "Asia/Jakarta"
    assert schedule.job_name == "refresh_job"

    when = dt.datetime(2026, 11, 25, 2, 0, tzinfo=JAKARTA)   # 2026-11-24 19:00 UTC
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=when) as context:
        request = schedule(context)
    assert isinstance(request, dg.RunRequest)
    assert request.run_config == {"ops": {"refresh": {"config": {"dates": []}}}}
    assert request.tags["cakupan/trigger"] == "nightly"
    assert request.tags["cakupan/scheduled_for"] == "2026-11-25T02:00:00+07:00"
    assert request.run_key == "nightly-2026-11-25T02:00:00+07:00"

    # the daemon's path gives the same request
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=when) as context:
        data = schedule.evaluate_tick(context)
    assert [r.run_key for r in data.run_requests] == [request.run_key]


def test_cron_comes_from_the_environment(env, monkeypatch):
    _, settings, warehouse = env
    monkeypatch.setenv("CAKUPAN_NIGHTLY_CRON", "30 23 * * 1-5")
    schedule = build_definitions(settings, warehouse).resolve_schedule_def("nightly_refresh")
    assert schedule.cron_schedule == "30 23 * * 1-5"
    assert schedule.execution_timezone == "Asia/Jakarta"
    assert nightly_schedule("15 1 * * *").cron_schedule == "15 1 * * *"


def test_the_nightly_run_materializes_everything_pending(env, landing):
    instance, settings, warehouse = env
    landing.potential("2021-01-01", ["KL,,350000,RDP", "PROV,32,1000,RDP"])
    landing.enrollment("2021-10-31", "32.csv", ROWS)
    landing.enrollment("2021-11-30", "32.csv", ROWS[:1])
    defs = build_definitions(settings, warehouse)
    schedule = defs.resolve_schedule_def("nightly_refresh")
    job = defs.resolve_job_def("refresh_job")

    def nightly(day: int) -> dg.ExecuteInProcessResult:
        when = dt.datetime(2026, 11, day, 2, 0, tzinfo=JAKARTA)
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=when) as ctx:
            request = schedule(ctx)
        result = job.execute_in_process(run_config=request.run_config, instance=instance,
                                        tags=request.tags)
        assert result.success
        return result

    first = nightly(25)
    con = duckdb.connect(warehouse.database, read_only=True)
    try:
        national = con.execute("SELECT snapshot_date::VARCHAR, active FROM coverage_national "
                               "ORDER BY 1").fetchall()
        kl = con.execute("SELECT potential FROM coverage_by_tier WHERE tier = 'KL' AND "
                         "snapshot_date = DATE '2021-10-31'").fetchone()[0]
    finally:
        con.close()
    assert national == [("2021-10-31", 2), ("2021-11-30", 1)]
    assert kl == 350000
    serving = duckdb.connect(settings.serving, read_only=True)
    try:
        assert serving.execute("SELECT count(*) FROM coverage_national").fetchone()[0] == 2
    finally:
        serving.close()
    jobs = {r.job_name for r in instance.get_runs(
        dg.RunsFilter(tags={"cakupan/parent_run_id": first.run_id}))}
    assert jobs == {"inputs_job", "ingest_job", "enrollment_job", "coverage_job", "publish_job"}

    # the next night, nothing changed: nothing is ingested or recounted, the file is republished
    second = nightly(26)
    jobs = {r.job_name for r in instance.get_runs(
        dg.RunsFilter(tags={"cakupan/parent_run_id": second.run_id}))}
    assert jobs == {"inputs_job", "publish_job"}
