"""`cakupan run`: materialize every pending partition through Dagster, in few runs.

1. inputs: region reference and potential sets (unpartitioned);
2. ingest: every delivery whose files changed, one run over the snapshot dates concerned;
3. enrollment: load log and per-tier dedupe of those snapshots;
4. coverage: coverage tables of every snapshot whose inputs changed (all snapshots when the
   potential sets or the grace setting changed), with their generated asset checks;
5. publish: the serving file, only when every step and every blocking check passed.

``Runner(..., instance=..., tags=...).run(only={dates})`` is the same refresh limited to the
deliveries of some snapshot dates (what the landing sensor requests, through ``refresh_job``);
a change of the potential sets or of the grace setting still recounts every snapshot.
"""
from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from dataclasses import dataclass, field

import dagster as dg

from pipelines.definitions import build_definitions
from pipelines.instance import get_instance
from pipelines.landing import scan_enrollment, scan_potential
from pipelines.partitions import SNAPSHOTS, delivery_range
from pipelines.resources import Settings, Warehouse

from assets.ingest import pending


class StepFailed(RuntimeError):
    pass


@dataclass
class RunSummary:
    stages: dict[str, float] = field(default_factory=dict)
    snapshots_ingested: list[str] = field(default_factory=list)
    snapshots_recounted: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    published: bool = False


@dg.logger(description="Prints what cakupan's own code logs, one line each, to stderr.")
def progress_logger(_init_context):
    class OwnMessages(logging.Filter):
        def filter(self, record):
            meta = getattr(record, "dagster_meta", None) or {}
            if meta.get("dagster_event") is not None:
                return False
            record.msg, record.args = meta.get("orig_message", record.msg), ()
            return True

    log = logging.getLogger("cakupan.progress")
    log.setLevel(logging.INFO)
    for old in list(log.handlers):  # a new run may have a new stderr (tests, notebooks)
        log.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("    %(message)s"))
    handler.addFilter(OwnMessages())
    log.addHandler(handler)
    log.propagate = False
    return log


def _failure(result: dg.ExecuteInProcessResult) -> str:
    lines = []
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            err = event.step_failure_data.error
            while err is not None and err.cause is not None:
                err = err.cause
            lines.append(f"{event.step_key}: {(err.message if err else 'failed').strip()}")
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
            lines.append(f"check {evaluation.asset_key.to_user_string()}:"
                         f"{evaluation.check_name} failed")
    return "; ".join(lines) or "the run failed"


class Runner:
    def __init__(self, settings: Settings, warehouse: Warehouse, echo=print,
                 instance: dg.DagsterInstance | None = None, tags: dict | None = None):
        self.settings, self.warehouse, self.echo = settings, warehouse, echo
        self.defs = build_definitions(settings, warehouse, loggers={"progress": progress_logger})
        self.instance = instance if instance is not None else get_instance()
        self.tags = dict(tags or {})  # added to every run launched (e.g. the parent run's id)
        self.summary = RunSummary()

    def _execute(self, stage: str, job_name: str, keys: list[str] | None = None) -> None:
        tags = dict(self.tags)
        if keys is not None:
            if not keys:
                return
            tags.update({"dagster/asset_partition_range_start": keys[0],
                         "dagster/asset_partition_range_end": keys[-1]})
        self.echo(f"  {stage} ...", flush=True)
        started = time.perf_counter()
        result = self.defs.resolve_job_def(job_name).execute_in_process(
            instance=self.instance, tags=tags, raise_on_error=False,
            run_config={"loggers": {"progress": {}}})
        self.summary.stages[stage] = round(time.perf_counter() - started, 3)
        failed = not result.success or any(
            not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
            for e in result.get_asset_check_evaluations())
        if failed:
            raise StepFailed(f"{stage}: {_failure(result)}")

    def _date_range(self, days: set[dt.date]) -> list[str]:
        """Dynamic partition keys spanning ``days`` (keys are ordered as they were added)."""
        known = self.instance.get_dynamic_partitions(SNAPSHOTS.name)
        wanted = [i for i, k in enumerate(known) if dt.date.fromisoformat(k) in days]
        return known[min(wanted):max(wanted) + 1] if wanted else []

    def _date_blocks(self, days: set[dt.date], split: bool) -> list[list[str]]:
        """``[_date_range(days)]``, or with ``split`` one range per contiguous block of ``days``
        (a range must not reach dates outside ``days``)."""
        if not split:
            return [self._date_range(days)]
        blocks: list[list[str]] = []
        previous = None
        for i, key in enumerate(self.instance.get_dynamic_partitions(SNAPSHOTS.name)):
            if dt.date.fromisoformat(key) in days:
                if previous == i - 1:
                    blocks[-1].append(key)
                else:
                    blocks.append([key])
                previous = i
        return blocks

    def run(self, only: set[dt.date] | None = None) -> RunSummary:
        """Everything pending; with ``only``, just the deliveries of those snapshot dates."""
        s = self.summary
        with self.warehouse.connect() as con:
            before = con.execute("SELECT count(*), max(loaded_at) FROM potential_set").fetchone()
            grace_before = con.execute(
                "SELECT DISTINCT (months(snapshot_date) - paid_month <= ?) = active FROM "
                "enrollment WHERE paid_month IS NOT NULL LIMIT 2",
                [self.settings.grace_months]).fetchall()
        self._execute("inputs (region reference, potential)", "inputs_job")

        deliveries, misfits = scan_enrollment(self.settings.landing_path)
        all_days = sorted({d for d, _ in deliveries} | {m.snapshot for m in misfits})
        if only is not None:
            deliveries = {k: v for k, v in deliveries.items() if k[0] in only}
            misfits = [m for m in misfits if m.snapshot in only]
        days = sorted({d for d, _ in deliveries} | {m.snapshot for m in misfits})
        known = set(self.instance.get_dynamic_partitions(SNAPSHOTS.name))
        new = [str(d) for d in days if str(d) not in known]
        if new:
            self.instance.add_dynamic_partitions(SNAPSHOTS.name, new)
        with self.warehouse.connect() as con:
            todo = pending(con, deliveries)
            after = con.execute("SELECT count(*), max(loaded_at) FROM potential_set").fetchone()
            counted = {r[0] for r in con.execute(
                "SELECT DISTINCT snapshot_date FROM coverage_national").fetchall()}
            logged = {r[0] for r in con.execute(
                "SELECT DISTINCT snapshot_date FROM load_log").fetchall()}
        changed_days = {d for d, _ in todo} | {d for d in days if d not in logged}
        self.summary.snapshots_ingested = sorted(map(str, changed_days))

        split = only is not None
        for ingest_days in self._date_blocks({d for d, _ in todo}, split):
            if ingest_days:
                self._execute(f"ingest ({len(todo)} deliveries)", "ingest_job",
                              list(delivery_range(ingest_days[0], ingest_days[-1])))
        regrace = any(not ok for (ok,) in grace_before)
        recount = set(all_days) if regrace else changed_days
        for block in self._date_blocks(recount, split and not regrace):
            self._execute("enrollment (load log, dedupe)", "enrollment_job", block)
        stale = set(all_days) if (after != before or regrace) else (
            recount | {d for d in days if d not in counted})
        s.snapshots_recounted = sorted(map(str, stale))
        for block in self._date_blocks(stale, split and stale != set(all_days)):
            self._execute(f"coverage ({len(stale)} snapshots)", "coverage_job", block)
        self._execute("publish serving file", "publish_job")
        s.published = True
        with self.warehouse.connect() as con:
            present = {f.relpath for files in deliveries.values() for f in files}
            present |= {m.relpath for m in misfits}
            s.rejected = [(src, msg) for src, msg in con.execute(
                "SELECT source_file, message FROM load_log WHERE status = 'rejected' "
                "ORDER BY snapshot_date, source_file").fetchall() if src in present]
            sets = {str(day) for day in scan_potential(self.settings.landing_path)}
            s.rejected += [(f"potential/{day}/", msg) for day, msg in con.execute(
                "SELECT CAST(valid_from AS VARCHAR), message FROM potential_set "
                "WHERE status = 'rejected' ORDER BY valid_from").fetchall() if day in sets]
        return s
