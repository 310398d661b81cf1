"""Stage: published figures (an input), reconciled with the data and with themselves
(contract v1.2, "Published figures").

``reconciliation``: each published figure against the figure computed from the latest snapshot
on or before the publication date: ``match`` (a count equal; a percentage equal to the computed
one rounded half-up to the published decimals), ``truncated`` (equal to it truncated, not
rounded), ``differs``, ``no_data`` (nothing computed to compare) or ``unreadable`` (with why).
``published_consistency``: the release against itself: the six tiers' actives (published, or
implied by potential x percentage, rounded half-up) against the published national active, and
each percentage against its own counts. Every comparison of percentages is exact: the computed
percentage is the fraction ``100 x active / potential``, never a rounded DOUBLE.
"""
from __future__ import annotations

import datetime as dt
from fractions import Fraction

import dagster as dg

from readers.landing import Hashes, scan, set_fingerprint
from readers.storage import record_version, versions_of
from schemas import published as schema
from schemas.enrollment import TIERS

from assets import sets, versions
from assets.resources import Settings, Warehouse

CODE_VERSION = versions.code_version("published", schema.PREPARE_SQL, schema.MACROS)
RECONCILE_CODE = versions.code_version("reconciliation", "v1")
CONSISTENCY_CODE = versions.code_version("published_consistency", "v1")
_COLS = ("published_date, source_file, row_number, tier, region_code, region_level, metric, "
         "value_text, decimals, sumber, problem")


def version_of(landing, store: str) -> str:
    files = [f for group in landing.published.values() for f in group]
    return versions.of_inputs(CODE_VERSION, store, files=set_fingerprint(files, Hashes()))


@dg.asset(
    kinds={"duckdb", "csv"}, group_name="inputs", code_version=CODE_VERSION,
    description="Published figures (published/<date>/*.csv), every row parsed the way releases "
                "write numbers; a row that cannot be read is kept with why.",
)
def published(warehouse: Warehouse, settings: Settings) -> dg.MaterializeResult:
    store = warehouse.store_id()
    landing = scan(settings.landing_path)
    version = version_of(landing, store)
    with warehouse.connect() as con:
        con.begin()
        con.execute("DELETE FROM published")
        for day, files in sorted(landing.published.items()):
            for f in files:
                _, problems = sets.stage(con, [f], schema, {}, "published_staged")
                if problems:   # the whole file: one unreadable row (row 0)
                    con.execute(f"INSERT INTO published ({_COLS}) VALUES "
                                "(?, ?, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, ?)",
                                [day, f.relpath, "; ".join(problems)])
                    continue
                con.execute(
                    f"INSERT INTO published ({_COLS}) SELECT ?, source_file, row_number, tier, "
                    "kode, region_level, metric, value_text, CASE WHEN metric = "
                    "'penetration_pct' THEN strlen(coalesce(split_part(value_text, '.', 2), "
                    "'')) END, sumber, CASE WHEN len(reasons) > 0 THEN reason_text END "
                    "FROM published_staged", [day])
        record_version(con, "published", None, version)
        con.commit()
        rows, bad = con.execute("SELECT count(*), count(problem) FROM published").fetchone()
    return dg.MaterializeResult(data_version=dg.DataVersion(version),
                                metadata={"dagster/row_count": rows, "unreadable_rows": bad})


# -- exact comparisons --------------------------------------------------------------------------

def round_half_up(q: Fraction, decimals: int) -> Fraction:
    scale = 10 ** decimals
    return Fraction((q * scale + Fraction(1, 2)).__floor__(), scale)


def truncate(q: Fraction, decimals: int) -> Fraction:
    scale = 10 ** decimals
    return Fraction((q * scale).__floor__(), scale)


def pct_verdict(published_value: Fraction, decimals: int, active: int, potential: int) -> str:
    q = Fraction(100 * active, potential)
    if round_half_up(q, decimals) == published_value:
        return "match"
    if truncate(q, decimals) == published_value:
        return "truncated"
    return "differs"


def _fmt(q: Fraction | int | None, decimals: int = 0) -> str:
    if q is None:
        return "-"
    if decimals == 0 and Fraction(q).denominator == 1:
        return f"{int(q):,}"
    return f"{float(q):.{max(decimals, 2) + 2}f}"


class Computed:
    """The figures computed from the data, by snapshot."""

    def __init__(self, con):
        self.history = [r[0] for r in con.execute(
            "SELECT snapshot_date FROM coverage_national ORDER BY 1").fetchall()]
        self.national = {r[0]: r[1:] for r in con.execute(
            "SELECT snapshot_date, active, inactive, potential FROM coverage_national").fetchall()}
        self.tiers = {(r[0], r[1]): r[2:] for r in con.execute(
            "SELECT snapshot_date, tier, active, inactive, potential FROM coverage_by_tier"
        ).fetchall()}
        self.regions = {(r[0], r[1], r[2], r[3]): r[4:] for r in con.execute(
            "SELECT snapshot_date, tier, region_level, region_code, active, inactive, potential "
            "FROM coverage_by_region").fetchall()}

    def snapshot_for(self, day: dt.date) -> dt.date | None:
        before = [d for d in self.history if d <= day]
        return before[-1] if before else None

    def counts(self, snap, tier, level, code):
        """(active, inactive, potential) or None."""
        if code is None:
            return self.national.get(snap) if tier == schema.NATIONAL else \
                self.tiers.get((snap, tier))
        if tier == schema.NATIONAL or level not in ("province", "regency"):
            return None
        return self.regions.get((snap, tier, level, code))


def reconcile(rows, computed: Computed) -> list[tuple]:
    out = []
    for (day, src, n, tier, code, level, metric, text, decimals, problem) in rows:
        base = (day, src, n, tier, code, metric)
        if problem:
            out.append((*base, None, decimals, None, None, None, "unreadable", problem))
            continue
        value = Fraction(text)
        snap = computed.snapshot_for(day)
        counts = computed.counts(snap, tier, level, code) if snap else None
        where = f"{tier}" + (f" {code}" if code else "")
        if metric in schema.COUNTS:
            got = None if counts is None else counts[schema.COUNTS.index(metric)]
            if got is None:
                out.append((*base, float(value), None, snap, None, None, "no_data",
                            f"nothing computed for {where} {metric}" +
                            ("" if snap else f": no snapshot on or before {day}")))
                continue
            verdict = "match" if value == got else "differs"
            out.append((*base, float(value), None, snap, float(got), float(value - got),
                        verdict, f"{where} {metric}: published {_fmt(value)}, computed "
                                 f"{_fmt(got)} at {snap}"))
            continue
        active, potential = (counts[0], counts[2]) if counts else (None, None)
        if not potential:
            out.append((*base, float(value), decimals, snap, None, None, "no_data",
                        f"no penetration computed for {where}"))
            continue
        q = Fraction(100 * active, potential)
        verdict = pct_verdict(value, decimals, active, potential)
        out.append((*base, float(value), decimals, snap, float(q), float(value - q), verdict,
                    f"{where} penetration: published {text} %, computed {float(q):.4f} % at "
                    f"{snap} (rounded {float(round_half_up(q, decimals)):.{decimals}f}, "
                    f"truncated {float(truncate(q, decimals)):.{decimals}f})"))
    return out


def consistency(rows) -> list[tuple]:
    """published_consistency rows of every release."""
    by_day: dict = {}
    for (day, _src, _n, tier, code, _level, metric, text, decimals, problem) in rows:
        if problem or code is not None:
            continue
        by_day.setdefault(day, {}).setdefault((tier, metric), (Fraction(text), decimals))
    out = []
    for day, figures in sorted(by_day.items()):
        implied, missing = {}, []
        for tier in TIERS:
            if (tier, "active") in figures:
                implied[tier] = figures[(tier, "active")][0]
            elif (tier, "potential") in figures and (tier, "penetration_pct") in figures:
                implied[tier] = round_half_up(
                    figures[(tier, "potential")][0] * figures[(tier, "penetration_pct")][0]
                    / 100, 0)
            else:
                missing.append(tier)
        national = figures.get((schema.NATIONAL, "active"), (None, None))[0]
        if missing or national is None:
            total = None
            verdict = "incomplete"
            message = ("no active count, nor potential and percentage, for "
                       + ", ".join(missing) if missing else "no national active count")
        else:
            total = sum(implied.values())
            verdict = "consistent" if total == national else "inconsistent"
            message = (f"the six tiers add up to {_fmt(total)}, the national figure is "
                       f"{_fmt(national)}")
        out.append((day, "tier_sum_vs_national", None,
                    None if national is None else float(national),
                    None if total is None else float(total),
                    None if total is None or national is None else float(national - total),
                    verdict, message))
        for tier in [*TIERS, schema.NATIONAL]:
            keys = [(tier, m) for m in ("active", "potential", "penetration_pct")]
            if not all(k in figures for k in keys):
                continue
            (active, _), (potential, _), (pct, decimals) = (figures[k] for k in keys)
            if not potential:
                continue
            q = Fraction(100 * active, potential)
            verdict = pct_verdict(pct, decimals, int(active), int(potential))
            out.append((day, "pct_vs_counts", tier, float(pct), float(q), float(pct - q),
                        verdict, f"{tier}: {float(pct):.{decimals}f} % published, "
                                 f"{float(q):.4f} % from its own counts"))
    return out


def _rows(con):
    return con.execute(
        "SELECT published_date, source_file, row_number, tier, region_code, region_level, metric, "
        "value_text, decimals, problem FROM published ORDER BY 1, 2, 3").fetchall()


def reconciliation_version(store, published_version, coverage) -> str:
    return versions.of_inputs(RECONCILE_CODE, store, published=published_version,
                              coverage=sorted(coverage))


def consistency_version(store, published_version) -> str:
    return versions.of_inputs(CONSISTENCY_CODE, store, published=published_version)


@dg.asset(
    kinds={"duckdb"}, group_name="published", code_version=RECONCILE_CODE,
    deps=[published, "coverage_by_tier", "coverage_national", "coverage_by_region"],
    description="Each published figure against the figure computed from the data: match, "
                "truncated, differs, no_data or unreadable.",
)
def reconciliation(warehouse: Warehouse, settings: Settings) -> dg.MaterializeResult:
    from assets.targets import coverage_versions, current_days

    store = warehouse.store_id()
    days = current_days(warehouse, settings)
    with warehouse.connect() as con:
        version = reconciliation_version(store, versions_of(con, "published").get(""),
                                         coverage_versions(con, days))
        rows = reconcile(_rows(con), Computed(con))
        con.begin()
        con.execute("DELETE FROM reconciliation")
        if rows:
            con.executemany("INSERT INTO reconciliation VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                            "?, ?)", rows)
        record_version(con, "reconciliation", None, version)
        con.commit()
    counts = {}
    for r in rows:
        counts[r[11]] = counts.get(r[11], 0) + 1
    return dg.MaterializeResult(data_version=dg.DataVersion(version),
                                metadata={"dagster/row_count": len(rows), **counts})


@dg.asset(
    kinds={"duckdb"}, group_name="published", code_version=CONSISTENCY_CODE, deps=[published],
    description="Each release against itself: the tiers' actives against the national figure, "
                "percentages against their counts.",
)
def published_consistency(warehouse: Warehouse) -> dg.MaterializeResult:
    store = warehouse.store_id()
    with warehouse.connect() as con:
        version = consistency_version(store, versions_of(con, "published").get(""))
        rows = consistency(_rows(con))
        con.begin()
        con.execute("DELETE FROM published_consistency")
        if rows:
            con.executemany("INSERT INTO published_consistency VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            rows)
        record_version(con, "published_consistency", None, version)
        con.commit()
    table = "\n".join(["| release | check | tier | published | recomputed | verdict |",
                       "|---|---|---|---:|---:|---|"] + [
        f"| {r[0]} | {r[1]} | {r[2] or ''} | {r[3]} | {r[4]} | {r[6]} |" for r in rows])
    return dg.MaterializeResult(data_version=dg.DataVersion(version),
                                metadata={"dagster/row_count": len(rows),
                                          "checks": dg.MetadataValue.md(table)})
