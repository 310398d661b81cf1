"""The Dagster instance `cakupan run` and `make dev` use (embedded default: SQLite under data/)."""
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
telemetry:
  enabled: false
"""


def dagster_home(default: Path = Path("data/dagster")) -> Path:
    home = Path(os.environ.get("DAGSTER_HOME") or default).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(EMBEDDED_DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def get_instance() -> dg.DagsterInstance:
    dagster_home()
    return dg.DagsterInstance.get()
