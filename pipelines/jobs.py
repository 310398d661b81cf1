"""Jobs: the pipeline in the order `cakupan run` launches it, one run per stage group.

Each group shares one partitions definition, so one run covers many partitions (a single-run
backfill) instead of one run per partition.

``refresh_job`` is what the landing sensor and the nightly schedule launch: one op that runs the
stage jobs above as child runs (see :func:`refresh`).
"""

import datetime as dt

import dagster as dg
from pydantic import Field

from pipelines.partitions import DELIVERIES, SNAPSHOTS
from pipelines.resources import Settings, Warehouse

inputs_job = dg.define_asset_job(
    "inputs_job", selection=["region_reference", "potential"],
    description="Region reference and potential sets.")
ingest_job = dg.define_asset_job(
    "ingest_job", selection=["enrollment_rows"], partitions_def=DELIVERIES,
    description="Read, validate, pseudonymise and load deliveries (snapshot x province).")
enrollment_job = dg.define_asset_job(
    "enrollment_job", selection=["load_log", "quarantine", "enrollment"],
    partitions_def=SNAPSHOTS,
    description="Complete the load log and dedupe people per tier, per snapshot.")
coverage_job = dg.define_asset_job(
    "coverage_job", selection=dg.AssetSelection.groups("coverage"), partitions_def=SNAPSHOTS,
    description="Coverage by tier, national and by region, per snapshot, with their checks.")
publish_job = dg.define_asset_job(
    "publish_job", selection=["serving_file"], description="Publish the serving file.")



class RefreshConfig(dg.Config):
    dates: list[str] = Field(default_factory=list, description=(
        "snapshot dates (YYYY-MM-DD) whose deliveries changed; empty: everything pending, "
        "exactly what `cakupan run` does"))


@dg.op(description="Refresh through the stage jobs: inputs, ingest, enrollment, coverage and "
                   "publish, as child runs of this run (tag cakupan/parent_run_id).")
def refresh(context: dg.OpExecutionContext, config: RefreshConfig, settings: Settings,
            warehouse: Warehouse) -> None:
    """Why an op that drives :class:`pipelines.runner.Runner` rather than one asset job:

    * the refresh spans three partitions definitions (deliveries, snapshots, unpartitioned) and
      an asset job must have one;
    * the order matters (ingest, then the per-snapshot dedupe, then coverage, then publish) and
      so does the bookkeeping that decides what to recount (potential sets or the grace setting
      changed: every snapshot) -- that logic already lives in the Runner used by `cakupan run`,
      so the sensor, the schedule and the CLI cannot drift apart;
    * each stage is still a real asset run (partition-range tags, materializations, checks), so
      lineage, the UI and ``delivery_state`` look the same whichever way a refresh started.

    The op holds no pool slot itself (it would deadlock against its children); every child step
    takes the "warehouse" pool and has the warehouse retry policy.
    """
    from pipelines.runner import Runner, StepFailed  # the runner imports these definitions

    def echo(message: str, **_):
        context.log.info(message.strip())

    only = {dt.date.fromisoformat(d) for d in config.dates} or None
    runner = Runner(settings, warehouse, echo=echo, instance=context.instance,
                    tags={"cakupan/parent_run_id": context.run_id})
    try:
        summary = runner.run(only)
    except StepFailed as exc:  # deterministic by now: the child runs had their retries
        raise dg.Failure(str(exc), allow_retries=False) from None
    context.log.info(f"snapshots ingested: {', '.join(summary.snapshots_ingested) or 'none'}; "
                     f"recounted: {', '.join(summary.snapshots_recounted) or 'none'}; "
                     f"published: {summary.published}")
    for source, message in summary.rejected:
        context.log.warning(f"{source}: rejected — {message}")


@dg.job(tags={"cakupan/refresh": "1"},
        description="The whole refresh (or only some snapshot dates): what the landing sensor "
                    "and the nightly schedule launch. Run-queue limit on cakupan/refresh: 1.")
def refresh_job():
    refresh()


JOBS = [inputs_job, ingest_job, enrollment_job, coverage_job, publish_job, refresh_job]
