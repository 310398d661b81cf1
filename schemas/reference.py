"""The Kemendagri region reference shipped in ``reference/`` (four vintages, 2020-2025).

Source, decrees and licence: ``reference/README.md``. A snapshot uses the vintage with the
latest ``in_force_from`` on or before its date; a snapshot older than every vintage uses the oldest.
"""
from __future__ import annotations

import csv
import datetime as dt
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import duckdb

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "reference"

# reference `tingkat` -> the region level names used in every output table
LEVELS = {"provinsi": "province", "kabkota": "regency", "kecamatan": "district", "desa": "village"}


@dataclass(frozen=True)
class Vintage:
    vintage: str
    in_force_from: dt.date
    decree: str
    file: Path
    file_sha256: str


@functools.cache
def vintages() -> tuple[Vintage, ...]:
    with open(REFERENCE_DIR / "vintages.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out = [
        Vintage(r["vintage"], dt.date.fromisoformat(r["in_force_from"]), r["decree"],
                REFERENCE_DIR / r["file"], r["file_sha256"])
        for r in rows
    ]
    return tuple(sorted(out, key=lambda v: v.in_force_from))


def vintage_for(snapshot: dt.date) -> Vintage:
    """The vintage in force on ``snapshot`` (the oldest one before every vintage)."""
    in_force = [v for v in vintages() if v.in_force_from <= snapshot]
    return in_force[-1] if in_force else vintages()[0]


def verify_checksums() -> list[str]:
    """Problems with the shipped files (empty list when every sha256 matches vintages.csv)."""
    problems = []
    for v in vintages():
        digest = hashlib.sha256(v.file.read_bytes()).hexdigest()
        if digest != v.file_sha256:
            problems.append(f"{v.file.name}: sha256 {digest} != {v.file_sha256} in vintages.csv")
    return problems


@functools.cache
def provinces_in_any_vintage() -> tuple[str, ...]:
    """Two-digit province codes known in any vintage (the NIK's first two digits)."""
    con = duckdb.connect()
    try:
        codes: set[str] = set()
        for v in vintages():
            codes.update(
                r[0] for r in con.execute(
                    "SELECT kode FROM read_csv(?, header=true, all_varchar=true) "
                    "WHERE tingkat = 'provinsi'", [str(v.file)]
                ).fetchall()
            )
        return tuple(sorted(codes))
    finally:
        con.close()


LEVEL_SQL = "CASE tingkat " + " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in LEVELS.items()) + " END"
# One vintage's file (bound as $file) as rows of ref_region.
REF_REGION_SELECT = (
    f"SELECT $vintage AS vintage, kode, nama, {LEVEL_SQL} AS level, nullif(kode_induk, '') AS "
    "parent_code, substr(kode, 1, 2) AS province_code, CASE WHEN length(kode) >= 5 THEN "
    "substr(kode, 1, 5) END AS regency_code FROM read_csv($file, header=true, all_varchar=true)")


def load_ref_region(con: duckdb.DuckDBPyConnection, table: str = "ref_region",
                    only: set[str] | None = None) -> None:
    """Every vintage (or those named in ``only``) into ``table`` (created or replaced; an
    identifier chosen by the caller). A vintage is 91 k rows, 0.1 s to load."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} (vintage VARCHAR, kode VARCHAR, "
                "nama VARCHAR, level VARCHAR, parent_code VARCHAR, province_code VARCHAR, "
                "regency_code VARCHAR)")
    for v in vintages():
        if only is not None and v.vintage not in only:
            continue
        con.execute(f"INSERT INTO {table} {REF_REGION_SELECT}",
                    {"vintage": v.vintage, "file": str(v.file)})
