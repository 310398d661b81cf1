"""Warehouse writers retry with exponential backoff while another process holds the DuckDB lock."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets.reference import region_reference
from pipelines.definitions import _check_retry_policy, build_definitions
from pipelines.instance import get_instance
from pipelines.resources import WAREHOUSE_RETRY, Settings, Warehouse

HOLD_LOCK = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE IF NOT EXISTS lock_holder (x INTEGER)")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def test_every_warehouse_writer_has_the_retry_policy():
    from pipelines.definitions import defs
    writers = [a for a in defs.resolve_asset_graph().assets_defs
               if a.is_executable and a.op.pool == "warehouse"]
    assert {a.op.name for a in writers} >= {"region_reference", "potential", "enrollment_rows",
                                            "load_log", "quarantine", "enrollment",
                                            "coverage_national", "serving_file"}
    assert all(a.op.retry_policy == WAREHOUSE_RETRY for a in writers)
    assert WAREHOUSE_RETRY.backoff == dg.Backoff.EXPONENTIAL and WAREHOUSE_RETRY.max_retries == 3

    bare = dg.asset(name="bare_writer", pool="warehouse")(lambda: None)
    with pytest.raises(dg.DagsterInvariantViolationError, match="bare_writer"):
        _check_retry_policy([region_reference, bare])


class FlakyWarehouse(Warehouse):
    """The real warehouse, except that the first connection of a step fails as DuckDB does when
    another process keeps the file locked for longer than the connection's own backoff."""

    failures_left_file: str

    def connect(self):
        marker = Path(self.failures_left_file)
        left = int(marker.read_text())
        if left > 0:
            marker.write_text(str(left - 1))
            raise duckdb.IOException(f'IO Error: Could not set lock on file "{self.database}": '
                                     "Conflicting lock is held")
        return super().connect()


def test_a_lock_error_is_retried_with_backoff(tmp_path, monkeypatch, landing):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    landing.root.mkdir(parents=True)
    marker = tmp_path / "failures_left"
    marker.write_text("1")
    warehouse = FlakyWarehouse(database=str(tmp_path / "warehouse.duckdb"),
                               failures_left_file=str(marker))
    defs = build_definitions(Settings(landing=str(landing.root)), warehouse)
    instance = get_instance()
    try:
        started = time.perf_counter()
        result = defs.resolve_job_def("inputs_job").execute_in_process(
            instance=instance, raise_on_error=False)
        elapsed = time.perf_counter() - started
    finally:
        instance.dispose()
    assert result.success
    retried = [e.step_key for e in result.all_events
               if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert retried == ["region_reference"]
    assert elapsed >= 2  # the first delay of the policy
    assert [WAREHOUSE_RETRY.calculate_delay(n) for n in (1, 2, 3)] == [2, 6, 14]


def test_a_short_lock_is_waited_out_by_the_connection(tmp_path, monkeypatch, landing):
    """A lock held by another process for a few seconds: the connection's own backoff
    (dagster-duckdb, about 100 s in all) waits it out, the step does not even fail."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    db = tmp_path / "warehouse.duckdb"
    landing.root.mkdir(parents=True)
    defs = build_definitions(Settings(landing=str(landing.root)), Warehouse(database=str(db)))
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(db), "2"],
                              stdout=subprocess.PIPE, text=True)
    instance = get_instance()
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.perf_counter()
        result = defs.resolve_job_def("inputs_job").execute_in_process(
            instance=instance, raise_on_error=False)
        elapsed = time.perf_counter() - started
    finally:
        holder.wait(timeout=30)
        instance.dispose()
    assert result.success and elapsed >= 1


def test_a_permanent_failure_is_not_retried(tmp_path, monkeypatch, landing):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.delenv("CAKUPAN_HMAC_KEY")
    landing.enrollment("2021-10-31", "32.csv",
                       ["3201014101900001,K1,A,PU,KL,,N1,X,2020-01-15,2021-10"])
    defs = build_definitions(Settings(landing=str(landing.root)),
                             Warehouse(database=str(tmp_path / "warehouse.duckdb")))
    instance = get_instance()
    try:
        instance.add_dynamic_partitions("snapshots", ["2021-10-31"])
        started = time.perf_counter()
        result = defs.resolve_job_def("ingest_job").execute_in_process(
            instance=instance, raise_on_error=False, partition_key="2021-10-31|32")
        elapsed = time.perf_counter() - started
    finally:
        instance.dispose()
    assert not result.success
    assert not [e for e in result.all_events
                if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    failure = result.failure_data_for_node("enrollment_rows")
    assert "CAKUPAN_HMAC_KEY is not set" in failure.error.message
    assert elapsed < 2
