"""Dagster assets, one module per stage of the pipeline:

reference -> potential -> ingest (enrollment_rows, quarantine) -> load_log -> enrollment ->
coverage (by tier, national, by region) -> publish (serving file).
"""
