"""Stage: ingest deliveries (snapshot date x province office).

For each delivery, the file modified last wins (ties: the greater name); the others are
``superseded``. The winners of one snapshot date are read as text, then validated together in
one set-based pass of the compiled enrollment schema, the NIK pseudonymised in SQL (keyed
HMAC-SHA256), and, in one transaction, each delivery's valid rows (``enrollment_rows``),
quarantined rows (``quarantine``) and ``load_log`` rows replace the earlier ones.

A file rejected whole changes nothing already loaded: if an earlier delivery of the same
snapshot and province was loaded, its rows stay in force and the message says so.
"""
import datetime as dt
import time
from dataclasses import dataclass

import dagster as dg

from pipelines.extracts import FileRejected, read_into
from pipelines.landing import LandedFile, fingerprint, scan_enrollment
from pipelines.partitions import DELIVERIES, delivery_key
from pipelines.resources import HMAC_SQL, WAREHOUSE_WRITER, Settings, Warehouse, hmac_pads
from schemas import enrollment as schema
from schemas.reference import vintage_for
from schemas.rules import messages_sql, reasons_sql, required_columns

from assets.reference import region_reference

REASONS = reasons_sql(schema.ROW_SCHEMA)
MESSAGES = messages_sql(schema.ROW_SCHEMA)
NIK_MASKED = ("CASE WHEN length(nik) >= 12 THEN left(nik, 6) || repeat('*', length(nik) - 6) "
              "ELSE repeat('*', length(nik)) END")
TEXT = ", ".join(schema.TEXT_COLUMNS)
_IN_BATCH = "snapshot_date = $day AND province_code IN (SELECT unnest($provinces))"


@dataclass
class Outcome:
    province: str
    winner: LandedFile
    older: list[LandedFile]
    rows_read: int | None = None
    rejected: str | None = None
    rows_loaded: int = 0
    rows_quarantined: int = 0

    @property
    def status(self) -> str:
        return "rejected" if self.rejected else "loaded"


def _read_batch(con, day: dt.date, deliveries: dict[str, list[LandedFile]]) -> list[Outcome]:
    """Read every delivery's winning file of ``day`` into its own temp table ``raw_<i>`` and
    expose them together, with each file's context, as the view ``raw_input``."""
    con.execute("CREATE OR REPLACE TEMP TABLE batch_files (file_id INTEGER, snapshot_date DATE, "
                "file_province VARCHAR, source_file VARCHAR, vintage VARCHAR)")
    vintage = vintage_for(day).vintage
    in_force = {r[0] for r in con.execute(
        "SELECT kode FROM ref_region WHERE vintage = ? AND level = 'province'", [vintage]
    ).fetchall()}
    outcomes, parts = [], []
    for i, (province, files) in enumerate(sorted(deliveries.items())):
        out = Outcome(province, files[0], files[1:])
        try:
            if province not in in_force:
                raise FileRejected(f"province {province} does not exist in the Kemendagri "
                                   f"vintage {vintage} in force on {day}")
            out.rows_read = read_into(con, out.winner.path, schema.TEXT_COLUMNS,
                                      required_columns(schema.ROW_SCHEMA), table=f"raw_{i}")
            con.execute("INSERT INTO batch_files VALUES (?, ?, ?, ?, ?)",
                        [i, day, province, out.winner.relpath, vintage])
            parts.append(f"SELECT {i} AS file_id, rowid + 1 AS row_number, nik_is_number, "
                         f"{TEXT} FROM raw_{i}")
        except FileRejected as exc:
            out.rows_read, out.rejected = exc.rows_read, exc.message
        outcomes.append(out)
    if not parts:  # nothing readable: an empty relation of the same shape
        parts.append(f"SELECT NULL::INTEGER AS file_id, NULL::BIGINT AS row_number, "
                     f"NULL::BOOLEAN AS nik_is_number, "
                     f"{', '.join(f'NULL::VARCHAR AS {c}' for c in schema.TEXT_COLUMNS)} LIMIT 0")
    con.execute("CREATE OR REPLACE TEMP VIEW raw_input AS SELECT f.snapshot_date, "
                "f.file_province, f.source_file, f.vintage, r.* EXCLUDE (file_id) FROM ("
                + " UNION ALL ".join(parts) + ") AS r JOIN batch_files AS f USING (file_id)")
    return outcomes


def _validate(con) -> dict[str, tuple[int, int]]:
    """Stage every row with the codes of every rule it breaks; (valid, invalid) per province."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE staged AS SELECT *, {REASONS} AS reasons "
                f"FROM ({schema.PREPARE_SQL})")
    for (name,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary AND "
                               "regexp_full_match(table_name, 'raw_[0-9]+')").fetchall():
        con.execute(f"DROP TABLE {name}")
    return {p: (ok, bad) for p, ok, bad in con.execute(
        "SELECT file_province, count(*) FILTER (len(reasons) = 0), "
        "count(*) FILTER (len(reasons) > 0) FROM staged GROUP BY 1").fetchall()}


def _replace(con, day: dt.date, loaded: list[str], pads: tuple[bytes, bytes]) -> None:
    where = {"day": day, "provinces": loaded}
    con.execute(f"DELETE FROM enrollment_rows WHERE {_IN_BATCH}", where)
    con.execute(f"DELETE FROM quarantine WHERE {_IN_BATCH}", where)
    con.execute(f"DELETE FROM load_log WHERE {_IN_BATCH}", where)
    con.execute(f"""
        INSERT INTO enrollment_rows
        SELECT snapshot_date, file_province, source_file, row_number, {HMAC_SQL}, kpj,
               upper(segmen), tier, kode, coalesce(ref_province, file_province), ref_regency,
               npp, nama_instansi, tgl, paid_month
        FROM staged WHERE len(reasons) = 0""", {"ipad": pads[0], "opad": pads[1]})
    con.execute(f"""
        INSERT INTO quarantine
        SELECT snapshot_date, source_file, row_number, file_province, reasons, {MESSAGES},
               {NIK_MASKED}, kpj, segmen, tingkat, kode_wilayah, npp, nama_instansi,
               tgl_kepesertaan, bulan_iuran_terakhir
        FROM staged WHERE len(reasons) > 0""")


def _keep_earlier(con, day: dt.date, out: Outcome) -> list[str]:
    """A rejected delivery leaves an earlier loaded one in force; otherwise clears the slot."""
    where = {"day": day, "provinces": [out.province]}
    kept = [r[0] for r in con.execute(
        f"SELECT source_file FROM load_log WHERE {_IN_BATCH} AND status = 'loaded'",
        where).fetchall()]
    if kept:
        out.rejected += f"; the earlier delivery {', '.join(kept)} stays in force"
    else:
        for table in ("enrollment_rows", "quarantine", "load_log"):
            con.execute(f"DELETE FROM {table} WHERE {_IN_BATCH}", where)
    return kept


def _log(con, day: dt.date, out: Outcome, kept: list[str]) -> None:
    rows = [(day, out.winner.relpath, out.province, out.winner.sha256(), out.rows_read,
             out.rows_loaded, out.rows_quarantined, out.status, out.rejected)]
    rows += [(day, f.relpath, out.province, f.sha256(), None, 0, 0, "superseded",
              f"superseded by {out.winner.relpath}, delivered later")
             for f in out.older if f.relpath not in kept]
    con.executemany("DELETE FROM load_log WHERE snapshot_date = ? AND source_file = ?",
                    [(r[0], r[1]) for r in rows])
    con.executemany("INSERT INTO load_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP)",
                    rows)
    con.execute("DELETE FROM delivery_state WHERE snapshot_date = ? AND province_code = ?",
                [day, out.province])
    con.execute("INSERT INTO delivery_state VALUES (?, ?, ?, now()::TIMESTAMP)",
                [day, out.province, fingerprint([out.winner, *out.older])])


def ingest_snapshot(con, day: dt.date, deliveries: dict[str, list[LandedFile]],
                    pads: tuple[bytes, bytes], log=lambda message: None) -> list[Outcome]:
    """Ingest the given deliveries of one snapshot date in one transaction."""
    clock = time.perf_counter()
    outcomes = _read_batch(con, day, deliveries)
    timings = {"read": time.perf_counter() - clock}
    counts = _validate(con)
    timings["validate"] = time.perf_counter() - clock - timings["read"]
    for out in outcomes:
        if not out.rejected:
            out.rows_loaded, out.rows_quarantined = counts.get(out.province, (0, 0))
    con.begin()
    try:
        _replace(con, day, [o.province for o in outcomes if not o.rejected], pads)
        for out in outcomes:
            _log(con, day, out, _keep_earlier(con, day, out) if out.rejected else [])
        con.commit()
    except BaseException:
        con.rollback()
        raise
    timings["load"] = time.perf_counter() - clock - sum(timings.values())
    log(f"snapshot {day}: {sum(o.rows_read or 0 for o in outcomes):,} rows in "
        f"{len(outcomes)} deliveries; " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    return outcomes


def pending(con, deliveries: dict) -> list[tuple[dt.date, str]]:
    """Deliveries whose files changed since they were last processed."""
    seen = {(d, p): fp for d, p, fp in con.execute(
        "SELECT snapshot_date, province_code, fingerprint FROM delivery_state").fetchall()}
    return sorted(k for k, files in deliveries.items() if seen.get(k) != fingerprint(files))


@dg.asset(
    deps=[region_reference], kinds={"duckdb"}, group_name="ingest",
    description="Valid delivered rows, NIK as keyed HMAC-SHA256, no name; one partition per "
                "snapshot date and province office. Writes the delivery's quarantine and "
                "load_log rows in the same transaction.",
    partitions_def=DELIVERIES,
    backfill_policy=dg.BackfillPolicy.single_run(),
    **WAREHOUSE_WRITER,
)
def enrollment_rows(context: dg.AssetExecutionContext, warehouse: Warehouse,
                    settings: Settings):
    pads = hmac_pads()
    deliveries, _ = scan_enrollment(settings.landing_path)
    outcomes: list[Outcome] = []
    with warehouse.connect() as con:
        todo = set(pending(con, deliveries))
        by_day: dict[dt.date, dict[str, list[LandedFile]]] = {}
        for key in context.partition_keys:
            day, province = delivery_key(key)
            if (day, province) in todo:
                by_day.setdefault(day, {})[province] = deliveries[(day, province)]
        for day, batch in sorted(by_day.items()):
            for out in ingest_snapshot(con, day, batch, pads, context.log.info):
                outcomes.append(out)
                log = context.log.warning if out.rejected else context.log.info
                log(f"{out.winner.relpath}: {out.status}, {out.rows_loaded:,} rows loaded, "
                    f"{out.rows_quarantined:,} quarantined"
                    + (f" — {out.rejected}" if out.rejected else ""))
        days = sorted({delivery_key(k)[0] for k in context.partition_keys})
        total = con.execute("SELECT count(*) FROM enrollment_rows WHERE snapshot_date IN "
                            "(SELECT unnest(?))", [days]).fetchone()[0]
    return dg.MaterializeResult(metadata={
        "dagster/row_count": total,
        "deliveries_processed": len(outcomes),
        "files_rejected": sum(bool(o.rejected) for o in outcomes),
        "rows_loaded": sum(o.rows_loaded for o in outcomes),
        "rows_quarantined": sum(o.rows_quarantined for o in outcomes),
    })
