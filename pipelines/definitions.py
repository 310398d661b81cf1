"""The Dagster code location: every asset, check, job and resource of cakupan.

Cross-cutting policy is applied here once, over all assets: the column schema of each table
(from :mod:`schemas.tables`) as ``dagster/column_schema`` metadata; and every warehouse writer
(pool "warehouse") must carry the warehouse retry policy (see ``WAREHOUSE_WRITER`` in
:mod:`pipelines.resources`: Dagster has no Definitions-wide op retry policy for assets, so the
decorators share one helper and this module refuses to build if one forgot it).

Operations: the landing sensor (:mod:`pipelines.sensors`), the nightly schedule
(:mod:`pipelines.schedules`) and ``refresh_job`` they launch.
"""
from __future__ import annotations

import dagster as dg

from assets import (coverage, enrollment, ingest, load_log, potential, publish, quarantine,
                    reference)
from assets.checks import GENERATED_CHECKS
from pipelines.jobs import JOBS
from pipelines.resources import WAREHOUSE_RETRY, Settings, Warehouse, settings_from_env
from pipelines.schedules import nightly_schedule
from pipelines.sensors import landing_sensor
from schemas.tables import TABLES

ASSET_MODULES = [reference, potential, ingest, quarantine, load_log, enrollment, coverage, publish]


def _with_column_schema(spec: dg.AssetSpec) -> dg.AssetSpec:
    table = TABLES.get(spec.key.path[-1])
    if table is None:
        return spec
    schema = dg.TableSchema(columns=[
        dg.TableColumn(c.name, c.sql_type, description=c.description,
                       constraints=dg.TableColumnConstraints(nullable=c.nullable))
        for c in table.cols()])
    return spec.merge_attributes(metadata={"dagster/column_schema": schema,
                                           "dagster/table_name": f"warehouse.{table.name}"})


def _check_retry_policy(assets) -> None:
    for a in assets:
        if a.op.pool == "warehouse" and a.op.retry_policy != WAREHOUSE_RETRY:
            raise dg.DagsterInvariantViolationError(
                f"warehouse writer {a.op.name} lacks the warehouse retry policy: "
                "use **WAREHOUSE_WRITER in its decorator")


def build_definitions(settings: Settings, warehouse: Warehouse,
                      loggers: dict | None = None) -> dg.Definitions:
    assets = dg.load_assets_from_modules(ASSET_MODULES)
    _check_retry_policy(assets)
    defs = dg.Definitions(
        assets=assets,
        asset_checks=GENERATED_CHECKS,
        jobs=JOBS,
        sensors=[landing_sensor],
        schedules=[nightly_schedule()],
        resources={"warehouse": warehouse, "settings": settings},
        loggers=loggers,
    )
    return defs.map_resolved_asset_specs(func=_with_column_schema)


defs = build_definitions(*settings_from_env())
