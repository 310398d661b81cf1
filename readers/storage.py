"""cakupan's own storage: the lake of person-level Parquet files and the warehouse DuckDB file.

``<warehouse>.duckdb`` holds everything small (reference, inputs, load log, quarantine,
aggregates); the lake beside it (``<warehouse>.lake/``) holds the person-level rows as immutable
zstd Parquet files, one per delivery and one per snapshot::

    deliveries/<YYYY-MM-DD>/<PP>/manifest.json       the delivery's outcome: its commit record
    deliveries/<YYYY-MM-DD>/<PP>/rows-<v>.parquet    every row of the file in force (valid rows
                                                     pseudonymised, invalid ones masked)
    people/<YYYY-MM-DD>.parquet                      one row per tier and person after the dedupe

Every file is written under a temporary name, flushed to disk and renamed into place, so a
reader sees the old file or the new one, never half of one; a delivery's manifest is renamed
last and is what makes its new rows count. Ingest writes only its own delivery's folder, so
deliveries can be ingested by parallel processes without the warehouse's single-writer lock.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from contextlib import contextmanager
from pathlib import Path

import duckdb

from schemas import enrollment
from schemas.rules import install_macros
from schemas.tables import INTERNAL_DDL, SCHEMA_VERSION, WAREHOUSE_TABLES


STALE_SECONDS = 3600   # a temporary this old belongs to a process that is gone


def _newest_mtime(path: Path) -> float:
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for child in path.rglob("*"):
            newest = max(newest, child.lstat().st_mtime)
    return newest


def sweep_temporaries(lake_root: Path, beside=(), older_than: float = STALE_SECONDS,
                      now: float | None = None) -> list[Path]:
    """Remove what a killed process left, untouched for ``older_than`` seconds: the lake's
    ``.<name>.<hex>.tmp`` files and ingest work folders (``tmp/``), and the temporaries of each
    file in ``beside`` (``.<its name>.<hex>.tmp`` and their ``.wal``: the serving file's).
    Files in force never start with a dot, so nothing committed can be removed."""
    import shutil
    import time

    now = time.time() if now is None else now
    removed = []
    candidates = [p for target in map(Path, beside) if target.parent.is_dir()
                  for p in target.parent.glob(f".{target.name}.*.tmp*") if p.is_file()]
    lake = Path(lake_root)
    for folder, pattern in ((lake, ".*.tmp*"), (lake / "deliveries", "**/.*.tmp*"),
                            (lake / "people", ".*.tmp*")):
        candidates += [p for p in folder.glob(pattern) if p.is_file()] if folder.is_dir() else []
    if (lake / "tmp").is_dir():
        candidates += list((lake / "tmp").iterdir())
    for path in candidates:
        try:
            if now - _newest_mtime(path) < older_than:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        except OSError:     # gone meanwhile, or not ours to remove: leave it
            continue
    return removed


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_beside(target: Path) -> Path:
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")


def commit_file(tmp: Path, target: Path) -> None:
    """fsync ``tmp``, rename it over ``target`` and fsync the folder."""
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    fsync_dir(target.parent)


def write_json(target: Path, data: dict) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(target)
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str))
        commit_file(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def in_force_file(manifest: dict) -> dict | None:
    """The entry of ``manifest["files"]`` whose rows are in force: the ``loaded`` one named
    ``in_force`` (a file rejected later under the same name has an entry of that name too)."""
    return next((f for f in manifest["files"] if f["source_file"] == manifest.get("in_force")
                 and f["status"] == "loaded"), None)


class Lake:
    def __init__(self, root: Path):
        self.root = Path(root)

    @classmethod
    def beside(cls, warehouse: Path) -> "Lake":
        warehouse = Path(warehouse)
        return cls(warehouse.with_name(warehouse.stem + ".lake"))

    # -- identity -----------------------------------------------------------------------------
    def identity(self, key_fingerprint: str) -> dict:
        """The store's identity (``store_id``), created on first use and pinned to the HMAC key:
        a different key raises :class:`~readers.keys.KeyProblem`."""
        from readers.keys import KeyProblem, mismatch_message

        path = self.root / "store.json"
        if not path.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = temp_beside(path)
            tmp.write_text(json.dumps({
                "store_id": uuid.uuid4().hex, "key_fingerprint": key_fingerprint,
                "schema_version": SCHEMA_VERSION,
                "created_at": dt.datetime.now(dt.timezone.utc).isoformat()}, indent=1))
            try:
                os.link(tmp, path)      # atomic create: a parallel first writer wins
                fsync_dir(self.root)
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        found = json.loads(path.read_text())
        if found["key_fingerprint"] != key_fingerprint:
            raise KeyProblem(mismatch_message(f"the store {self.root}", found["key_fingerprint"],
                                              key_fingerprint))
        if found.get("schema_version") != SCHEMA_VERSION:
            raise OutdatedWarehouse(f"the store {self.root} was written by another cakupan layout "
                                    f"({found.get('schema_version')}): move it aside and rebuild")
        return found

    def store_id(self) -> str | None:
        try:
            return json.loads((self.root / "store.json").read_text())["store_id"]
        except (FileNotFoundError, KeyError, ValueError):
            return None

    # -- deliveries ---------------------------------------------------------------------------
    def delivery_dir(self, day: dt.date, province: str) -> Path:
        return self.root / "deliveries" / str(day) / province

    def manifest(self, day: dt.date, province: str) -> dict | None:
        path = self.delivery_dir(day, province) / "manifest.json"
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None

    def manifests(self, day: dt.date) -> dict[str, dict]:
        """Every committed delivery of ``day``, by province."""
        folder = self.root / "deliveries" / str(day)
        out = {}
        if folder.is_dir():
            for sub in sorted(folder.iterdir()):
                m = self.manifest(day, sub.name)
                if m is not None:
                    out[sub.name] = m
        return out

    def all_manifests(self) -> dict[tuple[dt.date, str], dict]:
        out = {}
        base = self.root / "deliveries"
        if base.is_dir():
            for day_dir in sorted(base.iterdir()):
                try:
                    day = dt.date.fromisoformat(day_dir.name)
                except ValueError:
                    continue
                for province, m in self.manifests(day).items():
                    out[(day, province)] = m
        return out

    def rows_path(self, day: dt.date, province: str, name: str) -> Path:
        return self.delivery_dir(day, province) / name

    def commit_delivery(self, day: dt.date, province: str, manifest: dict) -> None:
        """Make ``manifest`` the delivery's outcome, then drop row files it no longer uses."""
        folder = self.delivery_dir(day, province)
        write_json(folder / "manifest.json", manifest)
        keep = manifest.get("rows_file")
        for stale in folder.glob("rows-*.parquet"):
            if stale.name != keep:
                stale.unlink(missing_ok=True)

    # -- people (after the dedupe) ------------------------------------------------------------
    def people_path(self, day: dt.date) -> Path:
        return self.root / "people" / f"{day}.parquet"

    def people_files(self) -> list[Path]:
        folder = self.root / "people"
        return sorted(folder.glob("*.parquet")) if folder.is_dir() else []

    def row_files(self) -> list[Path]:
        return [self.rows_path(d, p, m["rows_file"])
                for (d, p), m in self.all_manifests().items() if m.get("rows_file")]


def copy_to_parquet(con: duckdb.DuckDBPyConnection, select_sql: str, params: dict,
                    target: Path, metadata: dict | None = None) -> int:
    """Write the rows of ``select_sql`` to ``target`` atomically (zstd Parquet); return the row
    count. ``metadata`` goes into the file's key-value metadata."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(target)
    kv = ""
    if metadata:
        kv = ", KV_METADATA {" + ", ".join(f"{k}: ${'kv_' + k}" for k in metadata) + "}"
        params = {**params, **{f"kv_{k}": str(v) for k, v in metadata.items()}}
    try:
        n = con.execute(f"COPY ({select_sql}) TO $target_file (FORMAT parquet, COMPRESSION zstd, "
                        f"ROW_GROUP_SIZE 122880{kv})", {**params, "target_file": str(tmp)}
                        ).fetchone()[0]
        commit_file(tmp, target)
        return n
    finally:
        tmp.unlink(missing_ok=True)


class KeyMismatch(RuntimeError):
    pass


def open_connection(database: Path | str, read_only: bool = False, memory_limit: str = "1GB",
                    threads: int | None = None, config: dict | None = None):
    """A warehouse connection with every table and macro in place (the caller closes it)."""
    database = Path(database)
    if not read_only:
        database.parent.mkdir(parents=True, exist_ok=True)
    cfg = {"memory_limit": memory_limit, "preserve_insertion_order": False, **(config or {})}
    if threads:
        cfg["threads"] = threads
    con = duckdb.connect(str(database), read_only=read_only, config=cfg)
    try:
        prepare(con, read_only)
    except BaseException:
        con.close()
        raise
    return con


@contextmanager
def connect(database: Path | str, read_only: bool = False, **kwargs):
    con = open_connection(database, read_only, **kwargs)
    try:
        yield con
    finally:
        con.close()


def prepare(con: duckdb.DuckDBPyConnection, read_only: bool = False) -> None:
    if not read_only:
        for ddl in INTERNAL_DDL:
            con.execute(ddl)
        for table in WAREHOUSE_TABLES:
            con.execute(table.ddl())
    install_macros(con, enrollment.MACROS)
    con.execute("CREATE OR REPLACE TEMP TABLE tier_ref (tier VARCHAR, tier_label VARCHAR, "
                "ord INTEGER)")
    con.executemany("INSERT INTO tier_ref VALUES (?, ?, ?)", [
        (code, label, i) for i, (code, (label, _, _)) in enumerate(enrollment.TIERS.items())])


def meta(con, key: str) -> str | None:
    row = con.execute("SELECT value FROM cakupan_meta WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def set_meta(con, key: str, value: str) -> None:
    con.execute("DELETE FROM cakupan_meta WHERE key = ?", [key])
    con.execute("INSERT INTO cakupan_meta VALUES (?, ?)", [key, value])


class OutdatedWarehouse(RuntimeError):
    pass


def check_schema(con, path) -> None:
    """Record the layout version in a new warehouse; refuse one written by an older layout."""
    have = meta(con, "schema_version")
    if have is None:
        old = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = "
                          "'delivery_state'").fetchone()[0]
        if old:
            have = "1"
        else:
            set_meta(con, "schema_version", SCHEMA_VERSION)
            return
    if have != SCHEMA_VERSION:
        raise OutdatedWarehouse(
            f"the warehouse {path} was written by an older cakupan (layout {have}, this one "
            f"writes {SCHEMA_VERSION}): move it aside and run again to rebuild it from the "
            "landing zone")


def record_version(con, asset: str, partition: str | None, version: str) -> None:
    """Record the data version of a table partition (inside the transaction that wrote it)."""
    con.execute("INSERT OR REPLACE INTO cakupan_versions VALUES (?, ?, ?)",
                [asset, partition or "", version])


def versions_of(con, asset: str) -> dict[str, str]:
    return dict(con.execute("SELECT partition, version FROM cakupan_versions WHERE asset = ?",
                            [asset]).fetchall())


def parquet_version(con, path: Path) -> str | None:
    """The ``version`` a lake file was written with (key-value metadata), None if absent."""
    if not Path(path).exists():
        return None
    row = con.execute("SELECT value FROM parquet_kv_metadata($f) WHERE key = 'version'",
                      {"f": str(path)}).fetchone()
    return row[0].decode() if row else None


def lake_tables(con, lake: Lake) -> None:
    """The lake's person-level tables as temp tables ``enrollment_rows`` and ``enrollment`` on
    ``con`` (for analysts and tests: materialised, every path bound as a parameter)."""
    from schemas.tables import ENROLLMENT, ENROLLMENT_ROWS

    parts, params = [], {}
    for i, ((day, province), m) in enumerate(sorted(lake.all_manifests().items())):
        if m.get("rows_file"):
            parts.append(f"SELECT CAST($d{i} AS DATE) AS snapshot_date, $p{i} AS province_code, "
                         f"$s{i} AS source_file, * FROM read_parquet($f{i}) WHERE valid")
            params |= {f"d{i}": day, f"p{i}": province, f"s{i}": m["in_force"],
                       f"f{i}": str(lake.rows_path(day, province, m["rows_file"]))}
    for table, select in ((ENROLLMENT_ROWS, " UNION ALL ".join(parts)),
                          (ENROLLMENT, "SELECT * FROM read_parquet($files)" if lake.people_files()
                           else "")):
        cols = table.select_list()
        if select:
            sql = f"SELECT {cols} FROM ({select})"
            args = params if table is ENROLLMENT_ROWS else {"files": [
                str(p) for p in lake.people_files()]}
        else:
            sql = "SELECT " + ", ".join(f"CAST(NULL AS {c.sql_type}) AS {c.name}"
                                        for c in table.cols()) + " LIMIT 0"
            args = {}
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table.name} AS {sql}", args)
