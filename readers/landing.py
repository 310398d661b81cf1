"""The landing zone: which files were delivered, for which snapshot and province office.

Layout (contract v1.2)::

    enrollment/<YYYY-MM-DD>/<PP>[_anything].{csv,xlsx,parquet}   one delivery per office and date
    potential/<YYYY-MM-DD>/*.csv                                 denominator sets
    targets/*.csv                                                one set of targets
    published/<YYYY-MM-DD>/*.csv                                 published figures

Other files (``.done`` markers, notes, hidden or Excel ``~$`` lock files, other extensions) are
not deliveries and are ignored. A supported file whose name is not ``<PP>`` or ``<PP>_<anything>``
with ``<PP>`` a province code of some reference vintage is *misnamed*: it is logged as rejected.
A symlink, or a path whose real location is outside the landing zone, is never read: its
``problem`` says why and the ingest rejects it whole.

The scan only stats files. Content hashes are computed on demand (:meth:`Hashes.of`, in the
same read as the ingest's byte checks, :func:`readers.files.scan_bytes`) and can be reused from
an earlier load while a file's size, mtime, ctime and inode are unchanged (:class:`FileStat`).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import stat as stat_mod
from dataclasses import dataclass, field
from pathlib import Path

from readers.files import Scan, scan_bytes

from schemas.reference import provinces_in_any_vintage

SUPPORTED = (".csv", ".xlsx", ".parquet")
_NAME = re.compile(r"^(\d{2})(?:_.*)?$", re.DOTALL)
MISNAMED = ("misnamed: the file name must be <PP> or <PP>_<anything> before its extension, "
            "<PP> being the two-digit province code of the office")


@dataclass(frozen=True)
class FileStat:
    """What identifies a file's content without reading it (ctime changes on every write)."""
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int

    def as_dict(self) -> dict:
        return {"size": self.size, "mtime_ns": self.mtime_ns, "ctime_ns": self.ctime_ns,
                "inode": self.inode}


@dataclass(frozen=True)
class LandedFile:
    path: Path
    relpath: str            # relative to the landing zone, with '/'
    snapshot: dt.date | None
    province: str | None    # None: misnamed, or not an enrollment file
    stat: FileStat
    problem: str | None = None   # set: never read (symlink, outside the landing zone)

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class Landing:
    root: Path
    deliveries: dict[tuple[dt.date, str], list[LandedFile]] = field(default_factory=dict)
    misnamed: list[LandedFile] = field(default_factory=list)
    potential: dict[dt.date, list[LandedFile]] = field(default_factory=dict)
    targets: list[LandedFile] = field(default_factory=list)
    published: dict[dt.date, list[LandedFile]] = field(default_factory=dict)

    def snapshot_dates(self) -> list[dt.date]:
        return sorted({d for d, _ in self.deliveries} | {f.snapshot for f in self.misnamed})

    def files(self) -> list[LandedFile]:
        out = [f for group in self.deliveries.values() for f in group] + list(self.misnamed)
        out += [f for group in self.potential.values() for f in group] + list(self.targets)
        out += [f for group in self.published.values() for f in group]
        return out


def stat_of(path: Path) -> FileStat:
    st = path.lstat()
    return FileStat(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def confinement_problem(root: Path, path: Path) -> str | None:
    """Why ``path`` must not be read (None: a regular file inside ``root``, no symlink on the way)."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        return "lies outside the landing zone"
    current = root
    for part in rel.parts:
        current = current / part
        if current.is_symlink():
            return (f"is reached through a symbolic link ({current.relative_to(root).as_posix()}); "
                    "cakupan reads only regular files inside the landing zone")
    real = Path(os.path.realpath(path))
    try:
        real.relative_to(Path(os.path.realpath(root)))
    except ValueError:
        return "has its real location outside the landing zone"
    mode = path.lstat().st_mode
    if not stat_mod.S_ISREG(mode):
        return "is not a regular file"
    return None


def _dated_dirs(root: Path):
    if not root.is_dir():
        return
    for d in sorted(root.iterdir(), key=lambda p: p.name):
        if len(d.name) != 10 or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", d.name):
            continue
        try:
            day = dt.date.fromisoformat(d.name)
        except ValueError:
            continue
        if d.is_dir():  # follows a symlinked folder: its files are then rejected, never read
            yield day, d


def _candidates(folder: Path, suffixes: tuple[str, ...]):
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        if path.name.startswith((".", "~$")) or path.suffix.lower() not in suffixes:
            continue
        if path.is_dir() and not path.is_symlink():
            continue
        yield path


def _landed(root: Path, path: Path, day, province) -> LandedFile:
    return LandedFile(path, path.relative_to(root).as_posix(), day, province, stat_of(path),
                      confinement_problem(root, path))


def scan(landing: Path) -> Landing:
    """Stat every file of the landing zone (nothing is read)."""
    root = Path(landing)
    out = Landing(root)
    known = set(provinces_in_any_vintage())
    for day, folder in _dated_dirs(root / "enrollment"):
        for path in _candidates(folder, SUPPORTED):
            m = _NAME.match(path.stem)
            if m and m.group(1) in known:
                out.deliveries.setdefault((day, m.group(1)), []).append(
                    _landed(root, path, day, m.group(1)))
            else:
                out.misnamed.append(_landed(root, path, day, None))
    for files in out.deliveries.values():
        files.sort(key=winner_order)
    for day, folder in _dated_dirs(root / "potential"):
        files = [_landed(root, p, day, None) for p in _candidates(folder, (".csv",))]
        if files:
            out.potential[day] = files
    if (root / "targets").is_dir():
        out.targets = [_landed(root, p, None, None) for p in _candidates(root / "targets", (".csv",))]
    for day, folder in _dated_dirs(root / "published"):
        files = [_landed(root, p, day, None) for p in _candidates(folder, (".csv",))]
        if files:
            out.published[day] = files
    return out


def winner_order(f: LandedFile):
    """Sort key: the file modified last first (ties: the greater file name first)."""
    return (-f.stat.mtime_ns, tuple(-ord(c) for c in f.name))


# Byte scans done in this process, by path and stat (size, mtime, ctime, inode): `cakupan run`
# plans and then ingests in one process; the plan needs each new file's sha256 and the ingest
# its byte checks, and one read gives both (reading 2.4 GB twice cost 1.5 s of a scale-1
# night, three times 3.6 s). A file whose stat changed is read again. Bounded, for the
# long-lived daemon processes (a Scan is a few hundred bytes).
_COMPUTED: dict[tuple[str, tuple], Scan] = {}
_COMPUTED_MAX = 50_000


class Hashes:
    """Content hashes of landed files, reusing known ones while a file's stat is unchanged."""

    def __init__(self, known: dict[str, tuple[dict, str]] | None = None):
        self.known = dict(known or {})   # relpath -> (stat dict, sha256)

    def _known(self, f: LandedFile) -> str | None:
        seen = self.known.get(f.relpath)
        return seen[1] if seen and seen[0] == f.stat.as_dict() else None

    def scan(self, f: LandedFile) -> Scan:
        """One read of ``f``'s bytes (its sha256, unless known, and the ingest's byte checks),
        once per process while its stat is unchanged."""
        memo = _memo(f)
        got = _COMPUTED.get(memo)
        if got is None:
            got = scan_bytes(f.path, sha256=self._known(f))
            if len(_COMPUTED) >= _COMPUTED_MAX:
                _COMPUTED.clear()
            _COMPUTED[memo] = got
        self.known[f.relpath] = (f.stat.as_dict(), got.sha256)
        return got

    def of(self, f: LandedFile) -> str:
        if f.problem:  # never read: the hash says what it is, not what it holds
            return hashlib.sha256(f"unread:{f.relpath}:{f.problem}".encode()).hexdigest()
        return self._known(f) or self.scan(f).sha256


def _memo(f: LandedFile) -> tuple[str, tuple]:
    return str(f.path), tuple(sorted(f.stat.as_dict().items()))


def prefetch(wanted: list[tuple[Hashes, LandedFile]], workers: int = 0) -> None:
    """Scan the files of ``wanted`` whose hash is not known (and that this process has not read
    yet), ``workers`` (0: one per core, at most 4) at a time: hashlib releases the GIL while it
    hashes, so the cores read several files at once (scale-1 night, 2.4 GB, AMD EPYC: 1.6 s on
    one thread, 0.8 s on two). A file whose hash is known is not read."""
    todo = [(h, f) for h, f in wanted
            if not f.problem and h._known(f) is None and _memo(f) not in _COMPUTED]
    if len(todo) < 2:
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
        for _ in pool.map(lambda hf: hf[0].scan(hf[1]), todo):
            pass


def fingerprint(parts) -> str:
    """A stable sha256 of JSON-able parts."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def set_fingerprint(files: list[LandedFile], hashes: Hashes) -> str:
    """The content of a set of files (names and bytes): a potential set, targets, published."""
    return fingerprint(sorted((f.relpath, hashes.of(f)) for f in files))


def delivery_fingerprint(files: list[LandedFile], hashes: Hashes) -> str:
    """The content of a delivery: its files' names and bytes, in winner order (the order decides
    which file is in force, so a touch that changes the winner is a change)."""
    return fingerprint([(f.name, hashes.of(f)) for f in sorted(files, key=winner_order)])
