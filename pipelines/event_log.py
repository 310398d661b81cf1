"""The embedded profile's event log: Dagster's SQLite event log storage, its connections kept open.

Dagster's ``SqliteEventLogStorage`` creates an engine, opens a SQLite connection and closes both
for every operation, and an asset event is two of them (the run's shard and the cross-run index
shard): about 7 ms an event on the bench machine, 4.7 s of the 665 events of a scale-1 night.
:class:`KeptOpenSqliteEventLogStorage` keeps one engine and one connection per shard open (the
last ``KEEP`` shards used): 3.0-3.4 s for the same events (README, Performance). Every use of a
connection happens inside the storage's own lock (a non-reentrant ``threading.Lock``, so never
nested), so a connection is never used by two threads at once.

Nothing else changes: the same files and schema, Dagster's write-ahead-log journal and FULL
synchronous commits. Closing the last connection used to checkpoint a run shard's write-ahead
log into the shard file, which is what the UI's live view of a run watches (a watchdog on that
one file); a kept connection checkpoints it (PASSIVE) after each use instead, so the watcher
sees every write as before (``tests/test_event_log.py``). Kept open, the connections cost 2.6 s
without those checkpoints.

A subclass of a Dagster class chosen by the instance's ``event_log_storage`` setting
(pipelines/instance.py); it overrides one private method (``_connect``) of the pinned dagster
1.13. The production profile (PostgreSQL) does not use it.
"""
from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager

from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME, SQLITE_BUSY_TIMEOUT_SECONDS, SqliteEventLogStorage)
from sqlalchemy import create_engine
from sqlalchemy.pool import StaticPool


class KeptOpenSqliteEventLogStorage(SqliteEventLogStorage):
    KEEP = 8   # shards with an open connection: the index and the runs in progress

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict = OrderedDict()
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str):
        with self._db_lock:
            engine = self._engines.pop(shard, None)
            if engine is None:
                engine = create_engine(
                    self.conn_string_for_shard(shard), poolclass=StaticPool,
                    connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
                                  "check_same_thread": False})
                if shard not in self._initialized_dbs:
                    self._initdb(engine)
                    self._initialized_dbs.add(shard)
            self._engines[shard] = engine
            while len(self._engines) > self.KEEP:
                self._engines.popitem(last=False)[1].dispose()
            with engine.connect() as conn:
                with conn.begin():
                    yield conn
                if shard != INDEX_SHARD_NAME:   # into the file the UI's live view watches
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def _close_all(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:   # unlinks the run shards: no connection may outlive its file
        self._close_all()
        super().wipe()

    def dispose(self) -> None:
        self._close_all()
        super().dispose()
