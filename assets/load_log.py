"""Stage: the load log of a snapshot, from the committed deliveries and the landing zone.

One row per delivered file: the outcome ingest recorded in each delivery's manifest (loaded,
rejected with why, superseded), whether the file is still in the landing zone (a deleted file's
rows stay in force, flagged), and every misnamed file of the date as rejected. A file rejected
whole under the name of the file in force (``32.csv`` overwritten with broken bytes) is one row,
``rejected``, whose message says the rows loaded earlier from that name stay in force: the
manifest keeps the earlier outcome too, as the provenance of those rows.
"""
from __future__ import annotations

import datetime as dt

from readers.landing import MISNAMED
from readers.storage import record_version

from assets import versions
from assets.history import Inputs, LakeInputs

KEY = "load_log"
CODE_VERSION = versions.code_version("load_log", MISNAMED, "v3")


def version(inp: Inputs, day: dt.date) -> str:
    return versions.per_snapshot(CODE_VERSION, inp.store, inp.deliveries(day),
                                 misnamed=inp.misnamed(day), present=inp.present(day))


def build(inp: LakeInputs, day: dt.date, version_: str) -> dict:
    present = set(inp.present(day))
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    rows = []
    for province, m in sorted(inp.manifests(day).items()):
        at = dt.datetime.fromisoformat(m["processed_at"])
        named = set()
        for f in m["files"]:   # the file now under a name first: it is what that name holds
            if f["source_file"] in named:
                continue
            named.add(f["source_file"])
            rows.append((day, f["source_file"], province, f["sha256"], f["rows_read"],
                         f["rows_loaded"], f["rows_rejected"], f["status"], f["message"], at,
                         f["source_file"] in present))
    for f in (f for f in inp.landing.misnamed if f.snapshot == day):
        message = MISNAMED if not f.problem else f"{MISNAMED}; it {f.problem} (never read)"
        rows.append((day, f.relpath, None, None if f.problem else inp.hashes.of(f), None, 0, 0,
                     "rejected", message, now, True))
    con = inp.con
    con.begin()
    con.execute("DELETE FROM load_log WHERE snapshot_date = ?", [day])
    if rows:
        con.executemany("INSERT INTO load_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    record_version(con, KEY, str(day), version_)
    con.commit()
    counts = {s: sum(1 for r in rows if r[7] == s) for s in ("loaded", "rejected", "superseded")}
    deleted = sum(1 for r in rows if not r[10])
    return {"dagster/row_count": len(rows), **{f"files_{k}": v for k, v in counts.items()},
            "files_deleted_from_landing": deleted,
            "offices_delivered": len(inp.offices(day))}
