"""Disk full and permissions, on real small filesystems (tmpfs mounts and read-only bind
mounts; the tests run as root on Linux and skip with the reason where mounting is not
permitted). Every mount is unmounted in ``finally``.

- publishing onto a full target, or into a read-only folder: exit 1, one clear line naming the
  serving file (no traceback), the previous serving file byte-identical; with space (or write
  permission) back, the next run completes;
- a warehouse and its lake on a full disk: exit 1, one clear line; after space is freed the next
  run publishes the same figures as an uninterrupted run (nothing lost, nothing half-written);
- a landing zone on a read-only mount works normally.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import procs

SCALE, SNAPSHOTS, DEMO_SEED = 0.005, 3, 7
BIG = 256 * 1024 * 1024
PAGE = 4096


@dataclass
class World:
    base: Path
    landing: Path           # the demo landing zone, late file not delivered
    manifest: dict
    late_mtime: float
    expected: dict          # serving tables of an uninterrupted run with the late file in
    code: int
    warehouse: dict
    lake: dict
    store_bytes: int        # warehouse + lake after that run
    n: int = 0

    def store(self, name: str, late: bool, **paths) -> procs.Store:
        self.n += 1
        store = procs.Store(self.base / f"{self.n:02d}-{name}", **paths)
        if store.landing.exists() and any(store.landing.iterdir()):
            raise AssertionError(f"{store.landing} is not empty")
        shutil.copytree(self.landing, store.landing, copy_function=shutil.copy2,
                        dirs_exist_ok=True)
        if late:
            self.deliver(store)
        return store

    def deliver(self, store: procs.Store) -> None:
        procs.deliver_late(store.landing, self.manifest, self.late_mtime)


@pytest.fixture(scope="module")
def world():
    procs.require_mounts()
    with procs.scratch("faults") as base:
        landing = base / "landing-template"
        manifest = procs.demo_landing(landing, SCALE, SNAPSHOTS, DEMO_SEED)
        w = World(base, landing, manifest, time.time() - 60, {}, 0, {}, {}, 0)
        ref_store = w.store("reference", late=True)
        ref = ref_store.run()
        assert ref.code in (0, 2), ref.tail()
        w.expected, w.code = procs.serving_tables(ref_store.serving), ref.code
        w.warehouse = procs.warehouse_state(ref_store.warehouse)
        w.lake = procs.lake_counts(ref_store.warehouse)
        w.store_bytes = procs.tree_bytes(ref_store.warehouse, ref_store.lake)
        print(f"\nreference: exit {ref.code} in {ref.seconds:.1f} s, warehouse + lake "
              f"{w.store_bytes / 1e6:.1f} MB, serving {ref_store.serving.stat().st_size / 1e6:.2f} MB")
        shutil.rmtree(ref_store.base, ignore_errors=True)
        yield w


def _same_as_uninterrupted(w: World, store: procs.Store, r: procs.Result) -> list[str]:
    """Problems of a run that must end like the uninterrupted one (exit code, serving tables,
    warehouse load log, lake rows)."""
    if r.code != w.code:
        return [f"the run after the fault was cleared exited {r.code}, not {w.code}: "
                + " | ".join(r.err.strip().splitlines()[-3:])]
    problems = []
    got = procs.serving_tables(store.serving)
    diff, noise = procs.compare(w.expected, got)
    if noise:
        print(f"  (rows differing only by DOUBLE rounding, < 1e-9 relative: {noise})")
    if diff:
        problems.append("serving tables differ from the uninterrupted run's: "
                        + procs.describe_diff(diff, w.expected, got))
    if procs.warehouse_state(store.warehouse) != w.warehouse:
        problems.append(f"warehouse load log {procs.warehouse_state(store.warehouse)} != "
                        f"{w.warehouse}")
    if procs.lake_counts(store.warehouse) != w.lake:
        problems.append(f"lake rows {procs.lake_counts(store.warehouse)} != {w.lake}")
    return problems


def _pages(n: int) -> int:
    return (n + PAGE - 1) // PAGE * PAGE


def _failed_run(r: procs.Result, needle: str | None, disk: bool = False) -> tuple[str, list[str]]:
    line, problems = procs.failure_line(r, needle)
    if r.code != 1:
        problems.insert(0, f"exit {r.code}, expected 1")
    if disk and not any(t.lower() in line.lower() for t in DISK_LINE):
        problems.append(f"the failure line does not say the disk is full: {line!r}")
    return line, problems


def _report(title: str, r: procs.Result, line: str, problems: list[str]) -> None:
    print(f"\n{title}: exit {r.code} after stages {[s for _, s, _ in r.stages()]} in "
          f"{r.seconds:.1f} s\n  line: {line}")
    for p in problems:
        print(f"  PROBLEM: {p}")


# ------------------------------------------------------------------------------ the target
def _publish_fails(world, store, before: bytes):
    """Deliver one more file and run: the run must fail naming the serving file, which keeps
    its previous bytes with nothing left beside it."""
    world.deliver(store)
    r = store.run()
    line, problems = _failed_run(r, str(store.serving))
    if store.serving.read_bytes() != before:
        problems.append("the previous serving file changed")
    tmp, other = store.serving_leftovers()
    if other or tmp:
        problems.append(f"left beside the serving file: {tmp + other}")
    return r, line, problems


@pytest.mark.parametrize("room", [0.1, pytest.param(0.9, marks=pytest.mark.long)])
def test_publish_onto_a_full_target_keeps_the_previous_file(world, room):
    """The serving file's folder on a tmpfs the new file does not fit in beside the previous
    one (which does fit): ``room`` times the file's size is free."""
    folder = world.base / f"full-target-{int(room * 100)}"
    with procs.tmpfs(folder, BIG):
        store = world.store("full-target", late=False, serving=folder / "cakupan.duckdb")
        first = store.run()
        assert first.code == world.code, first.tail()
        before = store.serving.read_bytes()
        procs.resize_tmpfs(folder, _pages(procs.used_bytes(folder) + int(len(before) * room)))
        assert procs.free_bytes(folder) < len(before), "the target is not full enough"
        r, line, problems = _publish_fails(world, store, before)
        procs.resize_tmpfs(folder, BIG)
        problems += _same_as_uninterrupted(world, store, store.run())
        _report(f"full target ({procs.free_bytes(folder) / 1e6:.2f} MB free after the fix-up; "
                f"{room:.0%} of the file's size free during the run)", r, line, problems)
        assert not problems, "\n".join(problems)


def test_publish_into_a_read_only_folder_keeps_the_previous_file(world):
    real = world.base / "ro-target-real"
    real.mkdir()
    mount = world.base / "ro-target"
    with procs.bind(real, mount):
        store = world.store("ro-target", late=False, serving=mount / "cakupan.duckdb")
        first = store.run()
        assert first.code == world.code, first.tail()
        before = store.serving.read_bytes()
        procs.set_read_only(mount, True)
        try:
            with pytest.raises(OSError):
                (mount / "probe").write_bytes(b"x")
            r, line, problems = _publish_fails(world, store, before)
        finally:
            procs.set_read_only(mount, False)
        problems += _same_as_uninterrupted(world, store, store.run())
        _report("read-only target", r, line, problems)
        assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- the warehouse
DISK_LINE = ("No space left on device", "disk is full", "out of disk space", "no space")


@pytest.mark.parametrize("fraction", [
    pytest.param(0.15, marks=pytest.mark.long), 0.70, pytest.param(0.88, marks=pytest.mark.long)])
def test_warehouse_on_a_full_disk_first_run(world, fraction):
    """A first run whose warehouse and lake do not fit (the disk fills at different stages
    with the size); after space is freed, the next run completes like an uninterrupted one."""
    folder = world.base / f"full-wh-{int(fraction * 100)}"
    size = _pages(int(world.store_bytes * fraction))
    with procs.tmpfs(folder, size):
        store = world.store(f"full-wh-{int(fraction * 100)}", late=True,
                            warehouse=folder / "cakupan.duckdb")
        r = store.run()
        line, problems = _failed_run(r, None, disk=True)
        if store.serving.exists():
            problems.append("a serving file was published by the failed run")
        procs.resize_tmpfs(folder, BIG)
        problems += _same_as_uninterrupted(world, store, store.run())
        _report(f"warehouse on a {size / 1e6:.1f} MB disk ({fraction:.0%} of what it needs)",
                r, line, problems)
        assert not problems, "\n".join(problems)


def test_warehouse_on_a_full_disk_after_a_complete_run(world):
    """New deliveries on top of a complete run, the warehouse's disk nearly full: the serving
    file keeps its previous state; after space is freed the next run completes."""
    folder = world.base / "full-wh-incremental"
    with procs.tmpfs(folder, BIG):
        store = world.store("full-wh-incremental", late=False,
                            warehouse=folder / "cakupan.duckdb")
        first = store.run()
        assert first.code == world.code, first.tail()
        before = store.serving.read_bytes()
        procs.resize_tmpfs(folder, _pages(procs.used_bytes(folder) + 64 * 1024))
        world.deliver(store)
        r = store.run()
        line, problems = _failed_run(r, None, disk=True)
        if store.serving.read_bytes() != before:
            problems.append("the previous serving file changed")
        procs.resize_tmpfs(folder, BIG)
        problems += _same_as_uninterrupted(world, store, store.run())
        _report("warehouse disk full after a complete run", r, line, problems)
        assert not problems, "\n".join(problems)


# ----------------------------------------------------------------------------- the landing
def _landing_state(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def test_read_only_landing_zone_works_normally(world):
    source = world.base / "ro-landing-source"
    shutil.copytree(world.landing, source, copy_function=shutil.copy2)
    procs.deliver_late(source, world.manifest, world.late_mtime)
    mount = world.base / "ro-landing"
    with procs.bind(source, mount):
        procs.set_read_only(mount, True)
        with pytest.raises(OSError):
            (mount / "probe").write_bytes(b"x")
        before = _landing_state(mount)
        store = procs.Store(world.base / "ro-landing-store", landing=mount)
        r = store.run()
        assert _landing_state(mount) == before, "the landing zone was touched"
        assert not any(t in r.out + r.err for t in procs.TRACEBACK), r.tail()
        problems = _same_as_uninterrupted(world, store, r)
        assert not problems, "\n".join(problems)
