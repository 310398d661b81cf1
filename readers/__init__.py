"""Readers: the landing zone, the delivered files and cakupan's own storage (lake and warehouse).

Plain Python and DuckDB, no Dagster: the layer between the contract (``schemas``) and the assets.
"""
