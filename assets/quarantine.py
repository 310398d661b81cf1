"""Stage: the quarantine of a snapshot: every invalid row of its deliveries in force, with every
reason and the values as delivered (NIK masked, never the name). Warehouse only, never published.
"""
from __future__ import annotations

import datetime as dt

import dagster as dg

from readers.storage import record_version
from schemas import enrollment as schema
from schemas.rules import messages_sql

from assets import versions
from assets.history import Inputs, LakeInputs

KEY = "quarantine"
_TEXT = ("kpj", "segmen", "tingkat", "kode_wilayah", "npp", "nama_instansi", "tgl_kepesertaan",
         "bulan_iuran_terakhir")
# one statement per snapshot over every delivery's file (a statement per file cost 12 ms each,
# 2.5 s of a scale-1 night); quarantine_files names each file's source and office
INSERT_SQL = (
    f"INSERT INTO quarantine SELECT CAST($day AS DATE), f.source_file, q.row_number, f.province, "
    f"q.reasons, {messages_sql(schema.ROW_SCHEMA, 'q.reasons')}, q.nik_masked, "
    f"{', '.join('q.q_' + c for c in _TEXT)} "
    "FROM read_parquet($files, filename=true) q JOIN quarantine_files f ON f.path = q.filename "
    "WHERE NOT q.valid")
CODE_VERSION = versions.code_version("quarantine", INSERT_SQL)


def version(inp: Inputs, day: dt.date) -> str:
    return versions.per_snapshot(CODE_VERSION, inp.store, inp.deliveries(day))


def build(inp: LakeInputs, day: dt.date, version_: str) -> dict:
    con = inp.con
    con.begin()
    con.execute("DELETE FROM quarantine WHERE snapshot_date = ?", [day])
    files = inp.row_files(day)
    if files:   # a snapshot whose deliveries were all rejected has none
        con.execute("CREATE OR REPLACE TEMP TABLE quarantine_files (path VARCHAR, "
                    "source_file VARCHAR, province VARCHAR)")
        con.executemany("INSERT INTO quarantine_files VALUES (?, ?, ?)",
                        [(str(path), source, province) for path, source, province in files])
        con.execute(INSERT_SQL, {"day": day, "files": [str(path) for path, _, _ in files]})
    record_version(con, KEY, str(day), version_)
    con.commit()
    total = con.execute("SELECT count(*) FROM quarantine WHERE snapshot_date = ?",
                        [day]).fetchone()[0]
    by_rule = con.execute(
        "SELECT r, count(*) FROM (SELECT unnest(reasons) AS r FROM quarantine "
        "WHERE snapshot_date = ?) GROUP BY r ORDER BY 2 DESC, 1", [day]).fetchall()
    table = "\n".join(["| rule | rows |", "|---|---:|"] + [f"| {r} | {n:,} |" for r, n in by_rule])
    return {"dagster/row_count": total, "rows_by_rule": dg.MetadataValue.md(table)}
