"""The Dagster instance `cakupan run` and `make dev` use (embedded default: SQLite under data/).

``CAKUPAN_PROFILE=production`` selects deploy/dagster.yaml instead (PostgreSQL storage, queued
runs, run monitoring; connection from CAKUPAN_PG_* environment variables).
"""
from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

# Every warehouse writer carries pool "warehouse": DuckDB admits one writing process.
EMBEDDED_DAGSTER_YAML = """\
# cakupan embedded profile: SQLite storage in this folder, warehouse writers serialised.
concurrency:
  pools:
    default_limit: 1
  runs:
    # refresh_job (landing sensor, nightly schedule) runs one at a time, queued
    tag_concurrency_limits:
      - key: cakupan/refresh
        limit: 1
telemetry:
  enabled: false
"""
PRODUCTION_DAGSTER_YAML = Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml"
PROFILES = ("embedded", "production")


def dagster_home(default: Path = Path("data/dagster")) -> Path:
    home = Path(os.environ.get("DAGSTER_HOME") or default).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    profile = os.environ.get("CAKUPAN_PROFILE") or "embedded"
    if profile not in PROFILES:
        raise ValueError(f"CAKUPAN_PROFILE={profile!r}: expected one of {', '.join(PROFILES)}")
    if profile == "production":  # deploy/dagster.yaml is the source of truth: keep it in sync
        wanted = PRODUCTION_DAGSTER_YAML.read_text()
        if not config.exists() or config.read_text() != wanted:
            config.write_text(wanted)
    elif not config.exists():
        config.write_text(EMBEDDED_DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def get_instance() -> dg.DagsterInstance:
    dagster_home()
    return dg.DagsterInstance.get()
