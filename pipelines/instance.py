"""The Dagster instance: embedded (SQLite under the warehouse's folder) or production.

``CAKUPAN_PROFILE=production`` selects deploy/dagster.yaml instead (PostgreSQL storage; queued
runs; run monitoring; connection from CAKUPAN_PG_* environment variables).

A Dagster instance serves one store (warehouse and lake): its DAGSTER_HOME records the store it
serves (``cakupan-store.json``), and a run against another store is refused. Without
DAGSTER_HOME, each warehouse gets its own instance beside it (``<warehouse>.dagster/``), so a
``--warehouse`` elsewhere never mixes into the default one's UI.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parents[1]
LOCATION_NAME = "cakupan"    # workspace.yaml names the code location the same way
# One run at a time (DuckDB admits one writer); a worker that dies is failed by run monitoring
# and its run re-executed from failure once.
EMBEDDED_DAGSTER_YAML = """\
# cakupan embedded profile: SQLite storage in this folder (pipelines/instance.py writes it).
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 1
run_launcher:
  module: pipelines.launcher
  class: LocalProcessRunLauncher
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  poll_interval_seconds: 10
  max_resume_run_attempts: 0
run_retries:
  enabled: true
  max_retries: 1
  retry_on_asset_or_op_failure: false
telemetry:
  enabled: false
nux:
  enabled: false
# Dagster's SQLite event log in its default folder, its connections kept open
# (pipelines/event_log.py: 4.7 s -> 3.2 s of event writes a scale-1 night)
event_log_storage:
  module: pipelines.event_log
  class: KeptOpenSqliteEventLogStorage
  config:
    base_dir: {events}
"""
PRODUCTION_DAGSTER_YAML = ROOT / "deploy" / "dagster.yaml"
PROFILES = ("embedded", "production")
STORE_FILE = "cakupan-store.json"


class InstanceMismatch(RuntimeError):
    pass


def default_home(warehouse: Path) -> Path:
    warehouse = Path(warehouse).absolute()
    return warehouse.with_name(warehouse.stem + ".dagster")


def embedded_yaml(home: Path) -> str:
    """The embedded profile's dagster.yaml for ``home``: the event log where Dagster's default
    puts it (``history/runs/``), so an instance created before keeps its history."""
    return EMBEDDED_DAGSTER_YAML.replace(
        "{events}", json.dumps(str(Path(home).absolute() / "history" / "runs") + os.sep))


def dagster_home(warehouse: Path | None = None) -> Path:
    """DAGSTER_HOME (set to the warehouse's own instance when unset), with its dagster.yaml."""
    from pipelines.resources import DEFAULT_WAREHOUSE

    if os.environ.get("DAGSTER_HOME"):
        home = Path(os.environ["DAGSTER_HOME"]).absolute()
    else:
        home = default_home(warehouse or Path(os.environ.get("CAKUPAN_WAREHOUSE")
                                              or DEFAULT_WAREHOUSE))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    profile = os.environ.get("CAKUPAN_PROFILE") or "embedded"
    if profile not in PROFILES:
        raise ValueError(f"CAKUPAN_PROFILE={profile!r}: expected one of {', '.join(PROFILES)}")
    wanted = (PRODUCTION_DAGSTER_YAML.read_text() if profile == "production"
              else embedded_yaml(home))
    if not config.exists() or config.read_text() != wanted:
        config.write_text(wanted)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def bind(home: Path, warehouse: Path, store_id: str | None) -> None:
    """Record that ``home`` serves this store, or refuse if it serves another (``store_id``
    None: a store not created yet, refused by an instance that serves one already)."""
    path = Path(home) / STORE_FILE
    mine = {"store_id": store_id, "warehouse": str(Path(warehouse).absolute())}
    if path.exists():
        bound = json.loads(path.read_text())
        if bound.get("store_id") != store_id:
            raise InstanceMismatch(
                f"the Dagster instance {home} serves the warehouse {bound.get('warehouse')}, not "
                f"{mine['warehouse']}: unset DAGSTER_HOME to give this warehouse its own "
                "instance, or point DAGSTER_HOME at a new folder")
    if store_id is not None and (not path.exists() or json.loads(path.read_text()) != mine):
        path.write_text(json.dumps(mine, indent=1))


def get_instance(warehouse: Path | None = None) -> dg.DagsterInstance:
    dagster_home(warehouse)
    return dg.DagsterInstance.get()
