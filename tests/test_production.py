"""The production profile (deploy/dagster.yaml) against a real PostgreSQL server.

A FRESH database on the local server (dropped afterwards), a temp DAGSTER_HOME that
pipelines/instance.py fills from deploy/dagster.yaml (CAKUPAN_PROFILE=production), and the two
long-running services of a deployment as subprocesses: `dagster-daemon run` and
`dagster-webserver` on a free loopback port, neither with the virtualenv on PATH. A new extract
dropped into the landing zone must make the landing sensor request one backfill whose runs
(queued, each launched in its own worker) succeed, with runs, events, the backfill and the
ticks in PostgreSQL. Every wait is bounded; the services are always stopped.
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
        assert type(instance.run_launcher).__name__ == "LocalProcessRunLauncher"
        assert instance.run_coordinator.get_run_queue_config().max_concurrent_runs == 1
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
    finally:
        instance.dispose()


def _backfills(database: str) -> list[tuple[str, str]]:
    return _query(database, "SELECT key, status FROM bulk_actions ORDER BY timestamp")


def test_landing_sensor_backfill_runs_succeed_with_events_in_postgres(tmp_path,
                                                                     production_home):
    """A new extract: the daemon's landing sensor requests one backfill; the backfill daemon
    submits its runs to the queue; the queue launches each in its own worker process (the
    production run launcher); every run succeeds and publishes; runs, events, the backfill and
    the sensor's ticks are all in PostgreSQL."""
    home, pg_env = production_home
    database = pg_env["CAKUPAN_PG_DB"]
    landing = Landing(tmp_path / "landing")
    landing.root.mkdir(parents=True)
    serving = tmp_path / "serving" / "cakupan.duckdb"
    env = base_env(home, CAKUPAN_PROFILE="production", CAKUPAN_HMAC_KEY=TEST_KEY,
                   CAKUPAN_LANDING=str(landing.root),
                   CAKUPAN_WAREHOUSE=str(tmp_path / "warehouse.duckdb"),
                   CAKUPAN_SERVING=str(serving), CAKUPAN_SENSOR_INTERVAL="2",
                   CAKUPAN_SETTLE_SECONDS="0", CAKUPAN_NIGHTLY_DEFAULT="stopped", **pg_env)
    port = free_port()
    services = []
    try:
        # the webserver first: it creates (migrates) the PostgreSQL schema
        services.append(Service("dagster-webserver", [
            executable("dagster-webserver"), "-w", str(WORKSPACE), "-h", "127.0.0.1",
            "-p", str(port)], env, tmp_path))
        wait_until(lambda: server_info(port), STARTUP_S, "/server_info", services)
        wait_until(lambda: location_loaded(port), STARTUP_S, "the code location", services)
        assert not runs(port)
        # the new extract and its denominator arrive; the daemon starts and its sensor sees them
        landing.potential("2021-01-01", ["KL,,100,RDP"])
        landing.enrollment("2021-10-31", "32.csv", ROWS)
        services.append(Service("dagster-daemon", [
            executable("dagster-daemon"), "run", "-w", str(WORKSPACE)], env, tmp_path))

        [(backfill, _)] = wait_until(lambda: _backfills(database), SENSOR_S,
                                     "the landing sensor to request a backfill", services,
                                     interval=2)
        wait_until(lambda: _backfills(database)[0][1] not in ("REQUESTED",), RUN_S * 2,
                   f"backfill {backfill} to finish", services, interval=3)
        mine = [r for r in runs(port)
                if {"key": "dagster/backfill", "value": backfill} in r["tags"]]
        wait_until(lambda: all(r["status"] in TERMINAL for r in runs(port)), RUN_S,
                   "every run to finish", services, interval=2)
        mine = [r for r in runs(port)
                if {"key": "dagster/backfill", "value": backfill} in r["tags"]]
        assert [r["status"] for r in mine] == ["SUCCESS"] * 4, (
            f"{mine}\n" + "\n".join(s.tail() for s in services))
        assert _backfills(database) == [(backfill, "COMPLETED_SUCCESS")]
    finally:
        for svc in reversed(services):
            svc.stop()

    tags = [{t["key"]: t["value"] for t in r["tags"]} for r in mine]
    # launched by the production launcher, each in a worker process of its own
    assert all(t.get("cakupan/worker_pid") for t in tags)
    assert len({t["cakupan/worker_pid"] for t in tags}) == 4
    assert all(t["cakupan/trigger"] == "landing_sensor" for t in tags)
    # the runs and their events live in PostgreSQL
    ids = [r["runId"] for r in mine]
    statuses = {s for (s,) in _query(database, "SELECT status FROM runs WHERE run_id = ANY(%s)",
                                     (ids,))}
    assert statuses == {"SUCCESS"}
    events = {t for (t,) in _query(database, "SELECT DISTINCT dagster_event_type FROM event_logs "
                                   "WHERE run_id = ANY(%s)", (ids,))}
    assert {"PIPELINE_ENQUEUED", "PIPELINE_START", "PIPELINE_SUCCESS",
            "ASSET_MATERIALIZATION", "ASSET_CHECK_EVALUATION"} <= events, events
    materialized = {k for (k,) in _query(
        database, "SELECT DISTINCT asset_key FROM event_logs "
        "WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")}
    for asset in ("enrollment_rows", "enrollment", "coverage_national", "serving_file"):
        assert f'["{asset}"]' in materialized, materialized
    partitions = {k for (k,) in _query(database, "SELECT partition FROM dynamic_partitions")}
    assert partitions == {"2021-10-31|32", "2021-10-31"}
    assert serving.exists()
    ticks = _query(database, "SELECT count(*) FROM job_ticks")[0][0]
    assert ticks >= 2, "the sensor's ticks are stored in the schedule storage"
