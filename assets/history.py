"""The penetration history (contract v1.2, "History and flows") and the inputs of a snapshot.

The history is every snapshot with at least one ``loaded`` delivery. For a snapshot S the
previous snapshot P is the latest such snapshot before S; the year-ago snapshot Y the latest
such snapshot in the calendar month 12 months before S's month.

:class:`Inputs` is what a per-snapshot table's data version is computed from. Two
implementations answer it: :class:`LakeInputs` from what is really stored (an asset computing
its own version), and the planner's, from what the landing zone says should be stored.
"""
from __future__ import annotations

import bisect
import datetime as dt
from pathlib import Path

from readers import storage


def previous_of(history: list[dt.date], day: dt.date) -> dt.date | None:
    i = bisect.bisect_left(history, day)
    return history[i - 1] if i > 0 else None


def year_ago_of(history: list[dt.date], day: dt.date) -> dt.date | None:
    month = day.year * 12 + day.month - 1 - 12
    y, m = divmod(month, 12)
    hits = [d for d in history if d.year == y and d.month == m + 1]
    return hits[-1] if hits else None


def dependents_of(history: list[dt.date], day: dt.date) -> list[dt.date]:
    """The snapshots whose previous or year-ago snapshot is ``day``."""
    return [s for s in history if s != day
            and (previous_of(history, s) == day or year_ago_of(history, s) == day)]


class Inputs:
    """What per-snapshot versions are computed from (see the module docstring)."""

    store: str

    def deliveries(self, day: dt.date) -> dict[str, str]:
        """province -> version of each committed delivery of ``day``."""
        raise NotImplementedError

    def offices(self, day: dt.date) -> list[str]:
        """Province offices with rows in force (a loaded delivery) at ``day``."""
        raise NotImplementedError

    def misnamed(self, day: dt.date) -> str:
        raise NotImplementedError

    def present(self, day: dt.date) -> list[str]:
        """The committed deliveries' files of ``day`` still in the landing zone."""
        raise NotImplementedError

    def version(self, asset: str, partition: dt.date | None = None) -> str | None:
        raise NotImplementedError

    def history(self) -> list[dt.date]:
        raise NotImplementedError


class LakeInputs(Inputs):
    """The inputs as stored: lake manifests, lake files' metadata, the warehouse's versions."""

    def __init__(self, con, lake: storage.Lake, landing, store: str, hashes=None):
        from readers.landing import Hashes

        self.con, self.lake, self.landing, self.store = con, lake, landing, store
        self._manifests: dict[dt.date, dict[str, dict]] = {}
        self._all = None
        self._warehouse: dict[str, dict[str, str]] = {}
        self.hashes = hashes or Hashes()
        self.scratch: dict = {}   # what a stage built once for several tables (assets.trend)

    def manifests(self, day: dt.date) -> dict[str, dict]:
        if day not in self._manifests:
            self._manifests[day] = self.lake.manifests(day)
        return self._manifests[day]

    def forget(self, asset: str) -> None:
        self._warehouse.pop(asset, None)

    def deliveries(self, day):
        return {p: m["version"] for p, m in self.manifests(day).items()}

    def offices(self, day):
        return sorted(p for p, m in self.manifests(day).items() if m.get("rows_file"))

    def row_files(self, day) -> list[tuple[Path, str, str]]:
        """(file, source_file, province) of every delivery of ``day`` with rows in force."""
        return [(self.lake.rows_path(day, p, m["rows_file"]), m["in_force"], p)
                for p, m in sorted(self.manifests(day).items()) if m.get("rows_file")]

    def rows_in_force(self, day) -> int:
        """The loaded rows of ``day``'s deliveries in force (their manifests' figures)."""
        files = (storage.in_force_file(m) for m in self.manifests(day).values()
                 if m.get("rows_file"))
        return sum(f["rows_loaded"] for f in files if f)

    def misnamed(self, day):
        from readers.landing import set_fingerprint

        return set_fingerprint([f for f in self.landing.misnamed if f.snapshot == day],
                               self.hashes)

    def present(self, day):
        return present_files(self.landing, day, [
            [f["source_file"] for f in m["files"]] for m in self.manifests(day).values()])

    def version(self, asset, partition=None):
        if asset == "enrollment":
            return storage.parquet_version(self.con, self.lake.people_path(partition))
        if asset not in self._warehouse:
            self._warehouse[asset] = storage.versions_of(self.con, asset)
        return self._warehouse[asset].get("" if partition is None else str(partition))

    def history(self):
        if self._all is None:
            days = {}
            for (day, _), m in self.lake.all_manifests().items():
                days[day] = days.get(day, False) or bool(m.get("rows_file"))
            self._all = sorted(d for d, loaded in days.items() if loaded)
        return self._all


def present_files(landing, day: dt.date, recorded: list[list[str]]) -> list[str]:
    """The files of the committed deliveries of ``day`` (``recorded``: each delivery's files)
    that are still in the landing zone."""
    here = {f.relpath for (d, _), files in landing.deliveries.items() if d == day
            for f in files}
    return sorted(r for files in recorded for r in files if r in here)


def snapshot_days(landing, manifests: dict) -> list[dt.date]:
    """Every snapshot partition: a date with an enrollment file, or with a committed delivery."""
    return sorted({d for d, _ in landing.deliveries} | {d for d, _ in manifests}
                  | {f.snapshot for f in landing.misnamed})
