"""`make bench`: the pipeline against a plain-DuckDB reference, on the same scale-1 landing zone.

1. Ensures a demo landing zone (default data/bench/landing, scale 1), generating it if its
   demo_manifest.json is absent.
2. Runs, alternating A B A B (``--repeat N``), (A) the pipeline ``python -m pipelines.cli run`` into
   fresh temporary warehouse/serving files and a fresh DAGSTER_HOME, and (B) the reference
   ``bench/reference.py``; each as a subprocess whose wall time and peak RSS (summed over the whole
   process tree, polled every 50 ms) are measured. Medians are reported.
3. Cross-checks the pipeline's serving ``coverage_by_tier`` and ``coverage_national`` against the
   reference for every snapshot (counts equal, penetration within 1e-9).
4. Writes bench/results/<UTC timestamp>.json and bench/results/latest.md.

Exit status: 0 when every command succeeded and the cross-check agrees, whether or not the
performance targets were met (a benchmark reports, it does not fail); 1 when a command failed;
2 when the cross-check found a mismatch.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BENCH_KEY = "cakupan-bench-key-not-a-secret"  # fixed so that every bench run hashes alike
TARGET_RATIO = 2.0
TARGET_RSS = 2 * 10**9  # "2 GB", read strictly as 2e9 bytes
PEN_TOL = 1e-9
POLL = 0.05
PACKAGES = ["dagster", "dagster-duckdb", "dagster-pandera", "pandera", "duckdb", "pandas", "pyarrow",
            "numpy", "python-calamine", "psutil"]


# ------------------------------------------------------------------------------------------------
# measuring
# ------------------------------------------------------------------------------------------------

def measure(cmd: list[str], env: dict, log_prefix: Path) -> dict:
    """Run `cmd`; return wall seconds, peak RSS of the process tree, exit code and output files."""
    out_path, err_path = log_prefix.with_suffix(".out"), log_prefix.with_suffix(".err")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = psutil.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=err)
        peak = 0
        known: dict[int, psutil.Process] = {proc.pid: proc}
        while True:
            rss = 0
            try:
                children = proc.children(recursive=True)
            except psutil.Error:
                children = []
            for child in children:
                known.setdefault(child.pid, child)
            tree = [proc] + children
            for p in tree:
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
    return {
        "cmd": [str(c) for c in cmd],
        "wall_s": round(wall, 3),
        "peak_rss_bytes": peak,
        "exit_code": code,
        "stdout": str(out_path),
        "stderr": str(err_path),
        "processes_seen": len(known),
    }


def tail(path: str, n: int = 25) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


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
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                               text=True, timeout=10).stdout.strip() != ""
        out["cakupan_commit"] = commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        out["cakupan_commit"] = None
    return out


def _median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def _gb(b):
    return None if b is None else b / 1e9


# ------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="cakupan benchmark: pipeline vs plain-DuckDB reference")
    ap.add_argument("--landing", type=Path, default=Path("data/bench/landing"))
    ap.add_argument("--scale", default="1")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the temporary run directories")
    args = ap.parse_args(argv)

    landing = args.landing if args.landing.is_absolute() else ROOT / args.landing
    env = dict(os.environ)
    env["CAKUPAN_HMAC_KEY"] = BENCH_KEY
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")

    started = dt.datetime.now(dt.timezone.utc)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    work = Path(tempfile.mkdtemp(prefix="cakupan-bench-"))
    failures: list[str] = []
    result: dict = {"started_utc": started.isoformat(timespec="seconds"), "machine": machine(),
                    "versions": versions(), "landing": str(landing), "repeat": args.repeat}

    # 1. landing zone
    manifest_path = landing / "demo_manifest.json"
    if not manifest_path.exists():
        print(f"generating the scale-{args.scale} demo landing zone in {landing} ...", flush=True)
        gen = measure([sys.executable, "-m", "pipelines.cli", "demo", "--out", str(landing), "--scale", args.scale],
                      env, work / "demo")
        result["demo_generation"] = gen
        if gen["exit_code"] != 0 or not manifest_path.exists():
            print(tail(gen["stderr"]), file=sys.stderr)
            failures.append(f"demo generation failed (exit {gen['exit_code']})")
    manifest = {}
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text())
        except ValueError:
            pass
    result["manifest_scale"] = manifest.get("scale")

    # 2. alternate pipeline (A) and reference (B)
    runs_a, runs_b, checks = [], [], []
    if not failures:
        for i in range(args.repeat):
            rdir = work / f"rep{i}"
            (rdir / "dagster_home").mkdir(parents=True)
            penv = dict(env, DAGSTER_HOME=str(rdir / "dagster_home"))
            summary_path = rdir / "summary.json"
            print(f"[{i + 1}/{args.repeat}] pipeline ...", flush=True)
            a = measure([sys.executable, "-m", "pipelines.cli", "run", "--landing", str(landing),
                         "--warehouse", str(rdir / "w.duckdb"), "--serving", str(rdir / "s.duckdb"),
                         "--summary-json", str(summary_path)], penv, rdir / "pipeline")
            try:
                a["summary"] = json.loads(summary_path.read_text())
            except (OSError, ValueError):
                a["summary"] = None
            # exit 2 = completed and published, some file rejected whole (the demo may ship one)
            a["ok"] = a["exit_code"] in (0, 2) and (rdir / "s.duckdb").exists()
            print(f"    wall {a['wall_s']:.1f} s, peak RSS {a['peak_rss_bytes'] / 1e9:.2f} GB, exit {a['exit_code']}",
                  flush=True)
            runs_a.append(a)
            print(f"[{i + 1}/{args.repeat}] reference ...", flush=True)
            b = measure([sys.executable, str(ROOT / "bench" / "reference.py"), str(landing),
                         "--out", str(rdir / "ref.json")], env, rdir / "reference")
            ref = None
            try:
                ref = json.loads((rdir / "ref.json").read_text())
                b["timings"] = ref.get("timings")
            except (OSError, ValueError):
                b["timings"] = None
            b["ok"] = b["exit_code"] == 0 and ref is not None
            print(f"    wall {b['wall_s']:.1f} s, peak RSS {b['peak_rss_bytes'] / 1e9:.2f} GB, exit {b['exit_code']}",
                  flush=True)
            runs_b.append(b)
            if not a["ok"]:
                failures.append(f"pipeline run {i + 1} failed (exit {a['exit_code']}): see {a['stderr']}")
                print(tail(a["stderr"]), file=sys.stderr)
            if not b["ok"]:
                failures.append(f"reference run {i + 1} failed (exit {b['exit_code']}): see {b['stderr']}")
                print(tail(b["stderr"]), file=sys.stderr)
            if a["ok"] and ref is not None:
                try:
                    mism, notes = cross_check(read_serving(rdir / "s.duckdb"), ref)
                except Exception as exc:  # a serving file we cannot read is a failed check
                    mism, notes = [f"could not read the serving file: {type(exc).__name__}: {exc}"], []
                notes += compare_load_log(rdir / "s.duckdb", ref)
                checks.append({"repetition": i + 1, "mismatches": mism, "notes": notes})
                result["rows"] = ref.get("rows")
                result["snapshots"] = [r["snapshot_date"] for r in ref.get("coverage_national", [])]
                result["reference_figures"] = {k: ref[k] for k in ("coverage_by_tier", "coverage_national")}

    # 3. summarise
    mismatches = [m for c in checks for m in c["mismatches"]]
    rows = (result.get("rows") or {}).get("read")
    med_a = _median([r["wall_s"] for r in runs_a if r.get("ok")])
    med_b = _median([r["wall_s"] for r in runs_b if r.get("ok")])
    rss_a = _median([r["peak_rss_bytes"] for r in runs_a if r.get("ok")])
    rss_b = _median([r["peak_rss_bytes"] for r in runs_b if r.get("ok")])
    stages_a: dict[str, list] = {}
    for r in runs_a:
        for k, v in ((r.get("summary") or {}).get("stages") or {}).items():
            if isinstance(v, (int, float)):
                stages_a.setdefault(k, []).append(v)
    stages_b: dict[str, list] = {}
    for r in runs_b:
        for k, v in (r.get("timings") or {}).items():
            stages_b.setdefault(k, []).append(v)
    ratio = med_a / med_b if med_a and med_b else None
    summary = {
        "rows_in_landing_zone": rows,
        "pipeline": {"wall_s_median": med_a, "peak_rss_bytes_median": rss_a,
                     "rows_per_s": rows / med_a if rows and med_a else None,
                     "stages_s_median": {k: _median(v) for k, v in stages_a.items()},
                     "summary_json_present": any(r.get("summary") for r in runs_a)},
        "reference": {"wall_s_median": med_b, "peak_rss_bytes_median": rss_b,
                      "rows_per_s": rows / med_b if rows and med_b else None,
                      "stages_s_median": {k: _median(v) for k, v in stages_b.items()}},
        "ratio_pipeline_over_reference": ratio,
        "targets": {
            "ratio_max": TARGET_RATIO, "ratio_met": None if ratio is None else ratio <= TARGET_RATIO,
            "peak_rss_max_bytes": TARGET_RSS, "peak_rss_met": None if rss_a is None else rss_a <= TARGET_RSS,
        },
        "cross_check": {"compared": len(checks), "agree": bool(checks) and not mismatches,
                        "mismatches": mismatches, "notes": sorted({n for c in checks for n in c["notes"]})},
        "failures": failures,
    }
    result.update(summary=summary, runs={"pipeline": runs_a, "reference": runs_b})
    result["finished_utc"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")

    RESULTS.mkdir(parents=True, exist_ok=True)
    out_json = RESULTS / f"{stamp}.json"
    out_json.write_text(json.dumps(result, indent=1, default=str))
    (RESULTS / "latest.md").write_text(render_md(result, out_json.name))

    # 4. report
    print()
    for m in mismatches:
        print(f"!!! CROSS-CHECK MISMATCH: {m}", file=sys.stderr)
    for f in failures:
        print(f"!!! FAILED: {f}", file=sys.stderr)
    if ratio is not None:
        print(f"ratio pipeline/reference = {ratio:.2f} (target <= {TARGET_RATIO}; "
              f"{'met' if ratio <= TARGET_RATIO else 'NOT met'}); pipeline peak RSS "
              f"{rss_a / 1e9:.2f} GB (target <= {TARGET_RSS / 1e9:.0f} GB; "
              f"{'met' if rss_a <= TARGET_RSS else 'NOT met'})")
    else:
        print("ratio pipeline/reference: n/a (a run failed)")
    print(f"results: {out_json.relative_to(ROOT)} and bench/results/latest.md")
    if not args.keep and not failures and not mismatches:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"run directory kept: {work}")
    if failures:
        return 1
    if mismatches:
        return 2
    return 0


def render_md(r: dict, json_name: str) -> str:
    s = r["summary"]
    m, v = r["machine"], r["versions"]
    pa, pb = s["pipeline"], s["reference"]

    def sec(x):
        return "n/a" if x is None else f"{x:,.2f} s"

    def gb(x):
        return "n/a" if x is None else f"{x / 1e9:,.2f} GB"

    def rate(x):
        return "n/a" if x is None else f"{x:,.0f}"

    def met(x):
        return "n/a" if x is None else ("met" if x else "**not met**")

    rows = s["rows_in_landing_zone"]
    lines = [
        "# cakupan benchmark — latest run",
        "",
        f"Run {r['started_utc']} → {r.get('finished_utc')}; raw results in `bench/results/{json_name}`. "
        f"Landing zone `{os.path.relpath(r['landing'], ROOT)}` (demo scale {r.get('manifest_scale')}), "
        f"{r['repeat']} repetition(s), pipeline and reference alternated; medians shown.",
        "",
        "## Machine and versions",
        "",
        f"- CPU: {m['cpu_model']} — {m['nproc']} usable core(s); memory {m['memory_bytes'] / 2**30:,.1f} GiB",
        f"- {m['platform']}, Python {m['python']}",
        "- " + ", ".join(f"{k} {val}" for k, val in v.items() if val),
        "",
        "## Workload",
        "",
        f"- Rows in the landing zone's enrollment files (winning deliveries): "
        f"{'n/a' if rows is None else f'{rows:,}'}",
        f"- Snapshots: {', '.join(r.get('snapshots') or []) or 'n/a'}",
        "",
        "## Results",
        "",
        "| | pipeline (`cakupan run`) | reference (plain DuckDB) |",
        "|---|---:|---:|",
        f"| wall time, whole process | {sec(pa['wall_s_median'])} | {sec(pb['wall_s_median'])} |",
        f"| rows/s | {rate(pa['rows_per_s'])} | {rate(pb['rows_per_s'])} |",
        f"| peak RSS, process tree | {gb(pa['peak_rss_bytes_median'])} | {gb(pb['peak_rss_bytes_median'])} |",
        "",
        "Per-stage times (seconds):",
        "",
        "| pipeline stage | s | | reference stage | s |",
        "|---|---:|---|---|---:|",
    ]
    sa = list(pa["stages_s_median"].items())
    sb = list(pb["stages_s_median"].items())
    if not sa:
        sa = [("(no --summary-json stages)", None)]
    for i in range(max(len(sa), len(sb))):
        ka, va = sa[i] if i < len(sa) else ("", None)
        kb, vb = sb[i] if i < len(sb) else ("", None)
        lines.append(f"| {ka} | {'' if va is None else f'{va:,.2f}'} | | {kb} | {'' if vb is None else f'{vb:,.2f}'} |")
    t = s["targets"]
    ratio = s["ratio_pipeline_over_reference"]
    lines += [
        "",
        "## Targets",
        "",
        "| target | value | |",
        "|---|---:|---|",
        f"| pipeline / reference wall time ≤ {t['ratio_max']} | {'n/a' if ratio is None else f'{ratio:.2f}'} "
        f"| {met(t['ratio_met'])} |",
        f"| pipeline peak RSS ≤ {t['peak_rss_max_bytes'] / 1e9:.0f} GB | {gb(pa['peak_rss_bytes_median'])} "
        f"| {met(t['peak_rss_met'])} |",
        "",
        "## Cross-check (serving `coverage_by_tier`, `coverage_national` vs reference)",
        "",
    ]
    cc = s["cross_check"]
    if cc["compared"] == 0:
        lines.append("Not performed (a run failed).")
    elif cc["agree"]:
        lines.append(f"Equal for every snapshot and tier ({cc['compared']} comparison(s); penetration within {PEN_TOL}).")
    else:
        lines.append(f"**{len(cc['mismatches'])} MISMATCH(ES)**:")
        lines.append("")
        lines += [f"- {x}" for x in cc["mismatches"][:50]]
    if cc["notes"]:
        lines += ["", "Notes (informational):", ""] + [f"- {x}" for x in cc["notes"][:50]]
    if s["failures"]:
        lines += ["", "## Failures", ""] + [f"- {x}" for x in s["failures"]]
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
