"""The landing sensor: refresh a snapshot as soon as its deliveries have landed for good.

Every tick scans the landing zone (``enrollment/<date>/`` and ``potential/<date>/``) and keeps,
in the cursor (JSON), each file's ``{size, mtime, sha256}`` and the content hash last requested
for it:

* **ready** -- a file is ready only when its size and mtime are identical on two consecutive
  ticks (a file still being copied keeps growing or being touched). Its sha256 is computed once,
  on the tick it becomes ready, and kept until its size or mtime change again. A snapshot date
  waits while *any* of its files is not ready, so a run never reads a half-written sibling.
* **content, not fingerprint** -- work is keyed by the file's sha256: a re-delivered file with
  the same bytes (even with a new mtime) requests nothing. (The next `cakupan run` or nightly
  refresh re-reads it, since the assets key deliveries by name, size and mtime; harmless.)
  A file with new bytes requests a refresh of only its snapshot date(s). A changed potential set
  requests a full refresh, since a denominator applies to every later snapshot. Deleted files
  leave the cursor and request nothing (the nightly refresh reconciles them); delivered again
  later, they count as new.
* **one run per change** -- the tick's changes become ONE ``RunRequest`` of ``refresh_job``
  (see :func:`pipelines.jobs.refresh` for why one op job driving the stage jobs, not an asset job
  per stage): config ``dates`` = the affected snapshot dates, tags ``cakupan/snapshots`` and the
  delivery partition range of the ingest (``cakupan/partition_range_start``/``_end``, as
  ``dagster/asset_partition_range_*`` are on the ingest child run). Inside, the ingest child run
  covers whole dates (every province office); deliveries whose fingerprint did not change are
  skipped by the asset, so untouched offices cost nothing.
* ``run_key`` is the sha256 of the changed files' ``path:old-hash->new-hash`` transitions: a tick
  repeated after a lost cursor update cannot launch the same refresh twice, while a file going
  back to earlier bytes (A -> B -> A) is a new transition and is refreshed.
* new snapshot dates are added to the ``snapshots`` dynamic partitions in the same tick
  (``SensorResult.dynamic_partitions_requests``), before the run is launched.

Default status RUNNING: with ``dagster dev`` (or a daemon) the sensor starts by itself, which is
what a landing zone wants in development and in production; stop it in the UI (or set
``CAKUPAN_SENSOR_DEFAULT=stopped``) where a landing zone must only be processed by hand.
"""
from __future__ import annotations

import hashlib
import json
import os

import dagster as dg

from pipelines.jobs import refresh_job
from pipelines.landing import LandedFile, scan_enrollment, scan_potential
from pipelines.partitions import SNAPSHOTS, delivery_range
from pipelines.resources import Settings

TICK_SECONDS = int(os.environ.get("CAKUPAN_SENSOR_INTERVAL", "60"))


def _landed(settings: Settings) -> dict[str, tuple[LandedFile, str | None]]:
    """relpath -> (file, snapshot date as text, or None for a potential set file)."""
    deliveries, misfits = scan_enrollment(settings.landing_path)
    files = {f.relpath: (f, str(f.snapshot))
             for group in deliveries.values() for f in group}
    files |= {f.relpath: (f, str(f.snapshot)) for f in misfits}
    files |= {f.relpath: (f, None)
              for group in scan_potential(settings.landing_path).values() for f in group}
    return files


def evaluate(cursor: str | None, settings: Settings, known_dates: set[str]) -> dict:
    """One tick, without Dagster: the new cursor, the changed files and the dates to refresh.

    Returns ``{"cursor": {...}, "changes": [(relpath, old, new)], "dates": [...],
    "full": bool, "waiting": [relpath], "new_dates": [...]}``.
    """
    state = json.loads(cursor) if cursor else {}
    before: dict = state.get("files", {})
    requested: dict = state.get("requested", {})
    landed = _landed(settings)
    files, waiting = {}, []
    for relpath, (f, _) in landed.items():
        seen = before.get(relpath)
        if seen and seen["size"] == f.size and seen["mtime"] == f.mtime_ns:
            files[relpath] = {"size": f.size, "mtime": f.mtime_ns,
                              "sha256": seen.get("sha256") or f.sha256()}
        else:  # new, or still being written: look again next tick
            files[relpath] = {"size": f.size, "mtime": f.mtime_ns, "sha256": None}
            waiting.append(relpath)
    day_of = {relpath: day for relpath, (_, day) in landed.items()}
    blocked = {day_of[r] for r in waiting}  # None: a potential set file is still moving
    changes = [(relpath, requested.get(relpath), entry["sha256"])
               for relpath, entry in sorted(files.items())
               if entry["sha256"] is not None and day_of[relpath] not in blocked
               and requested.get(relpath) != entry["sha256"]]
    full = any(day_of[r] is None for r, _, _ in changes)
    if full and waiting:  # a full refresh would read every moving file: wait for all of them
        changes = []
    dates = sorted({day_of[r] for r, _, _ in changes if day_of[r] is not None})
    new_requested = {r: h for r, h in requested.items() if r in files}
    new_requested |= {r: h for r, _, h in changes}
    return {
        "cursor": {"files": files, "requested": new_requested},
        "changes": changes, "dates": dates, "full": full, "waiting": sorted(waiting),
        "new_dates": [d for d in dates if d not in known_dates],
    }


def run_key(changes: list[tuple[str, str | None, str]]) -> str:
    text = "\n".join(f"{r}:{old or '-'}->{new}" for r, old, new in sorted(changes))
    return hashlib.sha256(text.encode()).hexdigest()


@dg.sensor(
    name="landing_sensor", job=refresh_job, minimum_interval_seconds=TICK_SECONDS,
    default_status=(dg.DefaultSensorStatus.STOPPED
                    if os.environ.get("CAKUPAN_SENSOR_DEFAULT", "").lower() == "stopped"
                    else dg.DefaultSensorStatus.RUNNING),
    description="Refreshes the snapshot dates whose delivered files changed content, once "
                "every file of the date has kept its size and mtime for one tick.",
)
def landing_sensor(context: dg.SensorEvaluationContext, settings: Settings):
    known = set(context.instance.get_dynamic_partitions(SNAPSHOTS.name))
    tick = evaluate(context.cursor, settings, known)
    cursor = json.dumps(tick["cursor"], sort_keys=True)
    if not tick["changes"]:
        reason = (f"waiting for {len(tick['waiting'])} file(s) to stop changing"
                  if tick["waiting"] else "no new content in the landing zone")
        return dg.SensorResult(skip_reason=reason, cursor=cursor)
    dates = [] if tick["full"] else tick["dates"]
    tags = {"cakupan/trigger": "landing_sensor",
            "cakupan/snapshots": ",".join(tick["dates"]) or "all"}
    if dates:
        start, end = delivery_range(dates[0], dates[-1])
        tags |= {"cakupan/partition_range_start": start, "cakupan/partition_range_end": end}
    context.log.info(f"{len(tick['changes'])} changed file(s): "
                     + ", ".join(r for r, _, _ in tick["changes"]))
    return dg.SensorResult(
        run_requests=[dg.RunRequest(
            run_key=run_key(tick["changes"]), tags=tags,
            run_config={"ops": {"refresh": {"config": {"dates": dates}}}})],
        dynamic_partitions_requests=(
            [SNAPSHOTS.build_add_request(tick["new_dates"])] if tick["new_dates"] else []),
        cursor=cursor,
    )
