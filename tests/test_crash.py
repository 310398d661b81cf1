"""A crash is never permanent (contract v1.2, "Files": after a SIGKILL at any moment the next
`cakupan run` completes and publishes exactly what an uninterrupted run would have; until then
the serving file is the previous complete one).

Black-box: the real command line as a subprocess in its own session, SIGKILLed as a whole
process group at seeded random moments of ingest, the per-snapshot tables and publishing, on a
fresh store (first run) and on a store holding an earlier complete run with a new delivery on
top (so the "previous complete state" is a real file). After every kill: the warehouse opens
read-only, the serving file is byte-identical to what was there before (or absent), nothing at
the serving path is half-written, and a rerun exits like the uninterrupted run within a bounded
time and publishes the same tables, row for row.
"""
from __future__ import annotations

import collections
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import procs

SCALE, SNAPSHOTS, DEMO_SEED = 0.005, 3, 7
STAGES = ("ingest", "tables", "publish")
FAST_SEED, FAST_KILLS = 4, 2
SLOW_SEED, SLOW_KILLS = 20211115, 20


@dataclass
class World:
    base: Path
    template: procs.Store          # a complete run on the landing zone without the late file
    manifest: dict
    late_mtime: float
    expected: dict                 # serving tables of the uninterrupted run (late file in)
    code: int                      # its exit code (0, or 2 with rejected files)
    warehouse: dict                # its warehouse load log figures
    lake: dict                     # its lake's person-level row counts
    durations: dict                # scenario -> stage -> seconds (uninterrupted)
    incremental_tables: dict = field(default_factory=dict)   # same, on an earlier run
    counter: int = 0

    def fresh(self) -> procs.Store:
        self.counter += 1
        store = procs.Store(self.base / f"case-{self.counter:02d}-fresh")
        shutil.copytree(self.template.landing, store.landing, copy_function=shutil.copy2)
        procs.deliver_late(store.landing, self.manifest, self.late_mtime)
        return store

    def incremental(self) -> procs.Store:
        self.counter += 1
        store = self.template.copy_to(self.base / f"case-{self.counter:02d}-incremental")
        procs.deliver_late(store.landing, self.manifest, self.late_mtime)
        return store

    def store(self, scenario: str) -> procs.Store:
        return self.fresh() if scenario == "fresh" else self.incremental()


@pytest.fixture(scope="module")
def world():
    with procs.scratch("crash") as base:
        template = procs.Store(base / "template")
        manifest = procs.demo_landing(template.landing, SCALE, SNAPSHOTS, DEMO_SEED)
        first = template.run()
        assert first.code in (0, 2), first.tail()
        late_mtime = time.time() - 60
        w = World(base, template, manifest, late_mtime, {}, 0, {}, {}, {})
        # the reference: one uninterrupted run on a copy of the landing zone (late file in)
        ref_store = w.fresh()
        ref = ref_store.run()
        assert ref.code in (0, 2), ref.tail()
        w.expected, w.code = procs.serving_tables(ref_store.serving), ref.code
        w.warehouse = procs.warehouse_state(ref_store.warehouse)
        w.lake = procs.lake_counts(ref_store.warehouse)
        # the same delivery on top of the earlier complete run, uninterrupted
        inc_store = w.incremental()
        inc = inc_store.run()
        assert inc.code == ref.code, inc.tail()
        w.incremental_tables = procs.serving_tables(inc_store.serving)
        w.durations = {"fresh": ref.durations(), "incremental": inc.durations()}
        for s in (ref_store, inc_store):
            shutil.rmtree(s.base, ignore_errors=True)
        print(f"\nuninterrupted: fresh {ref.seconds:.1f} s "
              f"{ {k: round(v, 2) for k, v in w.durations['fresh'].items()} }, incremental "
              f"{inc.seconds:.1f} s { {k: round(v, 2) for k, v in w.durations['incremental'].items()} }"
              f"; {sum(len(v) for v in w.expected.values())} serving rows in "
              f"{len(w.expected)} tables")
        yield w


# ------------------------------------------------------------------------------------ a kill
@dataclass
class Kill:
    scenario: str
    aimed: str                    # the stage aimed at
    delay: float | None           # seconds after the stage's first line
    hit: str = "?"                # the stage the run was in when killed
    last_line: str = ""
    at: float = 0.0               # seconds since start
    killed: bool = False          # False: the run ended before the kill (not a kill)
    serving_after_kill: str = ""  # absent | previous | new-complete | BROKEN...
    warehouse_after_kill: str = ""
    tmp_leftovers: int = 0
    tmp_after_rerun: int = 0
    rerun_code: int | None = None
    rerun_seconds: float = 0.0
    orphans_failed: bool = False
    rows_lost: int = 0
    rows_extra: int = 0
    float_noise: int = 0          # rows differing only in DOUBLEs by less than 1e-9 relative
    problems: list[str] = field(default_factory=list)

    @property
    def survived(self) -> bool:
        return self.killed and not self.problems

    def line(self) -> str:
        return (f"{self.scenario:11s} aimed {self.aimed:7s} +{self.delay or 0:5.2f}s  hit "
                f"{self.hit:9s} at {self.at:5.1f}s  serving {self.serving_after_kill:12s} "
                f"warehouse {self.warehouse_after_kill:14s} tmp {self.tmp_leftovers}/{self.tmp_after_rerun}  rerun "
                f"exit {self.rerun_code} in {self.rerun_seconds:4.1f}s  lost {self.rows_lost}"
                + (f"  float-noise rows {self.float_noise}" if self.float_noise else "")
                + (f"  PROBLEMS: {'; '.join(self.problems)}" if self.problems else ""))


def _unfinished_runs(home: Path) -> dict[str, int]:
    """Dagster runs of the instance in a non-final status, by status (read in a subprocess)."""
    script = ("import collections, dagster as dg\n"
              "i = dg.DagsterInstance.get()\n"
              "fin = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, "
              "dg.DagsterRunStatus.CANCELED}\n"
              "print(dict(collections.Counter(r.status.value for r in i.get_runs() "
              "if r.status not in fin)))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=procs.cli_env(home), cwd=procs.TREE, timeout=120)
    if out.returncode:
        return {"unreadable": 1}
    import ast

    return ast.literal_eval(out.stdout.strip().splitlines()[-1])


def _publish_trigger(live: procs.Live, store: procs.Store, timeout: float = 60) -> None:
    """Return as soon as the new serving file is being written (its hidden temporary file is
    there) or the publish is over."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and live.proc.poll() is None:
        tmp, _ = store.serving_leftovers()
        if tmp:
            return
        if live.current()[0] == "published":
            return
        time.sleep(0.002)


def _ingest_trigger(live: procs.Live, store: procs.Store, timeout: float = 120) -> None:
    """Return once the first snapshot's deliveries are committed and the next ones are being
    read (a kill then leaves some deliveries of the run committed, others not)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and live.proc.poll() is None:
        if any(line.startswith("    snapshot ") for _, line in live.lines):
            time.sleep(0.15)
            return
        time.sleep(0.005)


def crash_once(world: World, scenario: str, stage: str, delay: float | None = None,
               trigger=None) -> Kill:
    """One kill of `cakupan run` during ``stage`` and everything that must hold afterwards."""
    k = Kill(scenario, stage, delay)
    store = world.store(scenario)
    try:
        before = store.serving.read_bytes() if store.serving.exists() else None
        live = store.start()
        if live.wait_stage(stage) is None:
            live.wait()
            k.hit, k.problems = "never", [f"the run never reached {stage}"]
            return k
        if trigger is not None:
            trigger(live, store)
        else:
            time.sleep(max(0.0, delay or 0.0))
        k.hit, k.last_line = live.current()
        k.killed = live.kill()
        k.at = live.killed_at or 0.0
        if not k.killed:
            k.hit = "completed"
            return k
        _after_kill(world, store, before, k)
        _rerun(world, store, k)
        return k
    finally:
        shutil.rmtree(store.base, ignore_errors=True)


def _after_kill(world: World, store: procs.Store, before: bytes | None, k: Kill) -> None:
    # the warehouse opens read-only (it exists from the inputs stage on)
    wal = store.warehouse.with_name(store.warehouse.name + ".wal").exists()
    if store.warehouse.exists():
        try:
            procs.warehouse_state(store.warehouse)
            k.warehouse_after_kill = "opens" + (" (wal)" if wal else "")
        except Exception as exc:  # noqa: BLE001 - the failure being tested for
            k.warehouse_after_kill = "BROKEN"
            k.problems.append(f"warehouse does not open read-only after the kill: "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    else:
        k.warehouse_after_kill = "absent"
        if k.hit in ("tables", "publish", "published"):
            k.problems.append("no warehouse after a kill past the inputs stage")
    # the serving file: the previous one byte for byte, or absent, or (killed after the
    # rename) the new one, complete
    if store.serving.exists():
        now = store.serving.read_bytes()
        if before is not None and now == before:
            k.serving_after_kill = "previous"
        else:
            try:
                got = procs.serving_tables(store.serving)
                diff, _ = procs.compare(world.expected, got)
            except Exception as exc:  # noqa: BLE001
                got, diff = None, {"unreadable": (type(exc).__name__, str(exc).splitlines()[0])}
            if not diff:
                k.serving_after_kill = "new-complete"
            else:
                k.serving_after_kill = "BROKEN"
                k.problems.append(
                    f"serving file after the kill is neither the previous one nor the complete "
                    f"new one: {diff if got is None else procs.describe_diff(diff, world.expected, got)}")
    else:
        k.serving_after_kill = "absent"
        if before is not None:
            k.problems.append("the previous serving file is gone after the kill")
    tmp, other = store.serving_leftovers()
    k.tmp_leftovers = len(tmp)
    if other:
        k.problems.append(f"non-hidden files beside the serving file after the kill: {other}")


def _rerun(world: World, store: procs.Store, k: Kill) -> None:
    try:
        r = store.run(timeout=procs.RUN_TIMEOUT)
    except AssertionError as exc:   # a hang
        k.problems.append(str(exc).splitlines()[0])
        return
    k.rerun_code, k.rerun_seconds = r.code, r.seconds
    k.orphans_failed = "left by a process that is gone" in r.err
    if r.code != world.code:
        tail = " | ".join(r.err.strip().splitlines()[-4:])
        k.problems.append(f"rerun exited {r.code} (uninterrupted: {world.code}): {tail}")
    if not store.serving.exists():
        k.problems.append("no serving file after the rerun")
        k.rows_lost = sum(len(v) for v in world.expected.values())
        return
    got = procs.serving_tables(store.serving)
    diff, noise = procs.compare(world.expected, got)
    k.float_noise = sum(noise.values())
    k.rows_lost = sum(m for m, _ in diff.values() if isinstance(m, int))
    k.rows_extra = sum(e for _, e in diff.values() if isinstance(e, int))
    if diff:
        k.problems.append("serving tables after the rerun differ from the uninterrupted run's: "
                          + procs.describe_diff(diff, world.expected, got))
    wh = procs.warehouse_state(store.warehouse)
    if wh != world.warehouse:
        k.problems.append(f"warehouse load log after the rerun {wh} != uninterrupted {world.warehouse}")
    lake = procs.lake_counts(store.warehouse)
    if lake != world.lake:
        k.problems.append(f"lake rows after the rerun {lake} != uninterrupted {world.lake}")
    unfinished = _unfinished_runs(store.home)
    stuck = {s: n for s, n in unfinished.items() if s in ("STARTED", "STARTING", "unreadable")}
    if stuck:
        k.problems.append(f"Dagster runs left in progress after the rerun: {stuck}")
    tmp, other = store.serving_leftovers()
    k.tmp_after_rerun = len(tmp)
    if other:
        k.problems.append(f"non-hidden files beside the serving file after the rerun: {other}")


def moments(n: int, seed: int, world: World) -> list[tuple[str, str, float]]:
    """``n`` seeded random (scenario, stage, delay after the stage's first line): fresh stores
    and stores with an earlier complete run alternate; the delay is uniform over the stage's
    duration in the uninterrupted run of that scenario."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        scenario = ("fresh", "incremental")[i % 2]
        stage = rng.choice(STAGES)
        span = world.durations[scenario].get(stage, 1.0)
        out.append((scenario, stage, rng.uniform(0.0, span * 0.97)))
    return out


def summary(kills: list[Kill], title: str) -> str:
    real = [k for k in kills if k.killed]
    by_hit = collections.Counter(k.hit for k in real)
    by_outcome = collections.Counter((k.hit, k.serving_after_kill) for k in real)
    lines = [f"--- {title}: {len(real)} kill(s) ({len(kills) - len(real)} missed: the run ended "
             f"first), {sum(k.survived for k in real)} survived, rows lost "
             f"{sum(k.rows_lost for k in real)}, extra {sum(k.rows_extra for k in real)}, rows "
             f"differing only by DOUBLE rounding {sum(k.float_noise for k in real)}",
             "kills per stage hit: " + ", ".join(f"{s} {n}" for s, n in sorted(by_hit.items())),
             "serving after kill: " + ", ".join(f"{h}/{o} {n}" for (h, o), n in
                                                 sorted(by_outcome.items())),
             f"orphaned Dagster runs failed by the rerun: {sum(k.orphans_failed for k in real)}; "
             f"hidden .tmp leftovers after kills: {sum(k.tmp_leftovers for k in real)}, still there "
             f"after the reruns: {sum(k.tmp_after_rerun for k in real)}"]
    lines += [f"  {i + 1:2d}. {k.line()}" for i, k in enumerate(kills)]
    return "\n".join(lines)


def _random_kills(world: World, n: int, seed: int, title: str) -> None:
    kills = []
    todo = moments(n, seed, world)
    rng = random.Random(seed + 1)
    while todo:
        scenario, stage, delay = todo.pop(0)
        k = crash_once(world, scenario, stage, delay)
        kills.append(k)
        if not k.killed and len([x for x in kills if not x.killed]) <= n:
            # the run ended before the moment came: draw another moment of the same kind
            span = world.durations[scenario].get(stage, 1.0)
            todo.append((scenario, stage, rng.uniform(0.0, span * 0.8)))
    print("\n" + summary(kills, title))
    real = [k for k in kills if k.killed]
    assert len(real) >= n, f"only {len(real)} of {n} kills landed"
    failed = [k for k in real if not k.survived]
    assert not failed, f"{len(failed)} of {len(real)} kills did not survive:\n" + "\n".join(
        k.line() for k in failed)
    assert sum(k.rows_lost for k in real) == 0


# ---------------------------------------------------------------------------------- the tests
def test_uninterrupted_reference_publishes_every_table(world):
    assert world.code in (0, 2)
    assert {"coverage_by_tier", "coverage_national", "coverage_by_region",
            "load_log"} <= set(world.expected)
    assert world.expected["coverage_by_tier"] and world.expected["coverage_by_region"]
    assert world.warehouse["rows_loaded"] > 0 and world.lake["enrollment_rows"] > 0


def test_incremental_run_publishes_exactly_what_a_fresh_run_does(world):
    """The same landing zone, built in one run or as a run plus a later delivery, publishes the
    same tables, value for value (the contract's "exactly what an uninterrupted run would
    have" after a crash needs this: a rerun after a kill is such a later run)."""
    diff = procs.table_diff(world.expected, world.incremental_tables)
    assert not diff, procs.describe_diff(diff, world.expected, world.incremental_tables)


@pytest.mark.parametrize("stage", STAGES)
def test_kill_during_stage(world, stage):
    """One kill inside each named stage: mid-ingest (some deliveries of the run committed,
    others not) on a fresh store; mid-way through the per-snapshot tables, and while the new
    serving file is being written (its hidden temporary file exists), on top of an earlier
    complete run."""
    if stage == "ingest":
        k = crash_once(world, "fresh", stage, trigger=_ingest_trigger)
    elif stage == "tables":
        k = crash_once(world, "incremental", stage,
                       delay=world.durations["incremental"]["tables"] / 5)
    else:
        k = crash_once(world, "incremental", stage, trigger=_publish_trigger)
    print("\n" + summary([k], f"kill during {stage}"))
    assert k.killed, f"the run ended before the kill: {k.line()}"
    assert k.hit == stage, f"aimed at {stage}, killed in {k.hit}: {k.line()}"
    assert not k.problems, k.line()
    if stage != "ingest":
        assert k.serving_after_kill == "previous", k.line()


def test_random_kills_fast_sample(world):
    _random_kills(world, FAST_KILLS, FAST_SEED, f"{FAST_KILLS} seeded random kills")


@pytest.mark.long
def test_twenty_random_kills(world):
    _random_kills(world, SLOW_KILLS, SLOW_SEED, f"{SLOW_KILLS} seeded random kills")


def test_a_rerun_sweeps_what_a_killed_process_left(tmp_path, monkeypatch):
    """Temporaries of a process that is gone (an hour untouched) are removed by the next run;
    fresh ones (a writer may still be at work) and every file in force stay."""
    import os as _os

    from readers.storage import STALE_SECONDS, sweep_temporaries

    lake, serving = tmp_path / "w.lake", tmp_path / "serving" / "cakupan.duckdb"
    old = time.time() - STALE_SECONDS - 60
    made = {
        "work": lake / "tmp" / "2021-10-31-abc" / "batch" / "file_province=32" / "x.parquet",
        "rows": lake / "deliveries" / "2021-10-31" / "32" / ".rows-1.parquet.1a2b.tmp",
        "people": lake / "people" / ".2021-10-31.parquet.9f.tmp",
        "serving": serving.parent / ".cakupan.duckdb.77aa.tmp",
        "serving_wal": serving.parent / ".cakupan.duckdb.77aa.tmp.wal",
    }
    kept = {
        "in_force": lake / "deliveries" / "2021-10-31" / "32" / "rows-1.parquet",
        "serving": serving,
        "someone_elses": serving.parent / ".notes.txt.tmp",
        "fresh": lake / "deliveries" / "2021-10-31" / "33" / ".rows-2.parquet.ffff.tmp",
    }
    for path in [*made.values(), *kept.values()]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    for path in [*made.values(), *kept.values()]:
        if path is not kept["fresh"]:
            _os.utime(path, (old, old))
    for d in (lake / "tmp" / "2021-10-31-abc").rglob("*"):
        _os.utime(d, (old, old))
    _os.utime(lake / "tmp" / "2021-10-31-abc", (old, old))
    removed = set(sweep_temporaries(lake, beside=[serving]))
    assert removed == {lake / "tmp" / "2021-10-31-abc", made["rows"], made["people"],
                       made["serving"], made["serving_wal"]}
    assert all(p.exists() for p in kept.values())
    assert not (lake / "tmp" / "2021-10-31-abc").exists()
