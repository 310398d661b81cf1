"""Resources: the one warehouse writer and the run's settings."""
from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from schemas import enrollment
from schemas.rules import install_macros
from schemas.tables import TABLES

# Tables that only the pipeline's bookkeeping uses (not part of the contract's outputs).
INTERNAL_DDL = [
    "CREATE TABLE IF NOT EXISTS ref_vintage (vintage VARCHAR, in_force_from DATE, "
    "decree VARCHAR, file_sha256 VARCHAR)",
    "CREATE TABLE IF NOT EXISTS ref_region (vintage VARCHAR, kode VARCHAR, nama VARCHAR, "
    "level VARCHAR, parent_code VARCHAR, province_code VARCHAR, regency_code VARCHAR)",
    "CREATE TABLE IF NOT EXISTS potential (valid_from DATE, tier VARCHAR, region_code VARCHAR, "
    "region_level VARCHAR, potensi BIGINT, sumber VARCHAR, source_file VARCHAR)",
    "CREATE TABLE IF NOT EXISTS potential_set (valid_from DATE, status VARCHAR, "
    "fingerprint VARCHAR, rows_read BIGINT, message VARCHAR, loaded_at TIMESTAMP)",
    "CREATE TABLE IF NOT EXISTS delivery_state (snapshot_date DATE, province_code VARCHAR, "
    "fingerprint VARCHAR, processed_at TIMESTAMP)",
]


# Warehouse writers: DuckDB admits one writing process, so every asset that writes the warehouse
# is serialised by the pool "warehouse" (limit 1) and retried with exponential backoff
# (Dagster's delay x (2^n - 1): 2, 6, 14 s) when its step fails, e.g. on a transient "Could not
# set lock on file" while another process (a `cakupan run` from a shell, a BI tool opened
# read-write) holds the file for longer than the connection's own backoff (dagster-duckdb retries
# duckdb.connect for about 100 s). Dagster has no Definitions-wide op retry policy for assets
# (only `op_retry_policy` per asset job, which misses ad-hoc materializations from the UI), so
# every writer's decorator takes ``**WAREHOUSE_WRITER`` and pipelines/definitions.py refuses to
# build if a writer lacks it. Deterministic failures raise PermanentError: not retried.
WAREHOUSE_RETRY = dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL)
WAREHOUSE_WRITER = {"pool": "warehouse", "retry_policy": WAREHOUSE_RETRY}


class PermanentError(dg.Failure):
    """A failure that another attempt cannot fix (missing key, bad serving tables): the retry
    policy skips it (``allow_retries=False``) instead of waiting 22 s to fail the same way."""

    def __init__(self, message: str):
        super().__init__(description=message, allow_retries=False)


class Warehouse(DuckDBResource):
    """The warehouse DuckDB file. Every write goes through :meth:`connect`.

    DuckDB admits one writing process: assets that write carry the pool ``warehouse`` (limit 1)
    and connections retry with backoff while another process holds the file lock.
    """

    memory_limit: str = Field(default="1GB", description="DuckDB memory_limit")

    @contextmanager
    def connect(self):
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        cfg = {"memory_limit": self.memory_limit, "preserve_insertion_order": True,
               **self.connection_config}
        with self.model_copy(update={"connection_config": cfg}).get_connection() as con:
            try:
                for ddl in INTERNAL_DDL:
                    con.execute(ddl)
                for table in TABLES.values():
                    con.execute(table.ddl())
                install_macros(con, enrollment.MACROS)
                con.execute("CREATE OR REPLACE TEMP TABLE tier_ref (tier VARCHAR, "
                            "tier_label VARCHAR, ord INTEGER)")
                con.executemany("INSERT INTO tier_ref VALUES (?, ?, ?)", [
                    (code, label, i) for i, (code, (label, _, _)) in
                    enumerate(enrollment.TIERS.items())])
                yield con
            finally:
                con.close()


class Settings(dg.ConfigurableResource):
    """Where the landing zone and the serving file are, and how coverage is counted."""

    landing: str = Field(default="data/landing", description="landing zone directory")
    serving: str = Field(default="data/serving/cakupan.duckdb", description="serving file")
    grace_months: int = Field(default=enrollment.GRACE_MONTHS_DEFAULT,
                              description="a person is active when paid within this many months")
    suppress_k: int = Field(default=0, description="serving: hide region cells with "
                            "0 < active < k (0 = off)")

    @property
    def landing_path(self) -> Path:
        return Path(self.landing)


class HmacKeyMissing(PermanentError):
    pass


def hmac_pads(key: str | None = None) -> tuple[bytes, bytes]:
    """RFC 2104 inner and outer padded keys for HMAC-SHA256 (key from CAKUPAN_HMAC_KEY)."""
    key = os.environ.get("CAKUPAN_HMAC_KEY") if key is None else key
    if not key:
        raise HmacKeyMissing(
            "CAKUPAN_HMAC_KEY is not set: cakupan stores NIK only as a keyed HMAC-SHA256 and "
            "needs the key. Set it from your secret store (for the demo: "
            "export CAKUPAN_HMAC_KEY=\"$(cat data/demo-hmac.key)\")."
        )
    raw = key.encode("utf-8")
    if len(raw) > 64:
        raw = hashlib.sha256(raw).digest()
    raw = raw.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in raw), bytes(b ^ 0x5C for b in raw)


# DuckDB has no hmac(): HMAC-SHA256 per RFC 2104 over sha256(), with the pads bound as BLOBs.
HMAC_SQL = "sha256($opad || unhex(sha256($ipad || encode(nik))))"


def settings_from_env(landing: str | None = None, serving: str | None = None,
                      warehouse: str | None = None) -> tuple[Settings, Warehouse]:
    """Settings from CAKUPAN_* environment variables; arguments override them."""
    env = os.environ.get
    settings = Settings(
        landing=landing or env("CAKUPAN_LANDING", "data/landing"),
        serving=serving or env("CAKUPAN_SERVING", "data/serving/cakupan.duckdb"),
        grace_months=int(env("CAKUPAN_GRACE_MONTHS", enrollment.GRACE_MONTHS_DEFAULT)),
        suppress_k=int(env("CAKUPAN_SUPPRESS_K", "0")),
    )
    store = Warehouse(database=warehouse or env("CAKUPAN_WAREHOUSE",
                                                "data/warehouse/cakupan.duckdb"),
                      memory_limit=env("CAKUPAN_DUCKDB_MEMORY", "1GB"))
    return settings, store
