"""Reports of a serving DuckDB file: one self-contained HTML page and one XLSX workbook.

A pure library: each function takes the path of a serving file (opened read-only) and an output
path, and writes one file. It imports nothing from `pipelines/` or other `assets/` modules.
"""
from .html import write_html
from .xlsx import write_xlsx

__all__ = ["write_html", "write_xlsx"]
