"""The daemon path survives a run worker killed mid-step (issue: reliability, "crash safety").

A real `cakupan daemon` (dagster-daemon: landing sensor, asset backfill, run queue, run
monitoring, run retries) on the embedded profile in a temp DAGSTER_HOME, over a demo landing
zone. When the ingest run's worker process is inside the `enrollment_rows` step, the test
SIGKILLs that worker's whole process group (as the OOM killer or a power loss would). Expected,
with every wait bounded:

* run monitoring finds the worker gone and fails the run (it does not hang in STARTED);
* the run-retry daemon re-executes it from failure (tag ``dagster/parent_run_id``) and that
  retry succeeds;
* the backfill goes on to publish, and every serving table equals the one an uninterrupted
  ``cakupan run`` publishes from the same landing zone, row for row;
* nothing is left beside the serving file, and no run is left unfinished; temporaries an
  earlier killed process left an hour ago are swept by the publish (the daemon path has no
  `cakupan run` to sweep them as it starts).
"""
from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest

import procs
from services import Service, base_env, executable, wait_until

pytestmark = pytest.mark.slow

SCALE, SNAPSHOTS, SEED = 0.05, 2, 5
STEP_S, RECOVER_S = 240, 300
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


def _instance(home: Path):
    import dagster as dg

    return dg.DagsterInstance.from_config(str(home))


def _runs(instance) -> list:
    return list(reversed(instance.get_runs()))   # oldest first


def _ingest_in_step(instance):
    """(run, worker pid) once a run's `enrollment_rows` step has started and not finished."""
    from dagster import DagsterEventType

    for run in _runs(instance):
        keys = {k.to_user_string() for k in (run.asset_selection or ())}
        pid = run.tags.get("cakupan/worker_pid")
        if "enrollment_rows" not in keys or run.status.value != "STARTED" or not pid:
            continue
        started = instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_START)
        done = instance.all_logs(run.run_id, of_type={DagsterEventType.STEP_SUCCESS,
                                                      DagsterEventType.STEP_FAILURE})
        if any(e.step_key == "enrollment_rows" for e in started) and not done:
            return run, int(pid)
    return None


def _prepare_instance(home: Path, monkeypatch) -> None:
    """The instance's dagster.yaml and SQLite storage, created before the daemon starts: two
    processes creating the same fresh SQLite storage at once can stamp its schema twice."""
    from pipelines.instance import dagster_home

    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("CAKUPAN_PROFILE", raising=False)
    dagster_home()
    _instance(home).dispose()


def test_daemon_fails_and_retries_a_run_whose_worker_is_killed_mid_step(tmp_path, monkeypatch):
    with procs.scratch("daemon") as base:
        # the uninterrupted reference: `cakupan run` on a copy of the same landing zone
        reference = procs.Store(base / "reference")
        procs.demo_landing(reference.landing, SCALE, SNAPSHOTS, SEED)
        ref = reference.run()
        assert ref.code in (0, 2), ref.tail()
        expected = procs.serving_tables(reference.serving)

        store = procs.Store(base / "daemon")
        shutil.copytree(reference.landing, store.landing, copy_function=shutil.copy2)
        home = store.home
        home.mkdir(parents=True, exist_ok=True)
        # what an earlier killed process left, an hour and more ago: the publish sweeps it
        stale = time.time() - 3600 - 60
        left = [store.serving.parent / f".{store.serving.name}.0123abcd.tmp",
                store.lake / "tmp" / "2021-01-31-dead" / "batch" / "x.parquet"]
        for path in left:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"left by a killed process")
        for path in [*left, left[1].parent, left[1].parent.parent]:
            os.utime(path, (stale, stale))
        env = base_env(home, CAKUPAN_HMAC_KEY=procs.TEST_KEY, CAKUPAN_LANDING=str(store.landing),
                       CAKUPAN_WAREHOUSE=str(store.warehouse), CAKUPAN_SERVING=str(store.serving),
                       CAKUPAN_SENSOR_INTERVAL="1", CAKUPAN_SETTLE_SECONDS="0",
                       CAKUPAN_NIGHTLY_DEFAULT="stopped")
        _prepare_instance(home, monkeypatch)
        daemon = Service("cakupan-daemon", [executable("cakupan"), "daemon"], env, tmp_path)
        instance = _instance(home)
        try:
            killed_run, pid = wait_until(lambda: _ingest_in_step(instance), STEP_S,
                                         "the ingest step to start", [daemon], interval=0.05)
            time.sleep(0.3)
            os.killpg(pid, signal.SIGKILL)
            killed_at = time.monotonic()

            def failed():
                run = instance.get_run_by_id(killed_run.run_id)
                return run if run.status.value in FINISHED else None

            run = wait_until(failed, RECOVER_S, "run monitoring to fail the killed run",
                             [daemon], interval=1)
            detected_s = time.monotonic() - killed_at
            assert run.status.value == "FAILURE", run.status

            def retry():
                for r in _runs(instance):
                    if r.tags.get("dagster/parent_run_id") == killed_run.run_id:
                        return r
                return None

            child = wait_until(retry, RECOVER_S, "the run-retry daemon to re-execute the run",
                               [daemon], interval=1)
            assert child.tags.get("dagster/root_run_id") == killed_run.run_id

            def published():
                runs = _runs(instance)
                if not runs or any(r.status.value not in FINISHED for r in runs):
                    return None
                ok = [r for r in runs if r.status.value == "SUCCESS"]
                keys = {k.to_user_string() for r in ok for k in (r.asset_selection or ())}
                return runs if "serving_file" in keys else None

            runs = wait_until(published, RECOVER_S, "the backfill to publish", [daemon],
                              interval=2)
        finally:
            daemon.stop()
            instance.dispose()

        # the kill landed inside the step: the killed run recorded no end of enrollment_rows
        with _instance(home) as inst:
            ends = [e for e in inst.all_logs(killed_run.run_id)
                    if e.is_dagster_event and e.step_key == "enrollment_rows"
                    and e.dagster_event_type.value in ("STEP_SUCCESS", "STEP_FAILURE")]
        assert not ends, "the step had ended before the kill"
        statuses = {r.run_id: r.status.value for r in runs}
        assert statuses[killed_run.run_id] == "FAILURE"
        assert statuses[child.run_id] == "SUCCESS", (statuses, daemon.tail())
        # only the killed run failed; every other run of the night succeeded
        assert list(statuses.values()).count("FAILURE") == 1, statuses
        got = procs.serving_tables(store.serving)
        assert got.keys() == expected.keys()
        for name in expected:
            assert got[name] == expected[name], f"serving table {name} differs"
        assert not any(p.exists() for p in left), "the publish did not sweep old temporaries"
        assert not left[1].parent.parent.exists()
        tmp, other = store.serving_leftovers()
        assert not tmp and not other, tmp + other
        print(f"\nkilled worker {pid} of run {killed_run.run_id[:8]} in enrollment_rows; "
              f"failed by run monitoring after {detected_s:.1f} s; retry "
              f"{child.run_id[:8]} succeeded; {len(runs)} runs; serving identical "
              f"({sum(len(v) for v in expected.values())} rows in {len(expected)} tables)")
