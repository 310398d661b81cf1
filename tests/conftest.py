"""Shared fixtures: real landing zones on disk, real Dagster runs in a temp DAGSTER_HOME,
real DuckDB files. Nothing is mocked."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from pipelines.cli import main as cakupan

HEADER = ("nik,kpj,nama,segmen,tingkat,kode_wilayah,npp,nama_instansi,tgl_kepesertaan,"
          "bulan_iuran_terakhir")
TEST_KEY = "test-key-not-a-secret-0123456789abcdef"  # at least 32 bytes


@pytest.fixture(autouse=True)
def _hmac_key(monkeypatch):
    monkeypatch.setenv("CAKUPAN_HMAC_KEY", TEST_KEY)
    for name in ("CAKUPAN_LANDING", "CAKUPAN_WAREHOUSE", "CAKUPAN_SERVING",
                 "CAKUPAN_GRACE_MONTHS", "CAKUPAN_SUPPRESS_K"):
        monkeypatch.delenv(name, raising=False)


class Landing:
    """A landing zone in a temp directory; files get strictly increasing mtimes."""

    def __init__(self, root: Path):
        self.root = root
        self._clock = time.time() - 10_000

    def write(self, relpath: str, content: str | bytes, encoding: str = "utf-8") -> Path:
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content if isinstance(content, bytes) else content.encode(encoding)
        path.write_bytes(data)
        self._clock += 10
        os.utime(path, (self._clock, self._clock))
        return path

    def enrollment(self, snapshot: str, name: str, rows: list[str], header: str = HEADER) -> Path:
        return self.write(f"enrollment/{snapshot}/{name}", "\n".join([header, *rows]) + "\n")

    def potential(self, day: str, rows: list[str], name: str = "potensi.csv") -> Path:
        return self.write(f"potential/{day}/{name}",
                          "\n".join(["tingkat,kode_wilayah,potensi,sumber", *rows]) + "\n")


@dataclass
class Run:
    code: int
    out: str
    err: str
    warehouse: Path
    serving: Path

    def query(self, sql: str, params=None, serving: bool = False):
        from harness import open_store

        con = (duckdb.connect(str(self.serving), read_only=True) if serving
               else open_store(self.warehouse))
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()


@pytest.fixture
def landing(tmp_path) -> Landing:
    return Landing(tmp_path / "landing")


@pytest.fixture
def run_cakupan(tmp_path, monkeypatch, capsys):
    """Run `cakupan run` in-process against a landing zone; the same warehouse, serving file
    and Dagster instance on every call of one test (so re-runs see earlier state)."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))

    def _run(landing: Landing, *extra: str) -> Run:
        wh, sv = tmp_path / "warehouse.duckdb", tmp_path / "serving" / "cakupan.duckdb"
        capsys.readouterr()
        code = cakupan(["run", "--landing", str(landing.root), "--warehouse", str(wh),
                        "--serving", str(sv), *extra])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err, wh, sv)

    return _run
