"""Live BI readers while the pipeline publishes again and again (contract: the serving file
opens in DuckDB 1.1 clients, is replaced atomically, and readers never see a half-written
state).

Reader processes run on DuckDB 1.1.3 (the .venv-duckdb11 interpreter) and on the project's
DuckDB, each kind in its own process (DuckDB caches one database instance per path and
process): (a) a fresh read-only connection per read, as a BI client without a pool; (b) one
long-lived read-only connection. Every read is one transaction over `coverage_national` and
`coverage_by_tier` of the latest snapshot and checks that the tiers' `active` add up to
`coverage_national.active_tier_sum`. Meanwhile `cakupan run` publishes PUBLISHES times in a
row, each time with one office's file re-delivered with one row more (one more active person).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import duckdb
import pytest

import procs

PUBLISHES = 20      # make test-long; make test runs a sample of SAMPLE_PUBLISHES
SAMPLE_PUBLISHES = 6
SCALE, SNAPSHOTS, DEMO_SEED = 0.005, 2, 11
OFFICE = "32"
# errors a BI client may meet and retry: the path missing for an instant (a rename race) or a
# lock / IO conflict; each is listed with the exact message seen (the serving path as <serving>)
RETRYABLE = [
    re.compile(r"IO Error: Cannot open database \"<serving>\" in read-only mode: database does "
               r"not exist"),
    re.compile(r"IO Error: Could not set lock on file \"<serving>\""),
    re.compile(r"IO Error: Cannot open file \"<serving>\": No such file or directory"),
]

READER = r'''
import json, os, sys, time
import duckdb

path, mode, stop, out, ready = sys.argv[1:6]
stats = {"duckdb": duckdb.__version__, "mode": mode, "reads": 0, "ok": 0, "errors": {},
         "inconsistent": 0, "examples": [], "figures": {}, "connects": 0, "first": None,
         "last": None}

def read(con):
    con.execute("BEGIN TRANSACTION")
    try:
        day, active_tier_sum, active = con.execute(
            "SELECT snapshot_date, active_tier_sum, active FROM coverage_national "
            "ORDER BY snapshot_date DESC LIMIT 1").fetchone()
        tiers, tier_sum = con.execute(
            "SELECT count(*), sum(active) FROM coverage_by_tier WHERE snapshot_date = ?",
            [day]).fetchone()
    finally:
        con.execute("COMMIT")
    return str(day), active_tier_sum, active, tiers, tier_sum

con = None
open(ready, "w").close()
while not os.path.exists(stop):
    stats["reads"] += 1
    try:
        if mode == "fresh":
            c = duckdb.connect(path, read_only=True)
            stats["connects"] += 1
            try:
                row = read(c)
            finally:
                c.close()
        else:
            if con is None:
                con = duckdb.connect(path, read_only=True)
                stats["connects"] += 1
            row = read(con)
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else ""
        key = f"{type(exc).__name__}: {msg.replace(path, '<serving>')}"
        stats["errors"][key] = stats["errors"].get(key, 0) + 1
        time.sleep(0.005)
        continue
    day, active_tier_sum, active, tiers, tier_sum = row
    if tiers != 6 or tier_sum != active_tier_sum:
        stats["inconsistent"] += 1
        if len(stats["examples"]) < 5:
            stats["examples"].append(list(map(str, row)))
    else:
        stats["ok"] += 1
        figure = f"{day}:{active_tier_sum}:{active}"
        stats["figures"][figure] = stats["figures"].get(figure, 0) + 1
        stats["first"] = stats["first"] or figure
        stats["last"] = figure
    time.sleep(0.025)
if con is not None:
    con.close()
with open(out, "w") as fh:
    json.dump(stats, fh)
'''


def _figure(serving: Path) -> str:
    con = duckdb.connect(str(serving), read_only=True)
    try:
        day, active_tier_sum, active = con.execute(
            "SELECT snapshot_date, active_tier_sum, active FROM coverage_national "
            "ORDER BY snapshot_date DESC LIMIT 1").fetchone()
        return f"{day}:{active_tier_sum}:{active}"
    finally:
        con.close()


def _grow(path: Path, original: bytes, extra: int, month: str) -> None:
    """Re-deliver ``path`` as ``original`` plus ``extra`` valid rows (each a new person, active
    in KABKOTA 32.01 at the snapshot), modified a few seconds ago (past the settle time)."""
    text = original.decode("utf-8-sig")
    newline = "\r\n" if "\r\n" in text.splitlines(keepends=True)[0] else "\n"
    header = text.splitlines()[0]
    sep = ";" if header.count(";") > header.count(",") else ","
    names = [h.strip().strip('"').lower() for h in header.split(sep)]
    rows = []
    for i in range(1, extra + 1):
        values = {"nik": f"32010171129{i:05d}", "kpj": f"99{i:09d}", "nama": f"Zqx Pembaca {i}",
                  "segmen": "PU", "tingkat": "KABKOTA", "kode_wilayah": "32.01",
                  "npp": "RE596031", "nama_instansi": "Dinas Sosial Kabupaten Bogor",
                  "tgl_kepesertaan": "2020-01-15", "bulan_iuran_terakhir": month}
        rows.append(sep.join(f'"{values.get(n, "")}"' for n in names))
    body = original if original.endswith(b"\n") else original + newline.encode()
    path.write_bytes(body + "".join(r + newline for r in rows).encode())
    when = time.time() - 5
    os.utime(path, (when, when))


def _readers(serving: Path, base: Path) -> list[dict]:
    kinds = []
    py11 = procs.duckdb11_python()
    for label, python in (("duckdb-1.1", py11), ("duckdb-project", sys.executable)):
        if python is None:
            continue
        for mode in ("fresh", "long"):
            tag = f"{label}-{mode}"
            kinds.append({"kind": tag, "python": python, "mode": mode,
                          "out": base / f"{tag}.json", "ready": base / f"{tag}.ready"})
    return kinds


@pytest.mark.parametrize("publishes", [
    SAMPLE_PUBLISHES, pytest.param(PUBLISHES, marks=pytest.mark.long)])
def test_live_readers_during_repeated_publishes(publishes):
    if procs.duckdb11_python() is None:
        pytest.fail("no DuckDB 1.1.3 interpreter: create .venv-duckdb11 (make test does) or "
                    "set CAKUPAN_DUCKDB11_PYTHON")
    with procs.scratch("readers") as base:
        store = procs.Store(base)
        procs.demo_landing(store.landing, SCALE, SNAPSHOTS, DEMO_SEED)
        first = store.run()
        assert first.code in (0, 2), first.tail()
        day = max(p.name for p in (store.landing / "enrollment").iterdir())
        office_file = next((store.landing / "enrollment" / day).glob(f"{OFFICE}.*"))
        assert office_file.suffix == ".csv", office_file
        original = office_file.read_bytes()
        figures = [_figure(store.serving)]

        stop = base / "stop"
        kinds = _readers(store.serving, base)
        procs_ = []
        for k in kinds:
            procs_.append(subprocess.Popen(
                [k["python"], "-c", READER, str(store.serving), k["mode"], str(stop),
                 str(k["out"]), str(k["ready"])], cwd=base, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE))
        try:
            deadline = time.monotonic() + 60
            while not all(k["ready"].exists() for k in kinds):
                assert time.monotonic() < deadline, "readers did not start"
                assert all(p.poll() is None for p in procs_), [
                    p.stderr.read().decode() for p in procs_ if p.poll() is not None]
                time.sleep(0.05)
            time.sleep(1.0)
            started = time.monotonic()
            runs = []
            for i in range(1, publishes + 1):
                _grow(office_file, original, i, day[:7])
                r = store.run()
                runs.append(r.seconds)
                assert r.code in (0, 2), f"publish {i}:\n{r.tail()}"
                assert "serving_file" in r.err, f"publish {i} did not republish:\n{r.tail()}"
                figures.append(_figure(store.serving))
                assert figures[-1] != figures[-2], f"publish {i} did not change the figures"
            publishing = time.monotonic() - started
            time.sleep(1.5)
        finally:
            stop.touch()
            for p in procs_:
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
        stats = {}
        for k, p in zip(kinds, procs_):
            assert k["out"].exists(), f"{k['kind']} reader wrote no result: " \
                                      f"{p.stderr.read().decode()[-2000:]}"
            stats[k["kind"]] = json.loads(k["out"].read_text())

    # ---------------------------------------------------------------------------- summary
    lines = [f"--- live readers: {publishes} publishes in {publishing:.0f} s "
             f"(cakupan run {min(runs):.1f}-{max(runs):.1f} s each); published figures "
             f"(snapshot:active_tier_sum:active) {figures[0]} .. {figures[-1]}"]
    for kind, s in stats.items():
        errors = sum(s["errors"].values())
        lines.append(f"{kind:22s} duckdb {s['duckdb']:6s} reads {s['reads']:6d} ok {s['ok']:6d} "
                     f"errors {errors:4d} inconsistent {s['inconsistent']} connects "
                     f"{s['connects']:6d} distinct figures {len(s['figures']):3d} first "
                     f"{s['first']} last {s['last']}")
        for msg, n in sorted(s["errors"].items()):
            lines.append(f"    {n:5d} x {msg}")
    print("\n" + "\n".join(lines))

    # ------------------------------------------------------------------------- assertions
    problems = []
    for kind, s in stats.items():
        if s["reads"] < 100 or s["ok"] == 0:
            problems.append(f"{kind}: only {s['reads']} reads, {s['ok']} successful")
        if s["inconsistent"]:
            problems.append(f"{kind}: {s['inconsistent']} inconsistent reads, e.g. "
                            f"{s['examples']}")
        for msg, n in s["errors"].items():
            if not any(p.search(msg) for p in RETRYABLE):
                problems.append(f"{kind}: {n} x non-retryable error {msg!r}")
        seen = set(s["figures"])
        if not seen <= set(figures):
            problems.append(f"{kind}: saw figures never published: {sorted(seen - set(figures))}")
        if s["mode"] == "fresh":
            # a fresh connection reads the file now at the path: every published state
            missed = [f for f in figures if f not in seen]
            if missed:
                problems.append(f"{kind}: never saw {len(missed)} published state(s): {missed[:5]}")
        else:
            # observed: a long-lived connection keeps reading the file it opened (the inode
            # renamed over stays open); it never sees a newer snapshot or figure
            if seen != {figures[0]} or s["connects"] != 1:
                problems.append(f"{kind}: a long-lived connection saw {sorted(seen)} "
                                f"(connected {s['connects']}x); expected only {figures[0]}")
    assert not problems, "\n".join(problems)
