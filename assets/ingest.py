"""Stage: ingest deliveries, one partition per (snapshot date, province office).

For each delivery asked for, every time, from the landing files: the file modified last wins
(ties: the greater name) and the others are ``superseded``. The winners of one snapshot date are
read as text into one staging table (the CSV reader, calamine for XLSX, Parquet as it is); one
DuckDB statement then cleans them, validates every row against every rule of the compiled
contract, pseudonymises the NIK (keyed HMAC-SHA256) and writes each delivery to the lake as one
zstd Parquet file holding every row: valid rows in the narrow types the history needs, invalid
ones with every reason and their values as delivered (NIK masked, never the name). The
delivery's manifest (its ``load_log`` rows and the file in force) is then renamed into place:
that is the commit. Nothing here opens the warehouse, so deliveries can be ingested in parallel
processes.

A file rejected whole changes nothing already loaded: if the delivery's previous outcome had
rows in force, they stay, and the message says so. A file that changes while it is read is not
committed; the next run takes it again.
"""

import datetime as dt
import time
from pathlib import Path
from dataclasses import dataclass, field

import dagster as dg
import duckdb

from readers import keys
from readers.files import (FileRejected, Source, duckdb_message, line_ending_break,
                           open_source)
from readers.landing import Hashes, LandedFile, delivery_fingerprint, scan, stat_of
from readers.storage import commit_file, copy_to_parquet, in_force_file
from schemas import enrollment as schema
from schemas.reference import load_ref_region, vintage_for
from schemas.rules import broken_sql, required_columns, valid_sql

from assets import versions
from assets.partitions import DELIVERIES, delivery_key, parse_delivery
from assets.reference import region_reference
from assets.resources import PermanentError, Settings, Warehouse, confine

VALID = valid_sql(schema.ROW_SCHEMA)
BROKEN = broken_sql(schema.ROW_SCHEMA)
NIK_MASKED = ("CASE WHEN length(nik) >= 12 THEN left(nik, 6) || repeat('*', length(nik) - 6) "
              "ELSE repeat('*', length(nik)) END")
QUARANTINE_TEXT = ("kpj", "segmen", "tingkat", "kode_wilayah", "npp", "nama_instansi",
                   "tgl_kepesertaan", "bulan_iuran_terakhir")

# One statement from the files to the lake; @SOURCE@ is the UNION ALL of the readers' SELECTs,
# each with its file_id (parameters bound, never formatted); batch_files gives each file's office
# and name.
BATCH_SQL = f"""
WITH raw_file AS (@SOURCE@), raw_input AS (
    SELECT CAST($day AS DATE) AS snapshot_date, f.file_province, f.source_file,
           $vintage AS vintage, r.* FROM raw_file r JOIN batch_files f USING (file_id)
), staged AS (
    SELECT *, {VALID} AS valid FROM ({schema.PREPARE_SQL})
)
SELECT file_province, row_number, valid,
       CASE WHEN valid THEN {keys.NIK_HMAC} END AS nik_hmac,
       CASE WHEN valid THEN upper(segmen) END AS segmen,
       CASE WHEN valid THEN tier END AS tier,
       CASE WHEN valid THEN kode END AS region_code,
       CASE WHEN valid THEN coalesce(ref_province, file_province) END AS region_province,
       CASE WHEN valid THEN ref_regency END AS region_regency,
       CASE WHEN valid THEN tgl END AS tgl_kepesertaan,
       CASE WHEN valid THEN paid_month END AS paid_month,
       CASE WHEN NOT valid THEN {BROKEN} END AS reasons,
       CASE WHEN NOT valid THEN {NIK_MASKED} END AS nik_masked,
       {", ".join(
           f"CASE WHEN NOT valid THEN blank_to_null(trim_ws({c})) END AS q_{c}"
           for c in QUARANTINE_TEXT)}
FROM staged
"""
EMPTY_ROWS = ("SELECT NULL::BIGINT AS row_number, NULL::BOOLEAN AS valid, NULL::UUID AS nik_hmac, "
              "NULL::VARCHAR AS segmen, NULL::VARCHAR AS tier, NULL::VARCHAR AS region_code, "
              "NULL::VARCHAR AS region_province, NULL::VARCHAR AS region_regency, "
              "NULL::DATE AS tgl_kepesertaan, NULL::INTEGER AS paid_month, "
              "NULL::VARCHAR[] AS reasons, NULL::VARCHAR AS nik_masked, "
              + ", ".join(f"NULL::VARCHAR AS q_{c}" for c in QUARANTINE_TEXT) + " LIMIT 0")
CODE_VERSION = versions.code_version("ingest", BATCH_SQL, schema.MACROS, "reader-3")
REQUIRED = required_columns(schema.ROW_SCHEMA)
# What a broken file raises while it is read (anything else is a bug, and fails the step).
READ_ERRORS = (duckdb.InvalidInputException, duckdb.ConversionException)


@dataclass
class FileOutcome:
    file: LandedFile
    status: str
    sha256: str | None = None
    rows_read: int | None = None
    rows_loaded: int = 0
    rows_rejected: int = 0
    message: str | None = None

    def as_dict(self) -> dict:
        return {"source_file": self.file.relpath, "status": self.status, "sha256": self.sha256,
                "rows_read": self.rows_read, "rows_loaded": self.rows_loaded,
                "rows_rejected": self.rows_rejected, "message": self.message,
                "stat": self.file.stat.as_dict()}


@dataclass
class Delivery:
    day: dt.date
    province: str
    files: list[LandedFile]
    version: str
    previous: dict | None
    hashes: Hashes
    outcome: FileOutcome | None = None
    source: Source | None = None
    rows_file: str | None = None
    seconds: float = 0.0

    @property
    def winner(self) -> LandedFile:
        return self.files[0]

    @property
    def key(self) -> str:
        return delivery_key(self.day, self.province)

    @property
    def rows_name(self) -> str:
        return f"rows-{self.version[:16]}.parquet"


def _known_hashes(previous: dict | None) -> Hashes:
    known = {}
    for f in (previous or {}).get("files", []):
        if f.get("sha256") and f.get("stat"):
            known[f["source_file"]] = (f["stat"], f["sha256"])
    return Hashes(known)


def _restat(f: LandedFile):
    try:
        return stat_of(f.path)
    except FileNotFoundError:
        return None


def settling(f: LandedFile, seconds: float, now: float | None = None) -> bool:
    """Modified less than ``seconds`` ago: probably still being written."""
    return ((now or time.time()) * 1e9 - f.stat.mtime_ns) < seconds * 1e9


def _open(con, d: Delivery, in_force: set[str], vintage: str, index: int) -> None:
    """Check the winner and prepare its source, or record why it is rejected whole."""
    winner = d.winner
    try:
        if winner.problem:
            raise FileRejected(f"{winner.problem} (never read)")
        if d.province not in in_force:
            raise FileRejected(f"province {d.province} does not exist in the Kemendagri vintage "
                               f"{vintage} in force on {d.day}")
        scan_ = d.hashes.scan(winner)   # the planner's read when it was this process's
        d.outcome = FileOutcome(winner, "loaded", sha256=scan_.sha256)
        d.source = open_source(con, winner.path, schema.TEXT_COLUMNS, REQUIRED, scan_,
                               name=f"xlsx_{index}")
    except FileRejected as exc:
        d.outcome = FileOutcome(winner, "rejected", rows_read=exc.rows_read, message=exc.message,
                                sha256=None if winner.problem else
                                (d.outcome.sha256 if d.outcome else d.hashes.of(winner)))
        d.source = None


def _union(batch: list[Delivery]) -> tuple[str, dict]:
    parts, params = [], {}
    for i, d in enumerate(batch):
        sql = d.source.sql
        for name, value in d.source.params.items():
            sql = sql.replace(f"${name}", f"$p{i}_{name}")
            params[f"p{i}_{name}"] = value
        parts.append(f"SELECT {i} AS file_id, * FROM ({sql})")
    return " UNION ALL ".join(parts), params


def _copy_batch(con, lake, day, vintage, batch: list[Delivery], pads, workdir) -> None:
    """Read, validate and write every file of ``batch`` in ONE statement (query planning costs
    far more than a small file), one Parquet file per delivery; raises duckdb.Error when a file
    breaks mid-way (the caller then takes the files one by one)."""
    union, params = _union(batch)
    con.execute("CREATE OR REPLACE TEMP TABLE batch_files (file_id INTEGER, "
                "file_province VARCHAR, source_file VARCHAR)")
    con.executemany("INSERT INTO batch_files VALUES (?, ?, ?)",
                    [(i, d.province, d.winner.relpath) for i, d in enumerate(batch)])
    registered = []
    try:
        for d in batch:
            if d.source.arrow is not None:
                con.register(d.source.name, d.source.arrow)
                registered.append(d.source.name)
        # the files as text first (a union of small scans runs on one core; the validation after
        # it runs on every core), then validated, pseudonymised and written in one pass
        con.execute(f"CREATE OR REPLACE TEMP TABLE batch_raw AS {union}", params)
    finally:
        for name in registered:
            con.unregister(name)
    try:
        sql = BATCH_SQL.replace("@SOURCE@", "SELECT * FROM batch_raw")
        con.execute(f"COPY ({sql}) TO $dir (FORMAT parquet, COMPRESSION zstd, "
                    "PARTITION_BY (file_province), FILENAME_PATTERN 'rows_{i}', "
                    "ROW_GROUP_SIZE 122880)",
                    {"day": day, "vintage": vintage, "ipad": pads[0], "opad": pads[1],
                     "dir": str(workdir)})
    finally:
        con.execute("DROP TABLE IF EXISTS batch_raw")
    counts = {}
    written = sorted(workdir.glob("file_province=*/*.parquet"))
    if written:
        counts = {prov: (n, bad) for prov, n, bad in con.execute(
            "SELECT file_province, count(*), count(*) FILTER (NOT valid) FROM read_parquet("
            "$files, hive_partitioning=true, hive_types={'file_province': VARCHAR}) "
            "GROUP BY file_province", {"files": [str(f) for f in written]}).fetchall()}
    for d in batch:
        n, bad = counts.get(d.province, (0, 0))
        d.outcome.rows_read, d.outcome.rows_rejected, d.outcome.rows_loaded = n, bad, n - bad
        target = lake.rows_path(d.day, d.province, d.rows_name)
        target.parent.mkdir(parents=True, exist_ok=True)
        produced = list((workdir / f"file_province={d.province}").glob("*.parquet"))
        if produced:
            commit_file(produced[0], target)
        else:   # a header and no data rows: an empty file of the same shape
            copy_to_parquet(con, EMPTY_ROWS, {}, target)
        d.rows_file = d.rows_name


def _copy_one(con, lake, day, vintage, d: Delivery, pads, workdir) -> None:
    """The slow path for one file (its own statement): a broken file rejects only itself."""
    import duckdb

    try:
        _copy_batch(con, lake, day, vintage, [d], pads, workdir)
    except READ_ERRORS as exc:
        kind = d.winner.path.suffix.lstrip(".").upper()
        message = f"unreadable {kind}: {duckdb_message(exc)}"
        if kind == "CSV" and "state machine" in str(exc):
            line = line_ending_break(d.winner.path)
            message = (f"unreadable CSV: mixed line endings (line {line} ends differently from "
                       "line 1)" if line else "unreadable CSV: not parseable as RFC 4180 CSV "
                       "with the header's delimiter")
        d.outcome = FileOutcome(d.winner, "rejected", sha256=d.outcome.sha256, message=message)
        d.rows_file = None


def _commit(lake, d: Delivery) -> dict | None:
    """Write the delivery's manifest (its load_log rows); None if its file moved meanwhile."""
    if d.winner.problem is None and d.winner.stat != _restat(d.winner):
        if d.rows_file:
            lake.rows_path(d.day, d.province, d.rows_file).unlink(missing_ok=True)
        return None
    outcome, kept, in_force = d.outcome, [], d.winner.relpath if d.rows_file else None
    if outcome.status == "rejected" and d.previous and d.previous.get("rows_file"):
        d.rows_file, in_force = d.previous["rows_file"], d.previous["in_force"]   # nothing lost
        earlier = in_force_file(d.previous)
        kept = [earlier] if earlier else []
        if earlier and in_force == outcome.file.relpath:   # the same name, overwritten
            outcome.message += (f"; the rows loaded earlier from this file name (sha256 "
                                f"{earlier['sha256'][:12]}) stay in force")
        else:
            outcome.message += f"; the earlier delivery {in_force} stays in force"
    files = [outcome.as_dict()] + kept
    for f in d.files[1:]:
        if kept and f.relpath == in_force:
            continue
        files.append(FileOutcome(
            f, "superseded", sha256=None if f.problem else d.hashes.of(f),
            message=f"superseded by {d.winner.relpath}, delivered later").as_dict())
    manifest = {
        "snapshot": str(d.day), "province": d.province, "version": d.version,
        "code_version": CODE_VERSION, "rows_file": d.rows_file, "in_force": in_force,
        "files": files,
        "processed_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None).isoformat(),
    }
    lake.commit_delivery(d.day, d.province, manifest)
    return manifest


def batches(deliveries: list[Delivery], batch_bytes: int) -> list[list[Delivery]]:
    """The readable deliveries in batches of at most ``batch_bytes`` of files (a file larger
    than that is a batch of its own): the staging table of one batch must fit ``memory_limit``,
    or DuckDB spills it and the night stops being linear in the rows."""
    out, size = [], 0
    for d in deliveries:
        if not out or size + d.winner.stat.size > batch_bytes:
            out.append([])
            size = 0
        out[-1].append(d)
        size += d.winner.stat.size
    return out


def ingest_day(con, lake, day: dt.date, deliveries: list[Delivery], pads, log,
               batch_bytes: int) -> list:
    """Ingest the deliveries of one snapshot date; [(delivery, manifest or None)]."""
    import shutil
    import tempfile

    import duckdb

    started = time.perf_counter()
    vintage = vintage_for(day).vintage
    in_force = {r[0] for r in con.execute(
        "SELECT kode FROM ref_region WHERE vintage = ? AND level = 'province'", [vintage]
    ).fetchall()}
    for i, d in enumerate(deliveries):
        _open(con, d, in_force, vintage, i)
    readable = [d for d in deliveries if d.source is not None]
    workroot = lake.root / "tmp"
    workroot.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{day}-", dir=workroot))
    parts = batches(readable, batch_bytes)
    try:
        for b, batch in enumerate(parts):
            try:
                _copy_batch(con, lake, day, vintage, batch, pads, work / f"batch-{b}")
            except READ_ERRORS:
                log(f"snapshot {day}: a file broke the batch; reading its files one by one")
                for i, d in enumerate(batch):
                    _copy_one(con, lake, day, vintage, d, pads, work / f"one-{b}-{i}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = [(d, _commit(lake, d)) for d in deliveries]
    seconds = time.perf_counter() - started
    for d in deliveries:
        d.seconds = seconds / max(len(deliveries), 1)
    rows = sum(d.outcome.rows_read or 0 for d in deliveries)
    log(f"snapshot {day}: {rows:,} rows in {len(deliveries)} deliveries"
        + (f" ({len(parts)} batches)" if len(parts) > 1 else "") + f", {seconds:.1f} s")
    return out


def _metadata(manifest: dict, seconds: float) -> dict:
    files = manifest["files"]
    first = files[0]
    table = "\n".join(["| file | status | rows read | loaded | quarantined | message |",
                       "|---|---|---:|---:|---:|---|"] + [
        f"| {f['source_file']} | {f['status']} | {f['rows_read'] if f['rows_read'] is not None else ''}"
        f" | {f['rows_loaded']} | {f['rows_rejected']} | {(f['message'] or '').replace('|', '/')} |"
        for f in files])
    in_force = in_force_file(manifest)
    return {
        "dagster/row_count": in_force["rows_loaded"] if in_force else 0,
        "status": first["status"],
        "file": first["source_file"],
        "rows_read": first["rows_read"] if first["rows_read"] is not None else -1,
        "rows_loaded": first["rows_loaded"],
        "rows_quarantined": first["rows_rejected"],
        "in_force": manifest["in_force"] or "none",
        "files": dg.MetadataValue.md(table),
        "seconds": round(seconds, 3),
    }


@dg.asset(
    deps=[region_reference], kinds={"duckdb", "parquet"}, group_name="ingest",
    description="Every row of each delivery's file in force, validated: valid rows with the NIK "
                "as keyed HMAC-SHA256 (no name), invalid rows with every reason (NIK masked); "
                "one partition per snapshot date and province office, written to the lake.",
    partitions_def=DELIVERIES, backfill_policy=dg.BackfillPolicy.single_run(),
    code_version=CODE_VERSION, output_required=False, dagster_type=dg.Nothing,
    metadata={"dagster/table_name": "lake.deliveries"},
)
def enrollment_rows(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: Settings):
    try:
        key = keys.hmac_key()
    except keys.KeyProblem as exc:
        raise PermanentError(str(exc)) from None
    lake = warehouse.lake
    try:
        store = lake.identity(keys.fingerprint(key))["store_id"]
    except keys.KeyProblem as exc:
        raise PermanentError(str(exc)) from None
    pads = keys.pads(key)
    landing = scan(settings.landing_path)
    missing, moving, by_day = [], [], {}
    for pkey in sorted(context.partition_keys):
        day, province = parse_delivery(pkey)
        files = landing.deliveries.get((day, province))
        if not files:
            missing.append(pkey)
            continue
        if not files[0].problem and settling(files[0], settings.settle_seconds):
            moving.append(files[0].relpath)
            context.log.warning(f"{files[0].relpath}: modified less than "
                                f"{settings.settle_seconds:g} s ago, probably still being "
                                "written; left for the next run")
            continue
        previous = lake.manifest(day, province)
        hashes = _known_hashes(previous)
        version = versions.delivery(CODE_VERSION, store, delivery_fingerprint(files, hashes))
        by_day.setdefault(day, []).append(
            Delivery(day, province, files, version, previous, hashes))
    provenance = versions.Provenance(context.instance)
    reference = {"region_reference": (
        versions.recorded(context.instance, "region_reference").get(None), None)}
    con = warehouse.memory_connection()
    try:
        load_ref_region(con, only={vintage_for(day).vintage for day in by_day})   # in force
        confine(con, readable=[settings.landing_path], writable=[lake.root])
        for day, deliveries in sorted(by_day.items()):
            for d, manifest in ingest_day(con, lake, day, deliveries, pads, context.log.info,
                                          int(warehouse.ingest_batch_mb * (1 << 20))):
                if manifest is None:
                    context.log.warning(f"{d.winner.relpath}: changed while it was read; not "
                                        "committed, the next run takes it again")
                    continue
                first = manifest["files"][0]
                # a loaded file's figures are in its materialization's metadata; a debug line
                # repeating them cost one more event-log write per delivery (204 a scale-1 night)
                if first["status"] == "rejected":
                    context.log.warning(f"{first['source_file']}: rejected, "
                                        f"{first['rows_loaded']:,} rows loaded, "
                                        f"{first['rows_rejected']:,} quarantined — "
                                        f"{first['message']}")
                yield versions.materialization("enrollment_rows", d.key, CODE_VERSION,
                                               d.version, _metadata(manifest, d.seconds),
                                               provenance, reference)
    finally:
        con.close()
    if missing:
        raise dg.Failure(
            f"no file in the landing zone for {len(missing)} delivery partition(s) "
            f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}): deleted after "
            "loading? Their loaded rows stay in force; nothing to ingest.", allow_retries=False)


def delivery_keys(landing) -> list[str]:
    return [delivery_key(d, p) for d, p in sorted(landing.deliveries)]
