"""The nightly schedule: everything pending, then aggregates and the serving file.

Cron from ``CAKUPAN_NIGHTLY_CRON`` (default ``0 2 * * *``, read when the definitions are built),
evaluated in Asia/Jakarta (WIB), so "2 a.m." is 2 a.m. in the offices that deliver the extracts.

It launches ``refresh_job`` with no dates, i.e. exactly what `cakupan run` does (the op drives
:class:`pipelines.runner.Runner`): the inputs, every delivery whose fingerprint changed, the
snapshots to recount (all of them when the potential sets or the grace setting changed) and the
serving file. A job selecting all assets cannot do this: an asset job holds one partitions
definition and would not know which partitions are pending; the Runner already does, and sharing
it keeps the CLI, the sensor and the schedule from drifting apart. The nightly run is the safety
net behind the landing sensor (deleted files, re-touched files, a grace setting changed, a missed
tick). Its run_key is the scheduled time, so a tick evaluated twice launches one run.

Default status RUNNING (dev and production both want the nightly refresh once a daemon runs);
set ``CAKUPAN_SCHEDULE_DEFAULT=stopped`` to have it off until switched on in the UI.
"""
from __future__ import annotations

import os

import dagster as dg

from pipelines.jobs import refresh_job

DEFAULT_CRON = "0 2 * * *"
TIMEZONE = "Asia/Jakarta"


def nightly_schedule(cron: str | None = None) -> dg.ScheduleDefinition:
    cron = cron or os.environ.get("CAKUPAN_NIGHTLY_CRON") or DEFAULT_CRON

    @dg.schedule(
        name="nightly_refresh", cron_schedule=cron, job=refresh_job,
        execution_timezone=TIMEZONE,
        default_status=(dg.DefaultScheduleStatus.STOPPED
                        if os.environ.get("CAKUPAN_SCHEDULE_DEFAULT", "").lower() == "stopped"
                        else dg.DefaultScheduleStatus.RUNNING),
        description=f"Nightly ({cron}, {TIMEZONE}): everything pending, as `cakupan run`.",
    )
    def _nightly(context: dg.ScheduleEvaluationContext):
        when = context.scheduled_execution_time
        return dg.RunRequest(
            run_key=f"nightly-{when.isoformat()}",
            run_config={"ops": {"refresh": {"config": {"dates": []}}}},
            tags={"cakupan/trigger": "nightly", "cakupan/scheduled_for": when.isoformat()},
        )

    return _nightly
