"""The per-snapshot tables, one multi-asset: load log, quarantine, enrollment (the dedupe),
coverage by tier / national / by region and their trend tables.

One step computes every selected table for every snapshot of the run, stage by stage (all
enrollment partitions before any coverage partition, all coverage before any trend; inside a
stage, snapshot by snapshot), and
records one materialization per table and snapshot with that partition's own metadata and data
version. ``can_subset``: rematerializing one table of one snapshot from the UI recomputes just
that. Generated checks (:mod:`assets.checks`) run over the run's snapshots.
"""

import datetime as dt

import dagster as dg

from readers.landing import Hashes, scan

from assets import checks as generated
from assets import coverage, enrollment, load_log, quarantine, trend, versions
from assets.history import LakeInputs
from assets.partitions import FROM_DELIVERIES, SNAPSHOTS, parse_snapshot
from assets.resources import Settings, Warehouse
from schemas.tables import TABLES

INGEST = dg.AssetDep("enrollment_rows", partition_mapping=FROM_DELIVERIES)
GROUPS = {"load_log": "ingest", "quarantine": "ingest", "enrollment": "counting",
          **{n: "coverage" for n in coverage.TABLE_SQL}, **{n: "trend" for n in trend.TABLE_SQL}}
# declared dependencies: (asset, same partition?) per table
DEPS = {
    "load_log": [("enrollment_rows", False)],
    "quarantine": [("enrollment_rows", False)],
    "enrollment": [("enrollment_rows", False)],
    "coverage_by_tier": [("enrollment", True), ("potential", False), ("region_reference", False)],
    "coverage_national": [("enrollment", True), ("load_log", True), ("potential", False),
                          ("region_reference", False)],
    "coverage_by_region": [("enrollment", True), ("potential", False),
                           ("region_reference", False)],
    "coverage_trend_tier": [("enrollment", True), ("coverage_by_tier", True), ("load_log", True)],
    "coverage_trend_national": [("enrollment", True), ("coverage_national", True),
                                ("load_log", True)],
    "coverage_trend_region": [("enrollment", True), ("coverage_by_region", True),
                              ("load_log", True)],
}
ORDER = list(DEPS)
# tables of one stage read only earlier stages: a stage runs snapshot by snapshot, each
# snapshot's tables together (the trend tables share one join per snapshot)
STAGES = [["load_log", "quarantine", "enrollment"], list(coverage.TABLE_SQL), list(trend.TABLE_SQL)]
assert [n for stage in STAGES for n in stage] == ORDER
TABLE_CHECKS = [c for name in ORDER for c in generated.CHECKS.get(name, [])]


def code_versions(grace_months: int) -> dict[str, str]:
    return {"load_log": load_log.CODE_VERSION, "quarantine": quarantine.CODE_VERSION,
            "enrollment": enrollment.code_version(grace_months),
            **coverage.CODE_VERSIONS, **trend.CODE_VERSIONS}


def version_of(inp, name: str, day: dt.date, grace_months: int) -> str:
    """The data version of ``name`` at ``day`` given ``inp`` (stored or expected inputs)."""
    if name == "load_log":
        return load_log.version(inp, day)
    if name == "quarantine":
        return quarantine.version(inp, day)
    if name == "enrollment":
        return enrollment.version(inp, day, grace_months)
    if name in coverage.TABLE_SQL:
        return coverage.version(inp, name, day)
    return trend.version(inp, name, day)


def _build(inp, name: str, day: dt.date, version: str, settings: Settings) -> dict:
    if name == "load_log":
        return load_log.build(inp, day, version)
    if name == "quarantine":
        return quarantine.build(inp, day, version)
    if name == "enrollment":
        return enrollment.build(inp, day, version, settings.grace_months)
    if name in coverage.TABLE_SQL:
        return coverage.build(inp, name, day, version)
    return trend.build(inp, name, day, version)


def _inputs(inp: LakeInputs, name: str, day: dt.date) -> dict:
    """asset -> (version read, partition) for the provenance of ``name`` at ``day``."""
    out = {}
    for dep, same in DEPS[name]:
        if dep == "enrollment_rows":
            out[dep] = (versions.digest(sorted(inp.deliveries(day).items())),
                        [f"{day}|{p}" for p in inp.deliveries(day)])
        elif same:
            out[dep] = (inp.version(dep, day), str(day))
        else:
            out[dep] = (inp.version(dep), None)
    return out


def _description(name: str) -> str:
    return {**coverage.DESCRIPTIONS, **trend.DESCRIPTIONS}.get(name) or TABLES[name].description


def _run_days(context) -> tuple[list[dt.date], bool]:
    """The run's snapshots. A run of the checks alone (from the UI) has no partitions
    definition: its checks cover the snapshot it is tagged with, or every snapshot."""
    try:
        return sorted(parse_snapshot(k) for k in context.partition_keys), True
    except dg.DagsterInvariantViolationError:
        tagged = context.run.tags.get("dagster/partition")
        return ([parse_snapshot(tagged)], True) if tagged else ([], False)


def build_snapshot_tables(grace_months: int) -> dg.AssetsDefinition:
    codes = code_versions(grace_months)
    specs = []
    for name in ORDER:
        deps = []
        for dep, same in DEPS[name]:
            deps.append(INGEST if dep == "enrollment_rows" else dep)
        specs.append(dg.AssetSpec(
            name, deps=deps, description=_description(name), group_name=GROUPS[name],
            kinds={"duckdb"} if TABLES[name].storage == "warehouse" else {"parquet"},
            code_version=codes[name], skippable=True,
            metadata={"dagster/table_name": ("warehouse." if TABLES[name].storage == "warehouse"
                                             else "lake.") + name}))

    @dg.multi_asset(
        name="snapshot_tables", specs=specs, check_specs=[c.spec() for c in TABLE_CHECKS],
        partitions_def=SNAPSHOTS, can_subset=True,
        backfill_policy=dg.BackfillPolicy.single_run(),
        description="Every per-snapshot table, stage by stage, for the snapshots of the run.",
    )
    def snapshot_tables(context: dg.AssetExecutionContext, warehouse: Warehouse,
                        settings: Settings):
        store = warehouse.store_id()
        landing = scan(settings.landing_path)
        days, partitioned = _run_days(context)
        selected = {k.to_user_string() for k in context.selected_asset_keys}
        provenance = versions.Provenance(context.instance)
        with warehouse.connect() as con:
            inp = LakeInputs(con, warehouse.lake, landing, store, Hashes())
            rows = max((inp.rows_in_force(d) for d in days), default=0)
            limit = warehouse.size_memory(con, rows)
            context.log.info(f"memory_limit {limit} for {rows:,} rows in the largest snapshot")
            for stage in STAGES:
                names = [n for n in stage if n in selected]
                for day in days:
                    for name in names:
                        version = version_of(inp, name, day, settings.grace_months)
                        metadata = _build(inp, name, day, version, settings)
                        yield versions.materialization(name, str(day), codes[name], version,
                                                       metadata, provenance,
                                                       _inputs(inp, name, day))
                for name in names:
                    inp.forget(name)
                    provenance.forget(name)
            wanted = set(context.selected_asset_check_keys)
            findings = generated.evaluate(con, ORDER, set(days) if partitioned else None,
                                          {"manifests": warehouse.lake.all_manifests()}, wanted)
        for finding in findings:
            yield finding.result()

    return snapshot_tables
