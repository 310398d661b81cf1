"""Data versions: what decides that something changed, declared once.

Every asset partition's data version is a hash of its asset's code version, the store it writes
(``store_id``: a rebuilt warehouse starts from nothing) and the versions of exactly the inputs it
was built from. At the bottom are the landing files' content hashes (:mod:`readers.landing`).
Assets compute their version from what they actually read and record it on their Dagster
materialization (``dagster/data_version``, with the input versions and event pointers Dagster's
staleness display needs); the planner (:mod:`pipelines.planner`) computes, with the same
functions, the version each partition *should* have given the landing zone, and requests the
partitions whose recorded version differs. There is no other change detection.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json

import dagster as dg
from dagster._core.events import DagsterEventType

VERSION_TAG = "dagster/data_version"
CODE_TAG = "dagster/code_version"
INPUT_VERSION = "dagster/input_data_version/"
INPUT_POINTER = "dagster/input_event_pointer/"


def digest(*parts) -> str:
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def code_version(name: str, *parts) -> str:
    """The code version of an asset: a hash of the SQL, rules and settings its output depends on
    (shown in the UI; a change makes its partitions stale)."""
    return f"{name}-{digest(*parts)[:12]}"


# -- the formulas (assets and planner call these, nothing else) ---------------------------------

def of_inputs(code: str, store: str, **inputs) -> str:
    return digest(code, store, inputs)


def delivery(code: str, store: str, landing_fingerprint: str) -> str:
    return of_inputs(code, store, landing=landing_fingerprint)


def per_snapshot(code: str, store: str, deliveries: dict[str, str], **more) -> str:
    """A per-snapshot table built from the deliveries of its date (province -> version)."""
    return of_inputs(code, store, deliveries=sorted(deliveries.items()), **more)


# -- reading recorded versions back from Dagster -----------------------------------------------

def recorded(instance: dg.DagsterInstance, key: str | dg.AssetKey) -> dict[str | None, str]:
    """partition (None: unpartitioned) -> data version of the latest materialization."""
    asset_key = dg.AssetKey.from_coercible(key)
    storage = instance.event_log_storage
    tags = storage.get_latest_tags_by_partition(
        asset_key, DagsterEventType.ASSET_MATERIALIZATION, [VERSION_TAG])
    out = {p: t[VERSION_TAG] for p, t in tags.items() if VERSION_TAG in t}
    latest = instance.get_latest_materialization_event(asset_key)
    if latest is not None and latest.asset_materialization.partition is None:
        version = (latest.asset_materialization.tags or {}).get(VERSION_TAG)
        if version:
            out[None] = version
    return out


def pointers(instance: dg.DagsterInstance, key: str | dg.AssetKey) -> dict[str | None, int]:
    """partition (None: unpartitioned) -> storage id of the latest materialization."""
    asset_key = dg.AssetKey.from_coercible(key)
    out: dict[str | None, int] = dict(instance.event_log_storage.get_latest_storage_id_by_partition(
        asset_key, DagsterEventType.ASSET_MATERIALIZATION))
    record = instance.get_latest_materialization_event(asset_key)
    if record is not None and record.asset_materialization.partition is None:
        events = instance.fetch_materializations(asset_key, limit=1).records
        if events:
            out[None] = events[0].storage_id
    return out


class Provenance:
    """Builds the tags of a materialization: its data version and code version, and for each
    input the version and event pointer Dagster's staleness display compares against."""

    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance
        self._pointers: dict[str, dict] = {}

    def pointer(self, key: str, partitions) -> int | None:
        """The latest storage id of ``key`` at ``partitions`` (one key, a list, or None)."""
        if key not in self._pointers:
            self._pointers[key] = pointers(self.instance, key)
        known = self._pointers[key]
        if isinstance(partitions, (list, tuple, set)):
            found = [known[p] for p in partitions if p in known]
            return max(found) if found else None
        return known.get(partitions)

    def forget(self, key: str) -> None:
        """Materializations of ``key`` were just recorded: read its pointers again."""
        self._pointers.pop(key, None)

    def tags(self, code: str, version: str, inputs: dict[str, tuple]):
        """``inputs``: asset key -> (version read, its partition(s) or None)."""
        tags = {CODE_TAG: code, VERSION_TAG: version}
        for key, (input_version, partitions) in inputs.items():
            tags[INPUT_VERSION + key] = input_version or "unknown"
            pointer = self.pointer(key, partitions)
            tags[INPUT_POINTER + key] = str(pointer if pointer is not None else 0)
        return tags


def materialization(key: str, partition: str | None, code: str, version: str,
                    metadata: dict, provenance: Provenance | None = None,
                    inputs: dict | None = None) -> dg.AssetMaterialization:
    tags = (provenance.tags(code, version, inputs or {}) if provenance
            else {CODE_TAG: code, VERSION_TAG: version})
    return dg.AssetMaterialization(asset_key=key, partition=partition, metadata=metadata,
                                   tags=tags)


def snapshot_key(day: dt.date) -> str:
    return str(day)
