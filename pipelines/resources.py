"""The resources of the code location, from CAKUPAN_* environment variables."""
from __future__ import annotations

import os
from pathlib import Path

from assets.resources import INGEST_BATCH_MB, MEMORY_MB_PER_MILLION_ROWS, Settings, Warehouse
from schemas import enrollment

DEFAULT_WAREHOUSE = "data/warehouse/cakupan.duckdb"
DEFAULTS = {"CAKUPAN_LANDING": "data/landing", "CAKUPAN_WAREHOUSE": DEFAULT_WAREHOUSE,
            "CAKUPAN_SERVING": "data/serving/cakupan.duckdb"}


def settings_from_env(env: dict | None = None) -> tuple[Settings, Warehouse]:
    env = os.environ if env is None else env
    get = lambda name: env.get(name) or DEFAULTS.get(name)  # noqa: E731
    settings = Settings(
        landing=str(Path(get("CAKUPAN_LANDING")).absolute()),
        serving=str(Path(get("CAKUPAN_SERVING")).absolute()),
        grace_months=int(env.get("CAKUPAN_GRACE_MONTHS") or enrollment.GRACE_MONTHS_DEFAULT),
        suppress_k=int(env.get("CAKUPAN_SUPPRESS_K") or 0),
        settle_seconds=float(env.get("CAKUPAN_SETTLE_SECONDS") or 2),
    )
    warehouse = Warehouse(database=str(Path(get("CAKUPAN_WAREHOUSE")).absolute()),
                          memory_limit=env.get("CAKUPAN_DUCKDB_MEMORY") or "1GB",
                          threads=int(env.get("CAKUPAN_DUCKDB_THREADS") or 0),
                          ingest_batch_mb=float(env.get("CAKUPAN_INGEST_BATCH_MB") or INGEST_BATCH_MB),
                          memory_mb_per_million_rows=int(
                              env.get("CAKUPAN_DUCKDB_MEMORY_PER_MROWS")
                              or MEMORY_MB_PER_MILLION_ROWS))
    return settings, warehouse
