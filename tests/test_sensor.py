"""The landing sensor and the nightly refresh: real files in a temp landing zone, a real Dagster
instance, the real sensor functions, the backfills they request run by the backfill daemon's own
iteration (in this process, each run in this process too). Nothing is mocked."""
from __future__ import annotations

import datetime as dt
import json
import os
import zoneinfo

import dagster as dg
import pytest

from harness import dicts, pipeline
from dagster_api import drain_backfills, sensor_context, submit_sensor_result, workspace
from pipelines.sensors import due

ROWS_32 = ["3201014101900001,K1,A,PU,KL,,N1,X,2020-01-15,2021-10",
           "3201014101900002,K2,B,PU,KL,,N1,X,2020-01-15,2021-10"]
ROWS_33 = ["3301014101900003,K3,C,PU,KL,,N1,X,2020-01-15,2021-10"]


class Ticks:
    """Evaluates the landing sensor tick after tick, carrying the cursor as the daemon does."""

    def __init__(self, ctx):
        self.ctx, self.cursor = ctx, None

    def __call__(self) -> dg.SensorResult:
        sensor, context = sensor_context(self.ctx, "landing_sensor", self.cursor)
        result = sensor(context)
        assert isinstance(result, dg.SensorResult)
        self.cursor = result.cursor
        return result


def requested(result: dg.SensorResult) -> dict[str, set]:
    """asset -> partitions of the one backfill a tick requests."""
    assert len(result.run_requests) == 1, result.skip_reason
    subset = result.run_requests[0].asset_graph_subset
    out = {}
    for key in subset.asset_keys:
        parts = subset.partitions_subsets_by_asset_key.get(key)
        out[key.to_user_string()] = set(parts.get_partition_keys()) if parts else {None}
    return out


@pytest.fixture
def env():
    with pipeline("sensor") as p:
        p.landing.potential("2021-01-01", ["KL,,100,RDP"])
        p.landing.enrollment("2021-10-31", "32.csv", ROWS_32)
        with workspace(p) as (instance, ctx):
            yield p, instance, ctx, Ticks(ctx)


def test_new_files_wait_one_tick_then_request_one_backfill(env):
    p, instance, ctx, tick = env
    first = tick()
    assert not first.run_requests and "stop changing" in str(first.skip_reason)
    second = tick()
    parts = requested(second)
    assert parts["enrollment_rows"] == {"2021-10-31|32"}
    assert parts["enrollment"] == {"2021-10-31"} and parts["serving_file"] == {None}
    added = {r.partitions_def_name: list(r.partition_keys)
             for r in second.dynamic_partitions_requests}
    assert added == {"deliveries": ["2021-10-31|32"], "snapshots": ["2021-10-31"]}
    assert second.run_requests[0].tags["cakupan/trigger"] == "landing_sensor"
    submit_sensor_result(ctx, second)
    drain_backfills(ctx)
    runs = instance.get_runs()
    assert runs and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    assert all(r.remote_job_origin and r.remote_job_origin.location_name == "cakupan"
               for r in runs)
    assert len(runs) == 4   # inputs, the delivery, the snapshot tables, the unpartitioned stage
    assert dicts(p.serving, "SELECT active FROM coverage_by_tier WHERE tier = 'KL'") == [
        {"active": 2}]
    assert "up to date" in str(tick().skip_reason)


def _settle(ctx, tick):
    result = tick()
    if not result.run_requests:
        result = tick()
    submit_sensor_result(ctx, result)
    drain_backfills(ctx)
    return result


def test_only_what_changed_is_requested(env):
    p, instance, ctx, tick = env
    _settle(ctx, tick)
    p.landing.enrollment("2021-10-31", "33.csv", ROWS_33)
    assert not tick().run_requests   # still moving
    parts = requested(tick())
    assert parts["enrollment_rows"] == {"2021-10-31|33"}
    assert "potential" not in parts and "region_reference" not in parts


def test_identical_bytes_redelivered_request_nothing(env):
    p, instance, ctx, tick = env
    _settle(ctx, tick)
    path = p.landing.root / "enrollment" / "2021-10-31" / "32.csv"
    path.write_bytes(path.read_bytes())   # same bytes, new mtime (settled: in the past)
    os.utime(path, (path.stat().st_mtime - 100, path.stat().st_mtime - 100))
    assert not tick().run_requests
    assert "up to date" in str(tick().skip_reason)


def test_a_file_going_back_to_earlier_bytes_is_a_change(env):
    p, instance, ctx, tick = env
    _settle(ctx, tick)
    path = p.landing.root / "enrollment" / "2021-10-31" / "32.csv"
    original = path.read_bytes()
    path.write_bytes(original + b"3201014101900009,K9,Z,PU,KL,,N1,X,2020-01-15,2021-10\n")
    os.utime(path, (path.stat().st_mtime - 100, path.stat().st_mtime - 100))
    _settle(ctx, tick)
    assert dicts(p.serving, "SELECT active FROM coverage_by_tier WHERE tier = 'KL'") == [
        {"active": 3}]
    path.write_bytes(original)
    os.utime(path, (path.stat().st_mtime - 50, path.stat().st_mtime - 50))
    _settle(ctx, tick)
    assert dicts(p.serving, "SELECT active FROM coverage_by_tier WHERE tier = 'KL'") == [
        {"active": 2}]


def test_a_half_written_file_holds_back_only_its_delivery(env):
    p, instance, ctx, tick = env
    _settle(ctx, tick)
    p.landing.enrollment("2021-10-31", "33.csv", ROWS_33)
    p.landing.enrollment("2021-09-30", "32.csv", ROWS_32[:1])
    tick()
    growing = p.landing.root / "enrollment" / "2021-10-31" / "33.csv"
    with open(growing, "a") as fh:
        fh.write("3301014101900004,K4,D,PU,KL,,N1,X,2020-01-15,2021-10\n")
    first = tick()
    assert requested(first)["enrollment_rows"] == {"2021-09-30|32"}
    submit_sensor_result(ctx, first)
    drain_backfills(ctx)
    os.utime(growing, (growing.stat().st_mtime - 100, growing.stat().st_mtime - 100))
    held = tick()                       # its mtime moved: one more tick for it
    if held.run_requests:               # (what 2021-09-30 defers, 2021-10-31's trend, may run)
        assert "enrollment_rows" not in requested(held)
        submit_sensor_result(ctx, held)
        drain_backfills(ctx)
    assert requested(tick())["enrollment_rows"] == {"2021-10-31|33"}


def test_no_new_refresh_while_one_is_in_progress(env):
    p, instance, ctx, tick = env
    tick()
    submit_sensor_result(ctx, tick())    # a backfill requested, not yet run
    p.landing.enrollment("2021-10-31", "33.csv", ROWS_33)
    tick()
    assert "in progress" in str(tick().skip_reason)
    drain_backfills(ctx)
    assert requested(tick())["enrollment_rows"] == {"2021-10-31|33"}


WIB = zoneinfo.ZoneInfo("Asia/Jakarta")


def test_the_nightly_refresh_is_due_once_per_cron_time_in_jakarta():
    two_am = dt.datetime(2026, 11, 25, 2, 0, tzinfo=WIB)
    last = (two_am - dt.timedelta(hours=3)).timestamp()
    assert due("0 2 * * *", last, two_am - dt.timedelta(minutes=1)) is None
    assert due("0 2 * * *", last, two_am + dt.timedelta(minutes=1)) == two_am
    assert due("0 2 * * *", two_am.timestamp(), two_am + dt.timedelta(hours=5)) is None
    # 02:00 WIB is 19:00 UTC the day before
    assert two_am.astimezone(dt.timezone.utc).hour == 19


def test_the_nightly_refresh_requests_everything_pending(env):
    p, instance, ctx, tick = env
    sensor, context = sensor_context(ctx, "nightly_refresh", None)
    first = sensor(context)
    assert not first.run_requests and "first tick" in str(first.skip_reason)
    yesterday = (dt.datetime.now(WIB) - dt.timedelta(days=1, hours=1)).timestamp()
    sensor, context = sensor_context(ctx, "nightly_refresh", json.dumps({"last": yesterday}))
    result = sensor(context)
    parts = requested(result)
    assert parts["enrollment_rows"] == {"2021-10-31|32"} and "serving_file" in parts
    assert result.run_requests[0].tags["cakupan/trigger"] == "nightly"
    assert json.loads(result.cursor)["last"] > yesterday
    submit_sensor_result(ctx, result)
    drain_backfills(ctx)
    assert dicts(p.serving, "SELECT active FROM coverage_by_tier WHERE tier = 'KL'") == [
        {"active": 2}]
