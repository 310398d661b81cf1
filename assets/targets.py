"""Stage: targets (an input set) and progress towards them per snapshot (contract v1.2, "Targets").

``targets``: every ``targets/*.csv`` together form one set, validated whole; a rejected set
leaves the previous accepted one in force. ``target_progress``: one row per accepted target and
snapshot of the history:

* ``people_to_target = max(0, ceil(target_pct x potential / 100) - active)`` and the test "met"
  (``active x 100 >= target_pct x potential``) in exact integer arithmetic (``target_pct`` is held
  as an integer of 10^-12 points), never in DOUBLE;
* ``trend_pp_per_month``: the least-squares slope of penetration against months(snapshot) over
  the last 12 snapshots of the history up to S, of those with a penetration; NULL with fewer
  than 3; below 1e-9 in absolute value it is 0. The sums are exact integers (penetration in
  10^-12 points, months relative to S), so the figure is the same however the rows are ordered
  (a DOUBLE ``regr_slope`` differs in its last bits from run to run);
* ``projected_date``: S when met; else, with a positive slope, the last day of the month
  ``ceil((target_pct - penetration_pct) / slope)`` months after S's month; else NULL;
* ``on_track``: met, or ``projected_date <= target_date`` (NULL without a projection).
A potential that is NULL (or 0: no penetration) makes every derived column NULL.
"""
import dagster as dg

from readers.landing import Hashes, scan, set_fingerprint
from readers.storage import record_version, versions_of
from schemas import targets as schema

from assets import sets, versions
from assets.reference import region_reference
from assets.resources import Settings, Warehouse

CODE_VERSION = versions.code_version("targets", schema.PREPARE_SQL, schema.MACROS)

PROGRESS_SQL = """
INSERT INTO target_progress
WITH history AS (
    SELECT snapshot_date, row_number() OVER (ORDER BY snapshot_date) AS i
    FROM coverage_national
),
series AS (   -- every target at every snapshot, with the figures it is measured by
    SELECT t.tier, t.region_level, t.region_code, t.target_pct, t.target_e12, t.target_date,
           t.sumber, h.snapshot_date, h.i,
           coalesce(CASE WHEN t.tier = 'NASIONAL' THEN n.active
                         WHEN t.region_code IS NULL THEN b.active ELSE r.active END, 0) AS active,
           CASE WHEN t.tier = 'NASIONAL' THEN n.potential
                WHEN t.region_code IS NULL THEN b.potential ELSE r.potential END AS potential,
           r.region_name
    FROM targets t CROSS JOIN history h
    LEFT JOIN coverage_national n ON t.tier = 'NASIONAL' AND n.snapshot_date = h.snapshot_date
    LEFT JOIN coverage_by_tier b ON t.region_code IS NULL AND b.tier = t.tier
         AND b.snapshot_date = h.snapshot_date
    LEFT JOIN coverage_by_region r ON r.tier = t.tier AND r.region_level = t.region_level
         AND r.region_code = t.region_code AND r.snapshot_date = h.snapshot_date
),
measured AS (
    SELECT *, CASE WHEN potential > 0 THEN CAST(active AS DOUBLE) / potential * 100 END AS pct,
           CASE WHEN potential > 0 THEN CAST(active AS HUGEINT) * 100 * 1000000000000
                                        >= target_e12 * potential END AS met
    FROM series
),
points AS (  -- x: months before S (0 .. -11); y: penetration in 10^-12 points, an integer
    SELECT a.tier, a.region_code, a.snapshot_date,
           (12 * year(b.snapshot_date) + month(b.snapshot_date))
             - (12 * year(a.snapshot_date) + month(a.snapshot_date)) AS x,
           CAST(b.active AS HUGEINT) * 100 * 1000000000000 // b.potential AS y
    FROM measured a JOIN measured b
      ON b.tier = a.tier AND b.region_code IS NOT DISTINCT FROM a.region_code
     AND b.i BETWEEN a.i - 11 AND a.i AND b.potential > 0
),
sums AS (   -- exact integer sums: the slope does not depend on the order rows are summed in
    SELECT tier, region_code, snapshot_date, count(*) AS n, sum(x) AS sx,
           sum(x * x) AS sxx, sum(y) AS sy, sum(x * y) AS sxy
    FROM points GROUP BY ALL
),
trend AS (
    SELECT a.tier, a.region_code, a.snapshot_date,
           CASE WHEN s.n >= 3 THEN CAST(s.n * s.sxy - s.sx * s.sy AS DOUBLE)
                / CAST(s.n * s.sxx - s.sx * s.sx AS DOUBLE) / 1e12 END AS slope
    FROM measured a LEFT JOIN sums s
      ON s.tier = a.tier AND s.region_code IS NOT DISTINCT FROM a.region_code
     AND s.snapshot_date = a.snapshot_date
),
projected AS (
    SELECT m.*, CASE WHEN abs(t.slope) < 1e-9 THEN 0 ELSE t.slope END AS slope
    FROM measured m JOIN trend t ON t.tier = m.tier AND t.snapshot_date = m.snapshot_date
     AND t.region_code IS NOT DISTINCT FROM m.region_code
)
SELECT snapshot_date, tier, region_level, region_code,
       CASE WHEN region_code IS NULL THEN 'Indonesia' ELSE region_name END,
       active, potential, pct, target_pct, target_date,
       CASE WHEN potential > 0 THEN greatest(0, CAST(
           (target_e12 * potential + 100 * 1000000000000 - 1) // (100 * 1000000000000)
           AS BIGINT) - active) END,
       CASE WHEN potential > 0 THEN greatest(0, potential - active) END,
       CASE WHEN potential > 0 THEN slope END,
       CASE WHEN NOT (potential > 0) THEN NULL
            WHEN met THEN snapshot_date
            WHEN slope > 0 THEN last_day(snapshot_date + to_months(CAST(ceil(round(
                (CAST(target_pct AS DOUBLE) - pct) / slope, 9)) AS INTEGER))) END AS projected,
       CASE WHEN NOT (potential > 0) THEN NULL WHEN met THEN true
            WHEN slope > 0 THEN last_day(snapshot_date + to_months(CAST(ceil(round(
                (CAST(target_pct AS DOUBLE) - pct) / slope, 9)) AS INTEGER))) <= target_date
            END,
       sumber
FROM projected
ORDER BY snapshot_date, tier, region_level, region_code
"""
PROGRESS_CODE = versions.code_version("target_progress", PROGRESS_SQL)


def version_of(landing, store: str) -> str:
    return versions.of_inputs(CODE_VERSION, store,
                              files=set_fingerprint(landing.targets, Hashes()))


@dg.asset(
    kinds={"duckdb", "csv"}, group_name="inputs", deps=[region_reference],
    code_version=CODE_VERSION,
    description="Coverage targets (targets/*.csv): one set, validated whole; a rejected set "
                "leaves the previous accepted set in force.",
)
def targets(context: dg.AssetExecutionContext, warehouse: Warehouse,
            settings: Settings) -> dg.MaterializeResult:
    store = warehouse.store_id()
    landing = scan(settings.landing_path)
    version = version_of(landing, store)
    files = landing.targets
    with warehouse.connect() as con:
        had = con.execute("SELECT count(*) FROM targets").fetchone()[0]
        rows, problems = sets.stage(con, files, schema, {}, "targets_staged")
        problems += sets.row_problems(con, "targets_staged")
        status = "rejected" if problems else "loaded"
        message = None
        if problems:
            message = (f"targets rejected: {sets.shown(problems)}; "
                       + ("the previous accepted set stays in force" if had
                          else "no set is in force"))
            context.log.warning(message)
        con.begin()
        if not problems:
            con.execute("DELETE FROM targets")
            con.execute(
                "INSERT INTO targets SELECT tier, CASE WHEN kode IS NULL THEN 'national' "
                "ELSE region_level END, kode, CAST(pct_norm AS DECIMAL(38,12)), pct_e12, tdate, "
                "sumber, source_file FROM targets_staged")
        con.execute("DELETE FROM target_set")
        con.execute("INSERT INTO target_set VALUES (?, ?, ?, ?, now()::TIMESTAMP)",
                    [status, ", ".join(f.relpath for f in files), rows, message])
        record_version(con, "targets", None, version)
        con.commit()
        in_force = con.execute("SELECT count(*) FROM targets").fetchone()[0]
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={"dagster/row_count": in_force, "status": status, "files": len(files),
                  "message": message or ""})


def progress_version(store: str, targets_version: str | None, coverage: list) -> str:
    return versions.of_inputs(PROGRESS_CODE, store, targets=targets_version,
                              coverage=sorted(coverage))


COVERAGE = ("coverage_by_tier", "coverage_national", "coverage_by_region")


def coverage_versions(con, days) -> list:
    """(asset, partition, version) of the coverage tables at the current snapshots."""
    wanted = {str(d) for d in days}
    return [(a, p, v) for a in COVERAGE for p, v in versions_of(con, a).items() if p in wanted]


def current_days(warehouse, settings) -> list:
    from assets.history import snapshot_days

    return snapshot_days(scan(settings.landing_path), warehouse.lake.all_manifests())


@dg.asset(
    kinds={"duckdb"}, group_name="targets", code_version=PROGRESS_CODE,
    deps=[targets, "coverage_by_tier", "coverage_national", "coverage_by_region"],
    description="Progress towards every accepted target at every snapshot: people still "
                "needed, uncovered potential, the 12-snapshot trend and the projected date.",
)
def target_progress(context: dg.AssetExecutionContext, warehouse: Warehouse,
                    settings: Settings) -> dg.MaterializeResult:
    store = warehouse.store_id()
    days = current_days(warehouse, settings)
    with warehouse.connect() as con:
        version = progress_version(store, versions_of(con, "targets").get(""),
                                   coverage_versions(con, days))
        con.begin()
        con.execute("DELETE FROM target_progress")
        con.execute(PROGRESS_SQL)
        record_version(con, "target_progress", None, version)
        con.commit()
        rows = con.execute("SELECT count(*) FROM target_progress").fetchone()[0]
        latest = con.execute(
            "SELECT tier, coalesce(region_code, ''), target_pct, target_date, penetration_pct, "
            "people_to_target, projected_date, on_track FROM target_progress "
            "WHERE snapshot_date = (SELECT max(snapshot_date) FROM target_progress) "
            "ORDER BY tier, region_code NULLS FIRST").fetchall()
    table = "\n".join(["| tier | region | target | by | now | people to go | projected | "
                       "on track |", "|---|---|---:|---|---:|---:|---|---|"] + [
        f"| {t} | {r} | {p} % | {d} | {'' if n is None else f'{n:.2f} %'} | "
        f"{'' if g is None else f'{g:,}'} | {j or ''} | {'' if o is None else o} |"
        for t, r, p, d, n, g, j, o in latest])
    return dg.MaterializeResult(data_version=dg.DataVersion(version),
                                metadata={"dagster/row_count": rows,
                                          "latest": dg.MetadataValue.md(table)})
