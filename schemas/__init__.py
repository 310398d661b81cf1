"""The data contract, declared once.

Every validity rule of the contract lives here as a pandera check that carries its own DuckDB
predicate (see :mod:`schemas.rules`). pandera validates pandas frames with it; the pipeline
compiles the very same schema to one set-based DuckDB query for the heavy lifting. Output tables
are pandera schemas too: serving DDL, Dagster column metadata and asset checks derive from them.
"""
