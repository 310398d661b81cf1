"""The production profile (deploy/dagster.yaml) against a real PostgreSQL server.

A FRESH database on the local server (dropped afterwards), a temp DAGSTER_HOME that
pipelines/instance.py fills from deploy/dagster.yaml (CAKUPAN_PROFILE=production), and the two
long-running services of a deployment as subprocesses: `dagster-daemon run` and
`dagster-webserver` on a free loopback port. A new extract dropped into the landing zone must
make the landing sensor launch a run (through the queued run coordinator) that succeeds, and
that run's events must be in PostgreSQL's event_logs table. Every wait is bounded; the
services are always stopped.
"""
from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from conftest import TEST_KEY, Landing
from services import (WORKSPACE, Service, base_env, executable, free_port, location_loaded, runs,
                      server_info, wait_until)

psycopg2 = pytest.importorskip("psycopg2", reason="psycopg2 (dagster-postgres) is not installed")

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}
STARTUP_S, SENSOR_S, RUN_S = 180, 180, 240
ROWS = ["3201014101900001,K1,A,PU,KL,,N1,X,2020-01-15,2021-10",
        "3201014101900002,K2,B,PU,KL,,N1,X,2020-01-15,2021-10"]
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


def _connect(dbname: str):
    return psycopg2.connect(**{**PG, "dbname": dbname}, connect_timeout=5)


@pytest.fixture
def database():
    """A fresh database on the local PostgreSQL server, dropped afterwards."""
    try:
        admin = _connect(PG["dbname"])
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable on {PG['host']}:{PG['port']} "
                    f"(user {PG['user']}): {str(exc).strip()}")
    admin.autocommit = True
    name = f"cakupan_test_{secrets.token_hex(6)}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _query(dbname: str, sql: str, params=()):
    con = _connect(dbname)
    try:
        with con.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        con.close()


@pytest.fixture
def production_home(tmp_path, monkeypatch, database):
    """DAGSTER_HOME prepared the way `make prod-home` does it."""
    from pipelines.instance import PRODUCTION_DAGSTER_YAML, dagster_home

    pg_env = {"CAKUPAN_PG_HOST": PG["host"], "CAKUPAN_PG_PORT": str(PG["port"]),
              "CAKUPAN_PG_USER": PG["user"], "CAKUPAN_PG_PASSWORD": "",
              "CAKUPAN_PG_DB": database}
    monkeypatch.setenv("CAKUPAN_PROFILE", "production")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    home = dagster_home()
    assert (home / "dagster.yaml").read_text() == PRODUCTION_DAGSTER_YAML.read_text()
    return home, pg_env


def test_production_profile_validates_and_uses_postgres(production_home, monkeypatch):
    import dagster as dg

    home, pg_env = production_home
    for key, value in pg_env.items():
        monkeypatch.setenv(key, value)
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_monitoring_enabled
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    finally:
        instance.dispose()


def test_landing_sensor_run_succeeds_with_events_in_postgres(tmp_path, production_home):
    from pipelines.definitions import defs

    sensors = {s.name for s in defs.sensors or []}
    if "landing_sensor" not in sensors:
        pytest.skip("landing sensor not defined yet (pipelines/sensors.py)")
    home, pg_env = production_home
    database = pg_env["CAKUPAN_PG_DB"]
    landing = Landing(tmp_path / "landing")
    landing.root.mkdir(parents=True)
    serving = tmp_path / "serving" / "cakupan.duckdb"
    env = base_env(home, CAKUPAN_PROFILE="production", CAKUPAN_HMAC_KEY=TEST_KEY,
                   CAKUPAN_LANDING=str(landing.root),
                   CAKUPAN_WAREHOUSE=str(tmp_path / "warehouse.duckdb"),
                   CAKUPAN_SERVING=str(serving), CAKUPAN_SENSOR_INTERVAL="2",
                   CAKUPAN_SCHEDULE_DEFAULT="stopped", **pg_env)  # only sensor runs
    port = free_port()
    services = []
    try:
        # the webserver first: it creates (migrates) the PostgreSQL schema
        services.append(Service("dagster-webserver", [
            executable("dagster-webserver"), "-w", str(WORKSPACE), "-h", "127.0.0.1",
            "-p", str(port)], env, tmp_path))
        wait_until(lambda: server_info(port), STARTUP_S, "/server_info", services)
        wait_until(lambda: location_loaded(port), STARTUP_S, "the code location", services)
        services.append(Service("dagster-daemon", [
            executable("dagster-daemon"), "run", "-w", str(WORKSPACE)], env, tmp_path))
        wait_until(lambda: _query(database, "SELECT daemon_type FROM daemon_heartbeats "
                                  "WHERE daemon_type = 'SENSOR'"),
                   STARTUP_S, "the daemon's sensor heartbeat", services)

        landing.enrollment("2021-10-31", "32.csv", ROWS)  # the new extract

        def sensor_runs():
            return [r for r in runs(port) if {"key": "dagster/sensor_name",
                                              "value": "landing_sensor"} in r["tags"]]

        launched = wait_until(sensor_runs, SENSOR_S, "the landing sensor to launch a run",
                              services, interval=2)
        run_id = launched[0]["runId"]
        done = wait_until(lambda: [r for r in runs(port) if r["runId"] == run_id
                                   and r["status"] in TERMINAL],
                          RUN_S, f"run {run_id} to finish", services, interval=2)
        assert done[0]["status"] == "SUCCESS", (
            f"{done[0]}\n" + "\n".join(s.tail() for s in services))
        assert done[0]["jobName"] == "refresh_job"
    finally:
        for svc in reversed(services):
            svc.stop()

    # the run and its events live in PostgreSQL
    (status,) = _query(database, "SELECT status FROM runs WHERE run_id = %s", (run_id,))[0]
    assert status == "SUCCESS"
    events = {t for (t,) in _query(database, "SELECT DISTINCT dagster_event_type FROM event_logs "
                                   "WHERE run_id = %s", (run_id,))}
    assert {"PIPELINE_ENQUEUED", "PIPELINE_START", "PIPELINE_SUCCESS"} <= events, events
    # its child runs (the stage jobs) materialized the new snapshot's assets, also in PostgreSQL
    materialized = {k for (k,) in _query(
        database, "SELECT DISTINCT asset_key FROM event_logs "
        "WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")}
    for asset in ("enrollment_rows", "enrollment", "coverage_national", "serving_file"):
        assert f'["{asset}"]' in materialized, materialized
    assert serving.exists()
    ticks = _query(database, "SELECT count(*) FROM job_ticks")[0][0]
    assert ticks >= 2, "the sensor's ticks are stored in the schedule storage"
