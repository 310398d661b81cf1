"""A module-scoped version of conftest's `landing` + `run_cakupan`.

A fresh warehouse costs a few seconds (the four reference vintages are loaded into it), so each
test module builds ONE landing zone holding many cases and runs the real `cakupan run` on it once
(or a few times, when the module is about later deliveries), then many tests read the resulting
DuckDB files. Same pattern as conftest.py: a temp DAGSTER_HOME, CAKUPAN_HMAC_KEY set, the real
CLI in-process, real DuckDB warehouse and serving files. Nothing is mocked.
"""
from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from pathlib import Path

import duckdb
import pytest

from conftest import HEADER, TEST_KEY, Landing, Run  # noqa: F401  (re-exported for the tests)
from pipelines.cli import main as cakupan

_CLEARED = ("CAKUPAN_LANDING", "CAKUPAN_WAREHOUSE", "CAKUPAN_SERVING", "CAKUPAN_GRACE_MONTHS",
            "CAKUPAN_SUPPRESS_K")


class Pipeline:
    """One landing zone, one warehouse, one serving file and one Dagster home, kept across
    the runs of a test module (so a later run sees what an earlier run loaded)."""

    def __init__(self, base: Path):
        self.base = base
        self.landing = Landing(base / "landing")
        self.warehouse = base / "warehouse.duckdb"
        self.serving = base / "serving" / "cakupan.duckdb"

    def run(self, *extra: str, env: dict | None = None) -> Run:
        out, err = io.StringIO(), io.StringIO()
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("DAGSTER_HOME", str(self.base / "dagster_home"))
            mp.setenv("CAKUPAN_HMAC_KEY", TEST_KEY)
            for name in _CLEARED:
                mp.delenv(name, raising=False)
            for name, value in (env or {}).items():
                mp.setenv(name, value)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = cakupan(["run", "--landing", str(self.landing.root),
                                "--warehouse", str(self.warehouse),
                                "--serving", str(self.serving), *extra])
        return Run(code, out.getvalue(), err.getvalue(), self.warehouse, self.serving)


@contextlib.contextmanager
def pipeline(name: str):
    """A Pipeline in a private temp directory, removed afterwards.

    Not under pytest's numbered basetemp: other pytest sessions on the same machine prune those
    directories, which removed files under a running pipeline."""
    base = Path(tempfile.mkdtemp(prefix=f"cakupan-{name}-"))
    try:
        yield Pipeline(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def open_store(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only view of a warehouse file, with its lake's person-level tables
    (``enrollment_rows``, ``enrollment``) beside its own tables."""
    from readers.storage import Lake, lake_tables

    lake = Lake.beside(Path(path))
    if not lake.root.exists():
        return duckdb.connect(str(path), read_only=True)
    con = duckdb.connect()
    con.execute("ATTACH ? AS wh (READ_ONLY)", [str(path)])
    con.execute("USE wh")
    lake_tables(con, lake)
    return con


def dicts(path: Path, sql: str, params=None) -> list[dict]:
    """Rows of ``sql`` on a DuckDB file (opened read-only) as dicts."""
    con = open_store(path)
    try:
        cur = con.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]
    finally:
        con.close()


def find_text(path: Path, needles: list[str],
              skip: tuple[str, ...] = ("ref_region", "ref_vintage")) -> list[tuple[str, str]]:
    """(table, column) pairs of a DuckDB file where any of ``needles`` occurs in a VARCHAR or
    VARCHAR[] value (privacy scans: a raw NIK or a name must appear nowhere). The shipped
    reference tables are skipped: they hold no delivered data."""
    con = open_store(path)
    try:
        hits = []
        cols = con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE data_type LIKE 'VARCHAR%'").fetchall()
        for table, column, typ in cols:
            if table in skip:
                continue
            expr = f'array_to_string("{column}", chr(1))' if typ.endswith("[]") else f'"{column}"'
            n = con.execute(
                f'SELECT count(*) FROM "{table}" WHERE len(list_filter(?, lambda k: '
                f'contains({expr}, k))) > 0', [needles]).fetchone()[0]
            if n:
                hits.append((table, column))
        return hits
    finally:
        con.close()
