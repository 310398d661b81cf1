"""Independent plain-DuckDB reference implementation of the cakupan data contract (v1.2).

This is what a data engineer might write without Dagster or pandera: one DuckDB connection,
set-based SQL, file paths always bound as parameters. It computes the two headline tables of the
contract, ``coverage_by_tier`` and ``coverage_national``, for every snapshot of a landing zone, so
that ``bench/run.py`` can (a) time the pipeline against it and (b) cross-check the pipeline's
numbers. It deliberately shares no code with ``pipelines/``, ``assets/`` or ``schemas/``.

Stages (timed separately):
  reference   load the Kemendagri vintages (``reference/wilayah_<year>.csv``)
  discover    list enrollment files, pick the winner per (snapshot, province), sniff CSV headers
  load        read every winning file (CSV: one ``read_csv`` per header layout over a bound list of
              paths; XLSX: python-calamine into Arrow; Parquet: ``read_parquet(?)``) and apply every
              row rule of the contract in the same statement -> table ``rows``
  hash_dedupe HMAC-SHA256 each valid NIK in SQL (RFC 2104 over ``sha256``) and keep one row per
              (snapshot, tier, NIK) -> table ``person_tier``
  potential   read the potential (denominator) sets and pick the one in force per snapshot
  aggregate   coverage_by_tier and coverage_national

Dedupe note: among one NIK's rows in one tier, the contract's decider is the row with the latest
``bulan_iuran_terakhir`` (empty lowest), ties broken by tgl_kepesertaan, source_file, row_number.
Whether the person is active depends only on that month, and every tie-break candidate has the
same month, so for these two tables the decider reduces exactly to ``max(bulan)`` per group; the
later tie-breaks only choose the person's *region*, which these tables do not report.

Contract v1.2: of its file rules, those that can change these two tables are followed (a
symlink or a path whose real location is outside the landing zone is rejected unread; a column
named twice rejects the file; a CSV line over 1 MiB rejects the file; a misnamed file is not
loaded). The v1.2 tables (trends, targets, published figures) are not computed; ``targets/`` and
``published/`` are ignored.

CLI: python bench/reference.py LANDING_DIR [--out results.json] [--grace-months 3]
The HMAC key is read from the environment variable CAKUPAN_HMAC_KEY.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import io
import json
import os
import re
import sys
import time
from pathlib import Path

import duckdb

# What a file that cannot be read raises (anything else is a bug and propagates).
READ_ERRORS = (duckdb.InvalidInputException, duckdb.IOException, duckdb.ConversionException)

DEFAULT_REFERENCE_DIR = Path(__file__).resolve().parent.parent / "reference"

# Unicode whitespace: the characters with the Unicode White_Space property (U+0009-000D, U+0020,
# U+0085, U+00A0, U+1680, U+2000-200A, U+2028, U+2029, U+202F, U+205F, U+3000). Not U+FEFF (a BOM
# is a format character) nor U+001C-001F (Python's str.isspace() accepts those; Unicode does not).
WS = "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(chr(c) for c in range(0x2000, 0x200B)) + "\u2028\u2029\u202f\u205f\u3000"
WS_RE = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in WS) + "]"

TIERS = ["KL", "PROV", "KABKOTA", "KEC", "DESA", "RTRW"]
TIER_LABELS = {
    "KL": "Kementerian/Lembaga",
    "PROV": "Provinsi",
    "KABKOTA": "Kabupaten/Kota",
    "KEC": "Kecamatan",
    "DESA": "Kelurahan/Desa",
    "RTRW": "RT/RW",
}
# Accepted spellings after removing all whitespace and lower-casing.
TIER_ALIASES = {
    "KL": ["kl", "kementerian/lembaga", "k/l"],
    "PROV": ["prov", "provinsi"],
    "KABKOTA": ["kabkota", "kabupaten/kota", "kab/kota", "kabupaten", "kota"],
    "KEC": ["kec", "kecamatan"],
    "DESA": ["desa", "kelurahan/desa", "kelurahan"],
    "RTRW": ["rtrw", "rt/rw", "rt", "rw"],
}
TIER_LEVEL = {"PROV": "provinsi", "KABKOTA": "kabkota", "KEC": "kecamatan", "DESA": "desa", "RTRW": "desa"}

REQUIRED = ["nik", "nama", "segmen", "tingkat", "kode_wilayah", "tgl_kepesertaan", "bulan_iuran_terakhir"]
# Columns the counting needs (nama is required to be present, but never read past the header).
USED = ["nik", "segmen", "tingkat", "kode_wilayah", "tgl_kepesertaan", "bulan_iuran_terakhir"]
DATE_COLS = {"tgl_kepesertaan", "bulan_iuran_terakhir"}

ENROLL_NAME = re.compile(r"^(\d{2})(?:_[^/]*)?\.(csv|xlsx|parquet)$", re.IGNORECASE)
DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# v1.2: a CSV line longer than 1 MiB rejects the file (DuckDB counts the line without its
# line break; the pipeline's exact boundary may differ by the break, which no demo file nears).
MAX_LINE = 1 << 20

# Marker prepended to a value whose cell type makes it invalid (a NIK delivered as a number, a
# bare number in a date column). It can never survive the format checks below.
BAD = "\x00"


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------

def _parse_date_dir(name: str) -> dt.date | None:
    if not DATE_DIR.match(name):
        return None
    try:
        return dt.date.fromisoformat(name)
    except ValueError:
        return None


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """RFC 2104 inner/outer padded keys for HMAC-SHA256 (block size 64)."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def _norm_header(name) -> str:
    return str(name if name is not None else "").strip(WS).lower()


def _sniff_csv(path: Path) -> tuple[str, list[str]]:
    """Return (delimiter, normalized header names) or raise ValueError with the reason."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    if not head:
        raise ValueError("empty file (0 bytes)")
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # a multi-byte character cut at the 1 MiB boundary is not an encoding error
        if exc.start < len(head) - 4:
            raise ValueError("not UTF-8 encoded") from None
        text = head[: exc.start].decode("utf-8-sig")
    line = text.splitlines()[0] if text.strip(WS) else ""
    if not line.strip(WS):
        raise ValueError("no header row")
    delim = ";" if line.count(";") > line.count(",") else ","
    header = next(csv.reader(io.StringIO(line), delimiter=delim, quotechar='"'))
    return delim, [_norm_header(h) for h in header]


def _confinement_problem(root: Path, path: Path) -> str | None:
    """Why a landed file must not be read (v1.2): a symlink on the way (the snapshot folder or
    the file), a real location outside the landing zone, or not a regular file."""
    root = Path(root)
    current = root
    for part in path.relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            return "reached through a symbolic link: only regular files are read"
    try:
        Path(os.path.realpath(path)).relative_to(Path(os.path.realpath(root)))
    except ValueError:
        return "real location outside the landing zone"
    if not path.is_file():
        return "not a regular file"
    return None


def _missing(names: list[str]) -> list[str]:
    have = set(names)
    return [c for c in REQUIRED if c not in have]


def _header_problem(names: list[str]) -> str | None:
    """Why a header rejects the file, or None. A column named twice (after trimming and
    lower-casing) is ambiguous: which one holds the value is a guess, so the file is rejected."""
    miss = _missing(names)
    if miss:
        return "missing required column(s): " + ", ".join(miss)
    dup = sorted({n for n in names if n and names.count(n) > 1})
    if dup:
        return "duplicate column(s): " + ", ".join(dup)
    return None


def _xlsx_cell(kind: str):
    """Converter of one python-calamine cell value to text, by column kind."""

    def nik(v):
        if isinstance(v, str):
            return v
        if v is None:
            return None
        return BAD + repr(v)  # a number (or date/bool) cell: its digits cannot be trusted

    def date(v):
        if isinstance(v, str):
            return v
        if isinstance(v, dt.datetime):
            return v.date().isoformat()
        if isinstance(v, dt.date):
            return v.isoformat()
        if v is None:
            return None
        return BAD + repr(v)  # Excel serial, bool, time: invalid

    def text(v):
        if isinstance(v, str):
            return v
        if isinstance(v, bool):
            return str(v)
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        if isinstance(v, dt.datetime):
            return v.date().isoformat()
        if isinstance(v, dt.date):
            return v.isoformat()
        return None if v is None else str(v)

    return {"nik": nik, "date": date, "text": text}[kind]


def _kind(col: str) -> str:
    return "nik" if col == "nik" else ("date" if col in DATE_COLS else "text")


# --------------------------------------------------------------------------------------------
# the reference
# --------------------------------------------------------------------------------------------

# Validation applied to every source relation ``src(file_id, nik, segmen, tingkat, kode, tgl, bulan)``
# (raw text). ``files`` carries the per-file snapshot, its month index, the file's province and the
# reference vintage in force. Output: one row per data row, with `ok` and, for valid rows, the
# NIK as BIGINT (16 digits, first digit non-zero: exact), tier and month index of the last payment.
def T(x: str) -> str:
    """SQL: `x` trimmed of Unicode whitespace. trim(x, chars) is slow on every row, so it only
    runs when the first or last character is whitespace (same result, ~10x faster)."""
    return f"(CASE WHEN contains($ws, {x}[1]) OR contains($ws, {x}[-1]) THEN trim({x}, $ws) ELSE {x} END)"


# tier label (lower-cased, whitespace removed as `tl`) -> tier code, for enrollment and potential
TIER_CASE = ("CASE WHEN tl IN ('kl', 'kementerian/lembaga', 'k/l') THEN 'KL' "
             "WHEN tl IN ('prov', 'provinsi') THEN 'PROV' "
             "WHEN tl IN ('kabkota', 'kabupaten/kota', 'kab/kota', 'kabupaten', 'kota') "
             "THEN 'KABKOTA' "
             "WHEN tl IN ('kec', 'kecamatan') THEN 'KEC' "
             "WHEN tl IN ('desa', 'kelurahan/desa', 'kelurahan') THEN 'DESA' "
             "WHEN tl IN ('rtrw', 'rt/rw', 'rt', 'rw') THEN 'RTRW' END")

VALIDATE_SQL = r"""
a AS (
    SELECT s.file_id, f.snap, f.snap_m, f.prov, f.vintage,
           nullif(@T(s.nik)@, '')                              AS nik,
           upper(@T(s.segmen)@)                                AS seg,
           lower(regexp_replace(coalesce(s.tingkat, ''), $wsre, '', 'g')) AS tl,
           s.kode AS kode_raw,
           nullif(@T(s.tgl)@, '')                              AS tgl,
           s.bulan AS bln_raw
    FROM src s JOIN files f ON f.file_id = s.file_id
), a2 AS (
    -- empty = NULL, '', whitespace only, or the word null (any case)
    SELECT a.* EXCLUDE (kode_raw, bln_raw),
           CASE WHEN lower(@T(kode_raw)@) NOT IN ('', 'null') THEN @T(kode_raw)@ END AS kode,
           CASE WHEN lower(@T(bln_raw)@) NOT IN ('', 'null') THEN @T(bln_raw)@ END AS bln
    FROM a
), b AS (
    SELECT a2.*,
        @TIER@ AS tier,
        CASE WHEN regexp_full_match(kode, '[0-9]{2}(\.[0-9]{2}(\.[0-9]{2}(\.[0-9]{4})?)?)?') THEN kode
             WHEN regexp_full_match(kode, '[0-9]{2}|[0-9]{4}|[0-9]{6}|[0-9]{10}')
                  THEN concat_ws('.', substr(kode, 1, 2), nullif(substr(kode, 3, 2), ''),
                                 nullif(substr(kode, 5, 2), ''), nullif(substr(kode, 7, 4), ''))
        END AS kn,
        CASE WHEN regexp_full_match(tgl, '[0-9]{4}-[0-9]{2}-[0-9]{2}') AND tgl[1:4] <> '0000'
                  THEN try_cast(tgl AS DATE)
             WHEN regexp_full_match(tgl, '[0-9]{2}/[0-9]{2}/[0-9]{4}') AND tgl[7:10] <> '0000'
                  THEN CAST(try_strptime(tgl, '%d/%m/%Y') AS DATE)
        END AS tg,
        -- bulan: YYYY-MM as a month index; a full date of either form as a date (its month below)
        CASE WHEN regexp_full_match(bln, '[0-9]{4}-(0[1-9]|1[0-2])') AND bln[1:4] <> '0000'
                  THEN 12 * CAST(bln[1:4] AS INTEGER) + CAST(bln[6:7] AS INTEGER)
        END AS bm_ym,
        CASE WHEN regexp_full_match(bln, '[0-9]{4}-[0-9]{2}-[0-9]{2}') AND bln[1:4] <> '0000'
                  THEN try_cast(bln AS DATE)
             WHEN regexp_full_match(bln, '[0-9]{2}/[0-9]{2}/[0-9]{4}') AND bln[7:10] <> '0000'
                  THEN CAST(try_strptime(bln, '%d/%m/%Y') AS DATE)
        END AS bd
    FROM a2
), b2 AS (
    SELECT b.* EXCLUDE (bm_ym, bd), coalesce(bm_ym, 12 * year(bd) + month(bd)) AS bm FROM b
), c AS (
    SELECT b.*, w.tingkat AS wlevel,
        coalesce(
            regexp_full_match(nik, '[0-9]{16}')
            AND list_contains($nik_provs, nik[1:2])
            AND (try_cast(nik[7:8] AS INTEGER) BETWEEN 1 AND 31
                 OR try_cast(nik[7:8] AS INTEGER) BETWEEN 41 AND 71)
            AND try_cast(nik[9:10] AS INTEGER) BETWEEN 1 AND 12
            AND seg IN ('PU', 'BPU')
            AND tier IS NOT NULL
            AND CASE WHEN tier = 'KL'
                     THEN b.kode IS NULL OR (w.kode IS NOT NULL AND kn[1:2] = prov)
                     ELSE w.kode IS NOT NULL AND kn[1:2] = prov
                          AND w.tingkat = CASE tier WHEN 'PROV' THEN 'provinsi'
                                                    WHEN 'KABKOTA' THEN 'kabkota'
                                                    WHEN 'KEC' THEN 'kecamatan'
                                                    ELSE 'desa' END
                END
            AND tg IS NOT NULL AND tg <= snap
            AND (bln IS NULL
                 OR (bm IS NOT NULL AND bm - snap_m <= 12 AND bm >= 12 * year(tg) + month(tg))),
            false) AS ok
    FROM b2 AS b LEFT JOIN wilayah w ON w.vintage = b.vintage AND w.kode = b.kn
)
SELECT file_id, ok,
       CASE WHEN ok THEN tier END,
       CASE WHEN ok THEN CAST(nik AS BIGINT) END,
       CASE WHEN ok THEN bm END
FROM c
"""
VALIDATE_SQL = re.sub(r"@T\((.*?)\)@", lambda m: T(m.group(1)), VALIDATE_SQL).replace("@TIER@", TIER_CASE)


class Reference:
    def __init__(self, landing: Path, grace_months: int = 3, hmac_key: bytes | None = None,
                 reference_dir: Path | None = None, threads: int | None = None):
        self.landing = Path(landing)
        self.grace = int(grace_months)
        if hmac_key is None:
            env = os.environ.get("CAKUPAN_HMAC_KEY")
            if not env:
                raise SystemExit("CAKUPAN_HMAC_KEY is not set: the reference hashes NIKs like the pipeline")
            hmac_key = env.encode("utf-8")
        self.ipad, self.opad = hmac_pads(hmac_key)
        self.reference_dir = Path(reference_dir or DEFAULT_REFERENCE_DIR)
        self.con = duckdb.connect(":memory:")
        self.con.execute("SET preserve_insertion_order = false")  # row order is never used
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        self.timings: dict[str, float] = {}
        self.files: list[dict] = []  # one per enrollment file seen: the reference's load log

    # ---- timing --------------------------------------------------------------------------
    def _timed(self, stage, fn, *args):
        t0 = time.perf_counter()
        out = fn(*args)
        self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - t0
        return out

    def run(self) -> dict:
        t0 = time.perf_counter()
        self._timed("reference", self.load_reference)
        by_snapshot = self._timed("discover", self.discover)
        self._timed("potential", self.load_potential)
        # One snapshot at a time (like the pipeline's partitions): memory stays at one snapshot's
        # rows and hash tables. Stage times are summed over snapshots.
        self.tier_counts, self.national_counts, self.person_tier_rows = {}, {}, 0
        for snap in sorted(by_snapshot):
            self._timed("load", self.load, by_snapshot[snap])
            self._timed("hash_dedupe", self.hash_dedupe, snap)
            self._timed("aggregate", self.count, snap)
        out = self._timed("aggregate", self.aggregate)
        self.timings["total"] = time.perf_counter() - t0
        out["timings"] = {k: round(v, 4) for k, v in self.timings.items()}
        return out

    # ---- reference data --------------------------------------------------------------------
    def load_reference(self):
        con = self.con
        with open(self.reference_dir / "vintages.csv", newline="", encoding="utf-8") as fh:
            self.vintages = sorted(
                (dt.date.fromisoformat(r["in_force_from"]), r["vintage"], r["file"]) for r in csv.DictReader(fh)
            )
        con.execute("CREATE TABLE wilayah (vintage VARCHAR, kode VARCHAR, tingkat VARCHAR)")
        for _, vintage, fname in self.vintages:
            con.execute(
                "INSERT INTO wilayah SELECT ?, kode, tingkat FROM read_csv(?, header=true, auto_detect=false,"
                " columns={'kode':'VARCHAR','nama':'VARCHAR','tingkat':'VARCHAR','kode_induk':'VARCHAR'},"
                " delim=',', quote='\"', escape='\"')",
                [vintage, str(self.reference_dir / fname)],
            )
        self.provinces_by_vintage = {
            v: {r[0] for r in con.execute(
                "SELECT kode FROM wilayah WHERE vintage = ? AND tingkat = 'provinsi'", [v]).fetchall()}
            for _, v, _ in self.vintages
        }
        self.nik_provs = sorted(set().union(*self.provinces_by_vintage.values()))

    def vintage_for(self, snap: dt.date) -> str:
        chosen = self.vintages[0][1]  # older than every vintage: the oldest
        for start, vintage, _ in self.vintages:
            if start <= snap:
                chosen = vintage
        return chosen

    # ---- discovery ---------------------------------------------------------------------------
    def discover(self):
        """Pick the winning file per (snapshot, province); sniff CSV headers; group the readable
        winners by format and header layout so that each group is read by one statement."""
        root = self.landing / "enrollment"
        cands: dict[tuple, list] = {}
        if root.is_dir():
            for d in sorted(root.iterdir()):
                snap = _parse_date_dir(d.name) if d.is_dir() else None
                if snap is None:
                    continue
                for p in sorted(d.iterdir()):
                    m = ENROLL_NAME.match(p.name)
                    if not m or not (p.is_symlink() or p.is_file()):
                        continue
                    problem = _confinement_problem(self.landing, p)
                    st = p.lstat()
                    rec = {
                        "source_file": p.relative_to(self.landing).as_posix(),
                        "path": str(p),
                        "snapshot_date": snap,
                        "province_code": m.group(1),
                        "fmt": m.group(2).lower(),
                        "mtime_ns": st.st_mtime_ns,
                        "size": st.st_size,
                        "status": None,
                        "rows_read": None,
                        "rows_rejected": None,
                        "rows_loaded": 0,
                        "message": None,
                    }
                    if problem:
                        rec["problem"] = problem
                    cands.setdefault((snap, m.group(1)), []).append(rec)
        winners = []
        for key, recs in sorted(cands.items()):
            recs.sort(key=lambda r: (r["mtime_ns"], r["source_file"].rsplit("/", 1)[-1]))
            win = recs[-1]
            for r in recs[:-1]:
                r["status"] = "superseded"
                r["rows_rejected"] = 0  # contributes nothing: no row read, none quarantined
                r["message"] = f"superseded by {win['source_file']}"
            winners.append(win)
            self.files.extend(recs)

        csv_groups: dict[tuple, list] = {}
        others = []
        for i, rec in enumerate(winners):
            rec["file_id"] = i
            rec["vintage"] = self.vintage_for(rec["snapshot_date"])
            if rec.get("problem"):
                self._reject(rec, rec["problem"])  # never read
                continue
            if rec["province_code"] not in self.provinces_by_vintage[rec["vintage"]]:
                self._reject(rec, f"province code {rec['province_code']} does not exist in "
                                  f"reference vintage {rec['vintage']}")
                continue
            if rec["size"] == 0:
                self._reject(rec, "empty file (0 bytes)")
                continue
            if rec["fmt"] == "csv":
                try:
                    delim, names = _sniff_csv(Path(rec["path"]))
                except ValueError as exc:
                    self._reject(rec, str(exc))
                    continue
                problem = _header_problem(names)
                if problem:
                    self._reject(rec, problem)
                    continue
                csv_groups.setdefault((rec["snapshot_date"], delim, tuple(names)), []).append(rec)
            else:
                others.append(rec)
        by_snapshot = {r["snapshot_date"]: ({}, []) for r in winners}
        for (snap, delim, names), recs in csv_groups.items():
            by_snapshot[snap][0][(delim, names)] = recs
        for r in others:
            by_snapshot[r["snapshot_date"]][1].append(r)

        s = dt.date(1970, 1, 1)
        self.con.execute(
            "CREATE TABLE files (file_id INTEGER, path VARCHAR, snap DATE, snap_m INTEGER, prov VARCHAR, vintage VARCHAR)")
        self.con.executemany(
            "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?)",
            [[r["file_id"], r["path"], r["snapshot_date"], 12 * r["snapshot_date"].year + r["snapshot_date"].month,
              r["province_code"], r["vintage"]] for r in winners] or [[-1, "", s, 0, "", ""]],
        )
        self.winners = winners
        return by_snapshot

    @staticmethod
    def _reject(rec, message):
        rec["status"] = "rejected"
        rec["message"] = f"{rec['source_file']}: {message}"
        rec["rows_loaded"] = 0

    # ---- load + validate --------------------------------------------------------------------
    def _params(self):
        return {"ws": WS, "wsre": WS_RE, "nik_provs": self.nik_provs}

    def _insert(self, src_sql: str, params: dict):
        """Run VALIDATE_SQL over the relation `src_sql` (bound params merged in)."""
        sql = "INSERT INTO rows WITH src AS (" + src_sql + "),\n" + VALIDATE_SQL
        self.con.execute(sql, {**self._params(), **params})

    def _csv_src(self, delim: str, names: tuple, many: bool) -> str:
        cols = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(names)))
        idx = {}
        for i, n in enumerate(names):
            idx.setdefault(n, i)
        pick = ", ".join(
            f"c{idx[c]} AS {alias}" for c, alias in
            zip(USED, ["nik", "segmen", "tingkat", "kode", "tgl", "bulan"])
        )
        fid = "f.file_id" if many else "$file_id"
        src = (f"read_csv($paths, header=true, auto_detect=false, columns={{{cols}}}, delim=$delim,"
               f" quote='\"', escape='\"', max_line_size={MAX_LINE}, filename=true)")
        if many:
            return (f"SELECT {fid} AS file_id, {pick} FROM {src} r JOIN files f ON f.path = r.filename")
        return f"SELECT {fid} AS file_id, {pick} FROM {src} r"

    def load(self, groups):
        """Read and validate one snapshot's winning files into `rows` (replaced per snapshot)."""
        csv_groups, others = groups
        self.con.execute(
            "CREATE OR REPLACE TABLE rows (file_id INTEGER, ok BOOLEAN, tier VARCHAR, nik BIGINT, bm INTEGER)")
        for (delim, names), recs in csv_groups.items():
            try:
                self._insert(self._csv_src(delim, names, True), {"paths": [r["path"] for r in recs], "delim": delim})
                for r in recs:
                    r["status"] = "loaded"
            except READ_ERRORS:
                # one bad file fails the whole group: read them one by one to find it
                for r in recs:
                    try:
                        self._insert(self._csv_src(delim, names, False),
                                     {"paths": r["path"], "delim": delim, "file_id": r["file_id"]})
                        r["status"] = "loaded"
                    except READ_ERRORS as exc:
                        self._reject(r, "unreadable CSV: " + str(exc).splitlines()[0])
        for r in others:
            try:
                if r["fmt"] == "xlsx":
                    self._load_xlsx(r)
                else:
                    self._load_parquet(r)
                r["status"] = "loaded"
            except READ_ERRORS + (ValueError,) as exc:
                self._reject(r, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        # per-file counts (the reference's load log)
        counts = dict(((fid, (n, bad)) for fid, n, bad in self.con.execute(
            "SELECT file_id, count(*), count(*) FILTER (WHERE NOT ok) FROM rows GROUP BY file_id").fetchall()))
        for r in [r for recs in csv_groups.values() for r in recs] + others:
            if r["status"] == "loaded":
                n, bad = counts.get(r["file_id"], (0, 0))
                r["rows_read"], r["rows_rejected"], r["rows_loaded"] = n, bad, n - bad

    def _load_xlsx(self, rec):
        import pyarrow as pa
        from python_calamine import CalamineWorkbook

        try:
            wb = CalamineWorkbook.from_path(rec["path"])
            data = wb.get_sheet_by_index(0).to_python()
        except Exception as exc:
            raise ValueError(f"unreadable XLSX: {type(exc).__name__}: {exc}") from None
        if not data:
            raise ValueError("empty workbook (no header row)")
        names = [_norm_header(h) for h in data[0]]
        problem = _header_problem(names)
        if problem:
            raise ValueError(problem)
        idx = {}
        for i, n in enumerate(names):
            idx.setdefault(n, i)
        body = data[1:]
        # drop trailing completely empty rows (calamine pads the used range)
        while body and all(v in ("", None) for v in body[-1]):
            body.pop()
        cols = {"file_id": pa.array([rec["file_id"]] * len(body), pa.int32())}
        for c, alias in zip(USED, ["nik", "segmen", "tingkat", "kode", "tgl", "bulan"]):
            conv = _xlsx_cell(_kind(c))
            j = idx[c]
            cols[alias] = pa.array([conv(row[j]) if j < len(row) else None for row in body], pa.string())
        table = pa.table(cols)
        self.con.register("xlsx_src", table)
        try:
            self._insert("SELECT * FROM xlsx_src", {})
        finally:
            self.con.unregister("xlsx_src")

    def _load_parquet(self, rec):
        try:
            schema = self.con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [rec["path"]]).fetchall()
        except READ_ERRORS as exc:
            raise ValueError("unreadable Parquet: " + str(exc).splitlines()[0]) from None
        types = {}
        for name, typ, *_ in schema:
            types.setdefault(_norm_header(name), (name, typ.upper()))
        problem = _header_problem([_norm_header(r[0]) for r in schema])
        if problem:
            raise ValueError(problem)
        exprs = []
        for c, alias in zip(USED, ["nik", "segmen", "tingkat", "kode", "tgl", "bulan"]):
            name, typ = types[c]
            q = '"' + name.replace('"', '""') + '"'
            is_text = typ == "VARCHAR"
            is_date = typ == "DATE" or typ.startswith("TIMESTAMP")
            kind = _kind(c)
            if is_text:
                e = q
            elif kind == "nik":
                e = f"chr(0) || CAST({q} AS VARCHAR)"  # NIK as a number: invalid
            elif kind == "date":
                e = f"strftime(CAST({q} AS DATE), '%Y-%m-%d')" if is_date else f"chr(0) || CAST({q} AS VARCHAR)"
            elif typ in ("FLOAT", "DOUBLE"):
                e = (f"CASE WHEN {q} = trunc({q}) THEN CAST(CAST({q} AS HUGEINT) AS VARCHAR)"
                     f" ELSE CAST({q} AS VARCHAR) END")
            elif is_date:
                e = f"strftime(CAST({q} AS DATE), '%Y-%m-%d')"
            else:
                e = f"CAST({q} AS VARCHAR)"
            exprs.append(f"{e} AS {alias}")
        self._insert(f"SELECT $file_id AS file_id, {', '.join(exprs)} FROM read_parquet($path)",
                     {"file_id": rec["file_id"], "path": rec["path"]})

    # ---- HMAC + dedupe ------------------------------------------------------------------------
    def hash_dedupe(self, snap: dt.date):
        """One row per (tier, NIK) of the snapshot, the NIK as its HMAC-SHA256:
        HMAC(key, nik) = sha256(opad_key || sha256(ipad_key || nik)) (RFC 2104)."""
        self.con.execute(
            """
            CREATE OR REPLACE TABLE person_tier AS
            SELECT tier,
                   unhex(sha256($opad || unhex(sha256($ipad || encode(CAST(nik AS VARCHAR)))))) AS nik_hmac,
                   max(bm) AS bm          -- the latest bulan decides; NULL (never paid) sorts lowest
            FROM rows
            WHERE ok
            GROUP BY ALL
            """,
            {"ipad": self.ipad, "opad": self.opad},
        )
        self.con.execute("DROP TABLE rows")

    # ---- potential ---------------------------------------------------------------------------
    def load_potential(self):
        """Potential sets: potential/<date>/*.csv, one set per date; a duplicated (tier, code)
        rejects the set; the newest valid set on or before a snapshot is in force."""
        con = self.con
        con.execute("CREATE TABLE potential_raw (set_date DATE, source_file VARCHAR, tingkat VARCHAR, "
                    "kode VARCHAR, potensi VARCHAR)")
        self.potential_log = []
        root = self.landing / "potential"
        dates = []
        if root.is_dir():
            for d in sorted(root.iterdir()):
                date = _parse_date_dir(d.name) if d.is_dir() else None
                if date is None:
                    continue
                dates.append(date)
                for p in sorted(d.iterdir()):
                    if not (p.is_file() and p.suffix.lower() == ".csv"):
                        continue
                    rel = p.relative_to(self.landing).as_posix()
                    try:
                        if p.stat().st_size == 0:
                            raise ValueError("empty file (0 bytes)")
                        delim, names = _sniff_csv(p)
                        miss = [c for c in ("tingkat", "kode_wilayah", "potensi") if c not in names]
                        if miss:
                            raise ValueError("missing required column(s): " + ", ".join(miss))
                        idx = {}
                        for i, n in enumerate(names):
                            idx.setdefault(n, i)
                        cols = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(names)))
                        con.execute(
                            f"INSERT INTO potential_raw SELECT $d, $rel, c{idx['tingkat']}, c{idx['kode_wilayah']}, "
                            f"c{idx['potensi']} FROM read_csv($path, header=true, auto_detect=false, "
                            f"columns={{{cols}}}, delim=$delim, quote='\"', escape='\"')",
                            {"d": date, "rel": rel, "path": str(p), "delim": delim},
                        )
                        self.potential_log.append({"source_file": rel, "status": "loaded", "message": None})
                    except READ_ERRORS + (ValueError,) as exc:
                        self.potential_log.append({"source_file": rel, "status": "rejected",
                                                   "message": str(exc).splitlines()[0]})
        con.execute(
            r"""
            CREATE TABLE potential AS
            WITH a AS (
                SELECT set_date,
                       lower(regexp_replace(coalesce(tingkat, ''), $wsre, '', 'g')) AS tl,
                       CASE WHEN lower(trim(kode, $ws)) NOT IN ('', 'null') THEN trim(kode, $ws) END AS kode,
                       nullif(trim(potensi, $ws), '') AS potensi  -- a few rows: plain trim is fine
                FROM potential_raw
            ), b AS (
                SELECT set_date,
                    @TIER@ AS tier,
                    CASE WHEN kode IS NULL THEN ''
                         WHEN regexp_full_match(kode, '[0-9]{2}(\.[0-9]{2}(\.[0-9]{2}(\.[0-9]{4})?)?)?') THEN kode
                         WHEN regexp_full_match(kode, '[0-9]{2}|[0-9]{4}|[0-9]{6}|[0-9]{10}')
                              THEN concat_ws('.', substr(kode, 1, 2), nullif(substr(kode, 3, 2), ''),
                                             nullif(substr(kode, 5, 2), ''), nullif(substr(kode, 7, 4), ''))
                         ELSE kode END AS kn,
                    CASE WHEN regexp_full_match(potensi, '[0-9]+') THEN CAST(potensi AS BIGINT) END AS potensi
                FROM a
            )
            SELECT * FROM b WHERE tier IS NOT NULL AND potensi IS NOT NULL
            """.replace("@TIER@", TIER_CASE),
            {"ws": WS, "wsre": WS_RE},
        )
        dup = {r[0] for r in con.execute(
            "SELECT DISTINCT set_date FROM (SELECT set_date, tier, kn FROM potential GROUP BY ALL HAVING count(*) > 1)"
        ).fetchall()}
        self.potential_sets = {}
        for d in dates:
            if d in dup:
                self.potential_log.append({"source_file": f"potential/{d.isoformat()}", "status": "rejected",
                                           "message": "duplicated (tier, kode_wilayah) in the set"})
            else:
                self.potential_sets[d] = {
                    t: v for t, v in con.execute(
                        "SELECT tier, potensi FROM potential WHERE set_date = ? AND kn = ''", [d]).fetchall()
                }

    def potential_for(self, snap: dt.date) -> dict:
        in_force = [d for d in self.potential_sets if d <= snap]
        return self.potential_sets[max(in_force)] if in_force else {}

    # ---- aggregate -----------------------------------------------------------------------------
    def count(self, snap: dt.date):
        """Active / inactive per tier and nationally (distinct NIK) for one snapshot."""
        con = self.con
        params = {"snap_m": 12 * snap.year + snap.month, "grace": self.grace}
        active = "coalesce($snap_m - bm <= $grace, false)"  # NULL bm = never paid = inactive
        for t, a, i in con.execute(
                f"SELECT tier, count(*) FILTER (WHERE {active}), count(*) FILTER (WHERE NOT {active}) "
                "FROM person_tier GROUP BY tier", params).fetchall():
            self.tier_counts[(snap, t)] = (a, i)
        a, i, n = con.execute(
            "SELECT count(*) FILTER (WHERE a), count(*) FILTER (WHERE NOT a), sum(n) FROM "
            f"(SELECT nik_hmac, bool_or({active}) AS a, count(*) AS n FROM person_tier GROUP BY nik_hmac)",
            params).fetchone()
        self.national_counts[snap] = (a, i)
        self.person_tier_rows += n or 0
        con.execute("DROP TABLE person_tier")

    def aggregate(self) -> dict:
        tier_counts, national_counts = self.tier_counts, self.national_counts
        snapshots = sorted({r["snapshot_date"] for r in self.winners if r["status"] == "loaded"})
        by_tier, national = [], []

        def pct(active, pot):
            return active / pot * 100.0 if pot else None

        for s in snapshots:
            pots = self.potential_for(s)
            tier_sum = 0
            for t in TIERS:
                a, i = tier_counts.get((s, t), (0, 0))
                tier_sum += a
                p = pots.get(t)
                by_tier.append({"snapshot_date": s.isoformat(), "tier": t, "tier_label": TIER_LABELS[t],
                                "active": a, "inactive": i, "potential": p, "penetration_pct": pct(a, p)})
            a, i = national_counts.get(s, (0, 0))
            p = sum(pots[t] for t in TIERS) if all(pots.get(t) is not None for t in TIERS) else None
            national.append({"snapshot_date": s.isoformat(), "active": a, "active_tier_sum": tier_sum,
                             "inactive": i, "potential": p, "penetration_pct": pct(a, p)})
        load_log = [
            {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in r.items()
             if k in ("source_file", "snapshot_date", "province_code", "status", "rows_read",
                      "rows_loaded", "rows_rejected", "message")}
            for r in sorted(self.files, key=lambda r: r["source_file"])
        ]
        rows_read = sum(r["rows_read"] or 0 for r in self.files)
        return {
            "coverage_by_tier": by_tier,
            "coverage_national": national,
            "load_log": load_log,
            "potential_log": self.potential_log,
            "rows": {"read": rows_read, "rejected": sum(r["rows_rejected"] or 0 for r in self.files),
                     "person_tier": self.person_tier_rows},
            "grace_months": self.grace,
        }


def compute(landing, grace_months: int = 3, hmac_key: bytes | None = None, reference_dir=None,
            threads: int | None = None) -> dict:
    return Reference(Path(landing), grace_months, hmac_key, reference_dir, threads).run()


def format_table(result: dict) -> str:
    lines = []
    nat = {r["snapshot_date"]: r for r in result["coverage_national"]}
    hdr = f"{'snapshot':<10}  {'tier':<8} {'active':>10} {'inactive':>10} {'potential':>11} {'penetr.%':>9}"

    def fmt(r, name):
        p = "" if r["potential"] is None else f"{r['potential']:,}"
        pen = "" if r["penetration_pct"] is None else f"{r['penetration_pct']:.2f}"
        return f"{r['snapshot_date']:<10}  {name:<8} {r['active']:>10,} {r['inactive']:>10,} {p:>11} {pen:>9}"

    for snap in sorted(nat):
        lines.append(hdr)
        for r in result["coverage_by_tier"]:
            if r["snapshot_date"] == snap:
                lines.append(fmt(r, r["tier"]))
        n = nat[snap]
        lines.append(fmt(n, "national") + f"   (tier sum {n['active_tier_sum']:,})")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("landing", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--grace-months", type=int, default=3)
    ap.add_argument("--reference-dir", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    result = compute(args.landing, args.grace_months, None, args.reference_dir, args.threads)
    print(format_table(result))
    bad = [r for r in result["load_log"] if r["status"] != "loaded"]
    for r in bad:
        print(f"{r['status']}: {r['message']}")
    print(f"rows read {result['rows']['read']:,}, rejected {result['rows']['rejected']:,}; "
          + ", ".join(f"{k} {v:.2f}s" for k, v in result["timings"].items()))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(args.out.suffix + ".tmp")
        tmp.write_text(json.dumps(result, indent=1, ensure_ascii=False))
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
