"""The landing sensor: real files in a temp landing zone, a real Dagster instance in a temp
DAGSTER_HOME (the embedded profile of pipelines/instance.py), real runs. Nothing is mocked."""
from __future__ import annotations

import json

import dagster as dg
import duckdb
import pytest

from pipelines.definitions import build_definitions
from pipelines.instance import get_instance
from pipelines.partitions import PROVINCES, SNAPSHOTS
from pipelines.resources import Settings, Warehouse
from pipelines.sensors import landing_sensor

ROWS_32 = ["3201014101900001,K1,A,PU,KL,,N1,X,2020-01-15,2021-10",
           "3201014101900002,K2,B,PU,KL,,N1,X,2020-01-15,2021-10"]
ROWS_33 = ["3301014101900003,K3,C,PU,KL,,N1,X,2020-01-15,2021-10"]
FIRST, LAST = PROVINCES.get_partition_keys()[0], PROVINCES.get_partition_keys()[-1]


class Ticks:
    """Evaluates the sensor tick after tick, carrying the cursor as the daemon does, and applies
    its dynamic partition requests to the instance."""

    def __init__(self, instance, defs):
        self.instance, self.defs, self.cursor = instance, defs, None

    def __call__(self) -> dg.SensorResult:
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor,
                                          definitions=self.defs, resources=self.defs.resources)
        result = landing_sensor(context)
        assert isinstance(result, dg.SensorResult)
        self.cursor = result.cursor
        for request in result.dynamic_partitions_requests or []:
            self.instance.add_dynamic_partitions(request.partitions_def_name,
                                                 list(request.partition_keys))
        return result


@pytest.fixture
def env(tmp_path, monkeypatch, landing):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    settings = Settings(landing=str(landing.root), serving=str(tmp_path / "serving.duckdb"))
    warehouse = Warehouse(database=str(tmp_path / "warehouse.duckdb"))
    defs = build_definitions(settings, warehouse)
    instance = get_instance()
    try:
        yield instance, defs, Ticks(instance, defs), warehouse
    finally:
        instance.dispose()


def _request(result: dg.SensorResult) -> dg.RunRequest:
    assert len(result.run_requests) == 1
    return result.run_requests[0]


def _dates(request: dg.RunRequest) -> list[str]:
    return request.run_config["ops"]["refresh"]["config"]["dates"]


def test_new_file_waits_one_tick_then_requests_its_date(env, landing):
    instance, _, tick, _ = env
    landing.enrollment("2021-10-31", "32.csv", ROWS_32)

    first = tick()
    assert not first.run_requests and "waiting" in first.skip_reason.skip_message
    assert not first.dynamic_partitions_requests

    second = tick()
    request = _request(second)
    assert _dates(request) == ["2021-10-31"]
    assert request.tags["cakupan/partition_range_start"] == f"2021-10-31|{FIRST}"
    assert request.tags["cakupan/partition_range_end"] == f"2021-10-31|{LAST}"
    assert request.job_name in (None, "refresh_job") and request.run_key
    (added,) = second.dynamic_partitions_requests
    assert added.partitions_def_name == SNAPSHOTS.name
    assert list(added.partition_keys) == ["2021-10-31"]
    assert instance.get_dynamic_partitions(SNAPSHOTS.name) == ["2021-10-31"]

    third = tick()  # nothing new: nothing requested again
    assert not third.run_requests


def test_redelivered_identical_bytes_request_nothing(env, landing):
    _, _, tick, _ = env
    path = landing.enrollment("2021-10-31", "32.csv", ROWS_32)
    tick(), _request(tick())
    landing.write("enrollment/2021-10-31/32.csv", path.read_bytes())  # same bytes, new mtime
    assert not tick().run_requests   # size/mtime moved: wait
    assert not tick().run_requests   # stable, same sha256: nothing to do
    assert not tick().run_requests


def test_changed_content_requests_only_its_date(env, landing):
    instance, _, tick, _ = env
    landing.enrollment("2021-10-31", "32.csv", ROWS_32)
    landing.enrollment("2021-11-30", "32.csv", ROWS_32)
    tick()
    assert _dates(_request(tick())) == ["2021-10-31", "2021-11-30"]

    landing.enrollment("2021-10-31", "32.csv", ROWS_32[:1])  # new bytes for one date
    assert not tick().run_requests
    result = tick()
    request = _request(result)
    assert _dates(request) == ["2021-10-31"]
    assert request.tags["cakupan/partition_range_start"] == f"2021-10-31|{FIRST}"
    assert request.tags["cakupan/partition_range_end"] == f"2021-10-31|{LAST}"
    assert not result.dynamic_partitions_requests  # the date is known already
    assert instance.get_dynamic_partitions(SNAPSHOTS.name) == ["2021-10-31", "2021-11-30"]

    # back to the earlier bytes: a new transition, so a new run_key, and a new refresh
    before = request.run_key
    landing.enrollment("2021-10-31", "32.csv", ROWS_32)
    tick()
    again = _request(tick())
    assert _dates(again) == ["2021-10-31"] and again.run_key != before


def test_half_written_file_requests_nothing_until_it_stops_growing(env, landing):
    _, _, tick, _ = env
    from conftest import HEADER
    text = "\n".join([HEADER, *ROWS_32]) + "\n"
    landing.write("enrollment/2021-10-31/32.csv", text[:40])
    assert not tick().run_requests
    landing.write("enrollment/2021-10-31/32.csv", text[:90])   # still growing
    assert not tick().run_requests
    landing.write("enrollment/2021-10-31/32.csv", text)        # complete
    assert not tick().run_requests
    assert _dates(_request(tick())) == ["2021-10-31"]


def test_a_moving_sibling_holds_back_its_date_only(env, landing):
    _, _, tick, _ = env
    landing.enrollment("2021-10-31", "32.csv", ROWS_32)
    landing.enrollment("2021-11-30", "32.csv", ROWS_32)
    tick()
    landing.write("enrollment/2021-10-31/33.csv", "nik,kpj")   # being copied
    assert _dates(_request(tick())) == ["2021-11-30"]
    landing.enrollment("2021-10-31", "33.csv", ROWS_33)
    assert not tick().run_requests
    assert _dates(_request(tick())) == ["2021-10-31"]


def test_changed_potential_requests_a_full_refresh(env, landing):
    _, _, tick, _ = env
    landing.enrollment("2021-10-31", "32.csv", ROWS_32)
    tick(), tick()
    landing.potential("2021-01-01", ["KL,,350000,RDP"])
    tick()
    request = _request(tick())
    assert _dates(request) == [] and request.tags["cakupan/snapshots"] == "all"


def test_cursor_is_json_and_persists_across_ticks(env, landing):
    instance, defs, tick, _ = env
    landing.enrollment("2021-10-31", "32.csv", ROWS_32)
    tick()
    state = json.loads(tick.cursor)
    entry = state["files"]["enrollment/2021-10-31/32.csv"]
    assert entry["sha256"] is None and entry["size"] > 0 and entry["mtime"] > 0
    assert state["requested"] == {}

    # the daemon's path: evaluate_tick on the sensor definition, cursor from the last tick
    sensor = defs.resolve_sensor_def("landing_sensor")
    with dg.build_sensor_context(instance=instance, cursor=tick.cursor, definitions=defs,
                                 resources=defs.resources) as context:
        data = sensor.evaluate_tick(context)
    assert len(data.run_requests) == 1
    state = json.loads(data.cursor)
    sha = state["files"]["enrollment/2021-10-31/32.csv"]["sha256"]
    assert len(sha) == 64 and state["requested"] == {"enrollment/2021-10-31/32.csv": sha}

    # a sensor started again from that cursor requests nothing for the same bytes
    tick.cursor = data.cursor
    assert not tick().run_requests


def test_requested_run_refreshes_the_new_snapshot_end_to_end(env, landing):
    instance, defs, tick, warehouse = env
    landing.enrollment("2021-10-31", "32.csv", ROWS_32)
    landing.enrollment("2021-10-31", "33.csv", ROWS_33)
    tick()
    request = _request(tick())

    job = defs.resolve_job_def("refresh_job")
    result = job.execute_in_process(run_config=request.run_config, instance=instance,
                                    tags=request.tags)
    assert result.success
    con = duckdb.connect(warehouse.database, read_only=True)
    try:
        national = con.execute("SELECT snapshot_date::VARCHAR, active FROM coverage_national"
                               ).fetchall()
        by_tier = con.execute("SELECT count(*) FROM coverage_by_tier WHERE snapshot_date = "
                              "DATE '2021-10-31'").fetchone()[0]
        by_region = con.execute("SELECT count(*) FROM coverage_by_region WHERE "
                                "snapshot_date = DATE '2021-10-31'").fetchone()[0]
    finally:
        con.close()
    assert national == [("2021-10-31", 3)]
    assert by_tier > 0 and by_region > 0

    children = instance.get_runs(dg.RunsFilter(tags={"cakupan/parent_run_id": result.run_id}))
    by_job = {r.job_name: r for r in children}
    assert set(by_job) == {"inputs_job", "ingest_job", "enrollment_job", "coverage_job",
                           "publish_job"}
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in children)
    ingest = by_job["ingest_job"].tags
    assert ingest["dagster/asset_partition_range_start"] == f"2021-10-31|{FIRST}"
    assert ingest["dagster/asset_partition_range_end"] == f"2021-10-31|{LAST}"
    assert by_job["coverage_job"].tags["dagster/asset_partition_range_start"] == "2021-10-31"
    materialized = instance.get_materialized_partitions(dg.AssetKey("coverage_national"))
    assert materialized == {"2021-10-31"}
