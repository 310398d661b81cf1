"""`cakupan run`: the same refresh the sensors request, executed here without a daemon.

The planner (:mod:`pipelines.planner`) decides what to request, exactly as for the sensors; the
requests become runs grouped the way the backfill daemon groups them (one run per partitions
definition and contiguous range), created through Dagster's own run submission with the code
location loaded in process under the workspace's location name (so every run has a launchable
origin, and the UI can re-execute it), and executed in this process, one after another. The
runs of one invocation share the tag ``cakupan/invocation``. The runs go in the planner's order,
so nothing is deferred (``in_order``); the next plan checks that nothing is left (a re-delivery
night: two plans, where deferring the next snapshot's trends took three).

Before anything, runs left unfinished by a process that is gone (a killed ``cakupan run``) are
marked failed: no state of a dead run blocks this one. ``cakupan run`` holds no pool slot.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import uuid
from dataclasses import dataclass, field

import dagster as dg

from readers.storage import sweep_temporaries

from pipelines import planner
from pipelines.instance import LOCATION_NAME, ROOT, bind, dagster_home
from pipelines.launcher import fail_orphans, worker_tags
from pipelines.sensors import refresh_in_progress

ROUNDS = 4


class StepFailed(RuntimeError):
    pass


@dataclass
class RunSummary:
    stages: dict[str, float] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)
    published: bool = False
    warnings: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    invocation: str = ""


def _instance(home):
    from dagster._core.instance.ref import InstanceRef

    overrides = {
        "run_coordinator": {"module": "dagster._core.run_coordinator",
                            "class": "DefaultRunCoordinator"},
        "run_launcher": {"module": "pipelines.launcher", "class": "InProcessRunLauncher"},
    }
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home), overrides=overrides))


def _workspace(instance):
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget

    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=sys.executable, module_name="pipelines.definitions",
                             attribute="defs", working_directory=str(ROOT)),
        location_name=LOCATION_NAME)
    return WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin))


def _stage(rr: dg.RunRequest) -> str:
    names = sorted(k.to_user_string() for k in rr.asset_selection or [])
    start = (rr.tags or {}).get("dagster/asset_partition_range_start")
    end = (rr.tags or {}).get("dagster/asset_partition_range_end")
    what = ", ".join(names) if len(names) <= 5 else f"{len(names)} tables"
    return what + (f" [{start} .. {end}]" if start and start != end else
                   f" [{start}]" if start else "")


def _failure(instance, run) -> str:
    lines = []
    records = instance.get_records_for_run(run.run_id, of_type={
        dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}).records
    for record in records:
        event = record.event_log_entry.dagster_event
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            err = event.step_failure_data.error
            while err is not None and err.cause is not None:
                err = err.cause
            lines.append(f"{event.step_key}: {(err.message if err else 'failed').strip()}")
    if not lines and records:
        lines.append(records[-1].event_log_entry.dagster_event.message or "the run failed")
    return "; ".join(dict.fromkeys(lines)) or "the run failed"


def _checks(instance, run) -> tuple[list[str], list[str]]:
    """(failed blocking checks, failed warning checks) evaluated in ``run``."""
    blocking, warning = [], []
    records = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    for record in records:
        e = record.event_log_entry.dagster_event.event_specific_data
        if not e.passed:
            label = f"{e.asset_key.to_user_string()}:{e.check_name}"
            if e.description:
                label += f" ({e.description})"
            (blocking if e.severity == dg.AssetCheckSeverity.ERROR else warning).append(label)
    return blocking, warning


class Refresh:
    def __init__(self, settings, warehouse, echo=print):
        self.settings, self.warehouse, self.echo = settings, warehouse, echo
        self.summary = RunSummary(invocation=uuid.uuid4().hex[:12])

    def run(self) -> RunSummary:
        from dagster._core.execution.submit_asset_runs import submit_asset_run

        from pipelines.definitions import defs as load_defs

        s = self.summary
        home = dagster_home(self.warehouse.path)
        bind(home, self.warehouse.path, self.warehouse.lake.store_id())   # refuse before writing
        bind(home, self.warehouse.path, self.warehouse.store_id())
        instance = _instance(home)
        fail_orphans(instance, lambda m: self.echo(m))
        busy = refresh_in_progress(instance)
        if busy:
            raise StepFailed(f"a refresh launched by the daemon is in progress (backfill "
                             f"{busy[0]}); wait for it to finish or cancel it in the UI")
        swept = sweep_temporaries(self.warehouse.lake.root, beside=[
            self.warehouse.path, self.settings.serving_path, self.settings.report_path])
        if swept:
            self.echo(f"  removed {len(swept)} temporary file(s) left by a killed process")
        # this process is the runs' worker from their creation: killed between creating a run
        # (its planned events take a second for 200 partitions) and launching it, the run would
        # otherwise carry no worker to judge and stay STARTING past the next start's fail_orphans
        tags = {"cakupan/invocation": s.invocation, "cakupan/trigger": "cli",
                **worker_tags(os.getpid())}
        quiet = logging.getLogger("cakupan.submit")
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
        asset_graph = load_defs().resolve_asset_graph()
        with _workspace(instance) as ctx:
            for round_ in range(ROUNDS):
                p = planner.plan(self.settings, self.warehouse, instance, in_order=True)
                s.waiting = p.waiting
                if p.empty:
                    break
                planner.add_partitions(p, instance)
                s.snapshots = sorted(set(s.snapshots) | {
                    k for a, parts in p.requested.items() if a == "load_log" for k in parts})
                for i, rr in enumerate(planner.run_requests(p, asset_graph, instance, tags)):
                    stage = _stage(rr)
                    if stage in s.stages:     # the same label in a later round: keep both times
                        stage += f" (round {round_ + 1})"
                    self.echo(f"  {stage} ...")
                    started = time.perf_counter()
                    run = asyncio.run(submit_asset_run(
                        None, rr, i, instance, ctx, ctx.create_request_context(), {}, {},
                        quiet))
                    run = instance.get_run_by_id(run.run_id)
                    s.stages[stage] = round(time.perf_counter() - started, 3)
                    s.runs.append(run.run_id)
                    blocking, warning = _checks(instance, run)
                    s.warnings += [f"check {w}" for w in warning]
                    if run.status != dg.DagsterRunStatus.SUCCESS:
                        detail = _failure(instance, run)
                        if blocking:
                            detail += "; blocking check(s) failed: " + ", ".join(blocking)
                        raise StepFailed(f"{stage}: {detail}")
                    if blocking:
                        raise StepFailed(f"{stage}: blocking check(s) failed: "
                                         + ", ".join(blocking))
                    if dg.AssetKey("serving_file") in (rr.asset_selection or []):
                        s.published = True
        return s
