"""`make bench` / `make bench-scale`: cakupan's performance scenarios.

    python bench/run.py [--scenario NAME ...] [options]      (default: full incremental history)

Scenarios (see bench/README.md for what each proves and its targets):

full         the pipeline against the plain-DuckDB reference (bench/reference.py) on a demo landing
             zone of --scale (1) with --snapshots (6) snapshots, alternated --repeat (3) times,
             each pipeline run in a fresh warehouse, serving file and DAGSTER_HOME; serving
             coverage_by_tier / coverage_national cross-checked against the reference.
incremental  a 12-snapshot landing zone (--incremental-scale 1): the full night, a night with
             nothing new, then one office's file of a middle snapshot re-delivered (one data row
             removed, newer mtime); incremental / full time, and the lake's files before and after
             (only that delivery and that snapshot's people file may change).
history      a 25-snapshot landing zone (--history-scale 0.2): (a) a fresh store given only the
             25th snapshot, (b) a store holding the first 24 given the 25th; b / a time.
scale        full runs at --scales (0.2,1,5), 6 snapshots: wall against rows (least squares
             slope, R²) and peak RSS.

Every command is a subprocess measured for wall time and peak RSS summed over its whole process
tree (psutil, polled every 50 ms), plus CPU seconds. Demo landing zones are generated once into
data/bench/landing-s<scale>-n<snapshots> (again when its demo_manifest.json is missing). Working
copies of a landing zone hard-link the enrollment files (the cached zone is never modified).

Writes bench/results/<UTC timestamp>.json (everything) and bench/results/latest.md (per scenario
the newest result in bench/results, with its targets met or missed); --update-readme copies
latest.md between the README's <!-- bench:begin --> and <!-- bench:end --> markers.

Exit status: 0 when every command succeeded and every cross-check agreed, whether or not the
targets were met (a benchmark reports); 1 when a command failed; 2 on a cross-check mismatch.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
FORMAT = "cakupan-bench/2"
# Fixed and not a secret, so every bench run hashes alike; the pipeline wants >= 32 bytes.
BENCH_KEY = "cakupan-bench-hmac-key-not-a-secret-v2"
PEN_TOL = 1e-9
POLL = 0.05
GB = 10**9  # "GB" is read strictly as 10^9 bytes

TARGETS = {
    "full_ratio_max": 1.5,             # pipeline / reference wall time (medians)
    "full_rss_max": 1.5 * GB,          # pipeline peak RSS, process tree (max over repetitions)
    "incremental_ratio_max": 0.10,     # incremental night / full night
    "history_ratio_tolerance": 0.10,   # (b) / (a) within 1 ± 0.10
    "scale_rss_max": 4 * GB,           # pipeline peak RSS at the largest scale (5 by default)
}
SCENARIOS = ("full", "incremental", "history", "scale")
DEFAULT_SCENARIOS = ("full", "incremental", "history")
PACKAGES = ["dagster", "dagster-duckdb", "dagster-pandera", "pandera", "duckdb", "pandas", "pyarrow",
            "numpy", "python-calamine", "psutil"]
# CAKUPAN_* variables that would change what a run reads or writes: the bench sets its own.
SCRUBBED_ENV = ("CAKUPAN_LANDING", "CAKUPAN_WAREHOUSE", "CAKUPAN_SERVING", "CAKUPAN_PROFILE",
                "CAKUPAN_SETTLE_SECONDS", "CAKUPAN_GRACE_MONTHS", "CAKUPAN_SUPPRESS_K",
                "CAKUPAN_HMAC_KEY", "DAGSTER_HOME")


# ------------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------------

def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def minimum(xs):
    xs = [x for x in xs if x is not None]
    return min(xs) if xs else None


def maximum(xs):
    xs = [x for x in xs if x is not None]
    return max(xs) if xs else None


def div(a, b):
    return a / b if a is not None and b else None


def scale_tag(scale) -> str:
    return f"{float(scale):g}"


def tail(path, n: int = 25) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def least_squares(xs, ys) -> dict | None:
    """Slope, intercept and R² of y = a + b x; None with fewer than two distinct x."""
    pts = [(float(x), float(y)) for x, y in zip(xs, ys) if x is not None and y is not None]
    if len(pts) < 2 or len({x for x, _ in pts}) < 2:
        return None
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    sxy = sum((x - mx) * (y - my) for x, y in pts)
    slope = sxy / sxx
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for _, y in pts)
    ss_res = sum((y - (intercept + slope * x)) ** 2 for x, y in pts)
    r2 = 1 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return {"slope_s_per_row": slope, "slope_s_per_million_rows": slope * 1e6,
            "intercept_s": intercept, "r2": r2, "points": n}


# ------------------------------------------------------------------------------------------------
# measuring
# ------------------------------------------------------------------------------------------------

def measure(cmd: list, env: dict, log_prefix: Path) -> dict:
    """Run `cmd`; wall seconds, peak RSS of its process tree (polled), CPU seconds, exit code."""
    log_prefix.parent.mkdir(parents=True, exist_ok=True)
    out_path, err_path = Path(f"{log_prefix}.out"), Path(f"{log_prefix}.err")
    load_before = loadavg()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = psutil.Popen([str(c) for c in cmd], cwd=ROOT, env=env, stdout=out, stderr=err)
        peak = 0
        seen = {proc.pid}
        while True:
            try:
                children = proc.children(recursive=True)
            except psutil.Error:
                children = []
            seen.update(c.pid for c in children)
            rss = 0
            for p in [proc] + children:
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    pass
            peak = max(peak, rss)
            try:
                code = proc.wait(timeout=POLL)
                break
            except psutil.TimeoutExpired:
                continue
        wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "cmd": [str(c) for c in cmd],
        "wall_s": round(wall, 3),
        "peak_rss_bytes": peak,
        # CPU of the waited-for process tree (children reaped by their parents included)
        "cpu_user_s": round(ru1.ru_utime - ru0.ru_utime, 2),
        "cpu_sys_s": round(ru1.ru_stime - ru0.ru_stime, 2),
        "exit_code": code,
        "processes_seen": len(seen),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "stdout": str(out_path),
        "stderr": str(err_path),
    }


class Bench:
    """Shared state of one bench invocation: environment, work folder, failures, progress."""

    def __init__(self, args):
        self.args = args
        self.env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
        self.env["CAKUPAN_HMAC_KEY"] = BENCH_KEY
        self.env["PYTHONPATH"] = str(ROOT) + (os.pathsep + self.env["PYTHONPATH"]
                                              if self.env.get("PYTHONPATH") else "")
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.passed_env = {k: v for k, v in self.env.items()
                           if k.startswith("CAKUPAN_") and k != "CAKUPAN_HMAC_KEY"}
        self.started = now_utc()
        self.stamp = self.started.strftime("%Y%m%dT%H%M%SZ")
        self.work = Path(args.workdir).absolute() / f"run-{self.stamp}"
        self.work.mkdir(parents=True, exist_ok=False)
        self.landings = Path(args.landings).absolute()
        self.failures: list[str] = []
        self.mismatches: list[str] = []
        self.generated: list[dict] = []

    def say(self, msg: str) -> None:
        print(msg, flush=True)

    def fail(self, msg: str, run: dict | None = None) -> None:
        self.failures.append(msg)
        print(f"!!! FAILED: {msg}", flush=True)
        if run is not None:
            print(tail(run["stderr"]), file=sys.stderr, flush=True)

    def marks(self) -> tuple[int, int]:
        return len(self.failures), len(self.mismatches)

    def cleanup(self, folder: Path, marks: tuple[int, int]) -> None:
        """Remove a scenario's folder unless --keep, or something failed since `marks`."""
        if not self.args.keep and self.marks() == marks:
            shutil.rmtree(folder, ignore_errors=True)

    def python(self, *args) -> list:
        return [sys.executable, *args]

    # ---- landing zones --------------------------------------------------------------------
    def landing(self, scale, snapshots: int) -> tuple[Path, dict]:
        """The cached demo landing zone of (scale, snapshots), generated when incomplete."""
        path = self.landings / f"landing-s{scale_tag(scale)}-n{snapshots}"
        manifest_path = path / "demo_manifest.json"
        manifest = _read_json(manifest_path)
        if manifest and (float(manifest.get("scale", -1)) != float(scale)
                         or len(manifest.get("snapshots", [])) != snapshots):
            self.say(f"  {path.name}: its manifest says scale {manifest.get('scale')}, "
                     f"{len(manifest.get('snapshots', []))} snapshots: generating it again")
            manifest = None
        if manifest is None:
            need = 0.75e9 * float(scale) * snapshots  # landing ~0.4 GB per scale-snapshot, lake ~0.25
            probe = self.landings
            while not probe.exists():
                probe = probe.parent
            free = shutil.disk_usage(probe).free
            if free < need:
                self.say(f"  warning: {free / GB:.1f} GB free on disk; landing zone and lake of "
                         f"scale {scale_tag(scale)} x {snapshots} snapshots need about {need / GB:.1f} GB")
            self.say(f"generating demo landing zone {path} (scale {scale_tag(scale)}, "
                     f"{snapshots} snapshots) ...")
            self.landings.mkdir(parents=True, exist_ok=True)
            gen = measure(self.python("-m", "pipelines.cli", "demo", "--out", path, "--scale",
                                      scale_tag(scale), "--snapshots", snapshots),
                          self.env, self.work / "logs" / f"demo-s{scale_tag(scale)}-n{snapshots}")
            self.say(f"    demo: wall {gen['wall_s']:.1f} s, peak RSS {gen['peak_rss_bytes'] / GB:.2f} GB, "
                     f"exit {gen['exit_code']}")
            gen["landing"] = str(path)
            self.generated.append(gen)
            manifest = _read_json(manifest_path)
            if gen["exit_code"] != 0 or manifest is None:
                self.fail(f"demo generation of {path.name} failed (exit {gen['exit_code']}): "
                          f"see {gen['stderr']}", gen)
                return path, {}
        return path, manifest

    # ---- the two programs -----------------------------------------------------------------
    def pipeline(self, label: str, landing: Path, store: Path, log_name: str,
                 expect_runs: bool | None = True) -> dict:
        """One `cakupan run` on `landing` into the store folder `store` (w.duckdb, its lake,
        s.duckdb, dagster_home): fresh when the folder is new."""
        (store / "dagster_home").mkdir(parents=True, exist_ok=True)
        env = dict(self.env, DAGSTER_HOME=str(store / "dagster_home"))
        # logs beside the store, not in it: a restored store must not take them away
        log = store.parent / f"{store.name}.{log_name}"
        summary_path = Path(f"{log}.summary.json")
        summary_path.unlink(missing_ok=True)
        self.say(f"{label}: pipeline (cakupan run) on {landing.name} ...")
        r = measure(self.python("-m", "pipelines.cli", "run", "--landing", landing,
                                "--warehouse", store / "w.duckdb", "--serving", store / "s.duckdb",
                                "--summary-json", summary_path),
                    env, log)
        r["summary"] = _read_json(summary_path)
        s = r["summary"] or {}
        # exit 2 = completed and published, some file rejected whole
        r["ok"] = r["exit_code"] in (0, 2) and (store / "s.duckdb").exists() and bool(s)
        r["runs"] = len(s.get("runs") or [])
        r["dagster_runs"] = dagster_runs(store / "dagster_home", list(s.get("runs") or []))
        r["waiting"] = "waiting:" in tail(r["stderr"], 200)
        self.say(f"    wall {r['wall_s']:.1f} s, peak RSS {r['peak_rss_bytes'] / GB:.2f} GB, "
                 f"cpu {r['cpu_user_s'] + r['cpu_sys_s']:.1f} s, exit {r['exit_code']}, "
                 f"{r['runs']} Dagster run(s)")
        if not r["ok"]:
            self.fail(f"{label}: pipeline failed (exit {r['exit_code']}): see {r['stderr']}", r)
        elif r["waiting"]:
            self.fail(f"{label}: the pipeline left files waiting (settling): see {r['stderr']}")
            r["ok"] = False
        elif expect_runs is True and not r["runs"]:
            self.fail(f"{label}: the pipeline launched no run (nothing seen as new)")
            r["ok"] = False
        elif expect_runs is False and r["runs"]:
            r["note"] = f"expected no run, {r['runs']} launched"
        return r

    def reference(self, label: str, landing: Path, out_dir: Path, log_name: str) -> tuple[dict, dict | None]:
        self.say(f"{label}: reference (bench/reference.py) on {landing.name} ...")
        out = out_dir / f"{log_name}.json"
        out.unlink(missing_ok=True)
        r = measure(self.python(ROOT / "bench" / "reference.py", landing, "--out", out),
                    self.env, out_dir / log_name)
        ref = _read_json(out)
        r["timings"] = (ref or {}).get("timings")
        r["ok"] = r["exit_code"] == 0 and ref is not None
        self.say(f"    wall {r['wall_s']:.1f} s, peak RSS {r['peak_rss_bytes'] / GB:.2f} GB, "
                 f"cpu {r['cpu_user_s'] + r['cpu_sys_s']:.1f} s, exit {r['exit_code']}")
        if not r["ok"]:
            self.fail(f"{label}: reference failed (exit {r['exit_code']}): see {r['stderr']}", r)
            ref = None
        return r, ref

    def check(self, label: str, serving: Path, ref: dict | None) -> dict | None:
        """Cross-check a serving file against a reference result; mismatches are recorded."""
        if ref is None or not serving.exists():
            return None
        try:
            mism, notes = cross_check(read_serving(serving), ref)
        except Exception as exc:  # a serving file we cannot read is a failed check
            mism, notes = [f"could not read the serving file: {type(exc).__name__}: {exc}"], []
        notes += compare_load_log(serving, ref)
        self.mismatches += [f"{label}: {m}" for m in mism]
        if mism:
            self.say(f"    !!! CROSS-CHECK {label}: {len(mism)} mismatch(es), e.g. {mism[0]}")
        else:
            self.say(f"    cross-check {label}: equal ({len(ref['coverage_national'])} snapshot(s))")
        return {"label": label, "agree": not mism, "mismatches": mism, "notes": notes,
                "snapshots": len(ref.get("coverage_national", []))}


def _read_json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------------------------------
# landing-zone and lake bookkeeping
# ------------------------------------------------------------------------------------------------

def manifest_rows(manifest: dict, snapshots=None) -> dict:
    """Rows of the winning (loaded) files and rows written, per the generator's bookkeeping."""
    read = written = files = 0
    for snap, e in (manifest.get("expected") or {}).items():
        if snapshots is not None and snap not in snapshots:
            continue
        for f in e.get("files", {}).values():
            if f.get("status") == "loaded":
                read += f.get("rows_read") or 0
                written += f.get("rows_read") or 0
                files += 1
            else:
                written += f.get("rows_in_file") or 0
    return {"rows_read": read, "rows_written": written, "loaded_files": files}


def clone_landing(src: Path, dst: Path, skip_snapshots=()) -> dict:
    """A working copy of a landing zone: enrollment files hard-linked (a copy where linking is
    impossible), everything else copied; `skip_snapshots` enrollment folders left out."""
    skip = {f"enrollment/{s}" for s in skip_snapshots}
    linked = copied = 0
    for dirpath, dirnames, filenames in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        dirnames[:] = sorted(d for d in dirnames if (rel / d).as_posix() not in skip)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in filenames:
            s, d = Path(dirpath) / name, dst / rel / name
            if rel.parts[:1] == ("enrollment",):
                try:
                    os.link(s, d)
                    linked += 1
                    continue
                except OSError:
                    pass
            shutil.copy2(s, d)
            copied += 1
    return {"linked": linked, "copied": copied}


def add_fresh(src_dir: Path, dst_dir: Path, newest: float) -> int:
    """Copy a snapshot folder's files (new inodes) with their modification times shifted so
    that the newest is `newest` (their order, hence which re-delivery wins, is kept)."""
    files = sorted(p for p in src_dir.iterdir() if p.is_file())
    top = max(p.stat().st_mtime_ns for p in files)
    shift = int(newest * 1e9) - top
    dst_dir.mkdir(parents=True, exist_ok=True)
    for p in files:
        d = dst_dir / p.name
        shutil.copyfile(p, d)
        m = p.stat().st_mtime_ns + shift
        os.utime(d, ns=(m, m))
    return len(files)


def listing(root: Path) -> dict:
    """relative path -> [size, mtime_ns, inode] of every file under `root`."""
    out = {}
    if root.is_dir():
        for p in sorted(root.rglob("*")):
            if p.is_file():
                st = p.lstat()
                out[p.relative_to(root).as_posix()] = [st.st_size, st.st_mtime_ns, st.st_ino]
    return out


def diff_listing(before: dict, after: dict) -> dict:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    modified = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    return {"files_before": len(before), "files_after": len(after), "added": added,
            "removed": removed, "modified": modified,
            "unchanged": len(set(before) & set(after)) - len(modified)}


def file_stat(path: Path):
    try:
        st = path.stat()
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    except OSError:
        return None


def redeliver(path: Path, bad_rows: set[int], expected_rows: int | None, removed: list[int]) -> dict:
    """Re-deliver the CSV at `path`: the same bytes with one valid data row removed (the last
    one not planted as bad, per the demo's bad-row log), written beside it and renamed over it
    (a hard link to the cached landing zone is replaced, never written through), with a newer
    modification time. `removed`: original data-row numbers removed earlier (appended to)."""
    data = path.read_bytes()
    lines = re.split(rb"(?<=\n)", data)
    if lines and lines[-1] == b"":
        lines.pop()
    body = len(lines) - 1
    # current data row i (1-based) is original row originals[i - 1], if a line is a row
    consistent = expected_rows is not None and body == expected_rows - len(removed)
    originals = ([r for r in range(1, expected_rows + 1) if r not in set(removed)] if consistent
                 else list(range(1, body + 1)))
    victim = None
    for i in range(body, 0, -1):
        if not consistent or originals[i - 1] not in bad_rows:
            victim = i
            break
    if victim is None or body < 2:
        raise RuntimeError(f"{path}: no data row to remove")
    removed_line = lines.pop(victim)
    removed.append(originals[victim - 1])
    before = path.stat()
    tmp = path.with_name(f".{path.name}.bench.tmp")
    tmp.write_bytes(b"".join(lines))
    when = max(time.time() - 10, before.st_mtime + 1)  # newer, and settled (2 s) already
    os.utime(tmp, (when, when))
    os.replace(tmp, path)
    return {"file": path.name, "data_row_removed": originals[victim - 1],
            "row_valid_per_bad_row_log": consistent,
            "bytes_before": before.st_size, "bytes_after": path.stat().st_size,
            "removed_line_bytes": len(removed_line), "mtime_before": before.st_mtime,
            "mtime_after": path.stat().st_mtime}


# ------------------------------------------------------------------------------------------------
# cross-check
# ------------------------------------------------------------------------------------------------

def read_serving(path: Path) -> dict:
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        def rows(sql):
            cur = con.execute(sql)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]

        return {
            "coverage_by_tier": rows(
                "SELECT CAST(snapshot_date AS VARCHAR) AS snapshot_date, CAST(tier AS VARCHAR) AS tier, "
                "active, inactive, potential, penetration_pct FROM coverage_by_tier"),
            "coverage_national": rows(
                "SELECT CAST(snapshot_date AS VARCHAR) AS snapshot_date, active, active_tier_sum, inactive, "
                "potential, penetration_pct FROM coverage_national"),
        }
    finally:
        con.close()


def _num_equal(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return int(a) == int(b)


def _pen_equal(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(float(a) - float(b)) <= PEN_TOL


def cross_check(serving: dict, ref: dict) -> tuple[list[str], list[str]]:
    """Return (mismatches, notes). A row present on one side only is a mismatch unless it is an
    all-zero tier row (0 active, 0 inactive), which is only a note: whether empty tiers are listed
    is presentation, not a figure."""
    mismatches, notes = [], []
    for table, key in (("coverage_by_tier", ("snapshot_date", "tier")), ("coverage_national", ("snapshot_date",))):
        cols = ["active", "inactive", "potential", "penetration_pct"]
        if table == "coverage_national":
            cols.insert(1, "active_tier_sum")
        pipe = {tuple(str(r[k]) for k in key): r for r in serving[table]}
        refd = {tuple(str(r[k]) for k in key): r for r in ref[table]}
        for k in sorted(set(pipe) | set(refd)):
            p, r = pipe.get(k), refd.get(k)
            if p is None or r is None:
                side, row = ("pipeline", r) if p is None else ("reference", p)
                msg = f"{table} {k}: missing in {side} (other side: " + \
                      ", ".join(f"{c}={row.get(c)}" for c in cols) + ")"
                if row.get("active") == 0 and row.get("inactive") == 0:
                    notes.append(msg)
                else:
                    mismatches.append(msg)
                continue
            for c in cols:
                ok = _pen_equal(p[c], r[c]) if c == "penetration_pct" else _num_equal(p[c], r[c])
                if not ok:
                    mismatches.append(f"{table} {k} {c}: pipeline {p[c]!r} != reference {r[c]!r}")
    return mismatches, notes


def compare_load_log(serving_path: Path, ref: dict) -> list[str]:
    """Informational: per-file status and row counts, pipeline vs reference."""
    import duckdb

    try:
        con = duckdb.connect(str(serving_path), read_only=True)
        cur = con.execute("SELECT source_file, status, rows_read, rows_loaded, rows_rejected FROM load_log")
        pipe = {r[0]: r[1:] for r in cur.fetchall()}
        con.close()
    except Exception as exc:  # the table is the pipeline's business; this check is only a note
        return [f"load_log not compared: {type(exc).__name__}: {exc}".splitlines()[0]]
    notes = []
    refd = {r["source_file"]: (r["status"], r["rows_read"], r["rows_loaded"], r["rows_rejected"])
            for r in ref.get("load_log", [])}
    for f in sorted(set(pipe) | set(refd)):
        if pipe.get(f) != refd.get(f):
            notes.append(f"load_log {f}: pipeline {pipe.get(f)} vs reference {refd.get(f)}")
    return notes


# ------------------------------------------------------------------------------------------------
# stage profiles
# ------------------------------------------------------------------------------------------------

def stage_profile(runs: list[dict]) -> dict:
    """Median seconds per --summary-json stage, plus what lies outside the Dagster runs
    (planning and instance set-up inside `cakupan run`) and outside `cakupan run` itself
    (interpreter start, imports, exit)."""
    per: dict[str, list] = {}
    outside, process = [], []
    for r in runs:
        s = r.get("summary") or {}
        stages = {k: v for k, v in (s.get("stages") or {}).items() if isinstance(v, (int, float))}
        details = r.get("dagster_runs") or []
        for i, (k, v) in enumerate(stages.items()):
            if len(details) == len(stages) and re.match(r"\d+ tables", k):
                k = f"{k}: {', '.join(details[i]['assets'])}"
            per.setdefault(k, []).append(v)
        total = s.get("total_seconds")
        if isinstance(total, (int, float)):
            outside.append(total - sum(stages.values()))
            process.append(r["wall_s"] - total)
    out = {k: median(v) for k, v in per.items()}
    collided = [r for r in runs if len((r.get("summary") or {}).get("runs") or [])
                != len((r.get("summary") or {}).get("stages") or {})]
    if collided:
        s = collided[0]["summary"]
        out[f"(note: {len(s['runs'])} Dagster runs but {len(s['stages'])} stage labels: a repeated "
            "label kept only its last time, the others count as outside the runs)"] = None
    if outside:
        out["(in cakupan run, outside the Dagster runs)"] = median(outside)
        out["(process start, imports, exit)"] = median(process)
    return out


def dagster_runs(home: Path, run_ids: list[str]) -> list[dict] | None:
    """Best effort, read-only: each run's asset selection (the run storage) and the seconds of
    each of its steps, STEP_START to STEP_SUCCESS/FAILURE (its event log), from the embedded
    profile's SQLite files in DAGSTER_HOME. None when they cannot be read."""
    import sqlite3

    def ro(path):
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    try:
        con = ro(home / "history" / "runs.db")
        bodies = dict(con.execute("SELECT run_id, run_body FROM runs").fetchall())
        con.close()
        out = []
        for rid in run_ids:
            body = json.loads(bodies.get(rid) or "{}")
            sel = (body.get("asset_selection") or {}).get("__frozenset__") or []
            assets = sorted("/".join(k.get("path", [])) for k in sel)
            steps, started, span = {}, {}, None
            path = home / "history" / "runs" / f"{rid}.db"
            if path.exists():
                con = ro(path)
                events = con.execute(
                    "SELECT dagster_event_type, step_key, timestamp FROM event_logs "
                    "WHERE dagster_event_type IS NOT NULL ORDER BY id").fetchall()
                con.close()
                stamps = [dt.datetime.fromisoformat(e[2]) for e in events]
                if stamps:
                    span = (stamps[-1] - stamps[0]).total_seconds()
                for (kind, step, _), ts in zip(events, stamps):
                    if kind == "STEP_START":
                        started[step] = ts
                    elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and step in started:
                        steps[step] = steps.get(step, 0.0) + (ts - started.pop(step)).total_seconds()
            out.append({"run_id": rid, "assets": assets, "events_span_s": span,
                        "steps_s": {k: round(v, 3) for k, v in steps.items()}})
        return out
    except Exception:  # Dagster's storage layout is not ours: a missing detail, not an error
        return None


def step_profile(runs: list[dict]) -> dict:
    """Median seconds per Dagster step over runs (each run: the sum over its Dagster runs)."""
    per: dict[str, list] = {}
    for r in runs:
        sums: dict[str, float] = {}
        for d in r.get("dagster_runs") or []:
            for k, v in d["steps_s"].items():
                sums[k] = sums.get(k, 0.0) + v
        for k, v in sums.items():
            per.setdefault(k, []).append(v)
    return dict(sorted(((k, median(v)) for k, v in per.items()), key=lambda kv: -kv[1]))


def reference_profile(runs: list[dict]) -> dict:
    per: dict[str, list] = {}
    for r in runs:
        for k, v in (r.get("timings") or {}).items():
            per.setdefault(k, []).append(v)
    return {k: median(v) for k, v in per.items()}


def run_stats(runs: list[dict]) -> dict:
    ok = [r for r in runs if r.get("ok")]
    walls = [r["wall_s"] for r in ok]
    rss = [r["peak_rss_bytes"] for r in ok]
    cpu = [r["cpu_user_s"] + r["cpu_sys_s"] for r in ok]
    return {"n": len(ok), "wall_s_min": minimum(walls), "wall_s_median": median(walls),
            "wall_s_max": maximum(walls), "peak_rss_bytes_min": minimum(rss),
            "peak_rss_bytes_median": median(rss), "peak_rss_bytes_max": maximum(rss),
            "cpu_s_median": median(cpu)}


def slim(run: dict) -> dict:
    """A run record for the JSON: the summary's bulky lists shortened."""
    r = dict(run)
    s = r.get("summary")
    if isinstance(s, dict):
        s = dict(s)
        for k in ("warnings", "rejected"):
            if isinstance(s.get(k), list) and len(s[k]) > 20:
                s[k] = s[k][:20] + [f"... {len(s[k]) - 20} more"]
        r["summary"] = s
    return r


# ------------------------------------------------------------------------------------------------
# scenarios
# ------------------------------------------------------------------------------------------------

def scenario_full(b: Bench, scale, snapshots: int, repeat: int, name: str = "full") -> dict:
    landing, manifest = b.landing(scale, snapshots)
    res = {"scale": float(scale), "snapshots": snapshots, "repeat": repeat, "landing": str(landing),
           "rows": manifest_rows(manifest) if manifest else None}
    if not manifest:
        return res
    before = listing(landing / "enrollment")
    runs_a, runs_b, checks = [], [], []
    for i in range(repeat):
        tag = f"[{name} s{scale_tag(scale)} {i + 1}/{repeat}]"
        store = b.work / name / f"s{scale_tag(scale)}-rep{i + 1}"
        a = b.pipeline(tag, landing, store, "pipeline")
        runs_a.append(a)
        rb, ref = b.reference(tag, landing, store, "reference")
        runs_b.append(rb)
        if a["ok"] and ref is not None:
            checks.append(b.check(f"{name} s{scale_tag(scale)} rep {i + 1}", store / "s.duckdb", ref))
            res["reference_figures"] = {k: ref[k] for k in ("coverage_by_tier", "coverage_national")}
            res["reference_rows"] = ref.get("rows")
        if not b.args.keep and a["ok"]:  # disk: keep only the logs of a good repetition
            shutil.rmtree(store / "w.lake", ignore_errors=True)
            for f in ("w.duckdb", "s.duckdb"):
                (store / f).unlink(missing_ok=True)
    res["landing_untouched"] = listing(landing / "enrollment") == before
    if not res["landing_untouched"]:
        b.say(f"  warning: files under {landing / 'enrollment'} changed during the runs")
    rows = res["rows"]["rows_read"]
    pa, pb = run_stats(runs_a), run_stats(runs_b)
    for st in (pa, pb):
        st["rows_per_s_median"] = div(rows, st["wall_s_median"])
        st["rows_per_s_best"] = div(rows, st["wall_s_min"])
    ratio_med = div(pa["wall_s_median"], pb["wall_s_median"])
    ratio_min = div(pa["wall_s_min"], pb["wall_s_min"])
    res.update(
        pipeline=pa, reference=pb,
        ratio_of_medians=ratio_med, ratio_of_mins=ratio_min,
        pipeline_stages=stage_profile([r for r in runs_a if r["ok"]]),
        pipeline_steps=step_profile([r for r in runs_a if r["ok"]]),
        reference_stages=reference_profile([r for r in runs_b if r["ok"]]),
        cross_checks=checks,
        runs={"pipeline": [slim(r) for r in runs_a], "reference": runs_b},
    )
    res["targets"] = [
        target("pipeline / reference wall time (medians)", ratio_med, TARGETS["full_ratio_max"],
               "ratio"),
        target("pipeline peak RSS, process tree (max of reps)", pa["peak_rss_bytes_max"],
               TARGETS["full_rss_max"], "bytes"),
        {"name": "cross-check coverage_by_tier, coverage_national", "value": _check_value(checks),
         "limit": "equal", "met": None if not checks else all(c["agree"] for c in checks)},
    ]
    return res


def _check_value(checks):
    if not checks:
        return "not performed"
    bad = sum(len(c["mismatches"]) for c in checks)
    return f"{len(checks)} compared, {bad} mismatch(es)"


def target(name, value, limit, kind, met=None) -> dict:
    if met is None and value is not None:
        met = value <= limit
    return {"name": name, "value": value, "limit": limit, "kind": kind, "met": met}


def scenario_incremental(b: Bench, scale, snapshots: int, province: str, repeat: int) -> dict:
    src, manifest = b.landing(scale, snapshots)
    res = {"scale": float(scale), "snapshots": snapshots, "landing": str(src), "province": province,
           "repeat": repeat}
    if not manifest:
        return res
    snaps = manifest["snapshots"]
    middle = snaps[len(snaps) // 2]
    res["snapshot"] = middle
    target_file = f"enrollment/{middle}/{province}.csv"
    info = (manifest["expected"][middle]["files"]).get(target_file)
    if not info or info.get("status") != "loaded":
        b.fail(f"incremental: {target_file} is not a loaded CSV delivery of the demo (choose "
               f"another --redeliver-province)")
        return res
    bad_rows = set()
    bad_log = src / manifest.get("bad_rows_file", "demo_bad_rows.csv")
    if bad_log.exists():
        for line in bad_log.read_text().splitlines()[1:]:
            parts = line.split(",")
            if len(parts) >= 3 and parts[1] == target_file:
                bad_rows.add(int(parts[2]))

    base = b.work / "incremental"
    marks = b.marks()
    landing = base / "landing"
    b.say(f"[incremental] working copy of {src.name} ...")
    res["clone"] = clone_landing(src, landing)
    store = base / "store"
    lake = store / "w.lake"
    res["rows"] = manifest_rows(manifest)
    landing_before = listing(landing)

    full = b.pipeline("[incremental] full night, all snapshots", landing, store, "1-full")
    res["full_night"] = slim(full)
    if not full["ok"]:
        return res
    res["landing_untouched_by_full_night"] = listing(landing) == landing_before

    lake0 = listing(lake)
    noop = b.pipeline("[incremental] night with nothing new", landing, store, "2-noop", expect_runs=False)
    res["noop_night"] = slim(noop)
    res["noop_lake_changes"] = _changes(diff_listing(lake0, listing(lake)))

    nights, removed = [], []
    for k in range(repeat):
        lake_before = listing(lake)
        wh_before = file_stat(store / "w.duckdb")
        try:
            red = redeliver(landing / target_file, bad_rows, info.get("rows_read"), removed)
        except (OSError, RuntimeError) as exc:
            b.fail(f"incremental: could not re-deliver {target_file}: {exc}")
            break
        b.say(f"[incremental] re-delivered {target_file}: data row {red['data_row_removed']} removed, "
              f"mtime now newer")
        run = b.pipeline(f"[incremental] night {k + 1}/{repeat} with {target_file} re-delivered",
                         landing, store, f"3-incremental-{k + 1}")
        lake_after = listing(lake)
        d = diff_listing(lake_before, lake_after)
        night = {"redelivery": red, "run": slim(run), "lake": classify_lake(d, middle, province),
                 "lake_before": lake_before, "lake_after": lake_after,
                 "warehouse_before": wh_before, "warehouse_after": file_stat(store / "w.duckdb")}
        lk = night["lake"]
        b.say(f"    lake: {lk['changed']} file(s) changed of {d['files_before']} "
              f"({lk['changed_delivery']} of the delivery, {lk['changed_people']} people file, "
              f"{lk['changed_other']} other)")
        nights.append(night)
        if not run["ok"]:
            break
    res["incremental_nights"] = nights
    res["landing_untouched"] = all(
        v == landing_before.get(k) for k, v in listing(landing).items() if k != target_file)
    if not (res["landing_untouched"] and res["landing_untouched_by_full_night"]):
        b.say("  warning: the working landing zone changed during the runs (beyond the re-delivery)")

    # the incremental result equals a recomputation from scratch
    ok_nights = [n for n in nights if n["run"]["ok"]]
    if ok_nights:
        rb, ref = b.reference("[incremental] reference on the re-delivered landing zone", landing,
                              base, "reference")
        res["reference"] = rb
        c = b.check("incremental (after the re-delivery)", store / "s.duckdb", ref)
        res["cross_checks"] = [c] if c else []

    full_s = full["wall_s"]
    inc = [n["run"]["wall_s"] for n in ok_nights]
    inc_med = median(inc)
    res["incremental_wall_s_median"] = inc_med
    res["ratio_incremental_over_full"] = div(inc_med, full_s)
    res["incremental_peak_rss_bytes_max"] = maximum([n["run"]["peak_rss_bytes"] for n in ok_nights])
    unexpected = sum(n["lake"]["changed_other"] for n in nights)
    delivery_rewritten = bool(nights) and all(n["lake"]["changed_delivery"] > 0 for n in ok_nights)
    res["targets"] = [
        target("incremental night / full night, wall time", res["ratio_incremental_over_full"],
               TARGETS["incremental_ratio_max"], "ratio"),
        {"name": "lake files changed outside the re-delivered delivery and its snapshot's people "
                 "file", "value": unexpected if nights else None, "limit": 0, "kind": "count",
         "met": (unexpected == 0 and delivery_rewritten) if ok_nights else None,
         "note": None if delivery_rewritten or not ok_nights
         else "the re-delivered delivery's files did not change: the re-delivery was not ingested"},
    ]
    if res.get("cross_checks"):
        c = res["cross_checks"][0]
        res["targets"].append({"name": "cross-check after the re-delivery (reference from scratch)",
                               "value": _check_value([c]), "limit": "equal", "met": c["agree"]})
    b.cleanup(base, marks)
    return res


def _changes(d: dict) -> int:
    return len(d["added"]) + len(d["removed"]) + len(d["modified"])


def classify_lake(d: dict, snapshot: str, province: str) -> dict:
    """Split the lake's changed files into the re-delivered delivery's, the snapshot's people
    file, and anything else (which would mean the history was rewritten)."""
    mine = f"deliveries/{snapshot}/{province}/"
    people = f"people/{snapshot}.parquet"
    out = {"delivery": [], "people": [], "other": []}
    for kind in ("added", "removed", "modified"):
        for p in d[kind]:
            bucket = "delivery" if p.startswith(mine) else "people" if p == people else "other"
            out[bucket].append(f"{kind}: {p}")
    return {"files_before": d["files_before"], "files_after": d["files_after"],
            "unchanged": d["unchanged"], "changed": _changes(d),
            "changed_delivery": len(out["delivery"]), "changed_people": len(out["people"]),
            "changed_other": len(out["other"]), "delivery_files": out["delivery"],
            "people_files": out["people"], "other_files": out["other"]}


def scenario_history(b: Bench, scale, snapshots: int, repeat: int) -> dict:
    src, manifest = b.landing(scale, snapshots)
    res = {"scale": float(scale), "snapshots": snapshots, "landing": str(src), "repeat": repeat}
    if not manifest:
        return res
    snaps = manifest["snapshots"]
    last, history = snaps[-1], snaps[:-1]
    res["new_snapshot"] = last
    res["rows_new_snapshot"] = manifest_rows(manifest, {last})
    base = b.work / "history"
    marks = b.marks()
    runs_a, runs_b, setups, checks = [], [], [], []

    # (b) set-up once: the store of the first 24 snapshots, saved to restore before every rep
    lb = base / "landing-b"
    b.say(f"[history] working copy of {src.name} without {last} ...")
    clone_landing(src, lb, skip_snapshots=[last])
    store_b = base / "store-b"
    setup = b.pipeline(f"[history b] set-up (untimed): fresh store on the first {len(history)} "
                       f"snapshots", lb, store_b, "0-setup")
    setups.append(slim(setup))
    saved = base / "store-b.saved"
    if setup["ok"] and repeat > 1:
        shutil.copytree(store_b, saved, symlinks=True)

    for i in range(repeat if setup["ok"] else 0):
        tag = f"{i + 1}/{repeat}"
        # (a) empty history: a fresh store given only the last snapshot
        la = base / f"landing-a{i + 1}"
        clone_landing(src, la, skip_snapshots=history)
        store_a = base / f"store-a{i + 1}"
        a = b.pipeline(f"[history a {tag}] fresh store given only {last}", la, store_a, "pipeline")
        runs_a.append(a)
        if i == 0 and a["ok"]:
            rb, ref = b.reference(f"[history a {tag}]", la, base, "reference-a")
            res["reference_a"] = rb
            c = b.check("history (a)", store_a / "s.duckdb", ref)
            if c:
                checks.append(c)
        if not b.args.keep and a["ok"]:
            shutil.rmtree(store_a / "w.lake", ignore_errors=True)
            shutil.rmtree(la, ignore_errors=True)

        # (b) history of 24: restore the saved store, add the last snapshot with fresh mtimes
        if i > 0:
            shutil.rmtree(store_b)
            shutil.copytree(saved, store_b, symlinks=True)
            shutil.rmtree(lb / "enrollment" / last)
        n = add_fresh(src / "enrollment" / last, lb / "enrollment" / last, newest=time.time() - 10)
        b.say(f"[history b {tag}] added {last} ({n} files, fresh modification times)")
        lake_before = listing(store_b / "w.lake")
        rb_run = b.pipeline(f"[history b {tag}] store of {len(history)} snapshots given {last}",
                            lb, store_b, f"run-{i + 1}")
        d = diff_listing(lake_before, listing(store_b / "w.lake"))
        rb_run["lake_changes"] = {"changed": _changes(d), "files_before": d["files_before"],
                                  "outside_new_snapshot": [p for p in d["removed"] + d["modified"]
                                                           if last not in p]}
        runs_b.append(rb_run)
        if i == 0 and rb_run["ok"]:
            rr, ref = b.reference(f"[history b {tag}]", lb, base, "reference-b")
            res["reference_b"] = rr
            c = b.check("history (b)", store_b / "s.duckdb", ref)
            if c:
                checks.append(c)
    pa, pb = run_stats(runs_a), run_stats(runs_b)
    ratio = div(pb["wall_s_median"], pa["wall_s_median"])
    rows = res["rows_new_snapshot"]["rows_read"]
    for st in (pa, pb):
        st["rows_per_s_median"] = div(rows, st["wall_s_median"])
    res.update(setup=setups, a=pa, b=pb, ratio_b_over_a=ratio,
               a_stages=stage_profile([r for r in runs_a if r["ok"]]),
               b_stages=stage_profile([r for r in runs_b if r["ok"]]),
               a_steps=step_profile([r for r in runs_a if r["ok"]]),
               b_steps=step_profile([r for r in runs_b if r["ok"]]),
               runs={"a": [slim(r) for r in runs_a], "b": [slim(r) for r in runs_b]},
               cross_checks=checks)
    tol = TARGETS["history_ratio_tolerance"]
    res["targets"] = [
        {"name": f"(b) history of {len(history)} / (a) empty history, wall time", "value": ratio,
         "limit": f"{1 - tol:.2f} … {1 + tol:.2f}", "kind": "ratio",
         "met": None if ratio is None else abs(ratio - 1) <= tol + 1e-12},
        {"name": "cross-check (a) and (b)", "value": _check_value(checks), "limit": "equal",
         "met": None if not checks else all(c["agree"] for c in checks)},
    ]
    b.cleanup(base, marks)
    return res


def scenario_scale(b: Bench, scales: list, snapshots: int, repeat: int) -> dict:
    points = []
    for s in scales:
        r = scenario_full(b, s, snapshots, repeat, name="scale")
        points.append(r)
    rows = [(p.get("rows") or {}).get("rows_read") for p in points]
    fit_a = least_squares(rows, [(p.get("pipeline") or {}).get("wall_s_median") for p in points])
    fit_b = least_squares(rows, [(p.get("reference") or {}).get("wall_s_median") for p in points])
    largest = max(points, key=lambda p: p["scale"]) if points else None
    rss = (largest.get("pipeline") or {}).get("peak_rss_bytes_max") if largest else None
    checks = [c for p in points for c in p.get("cross_checks") or []]
    res = {"snapshots": snapshots, "repeat": repeat, "scales": [float(s) for s in scales],
           "points": points, "fit_pipeline": fit_a, "fit_reference": fit_b}
    res["targets"] = [
        target(f"pipeline peak RSS at scale {scale_tag(largest['scale']) if largest else '?'} "
               f"(target set at scale 5)", rss, TARGETS["scale_rss_max"], "bytes"),
        {"name": "cross-check at every scale", "value": _check_value(checks), "limit": "equal",
         "met": None if not checks else all(c["agree"] for c in checks)},
    ]
    return res


# ------------------------------------------------------------------------------------------------
# environment description
# ------------------------------------------------------------------------------------------------

def machine() -> dict:
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "memory_available_bytes_at_start": psutil.virtual_memory().available,
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def versions() -> dict:
    out = {}
    for pkg in PACKAGES:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip() != ""
        out["cakupan_commit"] = (commit + ("+dirty" if dirty else "")) if commit else None
    except (OSError, subprocess.SubprocessError):
        out["cakupan_commit"] = None
    return out


# ------------------------------------------------------------------------------------------------
# markdown
# ------------------------------------------------------------------------------------------------

def f_sec(x):
    return "n/a" if x is None else f"{x:,.1f} s"


def f_gb(x):
    return "n/a" if x is None else f"{x / GB:,.2f} GB"


def f_rate(x):
    return "n/a" if x is None else f"{x:,.0f}"


def f_ratio(x):   # three decimals: 0.104 against a limit of 0.1 must not print as 0.10
    return "n/a" if x is None else f"{x:.3f}"


def f_int(x):
    return "n/a" if x is None else f"{x:,}"


def f_met(m):
    return "n/a" if m is None else ("met" if m else "**missed**")


def f_target_value(t):
    v, kind = t.get("value"), t.get("kind")
    if v is None:
        return "n/a"
    if kind == "bytes":
        return f_gb(v)
    if kind == "ratio":
        return f_ratio(v)
    return str(v)


def f_target_limit(t):
    lim, kind = t.get("limit"), t.get("kind")
    if kind == "bytes":
        return f"≤ {lim / GB:g} GB"
    if kind == "ratio" and isinstance(lim, (int, float)):
        return f"≤ {lim:g}"
    if kind == "count":
        return f"= {lim}"
    return str(lim)


def targets_table(targets: list[dict]) -> list[str]:
    lines = ["| target | value | limit | |", "|---|---:|---:|---|"]
    for t in targets:
        note = f" ({t['note']})" if t.get("note") else ""
        lines.append(f"| {cell(t['name'])} | {cell(f_target_value(t))} | {cell(f_target_limit(t))} | "
                     f"{f_met(t.get('met'))}{cell(note)} |")
    return lines


def cell(x) -> str:
    return str(x).replace("|", "\\|")


def stages_table(title_a, sa: dict, title_b=None, sb: dict | None = None) -> list[str]:
    sa = [(cell(k), v) for k, v in (sa or {}).items()] or [("(no --summary-json stages)", None)]
    sb = None if sb is None else [(cell(k), v) for k, v in sb.items()]
    if sb is None:
        lines = [f"| {title_a} | s |", "|---|---:|"]
        lines += [f"| {k} | {'' if v is None else f'{v:,.2f}'} |" for k, v in sa]
        return lines
    lines = [f"| {title_a} | s | | {title_b} | s |", "|---|---:|---|---|---:|"]
    for i in range(max(len(sa), len(sb))):
        ka, va = sa[i] if i < len(sa) else ("", None)
        kb, vb = sb[i] if i < len(sb) else ("", None)
        lines.append(f"| {ka} | {'' if va is None else f'{va:,.2f}'} | | {kb} | "
                     f"{'' if vb is None else f'{vb:,.2f}'} |")
    return lines


def _from(meta: dict) -> str:
    la, lb = meta.get("loadavg_start"), meta.get("loadavg_end")
    m = meta.get("machine") or {}
    return (f"Run `{meta['stamp']}` (`bench/results/{meta['stamp']}.json`), commit "
            f"`{meta.get('commit')}`, {m.get('cpu_model')} × {m.get('nproc')} core(s); "
            f"load average (1 min) {la[0] if la else 'n/a'} at start, {lb[0] if lb else 'n/a'} at end.")


def _checks_md(checks) -> list[str]:
    out = []
    for c in checks or []:
        if not c["agree"]:
            out += [f"- **{c['label']}: {len(c['mismatches'])} mismatch(es)**"]
            out += [f"  - {m}" for m in c["mismatches"][:20]]
    notes = sorted({n for c in checks or [] for n in c["notes"]})
    if notes:
        out += ["", "Cross-check notes (informational):", ""] + [f"- {n}" for n in notes[:20]]
        if len(notes) > 20:
            out.append(f"- … {len(notes) - 20} more in the JSON")
    return out


def _untouched_md(r: dict) -> list[str]:
    if r.get("landing_untouched") is False or r.get("landing_untouched_by_full_night") is False:
        return ["**Files of the landing zone changed during the runs** (sizes or modification "
                "times; the pipeline must never write there): see the JSON.", ""]
    return []


def md_full(r: dict, meta: dict, title="Full run: pipeline against the plain-DuckDB reference") -> list[str]:
    rows = r.get("rows") or {}
    pa, pb = r.get("pipeline") or {}, r.get("reference") or {}
    lines = [f"### {title}", "", _from(meta), "",
             f"Demo scale {scale_tag(r['scale'])}, {r['snapshots']} snapshots: "
             f"{f_int(rows.get('rows_read'))} rows in the winning deliveries "
             f"({f_int(rows.get('loaded_files'))} files); {r['repeat']} repetition(s), pipeline and "
             "reference alternated, each pipeline run in a fresh store.", ""]
    if not pa:
        return lines + ["No result (the landing zone could not be generated).", ""]
    lines += [
        "| | pipeline (`cakupan run`) | reference (plain DuckDB) |",
        "|---|---:|---:|",
        f"| wall time, min | {f_sec(pa.get('wall_s_min'))} | {f_sec(pb.get('wall_s_min'))} |",
        f"| wall time, median | {f_sec(pa.get('wall_s_median'))} | {f_sec(pb.get('wall_s_median'))} |",
        f"| rows/s (median) | {f_rate(pa.get('rows_per_s_median'))} | {f_rate(pb.get('rows_per_s_median'))} |",
        f"| peak RSS, process tree (max) | {f_gb(pa.get('peak_rss_bytes_max'))} | {f_gb(pb.get('peak_rss_bytes_max'))} |",
        f"| CPU seconds (median) | {f_sec(pa.get('cpu_s_median'))} | {f_sec(pb.get('cpu_s_median'))} |",
        "",
        f"Ratio pipeline / reference: {f_ratio(r.get('ratio_of_medians'))} of the medians, "
        f"{f_ratio(r.get('ratio_of_mins'))} of the minimums.",
        "",
    ]
    lines += targets_table(r.get("targets", [])) + [""]
    lines += ["Stage profile (median seconds):", ""]
    lines += stages_table("pipeline stage (`--summary-json`)", r.get("pipeline_stages"),
                          "reference stage", r.get("reference_stages")) + [""]
    if r.get("pipeline_steps"):
        lines += ["Pipeline's Dagster steps (median seconds, from the run's event log):", ""]
        lines += stages_table("step", r["pipeline_steps"]) + [""]
    lines += _checks_md(r.get("cross_checks")) + _untouched_md(r)
    return lines + [""]


def md_incremental(r: dict, meta: dict) -> list[str]:
    lines = ["### Incremental night: one re-delivered file", "", _from(meta), ""]
    full = r.get("full_night")
    if not full:
        return lines + ["No result (see the failures).", ""]
    rows = r.get("rows") or {}
    nights = r.get("incremental_nights") or []
    lines += [f"Demo scale {scale_tag(r['scale'])}, {r['snapshots']} snapshots "
              f"({f_int(rows.get('rows_read'))} rows). One store: the full night on every snapshot, "
              f"a night with nothing new, then `enrollment/{r.get('snapshot')}/{r['province']}.csv` "
              f"re-delivered ({len(nights)} time(s)) with one valid data row removed and a newer "
              "modification time.", "",
              "| night | wall | peak RSS | Dagster runs |", "|---|---:|---:|---:|",
              f"| full night ({r['snapshots']} snapshots) | {f_sec(full['wall_s'])} | "
              f"{f_gb(full['peak_rss_bytes'])} | {full.get('runs')} |"]
    noop = r.get("noop_night")
    if noop:
        lines.append(f"| nothing new | {f_sec(noop['wall_s'])} | {f_gb(noop['peak_rss_bytes'])} | "
                     f"{noop.get('runs')} |")
    for i, n in enumerate(nights):
        lines.append(f"| re-delivery {i + 1} | {f_sec(n['run']['wall_s'])} | "
                     f"{f_gb(n['run']['peak_rss_bytes'])} | {n['run'].get('runs')} |")
    lines.append("")
    lines += targets_table(r.get("targets", [])) + [""]
    if nights:
        lk = nights[0]["lake"]
        lines += [f"Lake (`w.lake/`) before and after re-delivery 1: {lk['files_before']} files before, "
                  f"{lk['files_after']} after, {lk['unchanged']} unchanged; changed: "
                  f"{lk['changed_delivery']} of the re-delivered delivery, {lk['changed_people']} "
                  f"people file of {r.get('snapshot')}, {lk['changed_other']} other. "
                  + (f"The night with nothing new changed {r.get('noop_lake_changes')} lake file(s)."
                     if r.get("noop_lake_changes") is not None else ""), ""]
        lines += [f"- {p}" for p in (lk["delivery_files"] + lk["people_files"] + lk["other_files"])[:30]]
        wb, wa = nights[0].get("warehouse_before"), nights[0].get("warehouse_after")
        if wb and wa:
            lines.append(f"- warehouse file w.duckdb: {wb['size']:,} → {wa['size']:,} bytes "
                         f"({'rewritten' if wb != wa else 'unchanged'})")
        lines.append("")
        lines += ["Stages (seconds), re-delivery night 1 and full night:", ""]
        lines += stages_table("re-delivery night stage", stage_profile([nights[0]["run"]]),
                              "full night stage", stage_profile([full])) + [""]
        steps = step_profile([nights[0]["run"]])
        if steps:
            lines += ["Dagster steps (seconds), re-delivery night 1 and full night:", ""]
            lines += stages_table("re-delivery night step", steps, "full night step",
                                  step_profile([full])) + [""]
    else:
        lines += ["Stages of the full night (seconds):", ""]
        lines += stages_table("stage", stage_profile([full])) + [""]
    lines += _checks_md(r.get("cross_checks")) + _untouched_md(r)
    return lines + [""]


def md_history(r: dict, meta: dict) -> list[str]:
    lines = ["### A long history does not slow a night down", "", _from(meta), ""]
    a, bb = r.get("a") or {}, r.get("b") or {}
    if not a and not bb:
        return lines + ["No result (see the failures).", ""]
    rows = (r.get("rows_new_snapshot") or {}).get("rows_read")
    n_hist = r["snapshots"] - 1
    setup = (r.get("setup") or [{}])[0]
    lines += [f"Demo scale {scale_tag(r['scale'])}, {r['snapshots']} snapshots; the new snapshot "
              f"{r.get('new_snapshot')} holds {f_int(rows)} rows. (a) a fresh store given only it; "
              f"(b) a store holding the first {n_hist} (set up untimed: {f_sec(setup.get('wall_s'))}) "
              f"given it with fresh modification times. {r['repeat']} timed repetition(s) "
              "(`--history-repeat`; the store of (b) is set up once and restored before each).", "",
              "| | (a) empty history | (b) history of " + str(n_hist) + " |", "|---|---:|---:|",
              f"| wall time, median | {f_sec(a.get('wall_s_median'))} | {f_sec(bb.get('wall_s_median'))} |",
              f"| wall time, min | {f_sec(a.get('wall_s_min'))} | {f_sec(bb.get('wall_s_min'))} |",
              f"| peak RSS, process tree (max) | {f_gb(a.get('peak_rss_bytes_max'))} | {f_gb(bb.get('peak_rss_bytes_max'))} |",
              f"| rows/s of the new snapshot | {f_rate(a.get('rows_per_s_median'))} | {f_rate(bb.get('rows_per_s_median'))} |",
              ""]
    lines += targets_table(r.get("targets", [])) + [""]
    lines += ["Stage profile (median seconds):", ""]
    lines += stages_table("(a) stage", r.get("a_stages"), "(b) stage", r.get("b_stages")) + [""]
    if r.get("a_steps") or r.get("b_steps"):
        lines += ["Dagster steps (median seconds):", ""]
        lines += stages_table("(a) step", r.get("a_steps"), "(b) step", r.get("b_steps") or {}) + [""]
    lines += _checks_md(r.get("cross_checks"))
    return lines + [""]


def md_scale(r: dict, meta: dict) -> list[str]:
    lines = ["### Scaling with the data", "", _from(meta), "",
             f"{r['snapshots']} snapshots per scale; {r['repeat']} run(s) each of the pipeline and "
             "the reference, fresh store per run.", "",
             "| scale | rows | pipeline wall | pipeline rows/s | pipeline peak RSS | reference wall | "
             "reference rows/s | reference peak RSS | ratio |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in r.get("points", []):
        pa, pb = p.get("pipeline") or {}, p.get("reference") or {}
        lines.append(
            f"| {scale_tag(p['scale'])} | {f_int((p.get('rows') or {}).get('rows_read'))} | "
            f"{f_sec(pa.get('wall_s_median'))} | {f_rate(pa.get('rows_per_s_median'))} | "
            f"{f_gb(pa.get('peak_rss_bytes_max'))} | {f_sec(pb.get('wall_s_median'))} | "
            f"{f_rate(pb.get('rows_per_s_median'))} | {f_gb(pb.get('peak_rss_bytes_max'))} | "
            f"{f_ratio(p.get('ratio_of_medians'))} |")
    lines.append("")
    for who, fit in (("pipeline", r.get("fit_pipeline")), ("reference", r.get("fit_reference"))):
        if fit:
            lines.append(f"- {who}: wall ≈ {fit['intercept_s']:,.1f} s + "
                         f"{fit['slope_s_per_million_rows']:,.2f} s per million rows "
                         f"(least squares over {fit['points']} scales, R² = {fit['r2']:.4f})")
        else:
            lines.append(f"- {who}: no fit (fewer than two scales measured)")
    lines.append("")
    lines += targets_table(r.get("targets", [])) + [""]
    lines += _checks_md([c for p in r.get("points", []) for c in p.get("cross_checks") or []])
    return lines + [""]


RENDER = {"full": md_full, "incremental": md_incremental, "history": md_history, "scale": md_scale}


def newest_per_scenario(results_dir: Path) -> dict:
    """scenario -> (meta, result) of the newest bench/results JSON that ran it."""
    out = {}
    for path in sorted(results_dir.glob("*.json")):
        data = _read_json(path)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            continue
        meta = {"stamp": path.stem, "commit": (data.get("versions") or {}).get("cakupan_commit"),
                "loadavg_start": (data.get("machine") or {}).get("loadavg_start"),
                "loadavg_end": (data.get("machine") or {}).get("loadavg_end"),
                "machine": data.get("machine"), "versions": data.get("versions"),
                "failures": data.get("failures") or []}
        for name, res in (data.get("scenarios") or {}).items():
            out[name] = (meta, res)
    return out


def render_latest(results_dir: Path) -> str:
    found = newest_per_scenario(results_dir)
    if not found:
        return "No benchmark result yet: run `make bench`.\n"
    newest_meta = max((m for m, _ in found.values()), key=lambda m: m["stamp"])
    m, v = newest_meta["machine"] or {}, newest_meta["versions"] or {}
    lines = [
        "Measured by `make bench` (scenarios full, incremental, history) and `make bench-scale` "
        "(scale); each section comes from the newest run of its scenario in `bench/results/`. "
        "Times are wall seconds of the whole command, RSS the peak summed over its process tree "
        "(GB = 10⁹ bytes). See `bench/README.md`.",
        "",
        f"Machine: {m.get('cpu_model')}, {m.get('nproc')} usable core(s), "
        f"{(m.get('memory_bytes') or 0) / 2**30:,.1f} GiB memory; {m.get('platform')}, "
        f"Python {m.get('python')}. "
        + ", ".join(f"{k} {val}" for k, val in v.items() if val and k != "cakupan_commit") + ".",
        "",
        "| scenario | target | value | limit | |",
        "|---|---|---:|---:|---|",
    ]
    order = [s for s in SCENARIOS if s in found]
    for name in order:
        for t in found[name][1].get("targets", []):
            lines.append(f"| {name} | {t['name']} | {f_target_value(t)} | {f_target_limit(t)} | "
                         f"{f_met(t.get('met'))} |")
    lines.append("")
    for name in order:
        meta, res = found[name]
        lines += RENDER[name](res, meta)
        if meta["failures"]:
            lines += ["Failures in that run:", ""] + [f"- {f}" for f in meta["failures"]] + [""]
    return "\n".join(lines).rstrip() + "\n"


def update_readme(text: str) -> bool:
    readme = ROOT / "README.md"
    src = readme.read_text()
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    i, j = src.find(begin), src.find(end)
    if i < 0 or j < i:
        return False
    readme.write_text(src[: i + len(begin)] + "\n" + text.rstrip() + "\n" + src[j:])
    return True


# ------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="cakupan benchmark scenarios (see bench/README.md)")
    ap.add_argument("--scenario", action="append", metavar="NAME",
                    help=f"one of {', '.join(SCENARIOS)} (repeatable, or comma-separated; "
                         f"default: {' '.join(DEFAULT_SCENARIOS)})")
    ap.add_argument("--scale", default="1", help="full: demo scale (1)")
    ap.add_argument("--snapshots", type=int, default=6, help="full and scale: snapshots (6)")
    ap.add_argument("--repeat", type=int, default=3, help="full: pipeline/reference pairs (3)")
    ap.add_argument("--incremental-scale", default="1")
    ap.add_argument("--incremental-snapshots", type=int, default=12)
    ap.add_argument("--incremental-repeat", type=int, default=3,
                    help="re-delivery nights (each removes one more row); the ratio takes their "
                         "median (3)")
    ap.add_argument("--redeliver-province", default="32",
                    help="office whose file of the middle snapshot is re-delivered (32, the largest)")
    ap.add_argument("--history-scale", default="0.2")
    ap.add_argument("--history-snapshots", type=int, default=25)
    ap.add_argument("--history-repeat", type=int, default=3, help="timed repetitions of (a) and (b) (3)")
    ap.add_argument("--scales", default="0.2,1,5", help="scale: comma-separated scales (0.2,1,5)")
    ap.add_argument("--scale-repeat", type=int, default=1, help="scale: runs per scale (1)")
    ap.add_argument("--landings", default=str(ROOT / "data" / "bench"),
                    help="where demo landing zones are kept (data/bench)")
    ap.add_argument("--workdir", default=str(ROOT / "data" / "bench" / "tmp"),
                    help="where the runs' stores go, removed afterwards (data/bench/tmp)")
    ap.add_argument("--results-dir", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--update-readme", action="store_true",
                    help="copy latest.md between the README's bench markers")
    ap.add_argument("--keep", action="store_true", help="keep the run directories")
    args = ap.parse_args(argv)
    names = []
    for item in args.scenario or DEFAULT_SCENARIOS:
        for n in item.split(","):
            n = n.strip()
            if n not in SCENARIOS:
                ap.error(f"unknown scenario {n!r} (choose from {', '.join(SCENARIOS)})")
            if n and n not in names:
                names.append(n)
    args.scenarios = names
    try:
        args.scale_list = [float(s) for s in args.scales.split(",") if s.strip()]
        for s in (args.scale, args.incremental_scale, args.history_scale):
            float(s)
    except ValueError:
        ap.error("scales must be numbers")
    if args.redeliver_province in ("63", "65"):
        ap.error("--redeliver-province must be an office delivering CSV (not 63 or 65)")
    for n in ("repeat", "incremental_repeat", "history_repeat", "scale_repeat"):
        if getattr(args, n) < 1:
            ap.error(f"--{n.replace('_', '-')} must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    b = Bench(args)
    result = {"format": FORMAT, "started_utc": b.started.isoformat(timespec="seconds"),
              "machine": dict(machine(), loadavg_start=loadavg()), "versions": versions(),
              "args": {k: v for k, v in vars(args).items()}, "hmac_key": "fixed bench key",
              "cakupan_env_passed": b.passed_env, "targets": TARGETS, "scenarios": {}}
    b.say(f"cakupan bench: scenarios {', '.join(args.scenarios)}; work folder {b.work}")
    b.say(f"  {result['machine']['cpu_model']}, {result['machine']['nproc']} core(s), "
          f"load average {result['machine']['loadavg_start']}, commit {result['versions']['cakupan_commit']}")
    t0 = time.perf_counter()
    try:
        for name in args.scenarios:
            b.say(f"\n=== scenario {name} ===")
            started = time.perf_counter()
            if name == "full":
                res = scenario_full(b, args.scale, args.snapshots, args.repeat)
            elif name == "incremental":
                res = scenario_incremental(b, args.incremental_scale, args.incremental_snapshots,
                                           args.redeliver_province, args.incremental_repeat)
            elif name == "history":
                res = scenario_history(b, args.history_scale, args.history_snapshots,
                                       args.history_repeat)
            else:
                res = scenario_scale(b, args.scale_list, args.snapshots, args.scale_repeat)
            res["scenario_wall_s"] = round(time.perf_counter() - started, 1)
            result["scenarios"][name] = res
            for t in res.get("targets", []):
                b.say(f"  target: {t['name']}: {f_target_value(t)} (limit {f_target_limit(t)}) "
                      f"{f_met(t.get('met')).replace('*', '')}")
            b.say(f"  scenario {name} took {res['scenario_wall_s']:.0f} s")
    except KeyboardInterrupt:
        b.fail("interrupted")
    result["demo_generation"] = b.generated
    result["failures"] = b.failures
    result["mismatches"] = b.mismatches
    result["machine"]["loadavg_end"] = loadavg()
    result["finished_utc"] = now_utc().isoformat(timespec="seconds")
    result["total_wall_s"] = round(time.perf_counter() - t0, 1)
    code = 1 if b.failures else 2 if b.mismatches else 0
    result["exit_code"] = code

    results_dir = Path(args.results_dir).absolute()
    results_dir.mkdir(parents=True, exist_ok=True)
    out_json = results_dir / f"{b.stamp}.json"
    tmp = out_json.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1, default=str))
    tmp.replace(out_json)
    latest = render_latest(results_dir)
    (results_dir / "latest.md").write_text(latest)
    if args.update_readme:
        if update_readme(latest):
            b.say("README.md: performance section updated")
        else:
            b.say("README.md: bench markers not found, not updated")

    b.say("")
    for m in b.mismatches[:20]:
        print(f"!!! CROSS-CHECK MISMATCH: {m}", file=sys.stderr)
    for f in b.failures:
        print(f"!!! FAILED: {f}", file=sys.stderr)
    b.say(f"results: {out_json} and {results_dir / 'latest.md'} (total {result['total_wall_s']:.0f} s)")
    if not args.keep and code == 0:
        shutil.rmtree(b.work, ignore_errors=True)
    else:
        b.say(f"run directory kept: {b.work}")
    return code


if __name__ == "__main__":
    sys.exit(main())
