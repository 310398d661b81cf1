"""Load (issue: reliability): a night with all 38 province offices re-delivered at once, and 50
small deliveries arriving while a run is in progress. Both complete with every file loaded
exactly once and nothing processed twice: each delivery partition is materialized once per
version of its file, and the figures are the rows written here, counted by hand.

The real command line runs as a subprocess (its own Dagster instance in a temp DAGSTER_HOME);
the test reads that instance's event log afterwards.
"""
from __future__ import annotations

import collections
import os
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

import procs
from conftest import HEADER
from schemas.reference import load_ref_region

SNAPSHOTS = ("2025-01-31", "2025-02-28", "2025-03-31")   # vintage 2025: 38 provinces


def provinces_2025() -> list[str]:
    con = duckdb.connect()
    load_ref_region(con)
    codes = [r[0] for r in con.execute(
        "SELECT kode FROM ref_region WHERE vintage = '2025' AND level = 'province' ORDER BY 1"
    ).fetchall()]
    con.close()
    return codes


PROVINCES = provinces_2025()


def office_file(snapshot: str, province: str, rows: int) -> str:
    """``rows`` people of the provincial tier in ``province``, all paid last month: active."""
    paid = snapshot[:7]
    lines = [HEADER] + [
        f"{province}0101410190{i:04d},K{i},Zqx Nama {i},PU,PROV,{province},"
        f"N{province},Pemprov {province},2020-01-15,{paid}" for i in range(1, rows + 1)]
    return "\n".join(lines) + "\n"


def write(landing: Path, snapshot: str, province: str, rows: int, mtime: float) -> Path:
    path = landing / "enrollment" / snapshot / f"{province}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(office_file(snapshot, province, rows))
    os.utime(path, (mtime, mtime))
    return path


def potential(landing: Path) -> None:
    path = landing / "potential" / "2025-01-01" / "potensi.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("tingkat,kode_wilayah,potensi,sumber\n" + "".join(
        f"{t},,1000,test\n" for t in ("KL", "PROV", "KABKOTA", "KEC", "DESA", "RTRW")))
    old = time.time() - 3600
    os.utime(path, (old, old))


def materializations(store: procs.Store) -> collections.Counter:
    """delivery partition -> how many times enrollment_rows was materialized for it."""
    with dg.DagsterInstance.from_config(str(store.home)) as instance:
        records = instance.fetch_materializations(dg.AssetKey("enrollment_rows"),
                                                  limit=10_000).records
        return collections.Counter(r.partition_key for r in records)


def loaded(store: procs.Store) -> dict[str, tuple[str, int]]:
    con = duckdb.connect(str(store.serving), read_only=True)
    try:
        return {src: (status, n) for src, status, n in con.execute(
            "SELECT source_file, status, rows_loaded FROM load_log").fetchall()}
    finally:
        con.close()


def prov_active(store: procs.Store) -> dict[str, int]:
    con = duckdb.connect(str(store.serving), read_only=True)
    try:
        return {str(d): n for d, n in con.execute(
            "SELECT snapshot_date, active FROM coverage_by_tier WHERE tier = 'PROV'").fetchall()}
    finally:
        con.close()


@pytest.fixture
def store():
    with procs.scratch("load") as base:
        s = procs.Store(base)
        potential(s.landing)
        yield s


def test_all_38_offices_redelivered_in_one_night(store):
    assert len(PROVINCES) == 38
    old = time.time() - 3000
    for p in PROVINCES:
        write(store.landing, SNAPSHOTS[0], p, 3, old)
    first = store.run()
    assert first.code == 0, first.tail()
    # every office re-delivers at once, each file with one person more
    for p in PROVINCES:
        write(store.landing, SNAPSHOTS[0], p, 4, old + 600)
    second = store.run()
    assert second.code == 0, second.tail()
    counts = materializations(store)
    assert set(counts) == {f"{SNAPSHOTS[0]}|{p}" for p in PROVINCES}
    assert set(counts.values()) == {2}            # once per night, never twice in one
    assert loaded(store) == {f"enrollment/{SNAPSHOTS[0]}/{p}.csv": ("loaded", 4)
                             for p in PROVINCES}
    assert prov_active(store) == {SNAPSHOTS[0]: 38 * 4}
    third = store.run()
    assert third.code == 0 and "nothing new was delivered" in third.out, third.tail()
    assert materializations(store) == counts


def test_fifty_deliveries_arriving_during_a_run(store):
    old = time.time() - 3000
    for p in PROVINCES:
        write(store.landing, SNAPSHOTS[0], p, 3, old)
    live = store.start()
    assert live.wait_stage("ingest") is not None
    arriving = [(SNAPSHOTS[1], p) for p in PROVINCES] + [(SNAPSHOTS[2], p)
                                                         for p in PROVINCES[:12]]
    assert len(arriving) == 50
    for snapshot, p in arriving:     # each lands now, while the run is working
        write(store.landing, snapshot, p, 2, time.time())
        time.sleep(0.02)
    during = live.wait()
    assert during.code == 0, during.tail()
    time.sleep(2.5)                  # the settle time: the late files are complete now
    after = store.run()
    assert after.code == 0, after.tail()
    counts = materializations(store)
    expected = {f"{SNAPSHOTS[0]}|{p}" for p in PROVINCES} | {f"{s}|{p}" for s, p in arriving}
    assert set(counts) == expected
    assert set(counts.values()) == {1}            # every file loaded once, nothing twice
    want = {f"enrollment/{SNAPSHOTS[0]}/{p}.csv": ("loaded", 3) for p in PROVINCES}
    want |= {f"enrollment/{s}/{p}.csv": ("loaded", 2) for s, p in arriving}
    assert loaded(store) == want
    assert prov_active(store) == {SNAPSHOTS[0]: 38 * 3, SNAPSHOTS[1]: 38 * 2,
                                  SNAPSHOTS[2]: 12 * 2}


def test_ingest_in_small_batches_publishes_the_same_tables():
    """A snapshot's files are read in batches bounded by CAKUPAN_INGEST_BATCH_MB (so that a
    batch's staging table fits memory at any scale): with batches of 40 KB, each snapshot is read
    in several batches, and every serving table and lake count is the same as with one batch per
    snapshot."""
    with procs.scratch("batches") as base:
        one = procs.Store(base / "one")
        procs.demo_landing(one.landing, 0.005, 2, 3)
        many = procs.Store(base / "many", landing=one.landing)
        first = one.run()
        assert first.code in (0, 2), first.tail()
        second = many.run(CAKUPAN_INGEST_BATCH_MB="0.04")
        assert second.code == first.code, second.tail()
        assert "batches)" not in first.err
        batched = [line for line in second.err.splitlines() if "batches)" in line]
        assert len(batched) == 2, second.err      # both snapshots, each in several batches
        assert procs.serving_tables(many.serving) == procs.serving_tables(one.serving)
        assert procs.lake_counts(many.warehouse) == procs.lake_counts(one.warehouse)


def test_memory_limit_grows_with_the_largest_snapshot(tmp_path):
    """The per-snapshot tables get CAKUPAN_DUCKDB_MEMORY_PER_MROWS per million rows of the run's
    largest snapshot, never less than the limit the connection was opened with (in any spelling
    DuckDB accepts) and never more than 80 % of RAM; read back from a real DuckDB connection
    (figures by hand: 2 M rows x 1000 MB = 2000 MiB)."""
    from assets.resources import Warehouse

    def warehouse(per_million: int) -> Warehouse:
        return Warehouse(database=str(tmp_path / "w.duckdb"), memory_limit="256MB",
                         memory_mb_per_million_rows=per_million)

    def setting(value: str) -> str:
        return duckdb.connect(config={"memory_limit": value}).execute(
            "SELECT current_setting('memory_limit')").fetchone()[0]

    def limit_after(rows: int, w: Warehouse = warehouse(1000), opened: str = "256MB") -> str:
        con = duckdb.connect(config={"memory_limit": opened})
        w.size_memory(con, rows)
        return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]

    assert limit_after(100_000) == setting("256MB")           # 100 MiB wanted: the floor holds
    assert limit_after(2_000_000) == setting("2000MiB")
    ram_mib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 4 // 5 // (1 << 20)
    assert limit_after(10**12) == setting(f"{ram_mib}MiB")    # capped at 80 % of the machine
    assert limit_after(10**9, w=warehouse(0)) == setting("256MB")        # 0: never raised
    assert limit_after(1_000_000, opened="3G") == setting("3G")          # DuckDB's spelling
