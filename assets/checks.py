"""Asset checks generated from the table declarations in :mod:`schemas.tables`.

No table has hand-written checks: every published table gets one blocking check that validates
it with the pandera schema derived from its declaration (key unique and not null, counts
non-negative, penetration within [0, 100], national active <= tier sum, known codes).
Failing rows are shown in the check's metadata in the UI.
"""

import warnings

import dagster as dg
import pandera.pandas as pa
from pandera.errors import SchemaWarning

from pipelines.resources import Warehouse
from schemas.tables import SERVING_TABLES, Table


def _markdown(df, limit: int = 20) -> str:
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


GENERATED_CHECKS = [schema_check(t) for t in SERVING_TABLES]
