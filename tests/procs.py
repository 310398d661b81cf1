"""Black-box helpers for the crash, reader and fault tests: the real `cakupan run` as a
subprocess (its own session, so a SIGKILL takes the whole process group), its stderr progress
lines timestamped as they arrive, the serving tables read back with DuckDB, and small mounts
(tmpfs, read-only bind mounts) that are always unmounted.

Nothing here imports the pipeline's code paths that a run executes: a store is four paths
(landing zone, warehouse, serving file, DAGSTER_HOME) and the command line.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[1]
# The tree whose `pipelines.cli` the subprocesses run (cwd); the project itself unless
# CAKUPAN_TEST_TREE names another checkout (e.g. an exported commit, to compare behaviours).
TREE = Path(os.environ.get("CAKUPAN_TEST_TREE") or ROOT)
TEST_KEY = "test-key-not-a-secret-0123456789abcdef"   # tests/conftest.py's TEST_KEY
TRACEBACK = ("Traceback (most recent call last)", 'File "/', "dagster._core.errors.")
RUN_TIMEOUT = 300.0          # a rerun must finish within this many seconds (no hang)


def duckdb11_python() -> str | None:
    """The interpreter of a duckdb==1.1.3 virtualenv (CAKUPAN_DUCKDB11_PYTHON, else
    .venv-duckdb11 beside the project), None when there is none."""
    for candidate in (os.environ.get("CAKUPAN_DUCKDB11_PYTHON"),
                      str(ROOT / ".venv-duckdb11" / "bin" / "python")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a `cakupan run`: the test key, a private DAGSTER_HOME and no other
    CAKUPAN_* or DAGSTER_* variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAKUPAN_", "DAGSTER_"))}
    env.update({"CAKUPAN_HMAC_KEY": TEST_KEY, "DAGSTER_HOME": str(home)})
    env.update(extra)
    return env


# ----------------------------------------------------------------------------- progress lines
STAGE_LINE = re.compile(r"^  (\S.*) \.\.\.$")


def classify(markers: list[str]) -> list[str]:
    """The stage each `  <what> ...` progress line of one run starts, in order. The runs of a
    refresh come in four waves: inputs (unpartitioned: reference, potential, targets, published
    figures), ingest (`enrollment_rows [...]`), the per-snapshot tables (`... [<dates>]`) and
    the final unpartitioned wave that publishes (`serving_file`, or `N tables ...` with it). An
    unpartitioned line is inputs before any ingest or per-snapshot line, publish after one."""
    out, later = [], False
    for marker in markers:
        if marker.startswith("enrollment_rows"):
            stage = "ingest"
        elif "serving_file" in marker:
            stage = "publish"
        elif "[" in marker:
            stage = "tables"
        else:
            stage = "publish" if later else "inputs"
        later = later or stage in ("ingest", "tables")
        out.append(stage)
    return out


def markers(lines) -> list[tuple[float, str]]:
    return [(t, m.group(1)) for t, line in lines for m in [STAGE_LINE.match(line)] if m]


REPORT_NAME = "cakupan-report.html"   # written beside the serving file (report_html)


@dataclass
class Result:
    code: int
    out: str
    err: str
    seconds: float
    lines: list[tuple[float, str]] = field(default_factory=list)

    def stages(self) -> list[tuple[float, str, str]]:
        """(seconds since start, stage, marker) of every stage line."""
        marks = markers(self.lines)
        return [(t, stage, m) for (t, m), stage in zip(marks, classify([m for _, m in marks]))]

    def durations(self) -> dict[str, float]:
        """Seconds spent in each stage (its first marker to the next stage's, the last to the
        process's exit)."""
        marks = self.stages()
        spans: dict[str, float] = {}
        for i, (t, stage, _) in enumerate(marks):
            end = marks[i + 1][0] if i + 1 < len(marks) else self.seconds
            spans[stage] = spans.get(stage, 0.0) + (end - t)
        return spans

    def first(self, stage: str) -> float | None:
        return next((t for t, s, _ in self.stages() if s == stage), None)

    def tail(self, n: int = 3000) -> str:
        return f"exit {self.code} after {self.seconds:.1f} s\n--- stderr ---\n{self.err[-n:]}" \
               f"\n--- stdout ---\n{self.out[-n // 2:]}"


class Live:
    """A running `cakupan run` whose stderr is read line by line as it comes."""

    def __init__(self, argv: list[str], env: dict[str, str]):
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, cwd=TREE, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        self.lines: list[tuple[float, str]] = []
        self._out: list[bytes] = []
        self._cond = threading.Condition()
        self._threads = [threading.Thread(target=self._read_err, daemon=True),
                         threading.Thread(target=self._read_out, daemon=True)]
        for t in self._threads:
            t.start()
        self.killed_at: float | None = None

    def _read_err(self) -> None:
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                self.lines.append((time.monotonic() - self.started, line))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _read_out(self) -> None:
        for raw in self.proc.stdout:
            self._out.append(raw)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def wait_stage(self, stage: str, timeout: float = RUN_TIMEOUT) -> float | None:
        """Seconds since start at which a line of ``stage`` appeared; None if the process
        ended (or the timeout passed) first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                marks = markers(self.lines)
                for (t, _), s in zip(marks, classify([m for _, m in marks])):
                    if s == stage:
                        return t
                if self.proc.poll() is not None and not self._threads[0].is_alive():
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.05))

    def current(self) -> tuple[str, str]:
        """(stage, last progress line) now."""
        with self._cond:
            lines = list(self.lines)
        stage, last = "startup", ""
        seen: list[str] = []
        for _, line in lines:
            m = STAGE_LINE.match(line)
            if m:
                seen.append(m.group(1))
                stage = classify(seen)[-1]
            if line.startswith("    published "):
                stage = "published"      # the rename is done; the run is finishing
            if line.strip():
                last = line.strip()
        return stage, last

    def kill(self) -> bool:
        """SIGKILL the whole process group; False if the run had already exited."""
        alive = self.proc.poll() is None
        self.killed_at = self.elapsed()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for t in self._threads:
            t.join(timeout=10)
        return alive

    def wait(self, timeout: float = RUN_TIMEOUT) -> Result:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"`cakupan run` did not finish within {timeout:.0f} s (hang); last lines:\n"
                + "\n".join(line for _, line in self.lines[-20:])) from None
        for t in self._threads:
            t.join(timeout=10)
        return self.result()

    def result(self) -> Result:
        err = "\n".join(line for _, line in self.lines)
        out = b"".join(self._out).decode("utf-8", "replace")
        return Result(self.proc.returncode, out, err, self.elapsed(), list(self.lines))


class Store:
    """A landing zone, a warehouse (and its lake), a serving file and a DAGSTER_HOME."""

    def __init__(self, base: Path, landing: Path | None = None, warehouse: Path | None = None,
                 serving: Path | None = None):
        self.base = Path(base)
        self.landing = landing or self.base / "landing"
        self.warehouse = warehouse or self.base / "warehouse" / "cakupan.duckdb"
        self.serving = serving or self.base / "serving" / "cakupan.duckdb"
        self.home = self.base / "dagster_home"

    @property
    def lake(self) -> Path:
        return self.warehouse.with_name(self.warehouse.stem + ".lake")

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "pipelines.cli", "run", "--landing", str(self.landing),
                "--warehouse", str(self.warehouse), "--serving", str(self.serving)]

    def start(self, **env: str) -> Live:
        return Live(self.argv(), cli_env(self.home, **env))

    def run(self, timeout: float = RUN_TIMEOUT, **env: str) -> Result:
        return self.start(**env).wait(timeout)

    def copy_to(self, base: Path) -> "Store":
        """A copy of everything (mtimes kept) under ``base``, with the same layout."""
        base = Path(base)
        out = Store(base)
        for src, dst in ((self.landing, out.landing), (self.home, out.home),
                         (self.warehouse.parent, out.warehouse.parent),
                         (self.serving.parent, out.serving.parent)):
            if src.exists():
                shutil.copytree(src, dst, symlinks=True, copy_function=shutil.copy2)
        return out

    def serving_leftovers(self) -> tuple[list[str], list[str]]:
        """(hidden temporary names, anything else that is not the serving file or the report
        published beside it) in the serving file's folder."""
        published = (self.serving.name, REPORT_NAME)
        names = "|".join(re.escape(n) for n in published)
        hidden = re.compile(rf"^\.({names})\.[0-9a-f]{{8,32}}\.tmp(\.wal)?$")
        tmp, other = [], []
        folder = self.serving.parent
        for entry in sorted(os.listdir(folder)) if folder.is_dir() else []:
            if entry in published:
                continue
            (tmp if hidden.match(entry) else other).append(entry)
        return tmp, other


@contextlib.contextmanager
def scratch(name: str):
    """A private temp directory (not under pytest's basetemp, which other sessions prune)."""
    base = Path(tempfile.mkdtemp(prefix=f"cakupan-{name}-"))
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


# ------------------------------------------------------------------------------ landing zones
def demo_landing(out: Path, scale: float = 0.005, snapshots: int = 3, seed: int = 7) -> dict:
    """The demo landing zone (its late delivery stays aside under demo_late/)."""
    from pipelines.demo import generate_landing

    return generate_landing(Path(out), scale=scale, snapshots=snapshots, seed=seed,
                            progress=lambda m: None)


def deliver_late(landing: Path, manifest: dict, mtime: float | None = None) -> str:
    """Deliver the demo's late file (into enrollment/...), modified ``mtime`` (default: a
    minute ago, past the settle time). Returns its path relative to the landing zone."""
    late = manifest["late"]
    src, dst = Path(landing) / late["file"], Path(landing) / late["delivered_as"]
    shutil.copyfile(src, dst)
    when = mtime if mtime is not None else time.time() - 60
    os.utime(dst, (when, when))
    return late["delivered_as"]


# ---------------------------------------------------------------------------- serving tables
def _row_key(row: tuple) -> tuple:
    return tuple((0, "") if v is None else (1, v) for v in row)


def serving_tables(path: Path) -> dict[str, list[tuple]]:
    """Every table and view of a serving file as sorted rows (load_log.loaded_at, a timestamp,
    left out)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()]
        for name in names:
            cols = [r[0] for r in con.execute(f'DESCRIBE "{name}"').fetchall()]
            if name == "load_log":
                cols = [c for c in cols if c != "loaded_at"]
            rows = con.execute(f'SELECT {", ".join(chr(34) + c + chr(34) for c in cols)} '
                               f'FROM "{name}"').fetchall()
            out[name] = sorted(rows, key=_row_key)
        return out
    finally:
        con.close()


def table_diff(expected: dict[str, list[tuple]], got: dict[str, list[tuple]]) -> dict:
    """{table: (rows missing, rows extra)} of every table that differs; rows lost = missing."""
    from collections import Counter

    out = {}
    for name in sorted(set(expected) | set(got)):
        e, g = Counter(expected.get(name, [])), Counter(got.get(name, []))
        missing, extra = sum((e - g).values()), sum((g - e).values())
        if missing or extra or (name in expected) != (name in got):
            out[name] = (missing, extra)
    return out


def _close(a, b, rel: float) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or abs(a - b) <= rel * max(abs(a), abs(b))
    return a == b


def compare(expected: dict[str, list[tuple]], got: dict[str, list[tuple]],
            rel: float = 1e-9) -> tuple[dict, dict]:
    """(differences, float noise): like :func:`table_diff`, except that a table whose rows
    pair up (sorted by their leading key columns) and differ only in DOUBLE values within
    ``rel`` is not a difference; its count of such rows is in the noise."""
    diff, noise = {}, {}
    for name, (missing, extra) in table_diff(expected, got).items():
        e, g = expected.get(name), got.get(name)
        if e is not None and g is not None and len(e) == len(g):
            pairs = [(a, b) for a, b in zip(e, g) if a != b]
            if all(len(a) == len(b) and all(_close(x, y, rel) for x, y in zip(a, b))
                   for a, b in pairs):
                noise[name] = len(pairs)
                continue
        diff[name] = (missing, extra)
    return diff, noise


def describe_diff(diff: dict, expected, got, limit: int = 3) -> str:
    from collections import Counter

    parts = []
    for name, (missing, extra) in diff.items():
        e, g = Counter(expected.get(name, [])), Counter(got.get(name, []))
        parts.append(f"{name}: {missing} row(s) missing, {extra} extra; e.g. missing "
                     f"{list((e - g).elements())[:limit]} extra {list((g - e).elements())[:limit]}")
    return "\n".join(parts)


def warehouse_state(path: Path) -> dict:
    """Opens the warehouse read-only with DuckDB and counts its load log (raises if it does
    not open)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        n, loaded = con.execute("SELECT count(*), coalesce(sum(rows_loaded), 0) FROM load_log "
                                "WHERE status = 'loaded'").fetchone()
        return {"load_log_loaded_files": n, "rows_loaded": int(loaded)}
    finally:
        con.close()


def lake_counts(warehouse: Path) -> dict:
    """Rows of the lake's person-level tables, read through the warehouse (harness.open_store)."""
    from harness import open_store

    con = open_store(warehouse)
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("enrollment_rows", "enrollment")}
    finally:
        con.close()


def failure_line(result: Result, needle: str | None = None) -> tuple[str, list[str]]:
    """(the run's failure line: `FAILED: ...` or `cakupan: ...`, problems with it): there must
    be exactly one, naming ``needle`` when given, and nothing that looks like a traceback."""
    problems = []
    text = result.out + "\n" + result.err
    bad = [t for t in TRACEBACK if t in text]
    if bad:
        problems.append(f"traceback-like output ({bad})")
    lines = [line for line in result.err.splitlines()
             if line.startswith(("FAILED:", "cakupan:"))]
    if len(lines) != 1:
        problems.append(f"expected one failure line, got {len(lines)}: {lines}")
    line = lines[0] if lines else ""
    if needle is not None and lines and not re.search(rf"{re.escape(needle)}(?![\w.])", line):
        problems.append(f"the failure line does not name {needle}: {line!r}")
    return line, problems


def one_clear_line(result: Result, needle: str | None = None) -> str:
    line, problems = failure_line(result, needle)
    assert not problems, "; ".join(problems) + "\n" + result.tail()
    return line


# ---------------------------------------------------------------------------------- mounting
def _sh(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True)


def mount_unavailable() -> str | None:
    """Why small mounts cannot be made here (None: they can)."""
    if os.name != "posix" or not sys.platform.startswith("linux"):
        return "mounts need Linux"
    if os.geteuid() != 0:
        return "mounts need root"
    if not shutil.which("mount"):
        return "mount(8) is not installed"
    probe = Path(tempfile.mkdtemp(prefix="cakupan-mount-probe-"))
    try:
        r = _sh("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe))
        if r.returncode:
            return f"mounting a tmpfs is not permitted here: {r.stderr.strip()}"
        _sh("umount", str(probe))
        return None
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def require_mounts() -> None:
    reason = mount_unavailable()
    if reason:
        pytest.skip(reason)


def _umount(path: Path) -> None:
    if _sh("umount", str(path)).returncode:
        _sh("umount", "-l", str(path))


@contextlib.contextmanager
def tmpfs(path: Path, size: int):
    """A tmpfs of ``size`` bytes mounted at ``path`` (created), always unmounted."""
    path.mkdir(parents=True, exist_ok=True)
    r = _sh("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    if r.returncode:
        pytest.skip(f"mounting a tmpfs is not permitted here: {r.stderr.strip()}")
    try:
        yield path
    finally:
        _umount(path)


def resize_tmpfs(path: Path, size: int) -> None:
    r = _sh("mount", "-o", f"remount,size={size}", str(path))
    assert r.returncode == 0, f"cannot resize the tmpfs at {path}: {r.stderr}"


@contextlib.contextmanager
def bind(source: Path, target: Path):
    """``source`` bind-mounted at ``target`` (created), always unmounted."""
    target.mkdir(parents=True, exist_ok=True)
    r = _sh("mount", "--bind", str(source), str(target))
    if r.returncode:
        pytest.skip(f"bind mount not permitted here: {r.stderr.strip()}")
    try:
        yield target
    finally:
        _umount(target)


def set_read_only(target: Path, read_only: bool) -> None:
    r = _sh("mount", "-o", f"remount,bind,{'ro' if read_only else 'rw'}", str(target))
    if r.returncode:
        pytest.skip(f"read-only remount not permitted here: {r.stderr.strip()}")


def used_bytes(path: Path) -> int:
    """Bytes in use on the filesystem mounted at ``path``."""
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def tree_bytes(*paths: Path) -> int:
    """Bytes of the files under ``paths`` (files vanishing meanwhile are skipped)."""
    total = 0
    for p in paths:
        for root, _, files in os.walk(p) if p.is_dir() else [(p.parent, [], [p.name])]:
            for name in files:
                with contextlib.suppress(FileNotFoundError):
                    total += os.stat(os.path.join(root, name)).st_size
    return total
