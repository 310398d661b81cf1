"""The embedded profile's event log (pipelines/event_log.py), on real SQLite files in a temporary
DAGSTER_HOME: where it lives, and that keeping its connections open hides nothing from another
process or from the UI's live view of a run (a watchdog on the run's shard file)."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg

from pipelines.event_log import KeptOpenSqliteEventLogStorage
from pipelines.instance import dagster_home


@dg.asset
def pinged() -> int:
    return 1


def _instance(tmp_path, monkeypatch) -> tuple[dg.DagsterInstance, Path]:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("CAKUPAN_PROFILE", raising=False)
    home = dagster_home(tmp_path / "w.duckdb")
    return dg.DagsterInstance.get(), home


def _shard_rows(path: Path) -> int:
    """Events in the shard file itself, ignoring any write-ahead log (what a watcher sees)."""
    with sqlite3.connect(f"file:{path}?immutable=1", uri=True) as con:
        return con.execute("SELECT count(*) FROM event_logs").fetchone()[0]


def test_the_embedded_instance_keeps_dagsters_folder_and_uses_the_kept_open_log(
        tmp_path, monkeypatch):
    instance, home = _instance(tmp_path, monkeypatch)
    storage = instance.event_log_storage
    assert isinstance(storage, KeptOpenSqliteEventLogStorage)
    assert Path(storage._base_dir) == home / "history" / "runs"
    result = dg.materialize([pinged], instance=instance)
    assert (home / "history" / "runs" / f"{result.run_id}.db").exists()
    assert (home / "history" / "runs" / "index.db").exists()


def test_another_process_and_a_watcher_see_every_event_while_connections_stay_open(
        tmp_path, monkeypatch):
    instance, home = _instance(tmp_path, monkeypatch)
    result = dg.materialize([pinged], instance=instance)
    run = instance.get_run_by_id(result.run_id)
    shard = home / "history" / "runs" / f"{run.run_id}.db"
    written = len(instance.all_logs(run.run_id))
    assert written > 5 and _shard_rows(shard) == written   # checkpointed into the file

    # the UI's live view: a second storage (another connection, as the webserver has) watches
    # the run while this instance, its connection still open, writes more events
    watcher = KeptOpenSqliteEventLogStorage(str(home / "history" / "runs"))
    seen, done = [], threading.Event()

    def callback(entry, cursor):
        if entry.message.startswith("ping "):
            seen.append(entry.message)
            if len(seen) == 3:
                done.set()

    watcher.watch(run.run_id, None, callback)
    try:
        for i in range(3):
            instance.report_engine_event(f"ping {i}", run)
        assert done.wait(20), f"the watcher saw {seen} of 3 events"
    finally:
        watcher.end_watch(run.run_id, callback)
        watcher.dispose()
    assert seen == ["ping 0", "ping 1", "ping 2"]
    assert _shard_rows(shard) == written + 3

    # another process reads the run's events and the asset's materialization
    out = subprocess.run(
        [sys.executable, "-c",
         "import json, dagster as dg; i = dg.DagsterInstance.get(); "
         f"print(json.dumps([len(i.all_logs({run.run_id!r})), "
         "i.get_latest_materialization_event(dg.AssetKey('pinged')).run_id]))"],
        env={**os.environ, "DAGSTER_HOME": str(home)}, capture_output=True,
        text=True, timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [written + 3, run.run_id]


def test_at_most_keep_shards_have_an_open_connection(tmp_path, monkeypatch):
    instance, _ = _instance(tmp_path, monkeypatch)
    storage = instance.event_log_storage
    runs = [dg.materialize([pinged], instance=instance).run_id
            for _ in range(storage.KEEP + 2)]
    assert len(storage._engines) == storage.KEEP
    assert runs[-1] in storage._engines and runs[0] not in storage._engines
    assert len(instance.all_logs(runs[0])) > 5   # an evicted shard opens again
