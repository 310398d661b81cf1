"""Stage: coverage tables per snapshot (by tier, national and by region), with penetration.

Penetration = active / potential x 100, only where a potential exists at exactly that tier and
region (and is not zero); otherwise NULL. Potential comes from the newest accepted set dated on
or before the snapshot. Only snapshots of the history (at least one loaded delivery) have rows.
By region: the province and the regency containing each person's deciding row; every region
with a person or a potential has a row; ``uncovered`` and ``uncovered_rank`` say where the
largest groups without protection are.
"""
from __future__ import annotations

import datetime as dt

from readers.storage import record_version
from schemas.reference import vintage_for

from assets import versions
from assets.history import Inputs, LakeInputs

_PENETRATION = "CASE WHEN {p} > 0 THEN CAST({a} AS DOUBLE) / {p} * 100 END"
_SET = "(SELECT max(valid_from) FROM potential WHERE valid_from <= $day)"
_COUNTS = "count(*) FILTER (active) AS active, count(*) FILTER (NOT active) AS inactive"
_PEOPLE = "read_parquet($people)"

BY_TIER_SQL = f"""
INSERT INTO coverage_by_tier
WITH e AS (SELECT tier, {_COUNTS} FROM {_PEOPLE} GROUP BY tier),
pot AS (SELECT tier, potensi FROM potential
        WHERE valid_from = {_SET} AND region_code IS NULL)
SELECT $day, t.tier, t.tier_label, coalesce(e.active, 0), coalesce(e.inactive, 0), pot.potensi,
       {_PENETRATION.format(a="coalesce(e.active, 0)", p="pot.potensi")}, $vintage, {_SET}
FROM tier_ref t LEFT JOIN e USING (tier) LEFT JOIN pot USING (tier)
ORDER BY t.ord
"""

NATIONAL_SQL = f"""
INSERT INTO coverage_national
WITH people AS (SELECT person, bool_or(active) AS active FROM {_PEOPLE} GROUP BY person),
tiers AS (SELECT count(*) FILTER (active) AS tier_sum FROM {_PEOPLE}),
pot AS (SELECT CASE WHEN count(DISTINCT tier) = 6 THEN sum(potensi) END AS potensi
        FROM potential WHERE valid_from = {_SET} AND region_code IS NULL)
SELECT $day, count(*) FILTER (people.active), any_value(tiers.tier_sum),
       count(*) FILTER (NOT people.active), any_value(pot.potensi),
       {_PENETRATION.format(a="count(*) FILTER (people.active)", p="any_value(pot.potensi)")},
       $offices, $vintage, {_SET}
FROM tiers CROSS JOIN pot LEFT JOIN people ON true
"""

BY_REGION_SQL = f"""
INSERT INTO coverage_by_region
WITH e AS (SELECT tier, active, region_province, region_regency FROM {_PEOPLE}),
counts AS (
    SELECT tier, 'province' AS region_level, region_province AS region_code, {_COUNTS}
    FROM e GROUP BY ALL
    UNION ALL
    SELECT tier, 'regency', region_regency, {_COUNTS}
    FROM e WHERE region_regency IS NOT NULL GROUP BY ALL
),
pot AS (SELECT tier, region_level, region_code, potensi FROM potential
        JOIN ref_region r ON r.vintage = $vintage AND r.kode = potential.region_code
        WHERE valid_from = {_SET} AND region_level IN ('province', 'regency')),
joined AS (
    SELECT tier, region_level, region_code, coalesce(counts.active, 0) AS active,
           coalesce(counts.inactive, 0) AS inactive, pot.potensi AS potential,
           CASE WHEN pot.potensi IS NOT NULL
                THEN greatest(pot.potensi - coalesce(counts.active, 0), 0) END AS uncovered
    FROM counts FULL JOIN pot USING (tier, region_level, region_code)
)
SELECT $day, tier, t.tier_label, region_level, region_code, r.nama,
       CASE region_level WHEN 'regency' THEN substr(region_code, 1, 2) END,
       active, inactive, potential, {_PENETRATION.format(a="active", p="potential")}, uncovered,
       CASE WHEN potential IS NOT NULL THEN row_number() OVER (
           PARTITION BY tier, region_level, potential IS NULL
           ORDER BY uncovered DESC, region_code) END,
       $vintage, {_SET}
FROM joined
JOIN tier_ref t USING (tier)
LEFT JOIN ref_region r ON r.vintage = $vintage AND r.kode = region_code
ORDER BY t.ord, region_level, region_code
"""

TABLE_SQL = {"coverage_by_tier": BY_TIER_SQL, "coverage_national": NATIONAL_SQL,
             "coverage_by_region": BY_REGION_SQL}
CODE_VERSIONS = {name: versions.code_version(name, sql) for name, sql in TABLE_SQL.items()}
DESCRIPTIONS = {
    "coverage_by_tier": "Active, inactive, potential and penetration per tier and snapshot.",
    "coverage_national": "National coverage per snapshot: each person once across tiers, with "
                         "the number of province offices that delivered.",
    "coverage_by_region": "Coverage per tier, province and regency/city, and snapshot, with the "
                          "uncovered potential and its rank.",
}


def version(inp: Inputs, name: str, day: dt.date) -> str:
    more = {"load_log": inp.version("load_log", day)} if name == "coverage_national" else {}
    return versions.of_inputs(CODE_VERSIONS[name], inp.store, day=str(day),
                              enrollment=inp.version("enrollment", day),
                              potential=inp.version("potential"),
                              reference=inp.version("region_reference"),
                              history=day in inp.history(), **more)


def build(inp: LakeInputs, name: str, day: dt.date, version_: str) -> dict:
    con = inp.con
    con.begin()
    con.execute(f"DELETE FROM {name} WHERE snapshot_date = ?", [day])
    if day in inp.history():
        params = {"day": day, "vintage": vintage_for(day).vintage,
                  "people": str(inp.lake.people_path(day))}
        if name == "coverage_national":
            params["offices"] = len(inp.offices(day))
        con.execute(TABLE_SQL[name], params)
    record_version(con, name, str(day), version_)
    con.commit()
    rows = con.execute(f"SELECT count(*) FROM {name} WHERE snapshot_date = ?", [day]).fetchone()[0]
    out = {"dagster/row_count": rows}
    if name == "coverage_by_tier" and rows:
        out["tiers"] = tier_markdown(con, day)
    return out


def tier_markdown(con, day: dt.date):
    """The tier table as markdown, for the asset page."""
    import dagster as dg

    rows = con.execute(
        "SELECT t.tier, t.tier_label, t.active, t.inactive, t.potential, t.penetration_pct "
        "FROM coverage_by_tier t JOIN tier_ref r USING (tier) WHERE snapshot_date = ? "
        "ORDER BY r.ord", [day]).fetchall()
    nat = con.execute("SELECT active, active_tier_sum, potential, penetration_pct FROM "
                      "coverage_national WHERE snapshot_date = ?", [day]).fetchone()
    fmt = lambda v: "" if v is None else f"{v:,}"  # noqa: E731
    pct = lambda v: "" if v is None else f"{v:.2f} %"  # noqa: E731
    lines = ["| tier | label | active | inactive | potential | penetration |",
             "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {t} | {lab} | {fmt(a)} | {fmt(i)} | {fmt(p)} | {pct(x)} |"
              for t, lab, a, i, p, x in rows]
    if nat:
        lines.append(f"| national | distinct people | {fmt(nat[0])} | | {fmt(nat[2])} | "
                     f"{pct(nat[3])} |")
    return dg.MetadataValue.md("\n".join(lines))
