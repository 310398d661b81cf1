"""Asset checks generated from the table declarations in :mod:`schemas.tables`.

No table has hand-written checks: every published table gets one blocking check that validates
it with the pandera schema derived from its declaration (key unique and not null, counts
non-negative, penetration within [0, 100], national active <= tier sum, known codes). A table
that declares more gets more generated checks:

* ``references`` -> a blocking check per reference: every row's codes exist in the reference
  table (coverage_by_region: the region code, at its level, in the row's Kemendagri vintage);
* ``deliveries`` -> a blocking check that every delivery of the landing zone (snapshot date x
  province office) has a row (load_log);
* ``freshness`` -> a non-blocking check, WARN severity, that the newest date is at most
  ``CAKUPAN_FRESHNESS_DAYS`` (45) days old (coverage_national).

Failing rows are shown in the check's metadata in the UI.
"""

import datetime as dt
import os
import warnings

import dagster as dg
import pandera.pandas as pa
from pandera.errors import SchemaWarning

from pipelines.landing import scan_enrollment
from pipelines.partitions import SNAPSHOTS
from pipelines.resources import Settings, Warehouse
from schemas.tables import SERVING_TABLES, Deliveries, Freshness, Reference, Table

SAMPLES = 20


def _markdown(df, limit: int = SAMPLES) -> str:
    df = df.head(limit)
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "---|" * len(df.columns)
    rows = ["| " + " | ".join(map(str, r)) + " |" for r in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def schema_check(table: Table) -> dg.AssetChecksDefinition:
    schema = table.pandera_schema()

    @dg.asset_check(asset=table.name, name="matches_schema", blocking=True,
                    description=f"{table.name} satisfies its declared schema "
                                f"(key {', '.join(table.key)} unique; value rules)")
    def _check(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            df = con.execute(f"SELECT {', '.join(table.column_names())} FROM {table.name}").df()
        with warnings.catch_warnings(record=True) as flagged:
            warnings.simplefilter("always", SchemaWarning)
            try:
                schema.validate(df, lazy=True)
            except pa.errors.SchemaErrors as exc:
                cases = exc.failure_cases
                return dg.AssetCheckResult(passed=False, metadata={
                    "rows": len(df), "failures": len(cases),
                    "failing_samples": dg.MetadataValue.md(_markdown(cases)),
                })
        notes = [str(w.message) for w in flagged if issubclass(w.category, SchemaWarning)]
        if notes:  # a warning-level rule: shown, never blocking
            return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN,
                                       metadata={"rows": len(df), "flagged": dg.MetadataValue.md(
                                           "\n\n".join(n[:2000] for n in notes))})
        return dg.AssetCheckResult(passed=True, metadata={"rows": len(df)})

    return _check


def reference_check(table: Table, ref: Reference) -> dg.AssetChecksDefinition:
    """Blocking: every row of ``table`` has a matching row in ``ref.table``."""
    match = " AND ".join(f"r.{there} = t.{here}" for here, there in ref.on)
    shown = list(dict.fromkeys([*table.key, *(here for here, _ in ref.on)]))
    missing = f"FROM {table.name} t WHERE NOT EXISTS (SELECT 1 FROM {ref.table} r WHERE {match})"

    @dg.asset_check(asset=table.name, name=ref.name, blocking=True,
                    description=f"{table.name}: {ref.description} ({ref.table})")
    def _check(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            rows = con.execute(f"SELECT count(*) FROM {table.name}").fetchone()[0]
            bad = con.execute(f"SELECT count(*) {missing}").fetchone()[0]
            sample = con.execute(
                f"SELECT {', '.join('t.' + c for c in shown)} {missing} "
                f"ORDER BY {', '.join('t.' + c for c in shown)} LIMIT {SAMPLES}").df()
        metadata = {"rows": rows, "failures": bad}
        if bad:
            metadata["failing_samples"] = dg.MetadataValue.md(_markdown(sample))
        return dg.AssetCheckResult(passed=bad == 0, metadata=metadata)

    return _check


def _checked_dates(context: dg.AssetCheckExecutionContext) -> set[dt.date]:
    """The snapshot dates of this run (its partition-range tags), or, in a run without them,
    every snapshot date the asset was materialized for."""
    tags = context.run.tags
    start = tags.get("dagster/asset_partition_range_start")
    end = tags.get("dagster/asset_partition_range_end")
    known = context.instance.get_dynamic_partitions(SNAPSHOTS.name)
    if start and end:
        start, end = start.split("|")[0], end.split("|")[0]
        if start in known and end in known:
            keys = known[known.index(start):known.index(end) + 1]
        else:
            keys = [start, end]
    else:
        keys = context.instance.get_materialized_partitions(context.check_specs[0].asset_key)
    return {dt.date.fromisoformat(k) for k in keys}


def deliveries_check(table: Table, rule: Deliveries) -> dg.AssetChecksDefinition:
    """Blocking: every delivery of the landing zone for the snapshots checked has a row."""
    day_col, prov_col = rule.snapshot_column, rule.province_column

    @dg.asset_check(asset=table.name, name=rule.name, blocking=True,
                    description=f"{table.name} has a row for every delivered province office "
                                "of each snapshot (compared with the landing zone)")
    def _check(context: dg.AssetCheckExecutionContext, warehouse: Warehouse,
               settings: Settings) -> dg.AssetCheckResult:
        dates = _checked_dates(context)
        deliveries, _ = scan_enrollment(settings.landing_path)
        wanted = {(day, prov): files for (day, prov), files in deliveries.items() if day in dates}
        with warehouse.connect() as con:
            have = set(con.execute(
                f"SELECT DISTINCT {day_col}, {prov_col} FROM {table.name} "
                f"WHERE {day_col} IN (SELECT unnest(?))", [sorted(dates)]).fetchall())
        missing = sorted(k for k in wanted if k not in have)
        metadata = {"snapshots": len(dates), "deliveries": len(wanted), "failures": len(missing)}
        if missing:
            lines = ["| snapshot_date | province_code | file |", "|---|---|---|"]
            lines += [f"| {d} | {p} | {wanted[(d, p)][0].relpath} |"
                      for d, p in missing[:SAMPLES]]
            metadata["failing_samples"] = dg.MetadataValue.md("\n".join(lines))
        return dg.AssetCheckResult(passed=not missing, metadata=metadata)

    return _check


def freshness_check(table: Table, rule: Freshness) -> dg.AssetChecksDefinition:
    """Not blocking, WARN: the newest ``rule.column`` is at most N days old."""

    @dg.asset_check(asset=table.name, name=rule.name, blocking=False,
                    description=f"the newest {rule.column} of {table.name} is at most "
                                f"{rule.env} (default {rule.days}) days old; a warning only")
    def _check(warehouse: Warehouse) -> dg.AssetCheckResult:
        days = int(os.environ.get(rule.env) or rule.days)
        with warehouse.connect() as con:
            newest = con.execute(f"SELECT max({rule.column}) FROM {table.name}").fetchone()[0]
        age = None if newest is None else (dt.date.today() - newest).days
        metadata = {"newest": str(newest), "max_age_days": days,
                    "age_days": -1 if age is None else age}
        return dg.AssetCheckResult(passed=age is not None and age <= days,
                                   severity=dg.AssetCheckSeverity.WARN, metadata=metadata)

    return _check


def checks_for(table: Table) -> list[dg.AssetChecksDefinition]:
    """Every check ``table``'s declaration asks for."""
    out = [schema_check(table)]
    out += [reference_check(table, ref) for ref in table.references]
    if table.deliveries is not None:
        out.append(deliveries_check(table, table.deliveries))
    if table.freshness is not None:
        out.append(freshness_check(table, table.freshness))
    return out


GENERATED_CHECKS = [check for t in SERVING_TABLES for check in checks_for(t)]
