"""Checks generated from the table declarations in :mod:`schemas.tables`.

No table has hand-written checks: every warehouse table gets a blocking ``matches_schema``
check (the pandera schema derived from its declaration: key unique and not null, counts >= 0,
penetration >= 0 and flagged above 100 %, known codes, national active <= tier sum), and one
more per extra rule it declares: ``identities`` (blocking: e.g. the flow identity),
``references`` (blocking: every region code exists, at its level, in the row's vintage),
``deliveries`` (blocking: ``load_log`` has a row for every delivery of the landing zone) and
``freshness`` (a warning: the newest snapshot is at most ``CAKUPAN_FRESHNESS_DAYS`` days old).

:func:`evaluate` runs them over some snapshots (the partitions of a run) or over whole tables:
the per-snapshot assets report them as Dagster asset checks, and publishing runs every blocking
one again over everything it is about to publish (:mod:`assets.publish`).
"""
from __future__ import annotations

import datetime as dt
import os
import warnings
from dataclasses import dataclass, field
from typing import Callable

import dagster as dg
import pandera.pandas as pa
from pandera.errors import SchemaWarning

from assets.resources import Warehouse
from schemas.tables import TABLES, Deliveries, Freshness, Identity, Reference, Table, quote

SAMPLES = 20


@dataclass
class Finding:
    table: str
    name: str
    passed: bool
    blocking: bool
    warn: bool = False          # failed, but only a warning-level rule
    metadata: dict = field(default_factory=dict)
    description: str | None = None   # one line for the console and the UI

    @property
    def label(self) -> str:
        return f"{self.table}:{self.name}"

    def result(self) -> dg.AssetCheckResult:
        severity = (dg.AssetCheckSeverity.WARN if self.warn or not self.blocking
                    else dg.AssetCheckSeverity.ERROR)
        return dg.AssetCheckResult(asset_key=self.table, check_name=self.name,
                                   passed=self.passed, severity=severity, metadata=self.metadata,
                                   description=self.description)


@dataclass(frozen=True)
class Check:
    table: str
    name: str
    blocking: bool
    description: str
    run: Callable

    @property
    def key(self) -> dg.AssetCheckKey:
        return dg.AssetCheckKey(dg.AssetKey(self.table), self.name)

    def spec(self) -> dg.AssetCheckSpec:
        return dg.AssetCheckSpec(self.name, asset=self.table, blocking=self.blocking,
                                 description=self.description)


def markdown(df, limit: int = SAMPLES) -> str:
    df = df.head(limit)
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "---|" * len(df.columns)
    rows = ["| " + " | ".join(str(v).replace("|", "/") for v in r) + " |"
            for r in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def _where(table: Table, days) -> tuple[str, list]:
    if days is None or table.partition_column is None:
        return "", []
    return f" WHERE {table.partition_column} IN (SELECT unnest(?))", [sorted(days)]


def _flag_line(note: str) -> str:
    """pandera's warning text as one line: the column, the rule and how many rows it flags."""
    head, _, cases = note.partition(" failure cases: ")
    column = head.split("'")[1] if head.count("'") >= 2 else ""
    rule = head.rsplit(": ", 1)[-1]
    return f"{column}: {rule}, {len(cases.split(', ')) if cases else 0} row(s)"


def _schema(table: Table) -> Check:
    schema = table.pandera_schema()

    def run(con, days, ctx) -> Finding:
        where, params = _where(table, days)
        df = con.execute(f"SELECT {table.select_list()} FROM {table.name}{where}", params).df()
        with warnings.catch_warnings(record=True) as flagged:
            warnings.simplefilter("always", SchemaWarning)
            try:
                schema.validate(df, lazy=True)
            except pa.errors.SchemaErrors as exc:
                cases = exc.failure_cases
                return Finding(table.name, "matches_schema", False, True, metadata={
                    "rows": len(df), "failures": len(cases),
                    "failing_samples": dg.MetadataValue.md(markdown(cases))})
        notes = [str(w.message) for w in flagged if issubclass(w.category, SchemaWarning)]
        if notes:  # a warning-level rule: shown, never blocking
            return Finding(table.name, "matches_schema", False, True, warn=True, metadata={
                "rows": len(df),
                "flagged": dg.MetadataValue.md("\n\n".join(n[:2000] for n in notes))},
                description="; ".join(_flag_line(n) for n in notes))
        return Finding(table.name, "matches_schema", True, True, metadata={"rows": len(df)})

    return Check(table.name, "matches_schema", True,
                 f"{table.name} satisfies its declared schema (key {', '.join(table.key)} "
                 "unique; value rules)", run)


def _failing(con, table: Table, condition: str, days, shown: list[str]) -> Finding:
    where, params = _where(table, days)
    filt = f"{where} AND ({condition})" if where else f" WHERE ({condition})"
    rows = con.execute(f"SELECT count(*) FROM {table.name}{where}", params).fetchone()[0]
    bad = con.execute(f"SELECT count(*) FROM {table.name} t{filt}", params).fetchone()[0]
    metadata = {"rows": rows, "failures": bad}
    if bad:
        cols = ", ".join(quote(c) for c in shown)
        sample = con.execute(f"SELECT {cols} FROM {table.name} t{filt} ORDER BY {cols} "
                             f"LIMIT {SAMPLES}", params).df()
        metadata["failing_samples"] = dg.MetadataValue.md(markdown(sample))
    return metadata, bad


def _identity(table: Table, rule: Identity) -> Check:
    condition = (f"({rule.left}) IS NOT NULL AND ({rule.right}) IS NOT NULL AND "
                 f"({rule.left}) <> ({rule.right})")

    def run(con, days, ctx) -> Finding:
        metadata, bad = _failing(con, table, condition, days, list(table.key))
        return Finding(table.name, rule.name, bad == 0, True, metadata=metadata)

    return Check(table.name, rule.name, True, f"{table.name}: {rule.description}", run)


def _reference(table: Table, ref: Reference) -> Check:
    match = " AND ".join(f"r.{there} = t.{here}" for here, there in ref.on)
    condition = f"NOT EXISTS (SELECT 1 FROM {ref.table} r WHERE {match})"
    shown = list(dict.fromkeys([*table.key, *(here for here, _ in ref.on)]))

    def run(con, days, ctx) -> Finding:
        metadata, bad = _failing(con, table, condition, days, shown)
        return Finding(table.name, ref.name, bad == 0, True, metadata=metadata)

    return Check(table.name, ref.name, True,
                 f"{table.name}: {ref.description} ({ref.table})", run)


def _deliveries(table: Table, rule: Deliveries) -> Check:
    def run(con, days, ctx) -> Finding:
        # every file of every committed delivery (the lake's manifests) has its row
        manifests = ctx["manifests"]
        wanted = {(d, f["source_file"]): p for (d, p), m in manifests.items()
                  if days is None or d in days for f in m["files"]}
        have = set(con.execute(
            f"SELECT DISTINCT {rule.snapshot_column}, source_file FROM {table.name}").fetchall())
        missing = sorted(k for k in wanted if k not in have)
        metadata = {"deliveries": len({(d, p) for (d, _), p in wanted.items()}),
                    "files": len(wanted), "failures": len(missing)}
        if missing:
            import pandas as pd

            sample = pd.DataFrame([(d, wanted[(d, f)], f) for d, f in missing],
                                  columns=["snapshot_date", "province_code", "file"])
            metadata["failing_samples"] = dg.MetadataValue.md(markdown(sample))
        return Finding(table.name, rule.name, not missing, True, metadata=metadata)

    return Check(table.name, rule.name, True,
                 f"{table.name} has a row for every file of every delivery committed to the "
                 "lake for the snapshot", run)


def _freshness(table: Table, rule: Freshness) -> Check:
    def run(con, days, ctx) -> Finding:
        limit = int(os.environ.get(rule.env) or rule.days)
        newest = con.execute(f"SELECT max({rule.column}) FROM {table.name}").fetchone()[0]
        age = None if newest is None else (dt.date.today() - newest).days
        return Finding(table.name, rule.name, age is not None and age <= limit, False,
                       metadata={"newest": str(newest), "max_age_days": limit,
                                 "age_days": -1 if age is None else age},
                       description=f"newest {rule.column} {newest} is {age} days old (more than "
                                   f"{limit}: set {rule.env})" if age is not None and age > limit
                       else None)

    return Check(table.name, rule.name, False,
                 f"the newest {rule.column} of {table.name} is at most {rule.env} (default "
                 f"{rule.days}) days old; a warning only", run)


def checks_for(table: Table) -> list[Check]:
    """Every check ``table``'s declaration asks for."""
    out = [_schema(table)]
    out += [_identity(table, rule) for rule in table.identities]
    out += [_reference(table, ref) for ref in table.references]
    if table.deliveries is not None:
        out.append(_deliveries(table, table.deliveries))
    if table.freshness is not None:
        out.append(_freshness(table, table.freshness))
    return out


CHECKS = {t.name: checks_for(t) for t in TABLES.values() if t.storage == "warehouse"}


def evaluate(con, tables, days=None, ctx=None, only=None) -> list[Finding]:
    """Run the checks of ``tables`` over ``days`` (None: every row); ``only``: check keys."""
    out = []
    for name in tables:
        for check in CHECKS.get(name, []):
            if only is None or check.key in only:
                out.append(check.run(con, days, ctx or {}))
    return out


def unpartitioned_checks() -> list[dg.AssetChecksDefinition]:
    """The checks of the tables rebuilt whole (target progress, reconciliation, consistency),
    as Dagster asset checks running after their asset in the same run."""
    def as_asset_check(check: Check) -> dg.AssetChecksDefinition:
        @dg.asset_check(asset=check.table, name=check.name, blocking=check.blocking,
                        description=check.description)
        def _check(warehouse: Warehouse) -> dg.AssetCheckResult:
            with warehouse.connect() as con:
                return check.run(con, None, {}).result()

        return _check

    return [as_asset_check(check) for table in TABLES.values()
            if table.storage == "warehouse" and table.partition_column is None
            for check in CHECKS[table.name]]
