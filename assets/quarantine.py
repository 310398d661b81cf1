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
INSERT_SQL = (
    f"INSERT INTO quarantine SELECT CAST($day AS DATE), $source, row_number, $province, reasons, "
    f"{messages_sql(schema.ROW_SCHEMA)}, nik_masked, {', '.join('q_' + c for c in _TEXT)} "
    "FROM read_parquet($file) WHERE NOT valid")
CODE_VERSION = versions.code_version("quarantine", INSERT_SQL)


def version(inp: Inputs, day: dt.date) -> str:
    return versions.per_snapshot(CODE_VERSION, inp.store, inp.deliveries(day))


def build(inp: LakeInputs, day: dt.date, version_: str) -> dict:
    con = inp.con
    con.begin()
    con.execute("DELETE FROM quarantine WHERE snapshot_date = ?", [day])
    for path, source, province in inp.row_files(day):
        con.execute(INSERT_SQL, {"day": day, "source": source, "province": province,
                                 "file": str(path)})
    record_version(con, KEY, str(day), version_)
    con.commit()
    total = con.execute("SELECT count(*) FROM quarantine WHERE snapshot_date = ?",
                        [day]).fetchone()[0]
    by_rule = con.execute(
        "SELECT r, count(*) FROM (SELECT unnest(reasons) AS r FROM quarantine "
        "WHERE snapshot_date = ?) GROUP BY r ORDER BY 2 DESC, 1", [day]).fetchall()
    table = "\n".join(["| rule | rows |", "|---|---:|"] + [f"| {r} | {n:,} |" for r, n in by_rule])
    return {"dagster/row_count": total, "rows_by_rule": dg.MetadataValue.md(table)}
