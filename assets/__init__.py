"""Dagster assets, one module per stage of the pipeline:

reference, potential, targets, published (inputs) -> ingest (one delivery per partition, to the
lake) -> load_log, quarantine, enrollment, coverage, trend (per snapshot, one multi-asset:
:mod:`assets.snapshot`) -> target progress, reconciliation -> publish (serving file) -> report.

Assets do exactly what they are asked, from their inputs: which partitions to request is the
job of the sensors and ``cakupan run`` (:mod:`pipelines.planner`).
"""
