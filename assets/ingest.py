"""Stage: ingest one delivery (snapshot date x province office).

Picks the delivery's file (the one modified last; ties: the greater name), reads it as text,
validates every row with the compiled enrollment schema, pseudonymises the NIK (keyed
HMAC-SHA256, in SQL) and, in one transaction, replaces the delivery's valid rows
(``enrollment_rows``), its quarantined rows (``quarantine``) and its ``load_log`` rows.

A file rejected whole changes nothing already loaded: if an earlier delivery of the same
snapshot and province was loaded, its rows stay in force and the message says so.
"""

import datetime as dt
from dataclasses import dataclass

import dagster as dg

from pipelines.extracts import FileRejected, read_into
from pipelines.landing import LandedFile, fingerprint, scan_enrollment
from pipelines.partitions import DELIVERIES, delivery_key
from pipelines.resources import HMAC_SQL, Settings, Warehouse, hmac_pads
from schemas import enrollment as schema
from schemas.reference import vintage_for
from schemas.rules import messages_sql, reasons_sql, required_columns

from assets.reference import region_reference

REASONS = reasons_sql(schema.ROW_SCHEMA)
MESSAGES = messages_sql(schema.ROW_SCHEMA)
NIK_MASKED = ("CASE WHEN length(nik) >= 12 THEN left(nik, 6) || repeat('*', length(nik) - 6) "
              "ELSE repeat('*', length(nik)) END")
_PARTITION = "snapshot_date = $day AND province_code = $province"


@dataclass
class Outcome:
    key: str
    file: str
    status: str
    rows_read: int | None = None
    rows_loaded: int = 0
    rows_rejected: int = 0
    message: str | None = None


def _stage(con, winner: LandedFile, day: dt.date, province: str) -> int:
    rows = read_into(con, winner.path, schema.TEXT_COLUMNS, required_columns(schema.ROW_SCHEMA))
    con.execute(f"CREATE OR REPLACE TEMP TABLE staged AS SELECT *, {REASONS} AS reasons "
                f"FROM ({schema.PREPARE_SQL})",
                {"snapshot_date": day, "file_province": province,
                 "vintage": vintage_for(day).vintage})
    return rows


def _replace_rows(con, params: dict, pads: tuple[bytes, bytes]) -> tuple[int, int]:
    where = {"day": params["day"], "province": params["province"]}
    con.execute(f"DELETE FROM enrollment_rows WHERE {_PARTITION}", where)
    con.execute(f"DELETE FROM quarantine WHERE {_PARTITION}", where)
    con.execute(f"""
        INSERT INTO enrollment_rows
        SELECT $day, $province, $source_file, row_number, {HMAC_SQL}, kpj, upper(segmen), tier,
               kode, coalesce(ref_province, $province), ref_regency, npp, nama_instansi, tgl,
               paid_month
        FROM staged WHERE len(reasons) = 0""",
        {**params, "ipad": pads[0], "opad": pads[1]})
    con.execute(f"""
        INSERT INTO quarantine
        SELECT $day, $source_file, row_number, $province, reasons, {MESSAGES},
               {NIK_MASKED}, kpj, segmen, tingkat, kode_wilayah, npp, nama_instansi,
               tgl_kepesertaan, bulan_iuran_terakhir
        FROM staged WHERE len(reasons) > 0""", params)
    return con.execute("SELECT count(*) FILTER (len(reasons) = 0), "
                       "count(*) FILTER (len(reasons) > 0) FROM staged").fetchone()


def _log(con, day, province, f: LandedFile, sha, rows_read, loaded, rejected, status, message):
    con.execute("DELETE FROM load_log WHERE snapshot_date = ? AND source_file = ?",
                [day, f.relpath])
    con.execute("INSERT INTO load_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP)",
                [day, f.relpath, province, sha, rows_read, loaded, rejected, status, message])


def load_delivery(con, day: dt.date, province: str, files: list[LandedFile],
                  pads: tuple[bytes, bytes]) -> Outcome:
    winner, older = files[0], files[1:]
    sha = winner.sha256()
    key = f"{day}|{province}"
    try:
        rows_read, rejected = _stage(con, winner, day, province), None
    except FileRejected as exc:
        rows_read, rejected = exc.rows_read, exc
    where = {"day": day, "province": province}
    params = {**where, "source_file": winner.relpath}
    con.begin()
    try:
        kept = []
        if rejected is None:
            loaded, quarantined = _replace_rows(con, params, pads)
            con.execute(f"DELETE FROM load_log WHERE {_PARTITION}", where)
            outcome = Outcome(key, winner.relpath, "loaded", rows_read, loaded, quarantined)
        else:
            kept = [r[0] for r in con.execute(
                f"SELECT source_file FROM load_log WHERE {_PARTITION} AND status = 'loaded'",
                where).fetchall()]
            message = rejected.message
            if kept:
                message += f"; the earlier delivery {', '.join(kept)} stays in force"
            else:
                con.execute(f"DELETE FROM load_log WHERE {_PARTITION}", where)
            outcome = Outcome(key, winner.relpath, "rejected", rows_read, message=message)
        _log(con, day, province, winner, sha, outcome.rows_read, outcome.rows_loaded,
             outcome.rows_rejected, outcome.status, outcome.message)
        for f in older:
            if f.relpath not in kept:
                _log(con, day, province, f, f.sha256(), None, 0, 0, "superseded",
                     f"superseded by {winner.relpath}, delivered later")
        con.execute(f"DELETE FROM delivery_state WHERE {_PARTITION}", where)
        con.execute("INSERT INTO delivery_state VALUES (?, ?, ?, now()::TIMESTAMP)",
                    [day, province, fingerprint(files)])
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return outcome


def pending(con, deliveries: dict) -> list[tuple[dt.date, str]]:
    """Deliveries whose files changed since they were last processed."""
    seen = dict(((d, p), fp) for d, p, fp in con.execute(
        "SELECT snapshot_date, province_code, fingerprint FROM delivery_state").fetchall())
    return sorted(k for k, files in deliveries.items() if seen.get(k) != fingerprint(files))


@dg.asset(
    deps=[region_reference], kinds={"duckdb"}, group_name="ingest",
    description="Valid delivered rows, NIK as keyed HMAC-SHA256, no name; one partition per "
                "snapshot date and province office. Writes the delivery's quarantine and "
                "load_log rows in the same transaction.",
    partitions_def=DELIVERIES,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="warehouse",
)
def enrollment_rows(context: dg.AssetExecutionContext, warehouse: Warehouse,
                    settings: Settings):
    pads = hmac_pads()
    deliveries, _ = scan_enrollment(settings.landing_path)
    outcomes: list[Outcome] = []
    with warehouse.connect() as con:
        todo = set(pending(con, deliveries))
        for key in context.partition_keys:
            day, province = delivery_key(key)
            if (day, province) not in todo:
                continue
            outcome = load_delivery(con, day, province, deliveries[(day, province)], pads)
            outcomes.append(outcome)
            log = context.log.info if outcome.status == "loaded" else context.log.warning
            log(f"{outcome.file}: {outcome.status}, {outcome.rows_loaded:,} rows loaded, "
                f"{outcome.rows_rejected:,} quarantined"
                + (f" — {outcome.message}" if outcome.message else ""))
        days = sorted({delivery_key(k)[0] for k in context.partition_keys})
        total = con.execute("SELECT count(*) FROM enrollment_rows WHERE snapshot_date IN "
                            "(SELECT unnest(?))", [days]).fetchone()[0]
    return dg.MaterializeResult(metadata={
        "dagster/row_count": total,
        "deliveries_processed": len(outcomes),
        "files_rejected": sum(o.status == "rejected" for o in outcomes),
        "rows_loaded": sum(o.rows_loaded for o in outcomes),
        "rows_quarantined": sum(o.rows_rejected for o in outcomes),
    })
