"""The landing zone: which files were delivered, for which snapshot and province office.

``enrollment/<YYYY-MM-DD>/<PP>[_anything].{csv,xlsx,parquet}`` and
``potential/<YYYY-MM-DD>/*.csv``. Other files (``.done`` markers, notes, hidden or temporary
files) are not deliveries and are ignored. A supported file whose name does not start with a
province code known in any reference vintage is a *misfit*: it is logged as rejected.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from pipelines.extracts import SUPPORTED
from schemas.reference import provinces_in_any_vintage

_NAME = re.compile(r"^(\d{2})(?:_.*)?$", re.DOTALL)


@dataclass(frozen=True)
class LandedFile:
    path: Path
    relpath: str          # relative to the landing zone, with '/'
    snapshot: dt.date
    province: str | None  # None for a misfit
    size: int
    mtime_ns: int

    def sha256(self) -> str:
        h = hashlib.sha256()
        with open(self.path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()


def _dated_dirs(root: Path):
    if not root.is_dir():
        return
    for d in sorted(root.iterdir()):
        try:
            day = dt.date.fromisoformat(d.name)
        except ValueError:
            continue
        if d.is_dir() and len(d.name) == 10:
            yield day, d


def _landed(landing: Path, path: Path, day: dt.date, province: str | None) -> LandedFile:
    st = path.stat()
    return LandedFile(path, path.relative_to(landing).as_posix(), day, province,
                      st.st_size, st.st_mtime_ns)


def _is_delivery(path: Path) -> bool:
    return (path.is_file() and not path.name.startswith((".", "~$"))
            and path.suffix.lower() in SUPPORTED)


def scan_enrollment(landing: Path) -> tuple[dict[tuple[dt.date, str], list[LandedFile]],
                                            list[LandedFile]]:
    """Deliveries keyed by (snapshot, province), newest first; and misfit files."""
    known = set(provinces_in_any_vintage())
    deliveries: dict[tuple[dt.date, str], list[LandedFile]] = {}
    misfits: list[LandedFile] = []
    for day, folder in _dated_dirs(landing / "enrollment"):
        for path in sorted(folder.iterdir()):
            if not _is_delivery(path):
                continue
            m = _NAME.match(path.stem)
            if m and m.group(1) in known:
                deliveries.setdefault((day, m.group(1)), []).append(
                    _landed(landing, path, day, m.group(1)))
            else:
                misfits.append(_landed(landing, path, day, None))
    for files in deliveries.values():
        # the one modified last wins; ties: the greater file name
        files.sort(key=lambda f: (f.mtime_ns, f.path.name), reverse=True)
    return deliveries, misfits


def scan_potential(landing: Path) -> dict[dt.date, list[LandedFile]]:
    out: dict[dt.date, list[LandedFile]] = {}
    for day, folder in _dated_dirs(landing / "potential"):
        files = [_landed(landing, p, day, None) for p in sorted(folder.iterdir())
                 if p.is_file() and not p.name.startswith(".") and p.suffix.lower() == ".csv"]
        if files:
            out[day] = files
    return out


def fingerprint(files: list[LandedFile]) -> str:
    """Changes whenever a file of the set is added, removed, rewritten or touched."""
    return json.dumps(sorted((f.relpath, f.size, f.mtime_ns) for f in files))
