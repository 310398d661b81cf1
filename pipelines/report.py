"""Printing coverage for people, from the serving file: the tier table of one snapshot (with the
change since the previous snapshot and which province offices delivered), the trend table, and
the load summary of a run."""
from __future__ import annotations

from pathlib import Path

import duckdb

from schemas.enrollment import TIERS


class ReportError(RuntimeError):
    pass


def _pct(value) -> str:
    return "-" if value is None else f"{value:.2f}%"


def _num(value) -> str:
    return "-" if value is None else f"{value:,}"


def _signed(value, pp: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.2f} pp" if pp else f"{value:+,}"


def _open(serving: Path):
    if not serving.exists():
        raise ReportError(f"no serving file at {serving}: run `cakupan run` first")
    return duckdb.connect(str(serving), read_only=True)


def _snapshot(con, snapshot: str | None, serving: Path) -> str:
    day = snapshot or con.execute(
        "SELECT CAST(max(snapshot_date) AS VARCHAR) FROM coverage_by_tier").fetchone()[0]
    if day is None:
        raise ReportError("the serving file holds no snapshot yet")
    known = [r[0] for r in con.execute("SELECT DISTINCT CAST(snapshot_date AS VARCHAR) FROM "
                                       "coverage_by_tier ORDER BY 1").fetchall()]
    if day not in known:
        raise ReportError(f"no snapshot {day} in {serving}; snapshots: {', '.join(known)}")
    return day


def _offices(con, day: str) -> set[str]:
    return {r[0] for r in con.execute(
        "SELECT DISTINCT province_code FROM load_log WHERE snapshot_date = CAST(? AS DATE) "
        "AND status = 'loaded' AND province_code IS NOT NULL", [day]).fetchall()}


def _names(con, codes, day: str) -> list[str]:
    names = dict(con.execute(
        "SELECT DISTINCT region_code, region_name FROM coverage_by_region "
        "WHERE region_level = 'province' AND snapshot_date = CAST(? AS DATE)", [day]).fetchall())
    return [f"{c} {names.get(c) or ''}".strip() for c in sorted(codes)]


def tier_table(serving: Path, snapshot: str | None = None) -> str:
    con = _open(serving)
    try:
        day = _snapshot(con, snapshot, serving)
        rows = con.execute(
            "SELECT t.tier, t.tier_label, t.active, t.inactive, t.potential, t.penetration_pct, "
            "t.vintage, CAST(t.potential_set AS VARCHAR), d.active_change, "
            "d.penetration_change_pp FROM coverage_by_tier t LEFT JOIN coverage_trend_tier d "
            "USING (snapshot_date, tier) WHERE snapshot_date = CAST(? AS DATE) "
            "ORDER BY list_position(?, t.tier)", [day, list(TIERS)]).fetchall()
        nat = con.execute(
            "SELECT n.active, n.active_tier_sum, n.inactive, n.potential, n.penetration_pct, "
            "n.offices_delivered, d.previous_snapshot, d.active_change, d.comparable "
            "FROM coverage_national n LEFT JOIN coverage_trend_national d USING (snapshot_date) "
            "WHERE snapshot_date = CAST(? AS DATE)", [day]).fetchone()
        now = _offices(con, day)
        previous = str(nat[6]) if nat[6] else None
        before = _offices(con, previous) if previous else set()
        missing = _names(con, before - now, previous) if previous else []
        rejected = con.execute(
            "SELECT source_file FROM load_log WHERE snapshot_date = CAST(? AS DATE) AND "
            "status = 'rejected' ORDER BY 1", [day]).fetchall()
    except duckdb.Error as exc:
        raise ReportError(f"cannot read {serving}: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
    vintage, pset = rows[0][6], rows[0][7]
    since = f" (change since {previous})" if previous else ""
    lines = [f"Coverage by tier, snapshot {day} (region vintage {vintage}, potential set "
             f"{pset or 'none'}){since}", "",
             f"{'tier':<8} {'label':<20} {'active':>11} {'change':>9} {'inactive':>11} "
             f"{'potential':>12} {'penetration':>11} {'change':>10}"]
    for tier, label, active, inactive, potential, pct, _, _, change, change_pp in rows:
        lines.append(f"{tier:<8} {label:<20} {_num(active):>11} {_signed(change):>9} "
                     f"{_num(inactive):>11} {_num(potential):>12} {_pct(pct):>11} "
                     f"{_signed(change_pp, True):>10}")
    active, tier_sum, inactive, potential, pct, offices, _, change, comparable = nat
    lines += [f"{'':<8} {'sum of tiers':<20} {_num(tier_sum):>11}",
              f"{'national':<8} {'distinct people':<20} {_num(active):>11} {_signed(change):>9} "
              f"{_num(inactive):>11} {_num(potential):>12} {_pct(pct):>11}", "",
              f"province offices delivered: {offices}"
              + (f" (previous snapshot: {len(before)})" if previous else "")]
    if missing:
        lines.append(f"NOT delivered this time (delivered in {previous}): {', '.join(missing)}; "
                     "their people count as absent, so the figures are not comparable and "
                     "penetration is measured against the full potential")
    elif comparable is False:
        lines.append(f"the offices that delivered differ from {previous}: changes are not "
                     "comparable")
    if rejected:
        lines.append(f"rejected files this snapshot: {', '.join(r[0] for r in rejected)}")
    return "\n".join(lines)


def trend_table(serving: Path, snapshots: int = 6) -> str:
    """Flows and changes per tier (and nationally) for the latest snapshots."""
    con = _open(serving)
    try:
        days = [r[0] for r in con.execute(
            "SELECT DISTINCT snapshot_date FROM coverage_trend_national ORDER BY 1 DESC LIMIT ?",
            [snapshots]).fetchall()][::-1]
        if not days:
            raise ReportError("the serving file holds no snapshot yet")
        rows = con.execute(
            'SELECT snapshot_date, tier, active, new, reactivated, lapsed, "left", '
            "active_change, penetration_change_pp, active_change_yoy, comparable "
            "FROM coverage_trend_tier WHERE snapshot_date IN (SELECT unnest(?)) "
            "UNION ALL SELECT snapshot_date, 'NASIONAL', active, new, reactivated, lapsed, "
            '"left", active_change, penetration_change_pp, active_change_yoy, comparable '
            "FROM coverage_trend_national WHERE snapshot_date IN (SELECT unnest(?)) "
            "ORDER BY 1, list_position(?, tier)", [days, days, [*TIERS, "NASIONAL"]]).fetchall()
    except duckdb.Error as exc:
        raise ReportError(f"cannot read {serving}: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
    head = (f"{'snapshot':<11} {'tier':<9} {'active':>11} {'new':>9} {'reactiv.':>9} "
            f"{'lapsed':>9} {'left':>9} {'change':>9} {'pp':>8} {'yoy':>10}  comparable")
    lines = ["Flows since the previous snapshot, per tier (NASIONAL: each person once)", "",
             head]
    for day, tier, active, new, react, lapsed, left, change, pp, yoy, comparable in rows:
        flag = "-" if comparable is None else ("yes" if comparable else "NO")
        lines.append(f"{str(day):<11} {tier:<9} {_num(active):>11} {_num(new):>9} "
                     f"{_num(react):>9} {_num(lapsed):>9} {_num(left):>9} {_signed(change):>9} "
                     f"{'-' if pp is None else f'{pp:+.2f}':>8} {_signed(yoy):>10}  {flag}")
    if len(days) == 1:
        lines.append("\nonly one snapshot in the history: no flows yet")
    return "\n".join(lines)


def load_summary(warehouse, days: list[str]) -> str:
    """Files and rows per snapshot, from the load log."""
    with warehouse.connect(read_only=True) as con:
        rows = con.execute(
            "SELECT CAST(snapshot_date AS VARCHAR), count(*) FILTER (status = 'loaded'), "
            "count(*) FILTER (status = 'rejected'), count(*) FILTER (status = 'superseded'), "
            "coalesce(sum(rows_read), 0), sum(rows_loaded), sum(rows_rejected) FROM load_log "
            "WHERE CAST(snapshot_date AS VARCHAR) IN (SELECT unnest(?)) GROUP BY 1 ORDER BY 1",
            [days]).fetchall()
    lines = [f"{'snapshot':<11} {'loaded':>6} {'rejected':>8} {'superseded':>10} "
             f"{'rows read':>11} {'rows loaded':>11} {'quarantined':>11}"]
    lines += [f"{d:<11} {a:>6} {b:>8} {c:>10} {r:>11,} {l:>11,} {q:>11,}"
              for d, a, b, c, r, l, q in rows]
    return "\n".join(lines)
