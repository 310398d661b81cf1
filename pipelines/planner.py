"""What to request: the one place that decides what changed (the sensors and ``cakupan run``
all call :func:`plan`).

The landing zone says what every asset partition's data version *should* be
(:mod:`assets.versions`: content hashes of the landing files, code versions, settings, the
store); Dagster's event log says what each one *is*. The plan requests exactly the partitions
whose recorded version differs or is missing, plus new dynamic partitions for new deliveries and
snapshot dates. Nothing else is consulted, so a crash at any moment only leaves partitions whose
recorded version is stale, and the next plan requests them again.

Ordering: Dagster orders the runs of a request by the declared dependencies. A trend partition
also reads its previous and year-ago snapshots, which Dagster cannot express for dynamic
partitions; so a trend partition whose previous or year-ago snapshot is itself being recomputed
(and the unpartitioned stage after it) is *deferred* to the next plan: the next sensor tick, or
the next round of the same ``cakupan run``.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import dagster as dg

from readers import keys
from readers.landing import (Hashes, Landing, delivery_fingerprint, prefetch, scan,
                             set_fingerprint)

from assets import (ingest, potential, publish, published, reference, report, snapshot, targets,
                    trend, versions)
from assets.history import Inputs, present_files, previous_of, snapshot_days, year_ago_of
from assets.ingest import settling
from assets.partitions import DELIVERIES, SNAPSHOTS, delivery_key
from assets.resources import Settings, Warehouse
from schemas.tables import SERVING_TABLES

INPUTS = ["region_reference", "potential", "targets", "published"]
# Runs log through cakupan's one-line console logger (pipelines.definitions), not Dagster's
# default DEBUG console.
RUN_CONFIG = {"loggers": {"console": {}}}
FINAL = ["target_progress", "reconciliation", "published_consistency", "serving_file",
         "report_html"]
TREND = set(trend.TABLE_SQL)


def _known(manifest: dict | None) -> dict:
    return {f["source_file"]: (f["stat"], f["sha256"]) for f in (manifest or {}).get("files", [])
            if f.get("sha256") and f.get("stat")}


@dataclass
class Plan:
    store: str
    new_deliveries: list[str] = field(default_factory=list)
    new_snapshots: list[str] = field(default_factory=list)
    requested: dict[str, set[str | None]] = field(default_factory=dict)
    deferred: dict[str, set[str | None]] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)

    def add(self, asset: str, partition: str | None, deferred: bool = False) -> None:
        (self.deferred if deferred else self.requested).setdefault(asset, set()).add(partition)

    @property
    def empty(self) -> bool:
        return not any(self.requested.values())

    def asset_partitions(self):
        from dagster._core.definitions.events import AssetKeyPartitionKey

        return {AssetKeyPartitionKey(dg.AssetKey(a), p)
                for a, parts in self.requested.items() for p in parts}

    def summary(self) -> str:
        parts = []
        for asset, keys_ in sorted(self.requested.items()):
            keyed = [k for k in keys_ if k is not None]
            parts.append(f"{asset}" + (f" [{len(keyed)}]" if keyed else ""))
        return ", ".join(parts) or "nothing"


class ExpectedInputs(Inputs):
    """Inputs as the landing zone says they should be (what the assets will compute)."""

    def __init__(self, store: str, landing: Landing, manifests: dict, grace: int,
                 ready, hashes_by_delivery):
        self.store, self.landing, self.manifests, self.grace = store, landing, manifests, grace
        self.ready = ready
        self.expected: dict[tuple[str, str | None], str] = {}
        self._deliveries: dict[dt.date, dict[str, str]] = {}
        self._offices: dict[dt.date, list[str]] = {}
        self._files: dict[dt.date, list[list[str]]] = {}   # each delivery's files, as it will be
        self._hashes = Hashes()
        days = {d for d, _ in landing.deliveries} | {d for d, _ in manifests}
        for day in days:
            self._deliveries[day], self._offices[day], self._files[day] = {}, [], []
        prefetch([(hashes_by_delivery(key), f) for key, files in landing.deliveries.items()
                  if ready(files) for f in files])
        for (day, province), files in landing.deliveries.items():
            previous = manifests.get((day, province))
            if not ready(files):
                if previous:
                    self._deliveries[day][province] = previous["version"]
                    self._files[day].append([f["source_file"] for f in previous["files"]])
                    if previous.get("rows_file"):
                        self._offices[day].append(province)
                continue
            self._files[day].append([f.relpath for f in files])
            hashes = hashes_by_delivery((day, province))
            self._deliveries[day][province] = versions.delivery(
                ingest.CODE_VERSION, store, delivery_fingerprint(files, hashes))
            will_load = not files[0].problem or bool(previous and previous.get("rows_file"))
            if will_load:
                self._offices[day].append(province)
        for (day, province), m in manifests.items():
            if (day, province) not in landing.deliveries:   # deleted: kept and flagged
                self._deliveries[day][province] = m["version"]
                self._files[day].append([f["source_file"] for f in m["files"]])
                if m.get("rows_file"):
                    self._offices[day].append(province)
        self._history = sorted(d for d, offices in self._offices.items() if offices)

    def deliveries(self, day):
        return dict(self._deliveries.get(day, {}))

    def offices(self, day):
        return sorted(self._offices.get(day, []))

    def misnamed(self, day):
        return set_fingerprint([f for f in self.landing.misnamed if f.snapshot == day],
                               self._hashes)

    def present(self, day):
        return present_files(self.landing, day, self._files.get(day, []))

    def version(self, asset, partition=None):
        return self.expected.get((asset, None if partition is None else str(partition)))

    def history(self):
        return self._history


def plan(settings: Settings, warehouse: Warehouse, instance: dg.DagsterInstance,
         ready=None, landing: Landing | None = None, in_order: bool = False) -> Plan:
    """Everything whose recorded data version differs from what the landing zone implies.

    ``ready(files)``: whether a delivery's files may be read now (default: none was modified
    in the last ``settle_seconds``); a delivery not ready waits, and so does what depends on it.
    ``in_order``: the caller runs the requests one after another in the order of
    :func:`run_requests` (``cakupan run``), so nothing needs deferring to a later plan.
    """
    lake = warehouse.lake
    store = lake.identity(keys.fingerprint(keys.hmac_key()))["store_id"]
    landing = landing or scan(settings.landing_path)
    if ready is None:
        ready = lambda files: not any(settling(f, settings.settle_seconds)  # noqa: E731
                                      for f in files if not f.problem)
    manifests = lake.all_manifests()
    out = Plan(store)
    hashes = {}

    def hashes_of(key):
        if key not in hashes:
            hashes[key] = Hashes(_known(manifests.get(key)))
        return hashes[key]

    exp = ExpectedInputs(store, landing, manifests, settings.grace_months, ready, hashes_of)
    recorded = {}

    def stale(asset: str, partition: str | None, expected: str, reason: str) -> bool:
        if asset not in recorded:
            recorded[asset] = versions.recorded(instance, asset)
        exp.expected[(asset, partition)] = expected
        if recorded[asset].get(partition) != expected:
            out.reasons.setdefault(asset, reason)
            return True
        return False

    # inputs
    if stale("region_reference", None, versions.of_inputs(reference.CODE_VERSION, store), "new"):
        out.add("region_reference", None)
    if stale("potential", None, potential.version_of(landing, Hashes(), store), "changed"):
        out.add("potential", None)
    v_targets = targets.version_of(landing, store)
    if stale("targets", None, v_targets, "changed"):
        out.add("targets", None)
    v_published = published.version_of(landing, store)
    if stale("published", None, v_published, "changed"):
        out.add("published", None)

    # deliveries
    known_deliveries = set(instance.get_dynamic_partitions(DELIVERIES.name))
    for (day, province), files in sorted(landing.deliveries.items()):
        key = delivery_key(day, province)
        if not ready(files):
            out.waiting.extend(f.relpath for f in files)
            continue
        if key not in known_deliveries:
            out.new_deliveries.append(key)
        if stale("enrollment_rows", key, exp.deliveries(day)[province], "changed"):
            out.add("enrollment_rows", key)

    # per-snapshot tables, stage by stage
    days = snapshot_days(landing, manifests)
    known_snapshots = set(instance.get_dynamic_partitions(SNAPSHOTS.name))
    out.new_snapshots = [str(d) for d in days if str(d) not in known_snapshots]
    for name in snapshot.ORDER:
        for day in days:
            if stale(name, str(day), snapshot.version_of(exp, name, day, settings.grace_months),
                     "inputs changed"):
                out.add(name, str(day))
    recounted = {p for name in snapshot.ORDER if name not in TREND
                 for p in out.requested.get(name, ())}
    history = exp.history()
    for name in TREND:
        for p in list(out.requested.get(name, ())):
            day = dt.date.fromisoformat(p)
            needs = {str(d) for d in (previous_of(history, day), year_ago_of(history, day)) if d}
            if not in_order and p not in recounted and needs & recounted:
                out.requested[name].discard(p)
                out.add(name, p, deferred=True)

    # the unpartitioned stage: tables rebuilt whole, then the serving file
    later = bool(out.deferred)
    coverage = [(a, str(d), exp.expected[(a, str(d))]) for a in targets.COVERAGE for d in days]
    whole = {"target_progress": targets.progress_version(store, v_targets, coverage),
             "reconciliation": published.reconciliation_version(store, v_published, coverage),
             "published_consistency": published.consistency_version(store, v_published)}
    for name, expected in whole.items():
        if stale(name, None, expected, "inputs changed"):
            out.add(name, None, deferred=later)
    served = {t.name: {str(d): exp.expected.get((t.name, str(d))) for d in days}
              for t in SERVING_TABLES if t.partition_column}
    served |= {name: {"": version} for name, version in whole.items()}
    served = {a: {p: v for p, v in parts.items() if v} for a, parts in served.items()}
    expected_serving = publish.version(store, served, settings.suppress_k)
    if stale("serving_file", None, expected_serving, "inputs changed") or \
            _failed_since_publish(instance):
        out.add("serving_file", None, deferred=later)
    if stale("report_html", None, report.version(expected_serving), "inputs changed") or \
            not settings.report_path.exists():
        out.add("report_html", None, deferred=later)
    out.requested = {a: p for a, p in out.requested.items() if p}
    return out


def failed_checks(instance, since: float | None = None) -> list[str]:
    """Blocking checks of published tables whose latest evaluation failed (after ``since``)."""
    from assets.checks import CHECKS

    check_keys = [c.key for t in SERVING_TABLES for c in CHECKS.get(t.name, []) if c.blocking]
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(check_keys)
    failed = []
    for key, record in latest.items():
        entry = record.event
        data = entry.dagster_event.event_specific_data if entry and entry.dagster_event else None
        if not isinstance(data, dg.AssetCheckEvaluation) or data.passed or \
                data.severity != dg.AssetCheckSeverity.ERROR:
            continue
        if since is None or entry.timestamp > since:
            failed.append(f"{key.asset_key.to_user_string()}:{key.name}")
    return failed


def _failed_since_publish(instance) -> list[str]:
    """A blocking check failed after the last publish: publishing again re-checks everything
    (and keeps the serving file if it still fails)."""
    last = instance.get_latest_materialization_event(dg.AssetKey("serving_file"))
    return failed_checks(instance, last.timestamp if last else None)


def _wave(asset: str) -> int:
    if asset in INPUTS:
        return 0
    if asset == "enrollment_rows":
        return 1
    if asset in snapshot.ORDER:
        return 2
    return 3


def run_requests(p: Plan, asset_graph, instance, tags: dict) -> list[dg.RunRequest]:
    """The plan as run requests, in the order they must run: inputs, deliveries, snapshot
    tables, the serving file; each wave grouped the way a backfill groups it (one run per
    partitions definition, key set and contiguous range)."""
    from dagster._core.definitions.automation_tick_evaluation_context import (
        build_run_requests_with_backfill_policies)

    out = []
    for wave in range(4):
        partitions = {ap for ap in p.asset_partitions()
                      if _wave(ap.asset_key.to_user_string()) == wave}
        if not partitions:
            continue
        with dg.partition_loading_context(dynamic_partitions_store=instance):
            requests = build_run_requests_with_backfill_policies(partitions, asset_graph,
                                                                 instance)
        # upstream stages first (a run with enrollment before one that starts at coverage; a
        # trend-only run last: it reads the tables the others write)
        order = {name: i for i, name in enumerate(snapshot.ORDER)}
        requests.sort(key=lambda rr: min(order.get(k.to_user_string(), 0)
                                         for k in rr.asset_selection or []))
        out += [rr.with_replaced_attrs(tags={**(rr.tags or {}), **tags}, run_config=RUN_CONFIG)
                for rr in requests]
    return out


def asset_graph_subset(p: Plan, repository: dg.RepositoryDefinition):
    from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset

    return AssetGraphSubset.from_asset_partition_set(p.asset_partitions(), repository.asset_graph)




def partition_requests(p: Plan) -> list:
    out = []
    if p.new_deliveries:
        out.append(DELIVERIES.build_add_request(p.new_deliveries))
    if p.new_snapshots:
        out.append(SNAPSHOTS.build_add_request(p.new_snapshots))
    return out


def add_partitions(p: Plan, instance) -> None:
    if p.new_deliveries:
        instance.add_dynamic_partitions(DELIVERIES.name, p.new_deliveries)
    if p.new_snapshots:
        instance.add_dynamic_partitions(SNAPSHOTS.name, p.new_snapshots)
