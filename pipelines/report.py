"""Printing coverage for people: the tier table of one snapshot."""
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


def tier_table(serving: Path, snapshot: str | None = None) -> str:
    if not serving.exists():
        raise ReportError(f"no serving file at {serving}: run `cakupan run` first")
    con = duckdb.connect(str(serving), read_only=True)
    try:
        day = snapshot or con.execute(
            "SELECT CAST(max(snapshot_date) AS VARCHAR) FROM coverage_by_tier").fetchone()[0]
        if day is None:
            raise ReportError("the serving file holds no snapshot yet")
        rows = con.execute(
            "SELECT tier, tier_label, active, inactive, potential, penetration_pct, vintage, "
            "CAST(potential_set AS VARCHAR) FROM coverage_by_tier "
            "WHERE snapshot_date = CAST(? AS DATE) ORDER BY list_position(?, tier)",
            [day, list(TIERS)]).fetchall()
        if not rows:
            known = [r[0] for r in con.execute(
                "SELECT DISTINCT CAST(snapshot_date AS VARCHAR) FROM coverage_by_tier "
                "ORDER BY 1").fetchall()]
            raise ReportError(f"no snapshot {day} in {serving}; snapshots: {', '.join(known)}")
        nat = con.execute(
            "SELECT active, active_tier_sum, inactive, potential, penetration_pct "
            "FROM coverage_national WHERE snapshot_date = CAST(? AS DATE)", [day]).fetchone()
    except duckdb.Error as exc:
        raise ReportError(f"cannot read {serving}: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
    vintage, pset = rows[0][6], rows[0][7]
    lines = [f"Coverage by tier, snapshot {day} (region vintage {vintage}, potential set "
             f"{pset or 'none'})", "",
             f"{'tier':<8} {'label':<20} {'active':>11} {'inactive':>11} {'potential':>12} "
             f"{'penetration':>11}"]
    for tier, label, active, inactive, potential, pct, *_ in rows:
        lines.append(f"{tier:<8} {label:<20} {_num(active):>11} {_num(inactive):>11} "
                     f"{_num(potential):>12} {_pct(pct):>11}")
    active, tier_sum, inactive, potential, pct = nat
    lines += [f"{'':<8} {'sum of tiers':<20} {_num(tier_sum):>11}",
              f"{'national':<8} {'distinct people':<20} {_num(active):>11} {_num(inactive):>11} "
              f"{_num(potential):>12} {_pct(pct):>11}"]
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
