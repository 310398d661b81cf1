"""Sensors: they decide when to refresh, the planner decides what.

* ``landing_sensor`` (every ``CAKUPAN_SENSOR_INTERVAL`` seconds, default 60): a delivery is
  ready once each of its files kept its size and mtime since the previous tick (a file still
  being copied keeps growing or being touched) and was not modified in the last
  ``CAKUPAN_SETTLE_SECONDS``; a potential, targets or published file still moving holds back
  the whole tick. The ready part of the landing zone is planned (:func:`pipelines.planner.plan`):
  new deliveries and snapshot dates are added as dynamic partitions in the same tick, and what
  changed is requested as ONE asset backfill, which the backfill daemon runs in dependency
  order, one run per partitions definition and contiguous range (single-run backfill policy).
* ``nightly_refresh`` (cron ``CAKUPAN_NIGHTLY_CRON``, default ``0 2 * * *``, Asia/Jakarta):
  the same plan over everything once a night, the safety net behind the landing sensor (a
  missed tick, a setting changed, a rule changed with a deploy). It is a sensor that fires on
  its cron, not a ``ScheduleDefinition``: Dagster schedules can launch runs but not backfills,
  and a refresh needs the backfill's ordering (ingest before the snapshot tables before the
  serving file).

Neither starts while a refresh backfill is in progress: the next tick plans what is left. A
trend partition deferred by the planner (its previous snapshot was being recomputed) is
requested by the next tick.
"""

import datetime as dt
import json
import os
import uuid
import zoneinfo

import dagster as dg
from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus
from dagster._utils.schedules import cron_string_iterator

from readers.landing import scan

from assets.ingest import settling
from assets.resources import Settings, Warehouse
from pipelines import planner

TICK_SECONDS = int(os.environ.get("CAKUPAN_SENSOR_INTERVAL") or 60)
DEFAULT_CRON = "0 2 * * *"
TIMEZONE = "Asia/Jakarta"
REFRESH_TAG = "cakupan/refresh"


def _default(env: str) -> dg.DefaultSensorStatus:
    return (dg.DefaultSensorStatus.STOPPED if os.environ.get(env, "").lower() == "stopped"
            else dg.DefaultSensorStatus.RUNNING)


def refresh_in_progress(instance: dg.DagsterInstance) -> list[str]:
    backfills = instance.get_backfills(filters=BulkActionsFilter(
        statuses=[BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING,
                  BulkActionStatus.FAILING], tags={REFRESH_TAG: "1"}))
    return [b.backfill_id for b in backfills]


def refresh_result(context, settings: Settings, warehouse: Warehouse, trigger: str,
                   ready=None, landing=None, cursor: str | None = None) -> dg.SensorResult:
    """The plan as one backfill request (or a skip reason), with its new partitions."""
    busy = refresh_in_progress(context.instance)
    if busy:
        return dg.SensorResult(skip_reason=f"refresh {busy[0]} is in progress", cursor=cursor)
    p = planner.plan(settings, warehouse, context.instance, ready=ready, landing=landing)
    partitions = planner.partition_requests(p)
    if p.empty:
        reason = (f"waiting for {len(p.waiting)} file(s) to stop changing" if p.waiting
                  else "everything is up to date")
        return dg.SensorResult(skip_reason=reason, cursor=cursor,
                               dynamic_partitions_requests=partitions)
    subset = planner.asset_graph_subset(p, context.repository_def)
    context.log.info(f"requesting {p.summary()}"
                     + (f"; waiting: {', '.join(p.waiting[:5])}" if p.waiting else ""))
    tags = {REFRESH_TAG: "1", "cakupan/trigger": trigger,
            "cakupan/invocation": uuid.uuid4().hex[:12]}
    request = dg.RunRequest(asset_graph_subset=subset, tags=tags, run_config=planner.RUN_CONFIG)
    return dg.SensorResult(run_requests=[request],
                           dynamic_partitions_requests=partitions, cursor=cursor)


def stability(landing, before: dict):
    """(ready(files) predicate for deliveries, whether a non-delivery file is moving, new
    cursor): a file is ready when its size and mtime are those of the previous tick."""
    now = {f.relpath: [f.stat.size, f.stat.mtime_ns] for f in landing.files()}
    delivered = {f.relpath for files in landing.deliveries.values() for f in files}
    moving_inputs = [r for r in now if r not in delivered and before.get(r) != now[r]]

    def ready(files) -> bool:
        return all(before.get(f.relpath) == now[f.relpath] for f in files)

    return ready, moving_inputs, now


@dg.sensor(name="landing_sensor", minimum_interval_seconds=TICK_SECONDS,
           asset_selection=dg.AssetSelection.all(),
           default_status=_default("CAKUPAN_SENSOR_DEFAULT"),
           description="Refreshes what the landing zone changed, once the changed files have "
                       "stopped moving: one asset backfill per change.")
def landing_sensor(context: dg.SensorEvaluationContext, settings: Settings,
                   warehouse: Warehouse):
    landing = scan(settings.landing_path)
    before = json.loads(context.cursor) if context.cursor else {}
    stable, moving_inputs, now = stability(landing, before)
    cursor = json.dumps(now, sort_keys=True)
    if moving_inputs:
        return dg.SensorResult(skip_reason=f"waiting for {moving_inputs[0]} to stop changing",
                               cursor=cursor)

    def ready(files) -> bool:
        return stable(files) and not any(settling(f, settings.settle_seconds)
                                         for f in files if not f.problem)

    return refresh_result(context, settings, warehouse, "landing_sensor", ready, landing, cursor)


def due(cron: str, last: float | None, now: dt.datetime) -> dt.datetime | None:
    """The latest cron time (Asia/Jakarta) after ``last`` and not after ``now``, if any."""
    tz = zoneinfo.ZoneInfo(TIMEZONE)
    start = dt.datetime.fromtimestamp(last, tz) if last else now.astimezone(tz) - \
        dt.timedelta(days=1)
    latest = None
    for tick in cron_string_iterator(start.timestamp(), cron, TIMEZONE):
        if tick.timestamp() <= (last or 0):
            continue
        if tick > now:
            break
        latest = tick
    return latest


def nightly_sensor(cron: str | None = None) -> dg.SensorDefinition:
    cron = cron or os.environ.get("CAKUPAN_NIGHTLY_CRON") or DEFAULT_CRON

    @dg.sensor(name="nightly_refresh", minimum_interval_seconds=60,
               asset_selection=dg.AssetSelection.all(),
               default_status=_default("CAKUPAN_NIGHTLY_DEFAULT"),
               description=f"Nightly ({cron}, {TIMEZONE}): everything whose inputs changed, as "
                           "`cakupan run` would request it, as one asset backfill.")
    def nightly_refresh(context: dg.SensorEvaluationContext, settings: Settings,
                        warehouse: Warehouse):
        state = json.loads(context.cursor) if context.cursor else {}
        now = dt.datetime.now(zoneinfo.ZoneInfo(TIMEZONE))
        if not state:   # first evaluation: start counting from now
            return dg.SensorResult(skip_reason="first tick: the next run is at the next cron "
                                   "time", cursor=json.dumps({"last": now.timestamp()}))
        tick = due(cron, state.get("last"), now)
        if tick is None:
            return dg.SensorResult(skip_reason=f"not yet {cron} ({TIMEZONE})")
        result = refresh_result(context, settings, warehouse, "nightly",
                                cursor=json.dumps({"last": tick.timestamp()}))
        if result.skip_reason and "in progress" in str(result.skip_reason):
            return dg.SensorResult(skip_reason=result.skip_reason)  # try again next minute
        return result

    return nightly_refresh
