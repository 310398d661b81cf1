"""The bad-input corpus (tests/corpus.py) through the real `cakupan run`, black-box.

One landing zone holds every kind, each in its own (snapshot, province office) slot, plus a
file that is still being written when the first run starts. Two runs over one warehouse:

1. the whole corpus (and the file being written, appended to slowly during the run);
2. re-deliveries of slots the first run loaded (broken ones: the earlier rows must stay), and
   the finished file (its mtime set 60 s back): it must now load every row exactly once.

Then one test per kind compares load_log, quarantine and the coverage tables with the kind's
declared outcome, and a few tests check the runs as a whole. A separate test runs the pipeline
on a landing zone bind-mounted read-only.

Outputs are read only through the contract's tables: load_log, quarantine, coverage_by_region
(province level, per slot) and coverage_by_tier (per snapshot).
"""
from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import re
import shutil
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

import corpus as C
from harness import Landing, dicts, pipeline

KIND_IDS = [k[0] for k in C.KINDS]
TRACEBACK = ("Traceback", 'File "')
KEEP_WORDS = ("in force", "kept", "keep", "stay", "remain", "still", "earlier", "previous")


# ------------------------------------------------------------------------------ helpers
def landing_state(*roots: Path, skip: frozenset[Path] = frozenset()) -> dict:
    """Everything under ``roots`` (never following symlinks, never opening a FIFO):
    type, size, mtime_ns and the bytes' sha256 of regular files, the target of symlinks."""
    out = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            for name in [*dirnames, *filenames]:
                p = Path(dirpath) / name
                if p in skip:
                    continue
                st = os.lstat(p)
                entry = [stat.S_IFMT(st.st_mode), st.st_mtime_ns]
                if stat.S_ISREG(st.st_mode):
                    entry += [st.st_size, hashlib.sha256(p.read_bytes()).hexdigest()]
                elif stat.S_ISLNK(st.st_mode):
                    entry.append(os.readlink(p))
                out[str(p)] = tuple(entry)
    return out


class FifoGuard(threading.Thread):
    """Watches the corpus' named pipes: if the pipeline opens one for reading (which would
    block it forever), the guard notices, records it and unblocks the reader with EOF."""

    def __init__(self, fifos: list[Path]):
        super().__init__(daemon=True, name="fifo-guard")
        self.fifos, self.opened = fifos, set()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            for path in self.fifos:
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                except OSError as exc:
                    if exc.errno not in (errno.ENXIO, errno.ENOENT):
                        raise
                    continue
                self.opened.add(path)
                os.close(fd)
            time.sleep(0.1)

    def stop(self) -> None:
        self._halt.set()
        self.join()


@dataclasses.dataclass
class Tables:
    log: list[dict]
    quarantine: list[dict]
    people: dict[tuple[str, str], int]          # (snapshot, province) -> persons, all tiers
    tiers: dict[str, dict[str, int]]            # snapshot -> tier -> active + inactive

    def log_of(self, source: str) -> list[dict]:
        return [r for r in self.log if r["source_file"] == source]


def read_tables(run) -> Tables:
    wh = run.warehouse
    people = {(str(r["s"]), r["p"]): int(r["n"]) for r in dicts(
        wh, "SELECT snapshot_date AS s, region_code AS p, sum(active + inactive) AS n "
            "FROM coverage_by_region WHERE region_level = 'province' GROUP BY ALL")}
    tiers: dict[str, dict[str, int]] = {}
    for r in dicts(wh, "SELECT snapshot_date, tier, active + inactive AS n FROM coverage_by_tier"):
        tiers.setdefault(str(r["snapshot_date"]), {})[r["tier"]] = r["n"]
    return Tables(dicts(wh, "SELECT * FROM load_log ORDER BY ALL"),
                  dicts(wh, "SELECT * FROM quarantine ORDER BY ALL"), people, tiers)


@dataclasses.dataclass
class World:
    corpus: C.Corpus
    runs: list                       # the two Run results
    tables: list[Tables]             # after each run
    seconds: list[float]
    states: list[dict]               # landing zone before run 1, after run 1, before 2, after 2
    fifo_opened: set
    writer_rows_at_run1_end: int
    writer_alive_at_run1_end: bool
    writer: C.SlowWriter


@pytest.fixture(scope="module")
def world():
    with pipeline("corpus") as pipe:
        corpus = C.Corpus(pipe.landing, pipe.base)
        corpus.build()
        guard = FifoGuard(corpus.fifos)
        guard.start()
        writer = corpus.writer
        roots = (pipe.landing.root, corpus.outside)
        try:
            writer.start()
            assert writer.started_rows.wait(30), "the slow writer did not start"
            # after the writer created its file (which changed its folder's mtime)
            before1 = landing_state(*roots, skip=frozenset({writer.path}))
            t0 = time.monotonic()
            run1 = pipe.run()
            t1 = time.monotonic()
            alive, rows_at_end = writer.is_alive() and not writer.capped, writer.rows
            after1 = landing_state(*roots, skip=frozenset({writer.path}))
            writer.finish()
            tables1 = read_tables(run1)

            corpus.build_later()
            old = time.time() - 60
            os.utime(writer.path, (old, old))
            before2 = landing_state(*roots)
            t2 = time.monotonic()
            run2 = pipe.run()
            t3 = time.monotonic()
            after2 = landing_state(*roots)
            tables2 = read_tables(run2)
        finally:
            if writer.is_alive():
                writer.finish()
            guard.stop()
        yield World(corpus, [run1, run2], [tables1, tables2], [t1 - t0, t3 - t2],
                    [before1, after1, before2, after2], set(guard.opened), rows_at_end, alive,
                    writer)


# ------------------------------------------------------------------------------ one kind
def _one_line(msg) -> list[str]:
    problems = []
    if not msg:
        problems.append("no message")
    elif "\n" in msg or "\r" in msg:
        problems.append(f"message has several lines: {msg!r}")
    elif any(t in msg for t in TRACEBACK):
        problems.append(f"message holds traceback text: {msg!r}")
    return problems


def _quarantine(t: Tables, source: str) -> dict[int, set[str]]:
    return {q["row_number"]: set(q["reasons"]) for q in t.quarantine
            if q["source_file"] == source}


def check_file(kind: C.Kind, source: str, outcome, t: Tables, fifo_opened: set) -> list[str]:
    rows = t.log_of(source)
    if isinstance(outcome, C.Rejected) and kind.folder and not rows:
        rows = t.log_of(kind.folder)       # a symlinked folder may be logged as itself
    got = [{k: r[k] for k in ("status", "rows_read", "rows_loaded", "rows_rejected",
                              "province_code", "message")} for r in rows]
    where = f"{source}: got {got}"
    if isinstance(outcome, C.Ignored):
        return [f"{where}: not a delivery, must not be in load_log"] if rows else []
    if isinstance(outcome, C.NotRead):
        problems = []
        if any(Path(p).name == Path(source).name for p in fifo_opened):
            problems.append(f"{source}: the pipeline opened the named pipe (it would hang)")
        if rows and (len(rows) > 1 or rows[0]["status"] != "rejected"
                     or rows[0]["rows_loaded"] != 0):
            problems.append(f"{where}: expected no load_log row or one rejected row")
        return problems
    if len(rows) != 1:
        return [f"{source}: expected exactly one load_log row, got {got}"]
    (r,) = rows
    problems = []

    def want(name, value):
        if r[name] != value:
            problems.append(f"{source}: {name} = {r[name]!r}, expected {value!r}")

    if str(r["snapshot_date"]) != kind.snapshot:
        problems.append(f"{source}: snapshot_date {r['snapshot_date']}")
    quarantined = _quarantine(t, source)
    if isinstance(outcome, C.Loaded):
        want("status", "loaded")
        want("rows_read", outcome.rows_read)
        want("rows_loaded", outcome.rows_loaded)
        want("rows_rejected", outcome.rows_rejected)
        want("message", None)
        if outcome.province_code is not C.ANY:
            want("province_code", outcome.province_code)
        expected = {n: set(c) for n, c in outcome.quarantine.items()}
        if quarantined != expected:
            problems.append(f"{source}: quarantine {dict(sorted(quarantined.items()))}, "
                            f"expected {dict(sorted(expected.items()))}")
        for q in t.quarantine:
            if q["source_file"] == source and (q["province_code"] != kind.province
                                               or str(q["snapshot_date"]) != kind.snapshot):
                problems.append(f"{source}: quarantine row {q['row_number']} has "
                                f"{q['snapshot_date']}/{q['province_code']}")
    elif isinstance(outcome, C.Rejected):
        want("status", "rejected")
        want("rows_loaded", 0)
        want("rows_rejected", 0)
        if outcome.rows_read is not C.ANY:
            want("rows_read", outcome.rows_read)
        if outcome.province_code is not C.ANY:
            want("province_code", outcome.province_code)
        msg = r["message"] or ""
        problems += [f"{source}: {p}" for p in _one_line(msg)]
        low = msg.casefold()
        for group in outcome.keywords:
            if not any(w.casefold() in low for w in group):
                problems.append(f"{source}: message {msg!r} lacks any of {group}")
        if outcome.line is not None and not re.search(
                rf"line\D{{0,20}}(?<!\d){outcome.line}(?!\d)", msg, re.I):
            problems.append(f"{source}: message {msg!r} does not name line {outcome.line}")
        if outcome.not_sha256 and r["sha256"] == outcome.not_sha256:
            problems.append(f"{source}: sha256 is the symlink target's: the target was read")
        if outcome.earlier:
            name = outcome.earlier.rsplit("/", 1)[-1]
            if name not in msg and not any(w in low for w in KEEP_WORDS):
                problems.append(f"{source}: message {msg!r} does not say that {name} stays "
                                "in force")
        if quarantined:
            problems.append(f"{source}: a rejected file has quarantine rows {quarantined}")
    elif isinstance(outcome, C.Superseded):
        want("status", "superseded")
        want("rows_read", None)
        want("rows_loaded", 0)
        want("rows_rejected", 0)
        problems += [f"{source}: {p}" for p in _one_line(r["message"])]
        if outcome.by.rsplit("/", 1)[-1] not in (r["message"] or ""):
            problems.append(f"{source}: message {r['message']!r} does not name the winner")
        if quarantined:
            problems.append(f"{source}: a superseded file has quarantine rows {quarantined}")
    return problems


@pytest.mark.parametrize("kind_id", KIND_IDS)
def test_kind(world, kind_id):
    kind = world.corpus.kinds[kind_id]
    final = world.tables[-1]
    problems = []
    for source, outcome in kind.files.items():
        problems += check_file(kind, source, outcome, final, world.fifo_opened)
    people = final.people.get((kind.snapshot, kind.province), 0)
    if people != kind.people:
        problems.append(f"coverage counts {people} people of {kind.snapshot}/{kind.province}, "
                        f"expected {kind.people}")
    assert not problems, (f"{kind_id} ({kind.snapshot}, office {kind.province}): "
                          f"{kind.description}\n  expected: {kind.describe()}\n  "
                          + "\n  ".join(problems))


# ------------------------------------------------------------------------------ whole runs
def test_exit_code_2_and_no_traceback(world):
    for n, run in enumerate(world.runs, 1):
        for t in TRACEBACK:
            assert t not in run.out and t not in run.err, f"run {n}:\n{run.err[-3000:]}"
        assert run.code == 2, f"run {n}: exit {run.code}\n{run.err[-3000:]}"


def _expected_sources(world, first_run: bool) -> tuple[set[str], set[str]]:
    """(files that must each have exactly one load_log row, files that may have one)."""
    must, may = set(), {world.writer.relpath}
    for path, (kind, outcome) in world.corpus.files(first_run=first_run).items():
        if isinstance(outcome, C.NotRead):
            may.add(path)
        elif kind.folder:
            may |= {path, kind.folder}
        elif not isinstance(outcome, C.Ignored):
            must.add(path)
    if not first_run:
        must.add(world.writer.relpath)
    return must, may


@pytest.mark.parametrize("run", [1, 2])
def test_every_delivery_logged_exactly_once(world, run):
    t = world.tables[run - 1]
    must, may = _expected_sources(world, first_run=run == 1)
    counts: dict[str, int] = {}
    for r in t.log:
        counts[r["source_file"]] = counts.get(r["source_file"], 0) + 1
    missing = sorted(p for p in must if counts.get(p, 0) == 0)
    twice = sorted(p for p, n in counts.items() if n > 1)
    unknown = sorted(p for p in counts if p not in must | may)
    assert not (missing or twice or unknown), (
        f"run {run}: missing {missing}\n logged twice {twice}\n not a corpus delivery {unknown}")
    for kind in world.corpus.kinds.values():
        if kind.folder:
            assert any(counts.get(p) for p in (*kind.files, kind.folder)), \
                f"run {run}: the symlinked folder {kind.folder} left no trace in load_log"


@pytest.mark.parametrize("run", [1, 2])
def test_load_log_counts_add_up_and_messages_are_one_line(world, run):
    bad = []
    for r in world.tables[run - 1].log:
        where = f"{r['source_file']} ({r['status']})"
        if r["status"] not in ("loaded", "rejected", "superseded"):
            bad.append(f"{where}: unknown status")
        if r["status"] == "loaded":
            if r["rows_read"] is None or r["rows_loaded"] + r["rows_rejected"] != r["rows_read"]:
                bad.append(f"{where}: {r['rows_loaded']} + {r['rows_rejected']} != "
                           f"{r['rows_read']}")
            if r["message"] is not None:
                bad.append(f"{where}: a loaded file has a message {r['message']!r}")
        else:
            if r["rows_loaded"] != 0:
                bad.append(f"{where}: rows_loaded {r['rows_loaded']}")
            bad += [f"{where}: {p}" for p in _one_line(r["message"])]
    assert not bad, "\n".join(bad)


def test_coverage_by_tier_counts_exactly_the_loaded_people(world):
    final = world.tables[-1]
    expected: dict[str, int] = {}
    for kind in world.corpus.kinds.values():
        expected[kind.snapshot] = expected.get(kind.snapshot, 0) + kind.people
    w = world.writer.slot
    expected[w.snapshot] = expected.get(w.snapshot, 0) + world.writer.rows
    got = {s: final.tiers.get(s, {}) for s in expected}
    wrong = {s: got[s] for s in expected
             if got[s].get("KL", 0) != expected[s]
             or any(n for tier, n in got[s].items() if tier != "KL")}
    assert not wrong, f"expected KL people per snapshot {expected}; got {wrong}"


def test_landing_zone_is_never_touched(world):
    before1, after1, before2, after2 = world.states
    for n, (a, b) in enumerate(((before1, after1), (before2, after2)), 1):
        changed = sorted(p for p in a.keys() | b.keys() if a.get(p) != b.get(p))
        assert not changed, f"run {n} changed the landing zone: {changed[:10]}"


def test_named_pipe_is_never_opened(world):
    assert not world.fifo_opened, f"the pipeline opened {sorted(map(str, world.fifo_opened))}"


def test_load_log_survives_hostile_names(world):
    run = world.runs[-1]
    n = run.query("SELECT count(*) FROM load_log")[0][0]
    assert n == len(world.tables[-1].log) > 0
    served = {r[0] for r in run.query("SELECT source_file FROM load_log", serving=True)}
    for kid in ("name_sql_fragment", "misnamed_sql_fragment", "name_double_quotes",
                "name_non_ascii_nfc", "name_non_ascii_nfd", "name_space_after_underscore"):
        for source in world.corpus.kinds[kid].files:
            assert source in served, (kid, source)


def test_runs_take_bounded_time(world):
    # the whole module must stay within ~3 minutes; a run that waits on a file being written
    # or on a named pipe would exceed this
    assert all(s < 120 for s in world.seconds), world.seconds


# ------------------------------------------------------------------------------ being written
def test_file_being_written_is_not_loaded_as_if_complete(world):
    w = world.writer
    assert world.writer_alive_at_run1_end, (
        "the first run only ended after the writer stopped: it waited on the file being "
        f"written ({world.seconds[0]:.0f} s)")
    t = world.tables[0]
    rows = t.log_of(w.relpath)
    people = t.people.get((w.slot.snapshot, w.slot.pp), 0)
    problems = []
    if len(rows) > 1:
        problems.append(f"{len(rows)} load_log rows")
    for r in rows:
        if r["rows_loaded"] not in (0, None):
            problems.append(f"loaded {r['rows_loaded']} rows of a partial file "
                            f"(status {r['status']}, rows_read {r['rows_read']}, "
                            f"{world.writer_rows_at_run1_end} rows written when the run ended)")
        if r["status"] == "rejected":
            problems += _one_line(r["message"])
    if people:
        problems.append(f"coverage counts {people} people of the partial file")
    assert not problems, f"{w.relpath} after run 1: " + "; ".join(problems)


def test_file_being_written_loads_every_row_once_when_finished(world):
    w = world.writer
    t = world.tables[-1]
    got = [{k: r[k] for k in ("status", "rows_read", "rows_loaded", "rows_rejected", "message")}
           for r in t.log_of(w.relpath)]
    assert got == [{"status": "loaded", "rows_read": w.rows, "rows_loaded": w.rows,
                    "rows_rejected": 0, "message": None}]
    assert _quarantine(t, w.relpath) == {}
    assert t.people.get((w.slot.snapshot, w.slot.pp), 0) == w.rows


# ------------------------------------------------------------------------------ read-only mount
def _sh(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True)


def test_read_only_landing_zone():
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("bind mounts need root and mount(8) on Linux")
    with pipeline("corpus-ro") as pipe:
        source = Landing(pipe.base / "ro-source")
        c = C.Corpus(source, pipe.base)
        s = C.Slot(c, "2021-10-31", "32")
        rows_csv = [s.row(1), s.row(2), s.row(3, {"segmen_known"}, segmen="XX")]
        s.write_csv("32.csv", rows_csv)
        s33 = C.Slot(c, "2021-10-31", "33")
        s33.write("33.parquet", C.parquet_of(s33.rows(2)))
        s34 = C.Slot(c, "2021-10-31", "34")
        s34.write("34.xlsx", C.xlsx_openpyxl([[list(C.COLUMNS), *C.cells(s34.rows(2))]]))
        source.write("potential/2021-01-01/potensi.csv",
                     "tingkat,kode_wilayah,potensi,sumber\nKL,,100,x\n")
        copy = pipe.base / "ro-copy"
        shutil.copytree(source.root, copy, copy_function=shutil.copy2)
        mnt = pipe.landing.root
        mnt.mkdir(parents=True)
        mounted = False
        try:
            r = _sh("mount", "--bind", str(copy), str(mnt))
            if r.returncode:
                pytest.skip(f"bind mount not permitted here: {r.stderr.strip()}")
            mounted = True
            r = _sh("mount", "-o", "remount,bind,ro", str(mnt))
            if r.returncode:
                pytest.skip(f"read-only remount not permitted here: {r.stderr.strip()}")
            with pytest.raises(OSError) as exc:
                (mnt / "probe").write_bytes(b"x")
            assert exc.value.errno == errno.EROFS
            before = landing_state(mnt)
            run = pipe.run()
            assert landing_state(mnt) == before
        finally:
            if mounted and _sh("umount", str(mnt)).returncode:
                _sh("umount", "-l", str(mnt))
        assert not any(t in run.out + run.err for t in TRACEBACK), run.err[-3000:]
        assert run.code == 0, run.err[-3000:]
        assert run.warehouse.exists(), f"no warehouse:\n{run.out[-2000:]}\n{run.err[-2000:]}"
        got = {r["source_file"]: (r["status"], r["rows_read"], r["rows_loaded"],
                                  r["rows_rejected"]) for r in dicts(
            run.warehouse, "SELECT * FROM load_log")}
        assert got == {"enrollment/2021-10-31/32.csv": ("loaded", 3, 2, 1),
                       "enrollment/2021-10-31/33.parquet": ("loaded", 2, 2, 0),
                       "enrollment/2021-10-31/34.xlsx": ("loaded", 2, 2, 0)}
        tiers = {r[0]: r[1:] for r in run.query(
            "SELECT tier, active, potential FROM coverage_by_tier "
            "WHERE snapshot_date = DATE '2021-10-31'")}
        assert tiers["KL"] == (6, 100)
