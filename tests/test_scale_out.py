"""The scale-out route, as far as it runs here: ingest in parallel processes, each writing its own
delivery partitions into the lake (no warehouse lock is taken by ingest), then one aggregation
over everything they wrote, with figures identical to a single-process run of the same files.

Each ingest worker is a separate Python process materializing a contiguous range of the
``enrollment_rows`` partitions (one snapshot date's deliveries) through Dagster, the way a
Docker or Kubernetes run launcher would run two backfill runs on two machines; they share the
Dagster instance (the run storage a deployment shares in PostgreSQL) and the lake folder (the
object-store prefix in a deployment).
"""
from __future__ import annotations

import shutil
import subprocess
import sys

import procs
from readers.landing import scan

from assets.ingest import delivery_keys

WORKER = r"""
import sys
import dagster as dg
from pipelines.instance import dagster_home
from pipelines.definitions import build_definitions
from pipelines.resources import settings_from_env
from assets.ingest import enrollment_rows

mode, *keys = sys.argv[1:]
dagster_home()
settings, warehouse = settings_from_env()
with dg.DagsterInstance.get() as instance:
    if mode == "prepare":
        instance.add_dynamic_partitions("deliveries", keys)
        sys.exit(0)
    result = dg.materialize(
        [enrollment_rows], instance=instance,
        resources={"settings": settings, "warehouse": warehouse},
        tags={"dagster/asset_partition_range_start": keys[0],
              "dagster/asset_partition_range_end": keys[-1]})
    sys.exit(0 if result.success else 1)
"""


def _worker(store: procs.Store, mode: str, keys: list[str]) -> subprocess.Popen:
    env = procs.cli_env(store.home, CAKUPAN_LANDING=str(store.landing),
                        CAKUPAN_WAREHOUSE=str(store.warehouse),
                        CAKUPAN_SERVING=str(store.serving))
    return subprocess.Popen([sys.executable, "-c", WORKER, mode, *keys], cwd=procs.TREE,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)


def test_two_parallel_ingest_processes_then_one_aggregation():
    with procs.scratch("scale-out") as base:
        single = procs.Store(base / "single")
        procs.demo_landing(single.landing, scale=0.005, snapshots=2, seed=7)
        reference = single.run()
        assert reference.code in (0, 2), reference.tail()
        expected = procs.serving_tables(single.serving)

        parallel = procs.Store(base / "parallel")
        shutil.copytree(single.landing, parallel.landing)
        keys = delivery_keys(scan(parallel.landing))
        days = sorted({k.split("|")[0] for k in keys})
        assert len(days) == 2
        prep = _worker(parallel, "prepare", keys)
        assert prep.wait(120) == 0, prep.stdout.read().decode()
        workers = [_worker(parallel, "ingest", [k for k in keys if k.startswith(day)])
                   for day in days]
        for w in workers:            # both run at once; each writes only its own deliveries
            assert w.wait(600) == 0, w.stdout.read().decode()[-3000:]
        for day in days:
            offices = {k.split("|")[1] for k in keys if k.startswith(day)}
            written = {p.name for p in (parallel.lake / "deliveries" / day).iterdir()
                       if (p / "manifest.json").exists()}
            assert written == offices, day

        aggregate = parallel.run()
        assert aggregate.code == reference.code, aggregate.tail()
        stages = [s for _, s, _ in aggregate.stages()]
        assert "ingest" not in stages, "the aggregation run ingested again: " + aggregate.err
        diff = procs.table_diff(expected, procs.serving_tables(parallel.serving))
        assert not diff, procs.describe_diff(diff, expected, procs.serving_tables(
            parallel.serving))
