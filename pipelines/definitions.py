"""The Dagster code location: every asset, check, sensor and resource of cakupan.

Cross-cutting policy is applied here once, over all assets: the column schema and table name of
each table (from :mod:`schemas.tables`) as metadata, and the one-line console logger of
``cakupan run``. Runs execute in process (one step after another: DuckDB admits one writer, and
a step per subprocess would cost seconds each).
"""
from __future__ import annotations

import logging
import sys

import dagster as dg

from assets.ingest import enrollment_rows
from assets.potential import potential
from assets.publish import serving_file
from assets.published import published, published_consistency, reconciliation
from assets.reference import region_reference
from assets.report import report_html
from assets.resources import Settings, Warehouse
from assets.snapshot import build_snapshot_tables
from assets.targets import target_progress, targets
from pipelines.resources import settings_from_env
from pipelines.sensors import landing_sensor, nightly_sensor
from assets.checks import unpartitioned_checks
from schemas.tables import TABLES

UNPARTITIONED_CHECKS = unpartitioned_checks()


def _with_column_schema(spec: dg.AssetSpec) -> dg.AssetSpec:
    table = TABLES.get(spec.key.path[-1])
    if table is None:
        return spec
    schema = dg.TableSchema(columns=[
        dg.TableColumn(c.name, c.sql_type, description=c.description,
                       constraints=dg.TableColumnConstraints(nullable=c.nullable))
        for c in table.cols()])
    where = "lake" if table.storage == "lake" else "warehouse"
    return spec.merge_attributes(metadata={"dagster/column_schema": schema,
                                           "dagster/table_name": f"{where}.{table.name}"})


@dg.logger(description="cakupan's own messages, one line each, to stderr (no event lines).")
def console(_init_context):
    class OwnMessages(logging.Filter):
        def filter(self, record):
            meta = getattr(record, "dagster_meta", None) or {}
            if meta.get("dagster_event") is not None:
                return False
            record.msg, record.args = meta.get("orig_message", record.msg), ()
            return True

    log = logging.getLogger("cakupan.progress")
    log.setLevel(logging.INFO)
    for old in list(log.handlers):  # a new run may have a new stderr (tests, notebooks)
        log.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("    %(message)s"))
    handler.addFilter(OwnMessages())
    log.addHandler(handler)
    log.propagate = False
    return log


def build_definitions(settings: Settings, warehouse: Warehouse) -> dg.Definitions:
    assets = [region_reference, potential, targets, published, enrollment_rows,
              build_snapshot_tables(settings.grace_months), target_progress, reconciliation,
              published_consistency, serving_file, report_html]
    defs = dg.Definitions(
        assets=assets,
        asset_checks=UNPARTITIONED_CHECKS,
        sensors=[landing_sensor, nightly_sensor()],
        resources={"warehouse": warehouse, "settings": settings},
        loggers={"console": console},
        executor=dg.in_process_executor,
    )
    return defs.map_resolved_asset_specs(func=_with_column_schema)


@dg.definitions
def defs() -> dg.Definitions:
    """The code location, built from the CAKUPAN_* environment each time it is loaded (so one
    process can serve several warehouses in turn: tests, ``cakupan run --warehouse``)."""
    return build_definitions(*settings_from_env())
