"""Jobs: the pipeline in the order `cakupan run` launches it, one run per stage group.

Each group shares one partitions definition, so one run covers many partitions (a single-run
backfill) instead of one run per partition.
"""
from __future__ import annotations

import dagster as dg

from pipelines.partitions import DELIVERIES, SNAPSHOTS

inputs_job = dg.define_asset_job(
    "inputs_job", selection=["region_reference", "potential"],
    description="Region reference and potential sets.")
ingest_job = dg.define_asset_job(
    "ingest_job", selection=["enrollment_rows"], partitions_def=DELIVERIES,
    description="Read, validate, pseudonymise and load deliveries (snapshot x province).")
enrollment_job = dg.define_asset_job(
    "enrollment_job", selection=["load_log", "quarantine", "enrollment"],
    partitions_def=SNAPSHOTS,
    description="Complete the load log and dedupe people per tier, per snapshot.")
coverage_job = dg.define_asset_job(
    "coverage_job", selection=dg.AssetSelection.groups("coverage"), partitions_def=SNAPSHOTS,
    description="Coverage by tier, national and by region, per snapshot, with their checks.")
publish_job = dg.define_asset_job(
    "publish_job", selection=["serving_file"], description="Publish the serving file.")

JOBS = [inputs_job, ingest_job, enrollment_job, coverage_job, publish_job]
