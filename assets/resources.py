"""Resource types of the assets: the store (warehouse file and lake) and the run's settings.

The instances are built from the environment by :mod:`pipelines.resources`.
"""
from __future__ import annotations

import os
import random
import time
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from readers import keys, storage
from schemas import enrollment


class PermanentError(dg.Failure):
    """A failure that another attempt cannot fix (a missing or wrong key, bad serving tables)."""

    def __init__(self, message: str):
        super().__init__(description=message, allow_retries=False)


_UNITS = {"bytes": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


def _limit_bytes(con: duckdb.DuckDBPyConnection) -> int:
    """``con``'s memory_limit in bytes, rounded up. Read from DuckDB, which accepts more
    spellings than one would re-parse ("1GB", "1G", "80%") and reports the limit to a tenth of
    its unit ("953.6 MiB")."""
    value, unit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0].split()
    return int((float(value) + 0.1) * _UNITS[unit.lower()])


def _locked(exc: Exception) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


INGEST_BATCH_MB = 512.0
# Measured on a scale-5 snapshot (16.3 M rows): its dedupe took 7.6 s at 1 GB, 7.1 s at 1.5 GB
# and 6.4 s at 2 GB (5.8x the 1.1 s of a scale-1 snapshot of 3.3 M rows: linear); 2 GB / 16.3 M
# rows is about 125 MB per million.
MEMORY_MB_PER_MILLION_ROWS = 128


class Warehouse(DuckDBResource):
    """The warehouse DuckDB file and, beside it, the lake of person-level Parquet files.

    DuckDB admits one writing process: :meth:`connect` waits with backoff (up to
    ``lock_timeout`` seconds) while another process holds the file, e.g. a BI tool that opened
    the warehouse read-write or a run of another refresh. Ingest never opens the warehouse: it
    writes only its delivery's folder of the lake.
    """

    memory_limit: str = Field(default="1GB", description="DuckDB memory_limit")
    threads: int = Field(default=0, description="DuckDB threads (0: one per core)")
    memory_mb_per_million_rows: int = Field(
        default=MEMORY_MB_PER_MILLION_ROWS, description="the per-snapshot tables raise "
        "memory_limit to this many MB per million rows of the run's largest snapshot, so that "
        "its dedupe and person-level joins do not spill (0: never above memory_limit)")
    lock_timeout: float = Field(default=300.0, description="seconds to wait for the file lock")
    ingest_batch_mb: float = Field(
        default=INGEST_BATCH_MB, description="ingest reads a snapshot's files in batches of at most this "
        "many MB, so that a batch's staging table fits memory_limit (README, Performance)")

    @property
    def path(self) -> Path:
        return Path(self.database)

    @property
    def lake(self) -> storage.Lake:
        return storage.Lake.beside(self.path)

    def store_id(self) -> str:
        """The store this warehouse and lake form, pinned to the HMAC key (raises
        :class:`PermanentError` without the right key)."""
        try:
            return self.lake.identity(keys.fingerprint(keys.hmac_key()))["store_id"]
        except (keys.KeyProblem, storage.OutdatedWarehouse) as exc:
            raise PermanentError(str(exc)) from None

    @contextmanager
    def connect(self, read_only: bool = False):
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.2
        while True:
            try:
                con = storage.open_connection(self.path, read_only=read_only,
                                              memory_limit=self.memory_limit,
                                              threads=self.threads or None)
                break
            except duckdb.Error as exc:
                if not _locked(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay + random.random() * delay)
                delay = min(delay * 2, 5.0)
        try:
            if not read_only:
                self._check_store(con)
            yield con
        finally:
            con.close()

    def size_memory(self, con, rows: int) -> str:
        """Raise ``con``'s memory_limit for work over ``rows`` person-rows at once: never below
        the limit it was opened with (``memory_limit``), never above 80 % of the machine's
        memory. Returns the limit in force."""
        base = _limit_bytes(con)
        want = rows * self.memory_mb_per_million_rows * (1 << 20) // 1_000_000
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        limit = max(base, min(want, ram * 4 // 5))
        if limit > base:   # an integer of ours, not a name: formatted, never a file name
            con.execute(f"SET memory_limit = '{limit // (1 << 20)}MiB'")
        return f"{limit / (1 << 30):.2f} GiB"

    def _check_store(self, con) -> None:
        try:
            storage.check_schema(con, self.path)
        except storage.OutdatedWarehouse as exc:
            raise PermanentError(str(exc)) from None
        lake_id = self.lake.store_id()
        have = storage.meta(con, "store_id")
        if have is None and lake_id is not None:
            storage.set_meta(con, "store_id", lake_id)
        elif lake_id is not None and have != lake_id:
            raise PermanentError(f"the warehouse {self.path} and the lake {self.lake.root} belong "
                                 "to different stores: keep them together (move both, or neither)")

    def memory_connection(self) -> duckdb.DuckDBPyConnection:
        """A private in-memory DuckDB with the contract's macros (ingest's workspace)."""
        # row numbers come from the scans (WITH ORDINALITY, file_row_number), never from the
        # order rows arrive in, so insertion order need not be kept
        # the ingest writes one Parquet file per delivery through a partitioned COPY, which
        # buffers rows per partition and thread: flushing every 10,000 rows, not DuckDB's
        # 524,288, keeps 34 offices' buffers inside memory_limit (scale 1, one snapshot at 1 GB:
        # COPY 17.9 s -> 10.2 s, no spilling; README, Performance)
        cfg = {"memory_limit": self.memory_limit, "preserve_insertion_order": False,
               "partitioned_write_flush_threshold": 10_000}
        if self.threads:
            cfg["threads"] = self.threads
        con = duckdb.connect(config=cfg)
        storage.prepare(con, read_only=True)
        return con


def confine(con: duckdb.DuckDBPyConnection, readable, writable) -> None:
    """From now on ``con`` touches no file outside ``readable`` (the landing zone) and
    ``writable`` (the lake and DuckDB's spill folder inside it): the connection that reads
    untrusted files has ``enable_external_access = false`` with ``allowed_directories``, and
    ``lock_configuration`` so that no statement can lift either (contract v1.2, "Files")."""
    spill = Path(writable[0]) / "tmp" / "spill"
    spill.mkdir(parents=True, exist_ok=True)
    con.execute("SET temp_directory = ?", [str(spill)])
    folders = sorted({str(Path(f).resolve()).rstrip("/") + "/" for f in [*readable, *writable]})
    con.execute("SET allowed_directories = ?", [folders])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


class Settings(dg.ConfigurableResource):
    """Where the landing zone and the serving file are, and how coverage is counted."""

    landing: str = Field(default="data/landing", description="landing zone directory")
    serving: str = Field(default="data/serving/cakupan.duckdb", description="serving file")
    grace_months: int = Field(default=enrollment.GRACE_MONTHS_DEFAULT,
                              description="a person is active when paid within this many months")
    suppress_k: int = Field(default=0, description="serving: hide region cells with "
                            "0 < active < k (0 = off)")
    settle_seconds: float = Field(default=2.0, description="a file modified more recently is "
                                  "still being written and waits for the next run")

    @property
    def landing_path(self) -> Path:
        return Path(self.landing)

    @property
    def serving_path(self) -> Path:
        return Path(self.serving)

    @property
    def report_path(self) -> Path:
        return self.serving_path.with_name("cakupan-report.html")
