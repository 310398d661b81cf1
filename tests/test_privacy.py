"""NIK is personal data (UU 27/2022): after real runs over CSV, XLSX and Parquet deliveries with
good and bad NIKs, no NIK, no plain hash of one and not the key appear anywhere the pipeline
writes: the warehouse, the lake's Parquet files, the serving file, the report, the Dagster
instance (run storage, event log, logs of every run), stdout and stderr.

Every file is scanned in decoded form, so compression cannot hide a value: DuckDB files and
Parquet files through DuckDB (every column as text), SQLite files value by value, zip
containers (XLSX) member by member, everything else as raw bytes.
"""
from __future__ import annotations

import hashlib
import io
import sqlite3
import zipfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from openpyxl import Workbook

from harness import HEADER, TEST_KEY, pipeline

GOOD = ["3201014101900001", "3201014101900002", "3301014101900003", "3201014101900004",
        "3201014101900005"]
BAD = ["320101410190000", "32010141019000066", "3201014101900007x"]   # 15, 17 digits, a letter
NAMES = ["Siti Aminah Rahasia", "Budi Santoso Rahasia"]


def _row(nik, name="N", tier="KL", code=""):
    return f"{nik},K{nik[-4:]},{name},PU,{tier},{code},N1,X,2020-01-15,2021-10"


def _needles() -> dict[str, bytes]:
    out = {}
    for nik in GOOD + BAD:
        raw = nik.encode()
        out[f"NIK {nik}"] = raw
        out[f"sha256 hex of {nik}"] = hashlib.sha256(raw).hexdigest().encode()
        out[f"sha256 of {nik}"] = hashlib.sha256(raw).digest()
        out[f"md5 hex of {nik}"] = hashlib.md5(raw).hexdigest().encode()
    out["the key"] = TEST_KEY.encode()
    out["sha256 hex of the key"] = hashlib.sha256(TEST_KEY.encode()).hexdigest().encode()
    return out


def _duckdb_texts(con) -> list[bytes]:
    out = []
    for schema, table in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables").fetchall():
        cols = [c for (c,) in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
            "AND table_name = ?", [schema, table]).fetchall()]
        for col in cols:
            q = f'SELECT DISTINCT CAST("{col}" AS VARCHAR) FROM "{schema}"."{table}"'
            out += [v.encode() for (v,) in con.execute(q).fetchall() if v is not None]
            if con.execute(f'SELECT typeof("{col}") FROM "{schema}"."{table}" LIMIT 1'
                           ).fetchone() in (("BLOB",),):
                out += [bytes(v) for (v,) in con.execute(
                    f'SELECT DISTINCT "{col}" FROM "{schema}"."{table}"').fetchall() if v]
    return out


def decoded(path: Path) -> list[bytes]:
    """What a reader of ``path`` could see, decoded."""
    data = path.read_bytes()
    if data[8:12] == b"DUCK":
        con = duckdb.connect(str(path), read_only=True)
        try:
            return _duckdb_texts(con)
        finally:
            con.close()
    if data[:4] == b"PAR1":
        con = duckdb.connect()
        try:
            con.execute("CREATE TABLE t AS SELECT * FROM read_parquet(?)", [str(path)])
            return _duckdb_texts(con) + [data]
        finally:
            con.close()
    if data[:16] == b"SQLite format 3\x00":
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            out = [data]
            for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
                for row in con.execute(f'SELECT * FROM "{table}"'):
                    out += [str(v).encode() if not isinstance(v, bytes) else v for v in row]
            return out
        finally:
            con.close()
    if data[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return [z.read(n) for n in z.namelist()]
    return [data]


def leaks(paths, extra_texts=()) -> list[str]:
    needles = _needles()
    found = []
    for path in paths:
        blobs = decoded(path)
        for label, needle in needles.items():
            if any(needle in b for b in blobs):
                found.append(f"{label} in {path}")
    for label, needle in needles.items():
        if any(needle in t.encode() for t in extra_texts):
            found.append(f"{label} in the command's output")
    return found


@pytest.fixture(scope="module")
def ran():
    with pipeline("privacy") as p:
        p.landing.potential("2021-01-01", ["KL,,100,RDP", "KABKOTA,32.01,10,RDP"])
        p.landing.enrollment("2021-10-31", "32.csv", [
            _row(GOOD[0], NAMES[0]), _row(GOOD[1], NAMES[1], "KABKOTA", "32.01"),
            _row(BAD[0]), _row(BAD[1]), _row(BAD[2])])
        wb = Workbook()
        ws = wb.active
        ws.append(HEADER.split(","))
        ws.append(_row(GOOD[2]).split(","))
        ws.append([int(GOOD[3]), *(_row(GOOD[3]).split(",")[1:])])   # a NIK typed as a number
        path = p.landing.root / "enrollment" / "2021-10-31" / "33.xlsx"
        path.parent.mkdir(parents=True, exist_ok=True)
        wb.save(path)
        # a Parquet delivery whose NIK column is an integer (a spreadsheet's doing): rejected
        # or read, its digits must not be kept
        table = pa.table({c: [v] for c, v in zip(HEADER.split(","), _row(GOOD[4]).split(","))})
        table = table.set_column(0, "nik", pa.array([int(GOOD[4])], pa.int64()))
        pq.write_table(table, p.landing.root / "enrollment" / "2021-10-31" / "34.parquet")
        runs = [p.run(), p.run()]
        p.landing.enrollment("2021-11-30", "32.csv", [_row(GOOD[0]), _row(BAD[0])])
        runs.append(p.run())
        for r in runs:
            assert r.code in (0, 2), r.err
        yield p, runs


def test_the_scan_finds_a_planted_nik(tmp_path):
    planted = tmp_path / "planted.duckdb"
    con = duckdb.connect(str(planted))
    con.execute("CREATE TABLE t AS SELECT ? AS x", [f"prefix {GOOD[2]} suffix"])
    con.close()
    pq.write_table(pa.table({"h": [hashlib.sha256(BAD[1].encode()).digest()]}),
                   tmp_path / "planted.parquet", compression="zstd")
    assert leaks([planted, tmp_path / "planted.parquet"]) == [
        f"NIK {GOOD[2]} in {planted}", f"sha256 of {BAD[1]} in {tmp_path / 'planted.parquet'}"]


def test_no_nik_plain_hash_or_key_anywhere_the_pipeline_writes(ran):
    p, runs = ran
    written = [f for f in p.base.rglob("*") if f.is_file() and "landing" not in f.parts]
    kinds = {f.suffix for f in written}
    assert {".duckdb", ".parquet", ".db", ".json"} <= kinds, kinds   # it scanned them all
    assert any("dagster_home" in f.parts and "logs" in str(f) or f.suffix == ".db"
               for f in written)
    outputs = [r.out for r in runs] + [r.err for r in runs]
    assert leaks(written, outputs) == []


def test_the_dagster_event_log_has_the_runs_but_no_nik(ran):
    p, _ = ran
    dbs = list((p.base / "dagster_home").rglob("*.db"))
    texts = b"".join(b for db in dbs for b in decoded(db))
    assert b"ASSET_MATERIALIZATION" in texts and b"coverage_by_tier" in texts
    assert leaks(dbs) == []
