"""Demo landing zone for cakupan (`cakupan demo`).

`generate_landing(out, scale, snapshots, seed)` writes a synthetic but realistic landing zone that
follows the same people (NIKs) across monthly snapshots:

- ``enrollment/<YYYY-MM-DD>/<PP>.<ext>``: one extract per province office (34 provinces of the
  Kemendagri 2020 vintage) per month-end snapshot, the latest being 2021-10-31 (13 snapshots by
  default, so the latest has a year-ago snapshot). Province 65 (Kalimantan Utara) delivers XLSX,
  province 63 (Kalimantan Selatan) Parquet, every other office CSV in its own dialect (delimiter,
  BOM, line endings, quoting, header case and order, dotted or plain codes, date formats, tier
  spellings, padding, extra or missing optional columns).
- In the latest snapshot province 51 (Bali) is delivered twice: a stale ``51.csv`` and the newer
  ``51_revisi.csv`` (modified later); the stale one must be ``superseded``.
- A late office: in one snapshot that is neither the first nor the latest (``snapshots >= 3``),
  province 61 (Kalimantan Barat) delivers nothing. Its file is written to
  ``demo_late/enrollment/<date>/61.csv`` instead, outside ``enrollment/``, so a pipeline sees the
  office missing (its people look ``left``, then ``new`` again) until the file is moved in.
- ``potential/<YYYY>-01-01/potensi.csv``: one set per calendar year with a snapshot; each applies
  to the snapshots of its year. The 2021 set holds the published national potentials; earlier
  sets are 4 % a year smaller. National row per tier, province rows adding up to it exactly (each
  at least the province's largest active count in the year), and regency rows for the regencies
  that have a target.
- ``targets/*.csv``: coverage targets (a national RPJMN 2025-2029 row, one row per tier for the
  Inpres 2/2021 aim of 100 %, a few province and regency rows), with dates chosen so that at the
  latest snapshot some are met, some on track and some late.
- ``published/2021-11-15/rdp-komisi-ix-2021-11-15.csv``: the November 2021 release (unscaled, in
  Indonesian number format).
- ``demo_manifest.json``: the generator's own bookkeeping (what a correct pipeline must report),
  derived from how the data were constructed, not by reading the written files back.
- ``demo_bad_rows.csv``: every planted bad row of ``enrollment/`` (snapshot, source_file, 1-based
  data row number, kind), for checking the quarantine.

At ``scale=1`` the latest snapshot's active people per tier are exactly the published figures
(KL 103,942; PROV 23,523; KABKOTA 1,547,500; KEC 204,578; DESA 764,400; RTRW 160,000); at other
scales each is ``round(figure * scale)`` (at least 1).

How the population is built (vectorised with numpy / pyarrow):

- A *post* is one person's position in one tier. A person (NIK) holds at most one post per tier;
  some hold two posts in two tiers (RTRW+DESA, RTRW+KABKOTA, KEC+DESA; same home province).
- Every post has a history over the snapshots: absent, active or inactive at each one. Per tier
  the number of active posts follows a growth curve by calendar month (steep in 2021, after
  Inpres 2/2021, slower before) that ends exactly at the tier's target; between two snapshots
  exact numbers of posts lapse (active -> inactive), leave (active -> absent), come back
  (inactive -> active) and join (absent -> active), and some inactive posts leave or join.
  Every one of these flows is at least 1 per tier and transition where the pools allow it.
- Some posts move once to another region of the same tier's level (same NIK, same tier, another
  ``kode_wilayah``), within the province or to another province, whose office then reports them.
- Payments follow the states: an active post's last paid month is ``m - lag`` (a per-post habit,
  lags 0..3 or prepaid), capped at the month ``L`` after which it stops paying, so a post is
  active at the snapshots with ``m <= L + 3`` (grace 3) and inactive from ``m = L + 4`` on. An
  inactive post shows its last ``L`` (or an empty month if it never paid).
- Each snapshot adds within-tier duplicates of about 1 % of the posts: an older row of the same
  NIK and tier with an earlier registration date and a strictly earlier ``bulan_iuran_terakhir``,
  in the same or another province's file, so the original row decides.
- Bad rows (about 0.5 %) are added on top, each breaking exactly one rule, with NIKs that never
  occur in a valid row.
- Snapshots are generated one at a time and written office by office, so memory stays bounded.

Manifest (``demo_manifest.json``)::

    {"scale", "seed", "grace_months", "vintage", "snapshots": [...], "targets_latest": {tier: n},
     "potential_national": {tier: n}, "potential_provinces": {PP: {tier: n}},   # set at latest
     "potential_files": [...],
     "potential_sets": {"YYYY-01-01": {"file", "applies_to": [snapshot...], "national",
                                       "provinces": {PP: {tier: n}}, "regencies": {"PP.RR": {...}}}},
     "special_files": {...}, "bad_kinds": [...], "bad_rows_file": "demo_bad_rows.csv",
     "total_rows": n,                               # rows written under enrollment/
     "late": {"snapshot", "province", "file", "delivered_as", "rows", "bad_rows": [[row, kind]],
              "expected_if_delivered": {snapshot: {same keys as expected}, next snapshot: {...}}},
     "targets": {"files": [...], "rows": [{"file", "row_number", "tingkat", "kode_wilayah",
                 "region_level", "target_pct", "target_date", "sumber", "written": {...},
                 "at_latest": {"penetration_pct", "trend_pp_per_month", "projected_date",
                               "on_track", "status"}}]},
     "published": {"file", "published_date", "rows": [{"row_number", "tingkat", "kode_wilayah",
                   "metrik", "nilai", "value", "decimals", "sumber"}]},
     "expected": {snapshot: {
        "tiers": {tier: {"active", "inactive"}},          # distinct NIK per tier after dedupe
        "national": {"active", "inactive", "active_tier_sum"},
        "provinces": {PP: {tier: {"active", "inactive"}}},     # region of the deciding row;
        "regencies": {"PP.RR": {tier: {"active", "inactive"}}},  # absent = nobody there
        "files": {"enrollment/<date>/<file>": {"status": "loaded", "rows_read", "rows_rejected",
                                               "rows_loaded", "bad_rows": {kind: n}}
                  | {"status": "superseded", "rows_in_file", "superseded_by"}},
        "offices": [PP...], "offices_delivered": n,
        "previous_snapshot": date | null, "year_ago_snapshot": date | null,
        "comparable": bool | null, "comparable_yoy": bool | null,
        "flows": null | {"tiers": {tier: {"active", "active_prev", "new", "reactivated",
                                          "lapsed", "left"}}, "national": {...}},
        "region_flows": null | {"provinces": {PP: {tier: {"active", "active_prev", "gained",
                                                          "lost"}}}, "regencies": {...}},
        "movers": null | {tier: {"within_province", "across_provinces"}}}}}

Everything in ``expected`` describes the landing zone as written (the late office missing);
``late.expected_if_delivered`` gives the same keys as if its file had been delivered.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import os
import re
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

__all__ = [
    "generate_landing",
    "DemoRefused",
    "snapshot_dates",
    "ACTIVE_TARGETS",
    "POTENTIAL_NATIONAL",
    "TIERS",
    "LATEST_SNAPSHOT",
    "XLSX_PROVINCE",
    "PARQUET_PROVINCE",
    "REDELIVERY_PROVINCE",
    "LATE_PROVINCE",
    "DEFAULT_SNAPSHOTS",
]

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "reference"
VINTAGE = "2020"

TIERS = ("KL", "PROV", "KABKOTA", "KEC", "DESA", "RTRW")
KL, PROV, KABKOTA, KEC, DESA, RTRW = range(6)

#: Active people per tier in the latest snapshot at scale 1 (RDP Komisi IX, 15 Nov 2021).
ACTIVE_TARGETS = {"KL": 103_942, "PROV": 23_523, "KABKOTA": 1_547_500,
                  "KEC": 204_578, "DESA": 764_400, "RTRW": 160_000}
#: National potential (denominator) per tier at scale 1 (the 2021 potential set).
POTENTIAL_NATIONAL = {"KL": 350_000, "PROV": 345_933, "KABKOTA": 2_500_000,
                      "KEC": 205_000, "DESA": 1_200_000, "RTRW": 9_000_000}
#: Inactive people per tier, as a share of the tier's active people.
INACTIVE_SHARE = {"KL": 0.12, "PROV": 0.18, "KABKOTA": 0.14, "KEC": 0.10, "DESA": 0.17, "RTRW": 0.20}
#: Share of wage earners (PU) per tier; the rest BPU.
PU_SHARE = (0.92, 0.90, 0.85, 0.85, 0.60, 0.25)

GRACE_MONTHS = 3
LATEST_SNAPSHOT = dt.date(2021, 10, 31)
DEFAULT_SNAPSHOTS = 13
MAX_SNAPSHOTS = 60
XLSX_PROVINCE = "65"        # Kalimantan Utara (small)
PARQUET_PROVINCE = "63"     # Kalimantan Selatan (medium)
REDELIVERY_PROVINCE = "51"  # Bali (small to medium)
LATE_PROVINCE = "61"        # Kalimantan Barat (mid-size): one snapshot arrives late

BAD_ROW_RATE = 0.005        # share of a snapshot's valid rows added as bad rows
DUP_RATE = 0.01             # share of posts that get an older duplicate row in the same tier

# Monthly growth of a tier's active count, as a share of the latest count: `slope` per month over
# the last 9 months (2021, after Inpres 2/2021), half of it before.
GROWTH_SLOPE = {"KL": 0.035, "PROV": 0.030, "KABKOTA": 0.040, "KEC": 0.045, "DESA": 0.040,
                "RTRW": 0.030}
# Flows per month between two snapshots, as a share of the pool they come from.
LAPSE_RATE = 0.015          # active -> inactive (stops paying)
LEAVE_RATE = 0.007          # active -> absent (the row disappears)
REACTIVATE_RATE = 0.05      # inactive -> active (pays again)
INACTIVE_LEAVE_RATE = 0.03  # inactive -> absent
MOVE_RATE = 0.004           # present posts moving to another region of their level
MOVE_CROSS_SHARE = 0.35     # of the movers, to another province (PROV movers always)
POTENTIAL_YEARLY_DROP = 0.04  # earlier potential sets: 4 % smaller per year before 2021

PUBLISHED_DATE = "2021-11-15"
PUBLISHED_FILE = f"published/{PUBLISHED_DATE}/rdp-komisi-ix-{PUBLISHED_DATE}.csv"
PUBLISHED_SOURCE = "RDP Komisi IX DPR RI, 15 November 2021"
# The November 2021 release as published (tier, metric, value as written).
PUBLISHED_ROWS = (
    ("KL", "potential", "350.000"), ("KL", "active", "103.942"), ("KL", "penetration_pct", "29,6%"),
    ("PROV", "potential", "345.933"), ("PROV", "penetration_pct", "6,8%"),
    ("KABKOTA", "potential", "2.500.000"), ("KABKOTA", "penetration_pct", "61,9%"),
    ("KEC", "potential", "205.000"), ("KEC", "active", "204.578"),
    ("KEC", "penetration_pct", "99,7%"),
    ("DESA", "potential", "1.200.000"), ("DESA", "penetration_pct", "63,7%"),
    ("RTRW", "potential", "9.000.000"), ("RTRW", "active", "160.000"),
    ("RTRW", "penetration_pct", "1,78%"),
    ("NASIONAL", "potential", "13.600.000"), ("NASIONAL", "active", "3.050.746"),
    ("NASIONAL", "penetration_pct", "22,31%"),
)

MANIFEST = "demo_manifest.json"
PARTIAL_MARKER = "demo_manifest.partial.json"   # written first, replaced by the manifest
LATE_DIR = "demo_late"
_OWN_TOP = ("enrollment", "potential", "targets", "published", LATE_DIR)


class DemoRefused(ValueError):
    """`generate_landing` refuses to write into a directory that is not a demo landing zone."""


# 2020 census population (millions) per province: drives the size of each office's extract.
POPULATION = {
    "11": 5.27, "12": 14.80, "13": 5.53, "14": 6.39, "15": 3.55, "16": 8.47, "17": 2.01,
    "18": 9.01, "19": 1.46, "21": 2.06, "31": 10.56, "32": 48.27, "33": 36.52, "34": 3.67,
    "35": 40.67, "36": 11.90, "51": 4.32, "52": 5.32, "53": 5.33, "61": 5.41, "62": 2.67,
    "63": 4.07, "64": 3.77, "65": 0.70, "71": 2.62, "72": 2.99, "73": 9.07, "74": 2.62,
    "75": 1.17, "76": 1.42, "81": 1.85, "82": 1.28, "91": 4.30, "92": 1.13,
}

STD_COLUMNS = ("nik", "kpj", "nama", "segmen", "tingkat", "kode_wilayah", "npp",
               "nama_instansi", "tgl_kepesertaan", "bulan_iuran_terakhir")
ALT_ORDER = ("kpj", "nik", "nama", "tingkat", "kode_wilayah", "nama_instansi", "npp",
             "segmen", "bulan_iuran_terakhir", "tgl_kepesertaan")

# --------------------------------------------------------------------------------------------
# Per-office CSV dialects. Keys: delim, bom, eol, quote ('needed' quotes every text value,
# 'none' never quotes), header ('lower' | 'upper' | 'title'), order ('std' | 'alt'), plain (share
# of codes written without dots), dmy (share of tgl_kepesertaan as DD/MM/YYYY), bulan (0 YYYY-MM,
# 1 YYYY-MM-01, 2 DD/MM/YYYY last day, -1 mixed), labels (tier spelling style), seg ('upper' |
# 'lower' | 'title' | 'mixed'), pad (share of fields padded with spaces), nbsp (pad with U+00A0),
# extra (an extra column), drop (optional columns left out).
_DEFAULT = dict(delim=",", bom=False, eol="\n", quote="needed", header="lower", order="std",
                plain=0.0, dmy=0.0, bulan=0, labels="code", seg="upper", pad=0.0, nbsp=False,
                extra=None, drop=())
PROFILES = {
    "11": dict(delim=";", bom=True, dmy=1.0, labels="label"),
    "12": dict(plain=1.0, labels="specific", pad=0.02),
    "13": dict(eol="\r\n", labels="messy"),
    "14": dict(header="upper", bulan=1),
    "15": dict(delim=";", bom=True, eol="\r\n", dmy=1.0, labels="label"),
    "16": dict(order="alt", quote="none"),
    "17": dict(plain=0.5, dmy=0.5, seg="lower"),
    "18": dict(labels="specific", extra="no"),
    "19": dict(delim=";", bom=True, quote="none", bulan=2),
    "21": dict(header="title", pad=0.03),
    "31": dict(),
    "32": dict(labels="label", seg="mixed"),
    "33": dict(plain=1.0, labels="specific", eol="\r\n"),
    "34": dict(delim=";", bom=True, labels="messy", dmy=1.0),
    "35": dict(labels="specific", dmy=1.0, pad=0.01),
    "36": dict(quote="none", seg="lower"),
    "51": dict(),
    "52": dict(labels="label", drop=("kpj", "npp")),
    "53": dict(plain=1.0, bulan=-1),
    "61": dict(eol="\r\n", header="upper", labels="messy"),
    "62": dict(labels="specific", extra="keterangan"),
    "63": dict(),  # Parquet
    "64": dict(delim=";", pad=0.02, nbsp=True),
    "65": dict(),  # XLSX
    "71": dict(dmy=1.0, labels="messy"),
    "72": dict(bom=True, eol="\r\n"),
    "73": dict(labels="label", plain=0.3, pad=0.02),
    "74": dict(order="alt", header="title"),
    "75": dict(delim=";", bom=True, eol="\r\n"),
    "76": dict(seg="mixed", bulan=1),
    "81": dict(dmy=1.0),
    "82": dict(labels="specific", plain=1.0),
    "91": dict(eol="\r\n", labels="label", header="upper"),
    "92": dict(delim=";", bom=True, dmy=0.5),
}
# The stale (superseded) delivery of the re-delivered province: an older export format.
STALE_PROFILE = dict(delim=";", bom=True, eol="\r\n", dmy=1.0, labels="label", bulan=1)

# Tier spellings. Style tables give (spelling for variant 0, spelling for variant 1); variant 1
# is "Kota" for a city, "Kelurahan" for a kelurahan village, "RW" for half of the RT/RW posts.
_LABEL_STYLES = {
    "code": [("KL", "KL"), ("PROV", "PROV"), ("KABKOTA", "KABKOTA"), ("KEC", "KEC"),
             ("DESA", "DESA"), ("RTRW", "RTRW")],
    "label": [("Kementerian/Lembaga",) * 2, ("Provinsi",) * 2, ("Kabupaten/Kota",) * 2,
              ("Kecamatan",) * 2, ("Kelurahan/Desa",) * 2, ("RT/RW",) * 2],
    "specific": [("K/L",) * 2, ("Provinsi",) * 2, ("Kabupaten", "Kota"), ("Kecamatan",) * 2,
                 ("Desa", "Kelurahan"), ("RT", "RW")],
    "messy": [("kl", "K / L"), ("provinsi", "PROVINSI"), ("Kab / Kota", "kab/kota"),
              ("kecamatan", "KECAMATAN"), ("desa", "kelurahan"), ("rt", "rw")],
}
_STYLE_CODES = {name: i for i, name in enumerate(_LABEL_STYLES)}
# Any accepted spelling (used for a sprinkle of rows in every CSV).
_ALL_SPELLINGS = [
    ["KL", "kl", "Kementerian/Lembaga", "K/L", "Kementerian / Lembaga", "k/l"],
    ["PROV", "Provinsi", "provinsi", "PROVINSI", "prov"],
    ["KABKOTA", "Kabupaten/Kota", "Kab/Kota", "Kab / Kota", "kabupaten", "KOTA", "Kabkota"],
    ["KEC", "Kecamatan", "kecamatan", "KECAMATAN", "kec"],
    ["DESA", "Kelurahan/Desa", "Kelurahan", "Desa", "desa", "KELURAHAN / DESA"],
    ["RTRW", "RT/RW", "RT", "RW", "rt", "rw", "RT / RW", "rt/rw"],
]
_SEGMEN = ["PU", "BPU", "pu", "bpu", "Pu", "Bpu"]

# Bad-row kinds. Each breaks exactly one rule of the contract.
BAD_KINDS = ("nik_float", "nik_15_digits", "nik_17_digits", "nik_bad_day", "tier_unknown",
             "kode_other_province", "date_impossible", "segmen_unknown", "bulan_before_registration",
             "tgl_after_snapshot", "kode_wrong_level", "kode_unknown", "bulan_too_far_ahead")
_BAD_WEIGHTS = (0.18, 0.07, 0.05, 0.05, 0.12, 0.10, 0.08, 0.07, 0.08, 0.07, 0.07, 0.03, 0.03)
(B_NIK_FLOAT, B_NIK15, B_NIK17, B_NIK_DAY, B_TIER, B_OTHER_PROV, B_DATE, B_SEGMEN, B_BULAN_BEFORE,
 B_TGL_AFTER, B_WRONG_LEVEL, B_KODE_UNKNOWN, B_BULAN_FAR) = range(1, len(BAD_KINDS) + 1)
_UNKNOWN_TIERS = ["Honorer", "Tenaga Honorer", "PPNPN", "Kontrak", "Outsourcing"]
_UNKNOWN_SEGMEN = ["PPU", "BP", "X", "ASN", "-"]

_KL_NAMES = [
    "Kementerian Agama", "Kementerian Pendidikan dan Kebudayaan", "Kementerian Kesehatan",
    "Kementerian Keuangan", "Kementerian Dalam Negeri", "Kementerian Perhubungan",
    "Kementerian Pertanian", "Kementerian Sosial", "Kementerian Ketenagakerjaan",
    "Kementerian Hukum dan HAM", "Kementerian Lingkungan Hidup dan Kehutanan",
    "Kementerian PUPR", "Kementerian Kelautan dan Perikanan", "Kementerian Desa PDTT",
    "Kementerian Luar Negeri", "Kementerian ATR/BPN", "Kementerian Koperasi dan UKM",
    "Kementerian Pariwisata dan Ekonomi Kreatif", "Kementerian ESDM", "Kementerian Perindustrian",
    "Badan Pusat Statistik", "Badan Meteorologi Klimatologi dan Geofisika",
    "Badan Nasional Penanggulangan Bencana", "Badan Pengawas Obat dan Makanan",
]
_DINAS = ["Dinas Pendidikan", "Dinas Kesehatan", "Dinas Pekerjaan Umum", "Dinas Perhubungan",
          "Satuan Polisi Pamong Praja", "Dinas Lingkungan Hidup", "Dinas Sosial",
          "Badan Penanggulangan Bencana Daerah", "Sekretariat Daerah", "RSUD",
          "Dinas Kependudukan dan Pencatatan Sipil", "Dinas Pertanian"]
_N_DINAS_PROV = 8
_MALE = ["Agus", "Budi", "Dedi", "Eko", "Fajar", "Hendra", "Iwan", "Joko", "Rudi", "Slamet",
         "Bambang", "Asep", "Ujang", "Dadang", "Wayan", "Made", "Ketut", "Nyoman", "Teguh",
         "Rizky", "Yusuf", "Ahmad", "Muhammad", "Andi", "Arif", "Hasan", "Irfan", "Sutrisno",
         "Suparman", "Yohanes", "Markus", "Daniel", "Fransiskus", "La Ode", "Imam", "Taufik"]
_FEMALE = ["Siti", "Sri", "Dewi", "Rina", "Ani", "Wati", "Nur", "Lestari", "Putri", "Ayu",
           "Fitri", "Yuli", "Ratna", "Indah", "Nining", "Euis", "Ni Luh", "Ni Made", "Kadek",
           "Maria", "Theresia", "Yohana", "Fatimah", "Aisyah", "Rahmawati", "Suryani",
           "Wulan", "Mega", "Dian", "Novi", "Eka", "Ida"]
_LAST = ["", "", "", "Saputra", "Santoso", "Wijaya", "Hidayat", "Nugroho", "Kurniawan",
         "Setiawan", "Pratama", "Siregar", "Nasution", "Harahap", "Lubis", "Simanjuntak",
         "Sitompul", "Hutapea", "Tanjung", "Sembiring", "Ginting", "Manurung", "Rahman",
         "Hakim", "Wibowo", "Susanto", "Suryadi", "Gunawan", "Permana", "Sihombing", "Pohan",
         "Daulay", "Mandagi", "Pangemanan", "Rumbiak", "Wonda", "Kambu", "Lumban Gaol",
         "Hasibuan", "Purba", "Syahputra", "Rangkuti", "Situmorang", "Ramadhan", "Firmansyah",
         "Handayani", "Wahyuni", "Susilawati", "Anggraini", "Safitri", "Utami"]

_NIK_A = 387_420_489          # 3**18: coprime to 10, so id -> (A*id + B) mod 1e10 is a bijection
_NIK_B = 1_234_567_891
_KPJ_A = 1_162_261_467        # 3**19
_KPJ_B = 2_718_281_828
_RESERVED_PID = 9_000_000_000  # person ids of bad and phantom rows start here (valid ids < 1e8)
_EPOCH_MONTH_1970 = 1970 * 12


# ============================================================================================
# small helpers
# ============================================================================================

def _round(x: float) -> int:
    return int(round(x))


def _scaled(count: int, scale: float) -> int:
    return max(1, _round(count * scale))


def _allocate(total: int, weights: np.ndarray) -> np.ndarray:
    """Largest-remainder split of `total` into integers proportional to `weights`."""
    w = np.asarray(weights, dtype=np.float64)
    if total <= 0:
        return np.zeros(w.size, dtype=np.int64)
    q = w / w.sum() * total
    base = np.floor(q).astype(np.int64)
    rest = total - int(base.sum())
    if rest:
        order = np.lexsort((np.arange(w.size), -(q - base)))
        base[order[:rest]] += 1
    return base


def _day(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days


def _month(d: dt.date) -> int:
    """Months since 1970-01 (the contract's months(d) minus a constant)."""
    return (d.year * 12 + d.month - 1) - _EPOCH_MONTH_1970


def _days_to_months(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)


def _month_end(year: int, month: int) -> dt.date:
    nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
    return nxt - dt.timedelta(days=1)


def snapshot_dates(snapshots: int) -> list[dt.date]:
    """`snapshots` month-ends ending with the latest snapshot, oldest first."""
    out = []
    y, m = LATEST_SNAPSHOT.year, LATEST_SNAPSHOT.month
    for _ in range(snapshots):
        out.append(_month_end(y, m))
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return out[::-1]


def _group_bounds(keys_sorted: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    start = np.searchsorted(keys_sorted, np.arange(n_groups), side="left")
    stop = np.searchsorted(keys_sorted, np.arange(n_groups), side="right")
    return start, stop - start


def _month_first_day(months) -> np.ndarray:
    """Day number (days since 1970-01-01) of the first day of `months` (months since 1970-01)."""
    return np.asarray(months, dtype=np.int64).astype("datetime64[M]").astype("datetime64[D]") \
        .astype(np.int64)


def _month_last_day(months) -> np.ndarray:
    return _month_first_day(np.asarray(months, dtype=np.int64) + 1) - 1


def _month_end_date(mm: int) -> dt.date:
    """The last day of month `mm` (months since 1970-01)."""
    y, mo = divmod(int(mm) + _EPOCH_MONTH_1970, 12)
    return _month_end(y, mo + 1)


def _contract_months(d: dt.date) -> int:
    """The contract's months(d) = 12 * year + month."""
    return 12 * d.year + d.month


def _n(x: float, pool: int, at_least: int = 1) -> int:
    """round(x), at least `at_least`, at most `pool` (never negative)."""
    return max(0, min(int(pool), max(at_least, _round(x))))


def _pick(rng: np.random.Generator, pool: np.ndarray, n: int) -> np.ndarray:
    """`n` distinct elements of `pool`, in random order."""
    if n <= 0:
        return pool[:0]
    if n >= pool.size:
        return rng.permutation(pool)
    return rng.choice(pool, size=n, replace=False)


def _late_index(n_snapshots: int) -> int | None:
    """Index of the snapshot the late office misses: neither the first nor the latest."""
    if n_snapshots < 3:
        return None
    return max(1, n_snapshots - 3)


# ============================================================================================
# reference
# ============================================================================================

class _Reference:
    """Vintage 2020 region table, with per-level pools grouped by province."""

    def __init__(self, path: Path):
        tab = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in ("kode", "nama", "tingkat", "kode_induk")}))
        code = np.asarray(tab["kode"].to_pylist(), dtype=object)
        names = tab["nama"].to_pylist()
        level_map = {"provinsi": 0, "kabkota": 1, "kecamatan": 2, "desa": 3}
        level = np.array([level_map[t] for t in tab["tingkat"].to_pylist()], dtype=np.int8)
        n = code.size
        self.n = n
        self.code = code
        self.level = level
        plain = [c.replace(".", "") for c in code]
        self.prov_codes = [c for c, lv in zip(code, level) if lv == 0]
        self.prov_names = [nm for nm, lv in zip(names, level) if lv == 0]
        if len(self.prov_codes) != 34:
            raise ValueError(f"expected 34 provinces in vintage {VINTAGE}, got {len(self.prov_codes)}")
        pidx = {c: i for i, c in enumerate(self.prov_codes)}
        self.prov = np.array([pidx[c[:2]] for c in code], dtype=np.int16)
        row_of = {c: i for i, c in enumerate(code)}
        self.kab = np.array([row_of[c[:5]] if lv >= 1 else -1 for c, lv in zip(code, level)],
                            dtype=np.int32)
        self.is_kota = np.array([lv == 1 and int(c[3:5]) >= 70 for c, lv in zip(code, level)])
        self.is_kel = np.array([lv == 3 and c[9] == "1" for c, lv in zip(code, level)])
        # rank of a region inside its level (for instansi tables)
        self.rank = np.zeros(n, dtype=np.int32)
        self.pool, self.pool_start, self.pool_count = [], [], []
        for lv in range(4):
            idx = np.flatnonzero(level == lv)
            self.rank[idx] = np.arange(idx.size)
            start, count = _group_bounds(self.prov[idx], 34)
            self.pool.append(idx)
            self.pool_start.append(start)
            self.pool_count.append(count)
        self.kab_codes = [code[i] for i in self.pool[1]]              # by regency rank
        self.codes_pa = pa.array(list(code) + plain, pa.string())   # [dotted..., plain...]
        self.names = names

    def pick(self, level: np.ndarray, prov: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A random region of `level` (-1: none) inside province index `prov`, per element."""
        out = np.full(level.size, -1, dtype=np.int32)
        u = rng.random(level.size)
        for lv in range(4):
            m = level == lv
            if not m.any():
                continue
            p = prov[m]
            k = self.pool_start[lv][p] + (u[m] * self.pool_count[lv][p]).astype(np.int64)
            out[m] = self.pool[lv][k]
        return out


def _title(s: str) -> str:
    return " ".join(w if w in {"DKI", "RI", "HAM", "PUPR"} else w.capitalize() for w in s.split())


class _Instansi:
    """Employer (government unit) names and NPP numbers, indexed by tier and region."""

    def __init__(self, ref: _Reference):
        names: list[str] = []
        self.off = {}
        self.off[KL] = len(names)
        names += _KL_NAMES
        self.off[PROV] = len(names)
        for p in ref.prov_names:
            pn = _title(p.replace("P A P U A", "PAPUA"))
            names += [f"{d} Provinsi {pn}" for d in _DINAS[:_N_DINAS_PROV]]
        kab = ref.pool[1]
        self.off[KABKOTA] = len(names)
        for r in kab:
            kn = _title(ref.names[r]).replace("Kab.", "Kabupaten")
            names += [f"{d} {kn}" for d in _DINAS]
        self.off[KEC] = len(names)
        names += [f"Kecamatan {ref.names[r]}" for r in ref.pool[2]]
        self.off[DESA] = len(names)
        vil = ref.pool[3]
        names += [f"{'Kelurahan' if ref.is_kel[r] else 'Pemerintah Desa'} {ref.names[r]}" for r in vil]
        self.off[RTRW] = len(names)
        names += [f"RT/RW {'Kelurahan' if ref.is_kel[r] else 'Desa'} {ref.names[r]}" for r in vil]
        self.n = len(names)
        self.names_pa = pa.array(names, pa.string())
        letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
        npp = [f"{letters[i % 23]}{letters[(i // 23) % 23]}{(i * 7919 + 13) % 1_000_000:06d}"
               for i in range(self.n)]
        self.npp_pa = pa.array(npp, pa.string())

    def index(self, ref: _Reference, tier: np.ndarray, prov: np.ndarray, region: np.ndarray,
              rng: np.random.Generator) -> np.ndarray:
        out = np.zeros(tier.size, dtype=np.int32)
        u = rng.random(tier.size)
        m = tier == KL
        out[m] = self.off[KL] + (u[m] * len(_KL_NAMES)).astype(np.int32)
        m = tier == PROV
        out[m] = (self.off[PROV] + prov[m].astype(np.int32) * _N_DINAS_PROV
                  + (u[m] * _N_DINAS_PROV).astype(np.int32))
        m = tier == KABKOTA
        out[m] = (self.off[KABKOTA] + ref.rank[region[m]] * len(_DINAS)
                  + (u[m] * len(_DINAS)).astype(np.int32))
        for t in (KEC, DESA, RTRW):
            m = tier == t
            out[m] = self.off[t] + ref.rank[region[m]]
        return out


def _make_nik(ref: _Reference, pid: np.ndarray, birth_prov: np.ndarray,
              rng: np.random.Generator, female: np.ndarray | None = None) -> np.ndarray:
    """16-digit NIKs: province, 4 id digits, day (+40 women), month, 6 id digits.

    The 10 id digits are a bijection of the person id, so distinct ids give distinct NIKs.
    """
    n = pid.size
    pp = np.array([int(c) for c in ref.prov_codes], dtype=np.int64)[birth_prov]
    u = (_NIK_A * pid + _NIK_B) % 10**10
    month = rng.integers(1, 13, n)
    dim = np.array([31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[month - 1]
    day = 1 + (rng.random(n) * dim).astype(np.int64)
    if female is None:
        female = rng.random(n) < 0.45
    day = np.where(female, day + 40, day)
    return (pp * 10**14 + (u // 10**6) * 10**10 + day * 10**8 + month * 10**6
            + ((u // 10**4) % 100) * 10**4 + u % 10**4)


# ============================================================================================
# population: posts and their history over the snapshots
# ============================================================================================

ABSENT, ACTIVE, INACTIVE = 0, 1, 2           # state of a post at a snapshot
K_ACTIVE, K_LAPSED_BEFORE, K_NEVER = 0, 1, 2  # how a post first appears
NO_MOVE = 127
_TIER_LEVEL = np.array([-9, 0, 1, 2, 3, 3], dtype=np.int8)   # KL handled separately
_LAGS = np.array([0, 1, 2, 3, -1, -2, -3, -12], dtype=np.int8)
_LAG_P = (0.45, 0.24, 0.12, 0.08, 0.05, 0.03, 0.025, 0.005)
_KL_NO_CODE = 0.40                                          # KL rows without a region code
_KL_LEVELS = np.array([0, 1, 2, 3], dtype=np.int8)          # the others: a code of any level
_KL_LEVEL_P = np.array([0.25, 0.25, 0.05, 0.05]) / 0.60


def _growth(months_back: int, slope: float) -> float:
    """Active posts `months_back` months before the latest snapshot, relative to the latest."""
    d = months_back
    return max(0.15, 1.0 - slope * min(d, 9) - 0.5 * slope * max(0, d - 9))


def _tier_weights(ref: _Reference) -> np.ndarray:
    pop = np.array([POPULATION[c] for c in ref.prov_codes])
    n_kec = ref.pool_count[2].astype(float)
    n_desa = ref.pool_count[3].astype(float)
    kl = pop.copy()
    kl[ref.prov_codes.index("31")] *= 5.0          # ministries' head offices in Jakarta
    return np.vstack([kl, np.sqrt(pop) * 3, pop, np.sqrt(pop * n_kec), np.sqrt(pop * n_desa), pop])


def _initial_dates(kind: np.ndarray, m0: int, snap0: int, rng: np.random.Generator):
    """Registration day and last paid month (-1 = none yet) of the posts present at the first
    snapshot. Active posts registered at least 4 months earlier (so they may lapse next month);
    lapsed ones paid last in month L0 < m0 - 3 and registered no later than that month."""
    n = kind.size
    d2015, d2019 = _day(dt.date(2015, 1, 1)), _day(dt.date(2019, 1, 1))
    reg = np.zeros(n, dtype=np.int64)
    l0 = np.full(n, -1, dtype=np.int64)
    u = rng.random(n)
    act = kind == K_ACTIVE
    hi = int(_month_last_day(m0 - (GRACE_MONTHS + 1)))
    lo = np.minimum(np.where(rng.random(n) < 0.5, d2015, d2019), hi)
    reg[act] = lo[act] + (u[act] * (hi - lo[act] + 1)).astype(np.int64)
    lap = kind == K_LAPSED_BEFORE
    gap = np.minimum(np.where(rng.random(n) < 0.25, 0, 1 + rng.geometric(0.12, n)), 60)
    last = m0 - (GRACE_MONTHS + 1) - gap
    hi_l = _month_last_day(last)
    lo_l = np.minimum(d2015, _month_first_day(last))
    reg[lap] = lo_l[lap] + (u[lap] * (hi_l[lap] - lo_l[lap] + 1)).astype(np.int64)
    l0[lap] = last[lap]
    nev = kind == K_NEVER
    lo_n = min(d2019, snap0)
    reg[nev] = lo_n + (u[nev] * (snap0 - lo_n + 1)).astype(np.int64)
    return reg, l0


def _balance(a_k: int, na: int, n_lapse: int, n_left: int, n_react: int) -> tuple[int, int, int]:
    """Joiners so that active(k) = a_k: a_k - na = new + react - lapse - left. Prefers at least
    one joiner (fewer come-backs, keeping one; then one more leaver)."""
    n_new = a_k - na + n_lapse + n_left - n_react
    if n_new < 1:
        cut = min(max(0, n_react - 1), 1 - n_new)
        n_react -= cut
        n_new += cut
    if n_new < 1:
        add = min(1 - n_new, na - n_lapse - n_left)
        n_left += add
        n_new += add
    if n_new < 0:
        cut = min(n_react, -n_new)
        n_react -= cut
        n_new += cut
    assert n_new >= 0 and n_new == a_k - na + n_lapse + n_left - n_react
    return n_new, n_left, n_react


def _simulate_tier(t: int, n_active: int, n_inactive: int, snaps: list[dt.date],
                   rng: np.random.Generator) -> dict:
    """Posts of one tier and their state (absent / active / inactive) at every snapshot.

    Counts are exact: active posts follow the growth curve and end at `n_active`; each
    transition has exact numbers of lapses, leavers, come-backs and joiners (each at least one
    where the pools allow), inactive leavers and joiners, and movers."""
    S = len(snaps)
    name = TIERS[t]
    m = [_month(d) for d in snaps]
    sday = [_day(d) for d in snaps]
    slope, share = GROWTH_SLOPE[name], INACTIVE_SHARE[name]
    a = [_round(n_active * _growth(S - 1 - k, slope)) for k in range(S)]
    a[-1] = n_active
    target_inactive = [_round(a[k] * share) for k in range(S)]
    target_inactive[-1] = n_inactive

    a0, i0 = a[0], target_inactive[0]
    kind = np.concatenate([np.full(a0, K_ACTIVE, np.int8),
                           np.where(rng.random(i0) < 0.75, K_LAPSED_BEFORE, K_NEVER).astype(np.int8)])
    reg, l0 = _initial_dates(kind, m[0], sday[0], rng)
    kinds, regs, l0s, created = [kind], [reg], [l0], [np.zeros(kind.size, np.int8)]

    def codes(n):
        return rng.random(n) >= _KL_NO_CODE if t == KL else np.ones(n, dtype=bool)

    has_code = codes(kind.size)
    reg_m = _days_to_months(reg)
    st = np.where(kind == K_ACTIVE, ACTIVE, INACTIVE).astype(np.int8)
    move_k = np.full(kind.size, NO_MOVE, np.int8)
    cross = np.zeros(kind.size, dtype=bool)
    hist = [st]
    for k in range(1, S):
        act = np.flatnonzero(st == ACTIVE)
        ina = np.flatnonzero(st == INACTIVE)
        na, ni = act.size, ina.size
        # a post can stop paying once its registration month is at least 4 months back
        elig = act[reg_m[act] <= m[k] - (GRACE_MONTHS + 1)]
        n_lapse = _n(LAPSE_RATE * na, elig.size)
        n_left = _n(LEAVE_RATE * na, na - n_lapse)
        n_react = _n(REACTIVATE_RATE * ni, ni)
        n_new, n_left, n_react = _balance(a[k], na, n_lapse, n_left, n_react)
        n_ileft = _n(INACTIVE_LEAVE_RATE * ni, ni - n_react, 0)
        n_inew = target_inactive[k] - (ni - n_react - n_ileft + n_lapse)
        if n_inew < 0:
            n_ileft += min(-n_inew, ni - n_react - n_ileft)
            n_inew = 0

        lapsers = _pick(rng, elig, n_lapse)
        taken = np.zeros(st.size, dtype=bool)
        taken[lapsers] = True
        leavers = _pick(rng, act[~taken[act]], n_left)
        react = _pick(rng, ina, n_react)
        taken[react] = True
        ileavers = _pick(rng, ina[~taken[ina]], n_ileft)
        prev = st
        st = st.copy()
        st[lapsers] = INACTIVE
        st[leavers] = ABSENT
        st[react] = ACTIVE
        st[ileavers] = ABSENT

        # movers: present before and after, at most one move per post
        cand = np.flatnonzero((prev > 0) & (st > 0) & (move_k == NO_MOVE) & has_code)
        n_move = _n(MOVE_RATE * int((prev > 0).sum()), cand.size, 2)
        movers = _pick(rng, cand, n_move)
        move_k[movers] = k
        n_cross = n_move if t == PROV else min(n_move, max(1, _round(MOVE_CROSS_SHARE * n_move)))
        cross[movers[:n_cross]] = True

        # joiners, registered since the previous snapshot
        nb = n_new + n_inew
        kb = np.concatenate([np.full(n_new, K_ACTIVE, np.int8), np.full(n_inew, K_NEVER, np.int8)])
        rb = sday[k - 1] + 1 + (rng.random(nb) * (sday[k] - sday[k - 1])).astype(np.int64)
        kinds.append(kb)
        regs.append(rb)
        l0s.append(np.full(nb, -1, np.int64))
        created.append(np.full(nb, k, np.int8))
        has_code = np.concatenate([has_code, codes(nb)])
        reg_m = np.concatenate([reg_m, _days_to_months(rb)])
        st = np.concatenate([st, np.where(kb == K_ACTIVE, ACTIVE, INACTIVE).astype(np.int8)])
        move_k = np.concatenate([move_k, np.full(nb, NO_MOVE, np.int8)])
        cross = np.concatenate([cross, np.zeros(nb, dtype=bool)])
        hist.append(st)
    assert int((st == ACTIVE).sum()) == n_active
    n = st.size
    state = np.zeros((S, n), dtype=np.int8)
    for k, h in enumerate(hist):
        state[k, :h.size] = h
    return {"kind": np.concatenate(kinds), "created": np.concatenate(created),
            "reg": np.concatenate(regs), "l0": np.concatenate(l0s), "has_code": has_code,
            "move_k": move_k, "cross": cross, "state": state,
            "lam": rng.choice(_LAGS, size=n, p=_LAG_P)}


class _Population:
    """Every post of the timeline: static attributes, its state at each snapshot, one possible
    move, and the person (pid, NIK) holding it."""

    def __init__(self, ref: _Reference, inst: _Instansi, scale: float, snaps: list[dt.date],
                 rng: np.random.Generator):
        S = len(snaps)
        self.S = S
        self.m = np.array([_month(d) for d in snaps], dtype=np.int64)
        weights = _tier_weights(ref)
        self.weights = weights
        momentum = np.exp(rng.normal(0.0, 0.35, 34))   # provinces whose enrollment grows faster
        self.n_active = {}
        parts = []
        for t, name in enumerate(TIERS):
            n_act = _scaled(ACTIVE_TARGETS[name], scale)
            n_inact = max(1, _round(n_act * INACTIVE_SHARE[name]))
            self.n_active[name] = n_act
            parts.append(_simulate_tier(t, n_act, n_inact, snaps, rng))
        sizes = [p["kind"].size for p in parts]
        off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        P = int(off[-1])
        self.P = P

        def cat(f):
            return np.concatenate([p[f] for p in parts])

        tier = np.repeat(np.arange(6, dtype=np.int8), sizes)
        created = cat("created")
        self.kind = cat("kind")
        reg = cat("reg")
        l0 = cat("l0")
        has_code = cat("has_code")
        self.move_k = cat("move_k")
        cross = cat("cross")
        self.lam = cat("lam")
        self.state = np.concatenate([p["state"] for p in parts], axis=1)   # S x P, int8
        del parts

        # home province: by tier weights; joiners lean towards provinces with momentum
        prov = np.empty(P, dtype=np.int8)
        for t in range(6):
            sl = slice(off[t], off[t + 1])
            c = created[sl]
            w0 = weights[t] / weights[t].sum()
            w1 = weights[t] * momentum
            w1 = w1 / w1.sum()
            pt = np.empty(c.size, dtype=np.int8)
            init = c == 0
            pt[init] = rng.choice(34, size=int(init.sum()), p=w0)
            pt[~init] = rng.choice(34, size=int((~init).sum()), p=w1)
            prov[sl] = pt
        level = _TIER_LEVEL[tier].copy()
        kl = np.flatnonzero(tier == KL)
        level[kl] = np.where(has_code[kl], rng.choice(_KL_LEVELS, size=kl.size, p=_KL_LEVEL_P),
                             -1).astype(np.int8)
        region = ref.pick(level, prov.astype(np.int64), rng)

        # movers: another region of the same level, in the province or in another one
        prov2 = prov.copy()
        region2 = region.copy()
        mv = np.flatnonzero(self.move_k != NO_MOVE)
        within = mv[~cross[mv]]
        level2 = level.copy()
        level2[within[level[within] == 0]] = 1   # a KL row with the province's code: a regency's
        for _ in range(12):
            if not within.size:
                break
            r = ref.pick(level2[within], prov[within].astype(np.int64), rng)
            region2[within] = r
            within = within[r == region[within]]
        if within.size:          # no other region of that level in the province: move out
            cross[within] = True
        across = mv[cross[mv]]
        pw = weights[2] / weights[2].sum()
        newp = rng.choice(34, size=across.size, p=pw)
        same = newp == prov[across]
        newp[same] = (prov[across][same] + rng.integers(1, 34, int(same.sum()))) % 34
        prov2[across] = newp
        region2[across] = ref.pick(level2[across], newp.astype(np.int64), rng)
        self.prov, self.prov2 = prov, prov2
        self.region, self.region2 = region, region2
        self.kab, self.kab2 = self._kab_of(ref, region), self._kab_of(ref, region2)
        self.inst = inst.index(ref, tier, prov, region, rng)
        self.inst2 = self.inst.copy()
        self.inst2[mv] = inst.index(ref, tier[mv], prov2[mv], region2[mv], rng)

        self.reg = reg.astype(np.int32)
        self.reg_m = _days_to_months(reg).astype(np.int32)
        self.last_paid = l0.astype(np.int32)      # updated as the snapshots are generated
        self._next_k = 0
        assert (self.reg_m[self.kind == K_LAPSED_BEFORE]
                <= self.last_paid[self.kind == K_LAPSED_BEFORE]).all()

        # person attributes (of the post's own person; shared posts adopt another person)
        birth = np.where(rng.random(P) < 0.85, prov,
                         rng.choice(34, size=P, p=weights[2] / weights[2].sum())).astype(np.int64)
        self.pid = np.arange(P, dtype=np.int64)
        female = rng.random(P) < 0.45
        nik_own = _make_nik(ref, self.pid, birth, rng, female)
        del birth
        n_first = max(len(_MALE), len(_FEMALE))
        name_own = ((female * n_first + rng.integers(0, n_first, P)) * len(_LAST)
                    + rng.integers(0, len(_LAST), P)).astype(np.int32)
        del female

        # people with two posts (same home province, different tiers)
        self.tier = tier
        taken = np.zeros(P, dtype=bool)
        for rt, dtier, frac in ((RTRW, DESA, 0.12), (RTRW, KABKOTA, 0.04), (KEC, DESA, 0.02)):
            self._share(tier, prov, rt, dtier, frac, taken, rng)
        key = np.sort(self.pid * 8 + tier)
        assert (np.diff(key) > 0).all(), "a person holds two posts in one tier"
        assert np.bincount(self.pid).max(initial=0) <= 2, "a person holds three posts"
        del key, taken
        self.seg = (rng.random(P) >= np.array(PU_SHARE)[tier]).astype(np.int8)  # 0 PU, 1 BPU
        self.nik = nik_own[self.pid]
        self.name = name_own[self.pid]
        del nik_own, name_own
        self.n_shared = int((self.pid != np.arange(P)).sum())
        self.pid = self.pid.astype(np.int32)

    @staticmethod
    def _kab_of(ref: _Reference, region: np.ndarray) -> np.ndarray:
        """Regency rank (index into ref.pool[1]) containing each region, -1 for none."""
        out = np.full(region.size, -1, dtype=np.int16)
        has = np.flatnonzero(region >= 0)
        lv = ref.level[region[has]]
        ok = has[lv >= 1]
        out[ok] = ref.rank[ref.kab[region[ok]]]
        return out

    def _share(self, tier, prov, rt, dtier, frac, taken, rng):
        P = tier.size
        rec = np.flatnonzero((tier == rt) & ~taken)
        rec = rec[rng.random(rec.size) < frac]
        don = np.flatnonzero((tier == dtier) & (self.pid == np.arange(P)) & ~taken)
        if rec.size == 0 or don.size == 0:
            return
        don = don[np.lexsort((rng.random(don.size), prov[don]))]
        rec = rec[np.lexsort((rng.random(rec.size), prov[rec]))]
        dstart, dcount = _group_bounds(prov[don], 34)
        rstart, _ = _group_bounds(prov[rec], 34)
        rank = np.arange(rec.size) - rstart[prov[rec]]
        ok = rank < dcount[prov[rec]]
        rec, rank = rec[ok], rank[ok]
        donors = don[dstart[prov[rec]] + rank]
        self.pid[rec] = self.pid[donors]
        taken[rec] = True
        taken[donors] = True          # nobody holds more than two posts

    # ---- per snapshot ------------------------------------------------------------------------

    def prov_at(self, k: int) -> np.ndarray:
        return np.where(self.move_k <= k, self.prov2, self.prov)

    def kab_at(self, k: int) -> np.ndarray:
        return np.where(self.move_k <= k, self.kab2, self.kab)

    def region_at(self, k: int, idx: np.ndarray) -> np.ndarray:
        return np.where(self.move_k[idx] <= k, self.region2[idx], self.region[idx])

    def inst_at(self, k: int, idx: np.ndarray) -> np.ndarray:
        return np.where(self.move_k[idx] <= k, self.inst2[idx], self.inst[idx])

    def kpj(self, idx: np.ndarray) -> np.ndarray:
        pid = self.pid[idx].astype(np.int64)
        return 10**10 + (_KPJ_A * pid + _KPJ_B) % 10**10

    def bulan_at(self, k: int) -> np.ndarray:
        """Last paid month (months since 1970-01; -1 = empty) of every post at snapshot k.

        Snapshots must be asked for in order (the last paid month of a lapsed post is kept).
        Active: `m - lag`, capped at L = m(k2) - 4 when the post turns inactive at a later
        snapshot k2 (it stopped paying after L; grace keeps it active until then), and not before
        the registration month. Inactive: the last L, or empty if it never paid."""
        assert k == self._next_k, "snapshots must be generated in order"
        self._next_k += 1
        state, S = self.state, self.S
        st = state[k]
        if k > 0:
            now = (state[k - 1] == ACTIVE) & (st == INACTIVE)
            self.last_paid[now] = self.m[k] - (GRACE_MONTHS + 1)
        act = st == ACTIVE
        mk = int(self.m[k])
        big = np.iinfo(np.int32).max
        cap = np.full(self.P, big, dtype=np.int32)
        alive = act.copy()
        for k2 in range(k + 1, min(S, k + GRACE_MONTHS + 1)):   # lags >= 0: 3 snapshots ahead
            row = state[k2]
            hit = alive & (row == INACTIVE)
            cap[hit] = self.m[k2] - (GRACE_MONTHS + 1)
            alive &= row == ACTIVE
        pre = np.flatnonzero(alive & (self.lam < 0))               # prepaid: further ahead
        for k2 in range(k + GRACE_MONTHS + 1, min(S, k + GRACE_MONTHS + 14)):
            if not pre.size:
                break
            row = state[k2, pre]
            cap[pre[row == INACTIVE]] = self.m[k2] - (GRACE_MONTHS + 1)
            pre = pre[row == ACTIVE]
        b = np.minimum(mk - self.lam.astype(np.int32), cap)
        np.maximum(b, self.reg_m, out=b)
        out = np.where(act, b, -1).astype(np.int32)
        inact = st == INACTIVE
        out[inact] = self.last_paid[inact]
        return out


# ============================================================================================
# rows, text encoding, writers
# ============================================================================================

class _Rows:
    """Column arrays of the rows of one snapshot (numeric until formatted)."""

    FIELDS = ("file", "tier", "region", "tgl", "bulan", "seg", "name", "inst", "nik", "kpj",
              "bad", "pid")

    def __init__(self, **cols):
        for f in self.FIELDS:
            setattr(self, f, cols[f])

    @classmethod
    def concat(cls, parts):
        return cls(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in cls.FIELDS})

    def take(self, idx):
        return _Rows(**{f: getattr(self, f)[idx] for f in self.FIELDS})

    def __len__(self):
        return self.file.size


def _bad_rows(pop, ref, base_idx, region_b, bulan_b, inst_b, files, kinds, snap_day, snap_m,
              pid_start, rng, snap_date: dt.date):
    """Bad rows cloned from valid posts of the file's province; each breaks one rule.

    Returns the numeric rows and per-row text overrides {column: object array or None}.
    """
    n = base_idx.size
    b_tier = pop.tier[base_idx].copy()
    region = region_b.astype(np.int32)
    tgl = pop.reg[base_idx].astype(np.int64)
    bulan = bulan_b.astype(np.int64)
    pid = pid_start + np.arange(n, dtype=np.int64)
    nik = _make_nik(ref, pid, files.astype(np.int64), rng)
    over = {c: np.full(n, None, dtype=object) for c in ("nik", "tingkat", "tgl", "segmen", "kode")}
    prov = files.astype(np.int64)

    def sel(k):
        return np.flatnonzero(kinds == k)

    m = sel(B_NIK_FLOAT)
    over["nik"][m] = ["%.5E" % float(x) for x in nik[m]]           # 3.20101E+15
    m = sel(B_NIK15)
    over["nik"][m] = [str(x // 10) for x in nik[m]]
    m = sel(B_NIK17)
    over["nik"][m] = [str(x * 10 + 7) for x in nik[m]]
    m = sel(B_NIK_DAY)
    dd = (nik[m] // 10**8) % 100
    nik[m] += (rng.integers(32, 41, m.size) - dd) * 10**8              # day 32..40: impossible
    m = sel(B_TIER)
    over["tingkat"][m] = rng.choice(_UNKNOWN_TIERS, m.size)
    m = sel(B_OTHER_PROV)
    if m.size:
        other = (prov[m] + rng.integers(1, 34, m.size)) % 34
        lv = np.where(region[m] >= 0, ref.level[np.maximum(region[m], 0)], 1).astype(np.int8)
        region[m] = ref.pick(lv, other, rng)
    m = sel(B_DATE)
    y = snap_date.year - 1
    choices = [f"31/02/{y}", f"30/02/{y}", f"31/04/{y}", f"31/06/{y}", f"{y}-02-30",
               f"{y}-09-31", f"{y}-11-31"]
    over["tgl"][m] = rng.choice(choices, m.size)
    m = sel(B_SEGMEN)
    over["segmen"][m] = rng.choice(_UNKNOWN_SEGMEN, m.size)
    m = sel(B_BULAN_BEFORE)
    bulan[m] = pop.reg_m[base_idx[m]] - rng.integers(1, 7, m.size)
    m = sel(B_TGL_AFTER)
    tgl[m] = snap_day + rng.integers(1, 46, m.size)
    bulan[m] = np.maximum(bulan[m], _days_to_months(tgl[m]))
    m = sel(B_WRONG_LEVEL)
    if m.size:
        b_tier[m] = np.where(b_tier[m] == KL, KABKOTA, b_tier[m])
        wrong = np.array([-9, 1, 2, 3, 2, 1], dtype=np.int8)[b_tier[m]]
        region[m] = ref.pick(wrong, prov[m], rng)
    m = sel(B_KODE_UNKNOWN)
    if m.size:
        b_tier[m] = KABKOTA
        region[m] = -1
        over["kode"][m] = [f"{ref.prov_codes[p]}.99" for p in prov[m]]
    m = sel(B_BULAN_FAR)
    bulan[m] = snap_m + rng.integers(13, 25, m.size)
    n_names = 2 * max(len(_MALE), len(_FEMALE)) * len(_LAST)
    rows = _Rows(file=files.astype(np.int16), tier=b_tier, region=region.astype(np.int32),
                 tgl=tgl, bulan=bulan, seg=pop.seg[base_idx], name=rng.integers(0, n_names, n),
                 inst=inst_b, nik=nik, kpj=10**10 + (_KPJ_A * pid + _KPJ_B) % 10**10,
                 bad=kinds.astype(np.int8), pid=pid)
    return rows, over


def _padded(arr: pa.Array, pad: str = " ") -> pa.Array:
    """`arr` followed by the same values padded with whitespace on both sides."""
    return pa.concat_arrays([arr, pc.binary_join_element_wise(pad, arr, pad + pad, "")])


class _Tables:
    """String dictionaries shared by all snapshots (each followed by its padded copy)."""

    def __init__(self, latest: dt.date, ref: _Reference, inst: _Instansi):
        self.d0 = _day(dt.date(2005, 1, 1))
        d1 = _day(latest) + 800
        days = np.arange(self.d0, d1).astype("datetime64[D]")
        iso = np.datetime_as_string(days, unit="D")
        dmy = [f"{s[8:10]}/{s[5:7]}/{s[0:4]}" for s in iso]
        self.nd = len(iso)
        self.dates = _padded(pa.array(list(iso) + dmy, pa.string()))           # 4 * nd
        self.m0 = _month(dt.date(2005, 1, 1))
        m1 = _month(latest) + 40
        months = np.arange(self.m0, m1).astype("datetime64[M]")
        ym = np.datetime_as_string(months, unit="M")
        last = np.datetime_as_string((months + 1).astype("datetime64[D]") - 1, unit="D")
        self.nm = len(ym)
        self.months = pa.array(list(ym) + [f"{s}-01" for s in ym]
                               + [f"{s[8:10]}/{s[5:7]}/{s[0:4]}" for s in last], pa.string())
        n_first = max(len(_MALE), len(_FEMALE))
        names = []
        for first_list in (_MALE, _FEMALE):
            fl = (first_list * ((n_first // len(first_list)) + 1))[:n_first]
            for f in fl:
                names += [f if not last else f"{f} {last}" for last in _LAST]
        self.n_names = len(names)
        self.names = _padded(pa.array(names, pa.string()))
        labels, self.label_idx = [], np.zeros((len(_LABEL_STYLES), 6, 2), dtype=np.int64)
        for s, (style, rows) in enumerate(_LABEL_STYLES.items()):
            for t, pair in enumerate(rows):
                for v in range(2):
                    self.label_idx[s, t, v] = len(labels)
                    labels.append(pair[v])
        self.any_label_off = np.zeros(6, dtype=np.int64)
        self.any_label_n = np.zeros(6, dtype=np.int64)
        for t, spellings in enumerate(_ALL_SPELLINGS):
            self.any_label_off[t] = len(labels)
            self.any_label_n[t] = len(spellings)
            labels += spellings
        self.n_labels = len(labels)
        self.labels = _padded(pa.array(labels, pa.string()))
        self.segmen = _padded(pa.array(_SEGMEN, pa.string()))
        self.n_codes = 2 * ref.n
        self.codes = _padded(ref.codes_pa)                                        # 4 * n
        self.npp = inst.npp_pa
        self.instansi = inst.names_pa
        self._sanitized: dict = {}
        self._lock = threading.Lock()

    def sanitized(self, col: str, arr: pa.Array, delim: str) -> pa.Array:
        """A shared dictionary without the delimiter and quotes (cached; thread-safe)."""
        with self._lock:
            key = (col, delim)
            if key not in self._sanitized:
                self._sanitized[key] = _sanitize(arr, delim)
            return self._sanitized[key]


DICT_COLUMNS = ("nama", "segmen", "tingkat", "kode_wilayah", "npp", "nama_instansi",
                "tgl_kepesertaan", "bulan_iuran_terakhir")


class _Encoded:
    """The rows of one file in file order, as dictionary indices (-1 = empty) and integers, in
    the office's dialect `p`. Text is materialised by the writer threads (`_file_columns`)."""

    def __init__(self, rows: _Rows, over: dict, bad_pos: np.ndarray, ref: _Reference,
                 tabs: _Tables, p: dict, rng: np.random.Generator):
        n = len(rows)
        pad_p = float(p["pad"])

        def pad() -> np.ndarray:
            return (rng.random(n) < pad_p) if pad_p > 0 else np.zeros(n, dtype=bool)

        idx: dict[str, np.ndarray] = {}
        dicts: dict[str, pa.Array] = {}
        idx["nama"] = rows.name + tabs.n_names * pad()
        dicts["nama"] = tabs.names
        seg_case = {"upper": 0, "lower": 1, "title": 2, "mixed": -1}[p["seg"]]
        seg_case = rng.integers(0, 3, n) if seg_case < 0 else np.full(n, seg_case)
        idx["segmen"] = rows.seg + 2 * seg_case + 6 * pad()
        dicts["segmen"] = tabs.segmen

        tier = rows.tier.astype(np.int64)
        region = rows.region
        has = region >= 0
        r0 = np.maximum(region, 0)
        variant = np.zeros(n, dtype=np.int64)
        m = tier == KABKOTA
        variant[m] = ref.is_kota[r0[m]]
        m = tier == DESA
        variant[m] = ref.is_kel[r0[m]]
        m = tier == RTRW
        variant[m] = rng.random(int(m.sum())) < 0.5
        lab = tabs.label_idx[_STYLE_CODES[p["labels"]], tier, variant]
        anyl = rng.random(n) < 0.03
        lab = np.where(anyl, tabs.any_label_off[tier]
                       + (rng.random(n) * tabs.any_label_n[tier]).astype(np.int64), lab)
        idx["tingkat"] = lab + tabs.n_labels * pad()
        dicts["tingkat"] = tabs.labels

        plain = rng.random(n) < float(p["plain"])
        idx["kode_wilayah"] = np.where(has, r0 + ref.n * plain + tabs.n_codes * pad(), -1)
        dicts["kode_wilayah"] = tabs.codes
        idx["npp"] = rows.inst
        dicts["npp"] = tabs.npp
        idx["nama_instansi"] = rows.inst
        dicts["nama_instansi"] = tabs.instansi

        dmy = rng.random(n) < float(p["dmy"])
        di = rows.tgl - tabs.d0
        assert di.min(initial=0) >= 0 and di.max(initial=0) < tabs.nd, "date outside the table"
        idx["tgl_kepesertaan"] = di + tabs.nd * dmy + 2 * tabs.nd * pad()
        dicts["tgl_kepesertaan"] = tabs.dates
        bf = int(p["bulan"])
        bf = rng.integers(0, 3, n) if bf < 0 else bf
        valid_b = rows.bulan >= 0
        mi = rows.bulan - tabs.m0
        assert not valid_b.any() or (mi[valid_b].min() >= 0 and mi.max() < tabs.nm), \
            "month outside the table"
        idx["bulan_iuran_terakhir"] = np.where(valid_b, mi + tabs.nm * bf, -1)
        dicts["bulan_iuran_terakhir"] = tabs.months

        # bad rows' text: appended to the column's (shared) dictionary
        self.tabs = tabs
        self.base_dicts = dict(dicts)
        self.extras: dict[str, pa.Array] = {}
        for key, col in (("tingkat", "tingkat"), ("tgl", "tgl_kepesertaan"),
                         ("segmen", "segmen"), ("kode", "kode_wilayah")):
            vals = over[key]
            m = np.array([v is not None for v in vals], dtype=bool)
            if m.any():
                base = len(dicts[col])
                extra = pa.array(list(vals[m]), pa.string())
                self.extras[col] = extra
                dicts[col] = pa.concat_arrays([dicts[col], extra])
                idx[col][bad_pos[m]] = base + np.arange(int(m.sum()))
        self.idx = {c: v.astype(np.int32) for c, v in idx.items()}
        self.dicts = dicts
        # NIK: integers, turned into text per file; overrides and padding by position
        self.nik = rows.nik
        m = np.array([v is not None for v in over["nik"]], dtype=bool)
        order = np.argsort(bad_pos[m])
        self.nik_over_pos = bad_pos[m][order]
        self.nik_over_val = over["nik"][m][order]
        self.nik_pad = pad()
        self.nik_nbsp = bool(p["nbsp"])
        self.kpj = rows.kpj
        self.kpj_valid = rng.random(n) >= 0.03
        self.tgl = rows.tgl
        self.bulan = rows.bulan
        self.bad = rows.bad

    def sanitized(self, col: str, delim: str) -> pa.Array:
        """The column's dictionary without the delimiter and quotes: the shared part cached for
        all files (thread-safe), the bad rows' own text sanitized here."""
        base = self.tabs.sanitized(col, self.base_dicts[col], delim)
        extra = self.extras.get(col)
        if extra is None:
            return base
        return pa.concat_arrays([base, _sanitize(extra, delim)])


def _sanitize(arr: pa.Array, delim: str) -> pa.Array:
    return pc.replace_substring(pc.replace_substring(arr, delim, " "), '"', "")


def _file_columns(enc: _Encoded, a: int, n: int, quote_none_delim: str | None = None
                  ) -> dict[str, pa.Array]:
    """Text columns of one file (rows a .. a+n of the snapshot)."""
    cols: dict[str, pa.Array] = {}
    for c in DICT_COLUMNS:
        ix = enc.idx[c][a:a + n]
        d = enc.dicts[c]
        if quote_none_delim is not None:   # unquoted CSV: values must not hold the delimiter
            d = enc.sanitized(c, quote_none_delim)
        null = ix < 0
        cols[c] = pa.DictionaryArray.from_arrays(
            pa.array(np.where(null, 0, ix), mask=null) if null.any() else pa.array(ix), d)
    nik = pc.cast(pa.array(enc.nik[a:a + n]), pa.string())
    lo, hi = np.searchsorted(enc.nik_over_pos, [a, a + n])
    if hi > lo:
        mask = np.zeros(n, dtype=bool)
        mask[enc.nik_over_pos[lo:hi] - a] = True
        nik = pc.replace_with_mask(nik, pa.array(mask),
                                   pa.array(list(enc.nik_over_val[lo:hi]), pa.string()))
    padm = enc.nik_pad[a:a + n]
    if padm.any():
        pos = np.flatnonzero(padm)
        sp = "\u00a0" if enc.nik_nbsp else " "
        padded = pc.binary_join_element_wise(sp, pc.take(nik, pa.array(pos)), sp, "")
        nik = pc.replace_with_mask(nik, pa.array(padm), padded)
    cols["nik"] = nik
    kv = enc.kpj_valid[a:a + n]
    cols["kpj"] = pa.array(enc.kpj[a:a + n], mask=~kv)
    return cols


# ----- writers --------------------------------------------------------------------------------


# ----- writers --------------------------------------------------------------------------------

def _write_csv(path: Path, enc: _Encoded, a: int, n: int, p: dict):
    cols = _file_columns(enc, a, n, p["delim"] if p["quote"] == "none" else None)
    names = list(ALT_ORDER if p["order"] == "alt" else STD_COLUMNS)
    names = [c for c in names if c not in p["drop"]]
    arrays = [cols[c] for c in names]
    if p["extra"] == "no":
        names = ["no"] + names
        arrays = [pa.array(np.arange(1, n + 1))] + arrays
    elif p["extra"] == "keterangan":
        names = names + ["keterangan"]
        ket = np.where(np.arange(n) % 17 == 3, "pindahan", None)
        arrays = arrays + [pa.array(ket, pa.string())]
    header = {"lower": str.lower, "upper": str.upper,
              "title": lambda s: s.replace("_", " ").title().replace(" ", "_")}[p["header"]]
    table = pa.table(arrays, names=[header(c) for c in names])
    opts = pacsv.WriteOptions(delimiter=p["delim"], eol=p["eol"], quoting_style=p["quote"],
                              quoting_header="none" if p["quote"] == "none" else "needed",
                              batch_size=65536)
    with open(path, "wb") as fh:
        if p["bom"]:
            fh.write(b"\xef\xbb\xbf")
        pacsv.write_csv(table, fh, write_options=opts)


def _write_parquet(path: Path, enc: _Encoded, a: int, n: int):
    cols = _file_columns(enc, a, n)
    arrays = {c: cols[c].cast(pa.string()) for c in STD_COLUMNS}
    arrays["tgl_kepesertaan"] = pa.array(enc.tgl[a:a + n].astype(np.int32)).cast(pa.date32())
    pq.write_table(pa.table(arrays), path, compression="zstd")


_FIXED_ZIP_TIME = (2021, 11, 1, 0, 0, 0)


def _xlsx_payload(enc: _Encoded, a: int, n: int, rng: np.random.Generator) -> list[tuple]:
    """Cell values of the XLSX office: NIK as text (a number where the spreadsheet mangled it),
    tgl_kepesertaan as native dates (text where deliberately impossible), bulan mostly text."""
    cols = {c: v.to_pylist() for c, v in _file_columns(enc, a, n).items()}
    bad = enc.bad[a:a + n]
    nik_num = enc.nik[a:a + n]
    cols["nik"] = [float(x) if k == B_NIK_FLOAT else s
                   for s, x, k in zip(cols["nik"], nik_num, bad)]
    cols["kpj"] = [None if v is None else str(v) for v in cols["kpj"]]
    tgl = (np.datetime64("1970-01-01", "D") + enc.tgl[a:a + n].astype("timedelta64[D]")).tolist()
    cols["tgl_kepesertaan"] = [s if k == B_DATE else d
                               for s, d, k in zip(cols["tgl_kepesertaan"], tgl, bad)]
    bul = enc.bulan[a:a + n]
    native = (bul.astype("datetime64[M]").astype("datetime64[D]")).tolist()
    use = (rng.random(n) < 0.2) & (bul >= 0)
    cols["bulan_iuran_terakhir"] = [d if u else s for s, d, u in
                                    zip(cols["bulan_iuran_terakhir"], native, use)]
    return list(zip(*(cols[c] for c in STD_COLUMNS)))


def _write_xlsx(path: str, header: list[str], rows: list[tuple]) -> str:
    """Write one sheet with openpyxl (write-only); timestamps fixed so the bytes are stable."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Peserta")
    ws.append(header)
    for row in rows:
        ws.append(row)
    wb.properties.creator = "BPJS Ketenagakerjaan"
    raw = io.BytesIO()
    wb.save(raw)
    src = zipfile.ZipFile(io.BytesIO(raw.getvalue()))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", b"2021-11-01T00:00:00Z", data)
            zi = zipfile.ZipInfo(info.filename, date_time=_FIXED_ZIP_TIME)
            zi.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(zi, data)
    return path


class _XlsxRunner:
    """Writes the larger XLSX files in a separate process (openpyxl without lxml is pure Python
    and slow), so they are written while the main process generates the next snapshot. Small
    files, and any file whose background write fails, are written inline."""

    INLINE_BELOW = 3000  # rows

    def __init__(self):
        self.pool = None
        self.jobs: list[tuple] = []

    def submit(self, path: Path, rows: list[tuple]):
        if len(rows) >= self.INLINE_BELOW:
            try:
                if self.pool is None:
                    import multiprocessing as mp
                    from concurrent.futures import ProcessPoolExecutor
                    self.pool = ProcessPoolExecutor(max_workers=1,
                                                    mp_context=mp.get_context("spawn"))
                fut = self.pool.submit(_write_xlsx, str(path), list(STD_COLUMNS), rows)
                self.jobs.append((fut, path, rows))
                return
            except Exception:  # pragma: no cover - no subprocesses on this platform
                pass
        _write_xlsx(str(path), list(STD_COLUMNS), rows)

    def wait(self):
        for fut, path, rows in self.jobs:
            try:
                fut.result()
            except Exception:  # pragma: no cover - e.g. a broken process pool
                _write_xlsx(str(path), list(STD_COLUMNS), rows)
        self.jobs = []
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None


# ============================================================================================
# bookkeeping: what a pipeline must count, from the generator's own state
# ============================================================================================

class _View:
    """Every post's state and region at one snapshot as a pipeline sees it (after the dedupe the
    post's own row decides; a post whose office did not deliver is absent)."""

    def __init__(self, pop: _Population, st: np.ndarray, prov: np.ndarray, kab: np.ndarray,
                 offices: tuple[str, ...]):
        self.st, self.prov, self.kab, self.offices = st, prov, kab, offices
        nat = np.zeros(pop.P, dtype=np.int8)
        nat[pop.pid[st > 0]] = INACTIVE
        nat[pop.pid[st == ACTIVE]] = ACTIVE
        self.nat = nat                      # national status per person id


def _counts(pop: _Population, ref: _Reference, v: _View):
    """Manifest counts of one view, plus province and regency active arrays (34x6, NKx6)."""
    pres = v.st > 0
    t_p = pop.tier[pres].astype(np.int64)
    a_p = (v.st[pres] == ACTIVE).astype(np.int64)
    tc = np.bincount(t_p * 2 + a_p, minlength=12)
    tiers = {name: {"active": int(tc[2 * t + 1]), "inactive": int(tc[2 * t])}
             for t, name in enumerate(TIERS)}
    n_people = int(np.count_nonzero(v.nat))
    n_active = int(np.count_nonzero(v.nat == ACTIVE))
    national = {"active": n_active, "inactive": n_people - n_active,
                "active_tier_sum": int(sum(x["active"] for x in tiers.values()))}
    pr = v.prov[pres].astype(np.int64)
    pc_ = np.bincount((pr * 6 + t_p) * 2 + a_p, minlength=34 * 12).reshape(34, 6, 2)
    provinces = {}
    for p, code in enumerate(ref.prov_codes):
        d = {TIERS[t]: {"active": int(pc_[p, t, 1]), "inactive": int(pc_[p, t, 0])}
             for t in range(6) if pc_[p, t].sum()}
        if d:
            provinces[code] = d
    kb = v.kab[pres].astype(np.int64)
    has = kb >= 0
    n_kab = ref.pool[1].size
    kc = np.bincount((kb[has] * 6 + t_p[has]) * 2 + a_p[has],
                     minlength=n_kab * 12).reshape(n_kab, 6, 2)
    regencies = {}
    for r in np.flatnonzero(kc.sum(axis=(1, 2))):
        regencies[ref.kab_codes[r]] = {TIERS[t]: {"active": int(kc[r, t, 1]),
                                                  "inactive": int(kc[r, t, 0])}
                                       for t in range(6) if kc[r, t].sum()}
    out = {"tiers": tiers, "national": national, "provinces": provinces, "regencies": regencies}
    return out, pc_[:, :, 1].copy(), kc[:, :, 1].copy()


def _flow_dict(c: np.ndarray) -> dict:
    """Flows from counts indexed by 3 * state(P) + state(S)."""
    return {"active": int(c[1] + c[4] + c[7]), "active_prev": int(c[3] + c[4] + c[5]),
            "new": int(c[1]), "reactivated": int(c[7]), "lapsed": int(c[5]), "left": int(c[3])}


def _flows(pop: _Population, prev: _View, cur: _View) -> dict:
    key = pop.tier * np.int8(9) + prev.st * np.int8(3) + cur.st
    c = np.bincount(key, minlength=54).reshape(6, 9)
    nat = np.bincount(prev.nat * np.int8(3) + cur.nat, minlength=9)
    out = {"tiers": {name: _flow_dict(c[t]) for t, name in enumerate(TIERS)},
           "national": _flow_dict(nat)}
    for d in (*out["tiers"].values(), out["national"]):
        assert d["active"] - d["active_prev"] == d["new"] + d["reactivated"] - d["lapsed"] - d["left"]
    return out


def _region_flows(pop: _Population, ref: _Reference, prev: _View, cur: _View) -> dict:
    tier = pop.tier.astype(np.int32)
    ca, pa_ = cur.st == ACTIVE, prev.st == ACTIVE
    cp, pp = cur.st > 0, prev.st > 0
    out = {}
    n_kab = ref.pool[1].size
    for level, n_reg, rc, rp, names in (
            ("provinces", 34, cur.prov, prev.prov, ref.prov_codes),
            ("regencies", n_kab, cur.kab, prev.kab, ref.kab_codes)):
        rc32, rp32 = rc.astype(np.int32), rp.astype(np.int32)
        kc = tier * n_reg + rc32
        kp = tier * n_reg + rp32
        vc, vp = rc32 >= 0, rp32 >= 0
        size = 6 * n_reg
        act_s = np.bincount(kc[ca & vc], minlength=size)
        act_p = np.bincount(kp[pa_ & vp], minlength=size)
        both = np.bincount(kc[ca & pa_ & vc & (rc32 == rp32)], minlength=size)
        pres = np.bincount(kc[cp & vc], minlength=size) + np.bincount(kp[pp & vp], minlength=size)
        d: dict = {}
        for key in np.flatnonzero(pres):
            t, r = divmod(int(key), n_reg)
            d.setdefault(names[r], {})[TIERS[t]] = {
                "active": int(act_s[key]), "active_prev": int(act_p[key]),
                "gained": int(act_s[key] - both[key]), "lost": int(act_p[key] - both[key])}
        out[level] = {code: d[code] for code in sorted(d)}
    return out


def _movers(pop: _Population, k: int, prev: _View, cur: _View) -> dict:
    mv = np.flatnonzero(pop.move_k == k)
    mv = mv[(prev.st[mv] > 0) & (cur.st[mv] > 0)]
    across = (pop.prov2[mv] != pop.prov[mv]).astype(np.int64)
    c = np.bincount(pop.tier[mv].astype(np.int64) * 2 + across, minlength=12)
    return {name: {"within_province": int(c[2 * t]), "across_provinces": int(c[2 * t + 1])}
            for t, name in enumerate(TIERS)}


def _year_ago_index(snaps: list[dt.date], k: int) -> int | None:
    y, mth = snaps[k].year - 1, snaps[k].month
    found = [j for j in range(k) if (snaps[j].year, snaps[j].month) == (y, mth)]
    return found[-1] if found else None


def _describe(pop, ref, snaps, k, view, counts, files, prev_view, offices_hist) -> dict:
    """The manifest entry of snapshot k for one view of it."""
    e = dict(counts)
    e["files"] = dict(sorted(files.items()))
    e["offices"] = sorted(view.offices)
    e["offices_delivered"] = len(view.offices)
    y = _year_ago_index(snaps, k)
    e["previous_snapshot"] = snaps[k - 1].isoformat() if k else None
    e["year_ago_snapshot"] = snaps[y].isoformat() if y is not None else None
    e["comparable"] = None if k == 0 else set(prev_view.offices) == set(view.offices)
    e["comparable_yoy"] = None if y is None else set(offices_hist[y]) == set(view.offices)
    if k == 0:
        e["flows"] = e["region_flows"] = e["movers"] = None
    else:
        e["flows"] = _flows(pop, prev_view, view)
        e["region_flows"] = _region_flows(pop, ref, prev_view, view)
        e["movers"] = _movers(pop, k, prev_view, view)
    return e


# ============================================================================================
# potential sets, targets, published figures
# ============================================================================================

#: Penetration the regency potentials are set to at the latest year's largest active count.
REGENCY_POTENTIAL_PENETRATION = 70

_POT_SOURCE_PROV = "Estimasi Kanwil BPJS Ketenagakerjaan berdasarkan data Pemda"

_RPJMN_SOURCE = ("RPJMN 2025-2029: cakupan kepesertaan jaminan sosial ketenagakerjaan "
                 "43,92% pada 2029")
_INPRES_SOURCE = ("Inpres 2/2021: seluruh pekerja non-ASN terdaftar (100%); tanggal target dari "
                  "kenaikan minimal 20% per tahun (Permendagri 15/2024)")

# Target rows: (file, tier or NASIONAL, level, code, kind, tingkat as written, code as written,
# pct style, date style). Kinds: "fixed" (RPJMN), "rule20" (100 % at +20 points a year from the
# latest penetration), "met", "on_track", "late" (values chosen from the demo's own trend).
_TARGET_SPECS = (
    ("targets/rpjmn-2025-2029.csv", "NASIONAL", "national", "", "fixed", "NASIONAL", "",
     "comma%", "iso"),
    ("targets/inpres-2-2021.csv", "KL", "national", "", "rule20", "Kementerian/Lembaga", "",
     "dot%", "dmy"),
    ("targets/inpres-2-2021.csv", "PROV", "national", "", "rule20", "PROV", "", "dot", "iso"),
    ("targets/inpres-2-2021.csv", "KABKOTA", "national", "", "rule20", "Kab/Kota", "",
     "comma1", "dmy"),
    ("targets/inpres-2-2021.csv", "KEC", "national", "", "rule20", "Kecamatan", "", "dot1%",
     "iso"),
    ("targets/inpres-2-2021.csv", "DESA", "national", "", "rule20", "DESA", "", "dot", "dmy"),
    ("targets/inpres-2-2021.csv", "RTRW", "national", "", "rule20", "RT/RW", "", "comma2%",
     "iso"),
    ("targets/pemda.csv", "KEC", "province", "31", "met", "Kecamatan", "31", "comma", "dmy"),
    ("targets/pemda.csv", "KABKOTA", "province", "33", "on_track", "KABKOTA", "33", "dot%",
     "iso"),
    ("targets/pemda.csv", "DESA", "province", "35", "late", "Desa", "35", "comma%", "dmy"),
    ("targets/pemda.csv", "KABKOTA", "regency", "32.73", "on_track", "Kab / Kota", "3273", "dot",
     "dmy"),
    ("targets/pemda.csv", "KABKOTA", "regency", "35.78", "met", "Kota", "35.78", "comma%",
     "iso"),
    ("targets/pemda.csv", "DESA", "regency", "33.74", "late", "Kelurahan/Desa", "3374", "dot",
     "iso"),
)
TARGET_FILES = tuple(sorted({s[0] for s in _TARGET_SPECS}))


def _year_set(snaps: list[dt.date]) -> list[int]:
    return sorted({d.year for d in snaps})


def _potential_rel(year: int) -> str:
    return f"potential/{year}-01-01/potensi.csv"


def _target_regencies(ref: _Reference) -> list[tuple[int, int]]:
    rank = {c: i for i, c in enumerate(ref.kab_codes)}
    return [(TIERS.index(s[1]), rank[s[3]]) for s in _TARGET_SPECS if s[2] == "regency"]


def _write_potentials(out: Path, ref: _Reference, pop: _Population, scale: float,
                      snaps: list[dt.date], prov_act: np.ndarray, kab_act: np.ndarray) -> dict:
    """One potential set per calendar year with a snapshot (in force for that year's snapshots).

    National row per tier (the latest year: the published figures; earlier years 4 % a year
    smaller), province rows adding up to it exactly (each at least the province's largest active
    count of the year, plus a share of the rest by the tier's province weights) and regency rows
    for the regencies with a target. `prov_act` / `kab_act`: true active counts per snapshot."""
    years = _year_set(snaps)
    latest_year = snaps[-1].year
    in_force = {y: [k for k, d in enumerate(snaps) if d.year == y] for y in years}
    tregs = _target_regencies(ref)
    ks = in_force[latest_year]
    reg_latest = {(t, r): max(1, math.ceil(int(kab_act[ks, r, t].max()) * 100
                                           / REGENCY_POTENTIAL_PENETRATION)) for t, r in tregs}
    sets = {}
    for y in years:
        f = 1.0 - POTENTIAL_YEARLY_DROP * (latest_year - y)
        if y == latest_year:
            national = {name: _scaled(POTENTIAL_NATIONAL[name], scale) for name in TIERS}
            source = PUBLISHED_SOURCE
        else:
            national = {name: max(1, _round(POTENTIAL_NATIONAL[name] * f * scale)) for name in TIERS}
            source = f"Estimasi potensi BPJS Ketenagakerjaan {y}"
        ks = in_force[y]
        mx = prov_act[ks].max(axis=0)            # 34 x 6
        last = prov_act[ks[-1]]
        rows, by_prov = [], {}
        for t, name in enumerate(TIERS):
            nat = national[name]
            alloc = _province_potentials(nat, last[:, t], mx[:, t], pop.weights[t])
            assert int(alloc.sum()) == nat
            label = _LABEL_STYLES["label"][t][0] if t % 2 == 0 else name
            rows.append([label, "", str(nat), source])
            for p, code in enumerate(ref.prov_codes):
                by_prov.setdefault(code, {})[name] = int(alloc[p])
                rows.append([name if p % 3 else _LABEL_STYLES["label"][t][0], code,
                             str(int(alloc[p])), _POT_SOURCE_PROV])
        by_reg: dict = {}
        for t, r in tregs:
            pot = max(int(kab_act[ks, r, t].max()), 1, _round(reg_latest[(t, r)] * f))
            code = ref.kab_codes[r]
            by_reg.setdefault(code, {})[TIERS[t]] = pot
            rows.append([TIERS[t], code, str(pot), f"Estimasi Pemda {_title(ref.names[ref.pool[1][r]])}"])
        rel = _potential_rel(y)
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["tingkat", "kode_wilayah", "potensi", "sumber"])
            w.writerows(rows)
        sets[f"{y}-01-01"] = {"file": rel, "applies_to": [snaps[k].isoformat() for k in ks],
                              "national": national, "provinces": by_prov,
                              "regencies": dict(sorted(by_reg.items()))}
    return sets


def _province_potentials(nat: int, last: np.ndarray, peak: np.ndarray,
                         weights: np.ndarray) -> np.ndarray:
    """Split a national potential over the provinces, adding up exactly: at least each province's
    active count at the set's last snapshot, then up to its peak in the set's snapshots (where the
    national figure leaves room; KEC's is within 0.2 % of its active count), the rest by weight."""
    last = last.astype(np.int64)
    peak = np.maximum(peak.astype(np.int64), last)
    extra = nat - int(last.sum())
    if extra < 0:
        return _allocate(nat, weights)
    need = peak - last
    if int(need.sum()) <= extra:
        return peak + _allocate(extra - int(need.sum()), weights)
    return last + _allocate(extra, need)


def _fmt_pct(d: Decimal, style: str) -> str:
    decimals = {"comma1": 1, "dot1%": 1, "comma2%": 2}.get(style)
    s = f"{d:.{decimals}f}" if decimals is not None else _dec_str(d)
    if style.startswith("comma"):
        s = s.replace(".", ",")
    return s + "%" if style.endswith("%") else s


def _dec_str(d: Decimal) -> str:
    """An exact decimal string without exponent or trailing zeros ("43.92", "100")."""
    s = format(d.normalize(), "f")
    return s


def _fmt_date(d: dt.date, style: str) -> str:
    return d.isoformat() if style == "iso" else d.strftime("%d/%m/%Y")


def _ols_slope(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    return sxy / sxx


def _trend(snaps: list[dt.date], pens: list[float | None]) -> float | None:
    """The contract's trend_pp_per_month at the latest snapshot: OLS slope of penetration
    against months(snapshot) over the last 12 snapshots with a penetration (at least 3)."""
    pts = [(_contract_months(d), p) for d, p in zip(snaps[-12:], pens[-12:]) if p is not None]
    if len(pts) < 3:
        return None
    slope = _ols_slope([float(x) for x, _ in pts], [y for _, y in pts])
    return 0.0 if abs(slope) < 1e-9 else slope


def _months_after(d: dt.date, n: int) -> dt.date:
    return _month_end_date(_month(d) + n)


def _progress(snaps, pens, pct: Decimal, target_date: dt.date) -> dict:
    """target_progress at the latest snapshot, as the contract computes it."""
    s = snaps[-1]
    pen = pens[-1]
    slope = _trend(snaps, pens)
    if pen is None:
        return {"penetration_pct": None, "trend_pp_per_month": slope, "projected_date": None,
                "on_track": None, "status": None}
    target = float(pct)
    met = pen >= target
    if met:
        projected = s
    elif slope is not None and slope > 0:
        projected = _months_after(s, math.ceil((target - pen) / slope))
    else:
        projected = None
    on_track = True if met else (None if projected is None else projected <= target_date)
    status = "met" if met else {True: "on_track", False: "late", None: None}[on_track]
    return {"penetration_pct": pen, "trend_pp_per_month": slope,
            "projected_date": projected.isoformat() if projected else None,
            "on_track": on_track, "status": status}


def _write_targets(out: Path, ref: _Reference, snaps: list[dt.date], pens: dict) -> dict:
    """The targets set; `pens[(tier, level, code)]` is the penetration series (as written)."""
    s = snaps[-1]
    rows_by_file: dict[str, list] = {}
    manifest_rows = []
    for file, tier, level, code, kind, t_written, c_written, pstyle, dstyle in _TARGET_SPECS:
        series = pens[(tier, level, code)]
        pen = series[-1]
        slope = _trend(snaps, series)
        if kind == "fixed":
            pct, date = Decimal("43.92"), dt.date(2029, 12, 31)
            source = _RPJMN_SOURCE
        elif kind == "rule20":
            pct = Decimal(100)
            gap = 100.0 - (pen or 0.0)
            date = _months_after(s, max(1, math.ceil(gap * 12 / 20)))
            source = _INPRES_SOURCE
        else:
            p = pen or 0.0
            name = ref.prov_names[ref.prov_codes.index(code)] if level == "province" else \
                ref.names[ref.pool[1][ref.kab_codes.index(code)]]
            source = f"Target Pemda {_title(name)} (ilustrasi demo)"
            if kind == "met":
                pct = Decimal(max(1, math.floor(p * 2) - 4)) / 2
                date = dt.date(s.year, 12, 31)
            else:
                pct = Decimal(min(100, (math.floor(p / 5) + 3) * 5))
                if slope is not None and slope > 0:
                    needed = math.ceil((float(pct) - p) / slope)
                    if needed < 4 and pct < 100:
                        pct = Decimal(100)
                        needed = math.ceil((float(pct) - p) / slope)
                else:
                    needed = 24
                if kind == "on_track":
                    date = dt.date(_months_after(s, needed + 3).year, 12, 31)
                else:
                    date = _months_after(s, max(1, needed // 2))
        row = [t_written, c_written, _fmt_pct(pct, pstyle), _fmt_date(date, dstyle), source]
        rows_by_file.setdefault(file, []).append(row)
        manifest_rows.append({
            "file": file, "row_number": len(rows_by_file[file]), "tingkat": tier,
            "kode_wilayah": code, "region_level": level, "target_pct": _dec_str(pct),
            "target_date": date.isoformat(), "sumber": source,
            "written": dict(zip(("tingkat", "kode_wilayah", "target_pct", "target_date"), row)),
            "at_latest": _progress(snaps, series, pct, date)})
    manifest_rows.sort(key=lambda r: (r["file"], r["row_number"]))
    for file, rows in rows_by_file.items():
        path = out / file
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["tingkat", "kode_wilayah", "target_pct", "target_date", "sumber"])
            w.writerows(rows)
    return {"files": list(TARGET_FILES), "rows": manifest_rows}


def _published_value(nilai: str, metric: str) -> tuple[str, int | None]:
    if metric == "penetration_pct":
        s = nilai.rstrip("%").replace(",", ".")
        return _dec_str(Decimal(s)), len(s.split(".")[1]) if "." in s else 0
    return str(int(nilai.replace(".", "").replace(",", ""))), None


def _write_published(out: Path) -> dict:
    path = out / PUBLISHED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["tingkat", "kode_wilayah", "metrik", "nilai", "sumber"])
        for i, (tier, metric, nilai) in enumerate(PUBLISHED_ROWS, start=1):
            w.writerow([tier, "", metric, nilai, PUBLISHED_SOURCE])
            value, decimals = _published_value(nilai, metric)
            rows.append({"row_number": i, "tingkat": tier, "kode_wilayah": "", "metrik": metric,
                         "nilai": nilai, "value": value, "decimals": decimals,
                         "sumber": PUBLISHED_SOURCE})
    return {"file": PUBLISHED_FILE, "published_date": PUBLISHED_DATE, "rows": rows}


def _penetration_series(ref, snaps, sets, written) -> dict:
    """Penetration (as written) per snapshot of every target row's (tier, level, code)."""
    out = {}
    by_year = {int(d[:4]): v for d, v in sets.items()}
    for _f, tier, level, code, *_ in _TARGET_SPECS:
        series = []
        for k, d in enumerate(snaps):
            pot_set = by_year[d.year]
            w = written[k]
            if tier == "NASIONAL":
                active = w["national_active"]
                potential = sum(pot_set["national"].values())
            else:
                t = TIERS.index(tier)
                if level == "national":
                    active, potential = int(w["tiers"][t]), pot_set["national"][tier]
                elif level == "province":
                    active = int(w["prov"][ref.prov_codes.index(code), t])
                    potential = pot_set["provinces"][code][tier]
                else:
                    active = int(w["kab"][ref.kab_codes.index(code), t])
                    potential = pot_set["regencies"].get(code, {}).get(tier)
            series.append(None if not potential else active / potential * 100)
        out[(tier, level, code)] = series
    return out


# ============================================================================================
# the landing zone: refusing foreign directories, replacing an earlier demo
# ============================================================================================

def _refuse_foreign(out: Path) -> None:
    """Raise DemoRefused unless `out` is missing, empty, or a demo landing zone written earlier."""
    if not out.exists():
        return
    if not out.is_dir():
        raise DemoRefused(f"Refusing to write the demo landing zone to {out}: it exists and is "
                          "not a directory.")
    if (out / MANIFEST).is_file() or (out / PARTIAL_MARKER).is_file():
        return
    with os.scandir(out) as it:
        if next(it, None) is None:
            return
    raise DemoRefused(f"Refusing to write the demo landing zone into {out}: the directory is not "
                      f"empty and holds no {MANIFEST}, so it is not a demo landing zone written "
                      "earlier (choose an empty or new directory).")


def _listed_files(data: dict) -> set[str]:
    """Every file a manifest (or the partial marker) says the demo wrote."""
    files = set(data.get("files") or [])
    files.update(data.get("potential_files") or [])
    for snap in (data.get("expected") or {}).values():
        files.update((snap or {}).get("files") or {})
    late = data.get("late") or {}
    for key in ("file", "delivered_as"):
        if late.get(key):
            files.add(late[key])
    files.update((data.get("targets") or {}).get("files") or [])
    pub = (data.get("published") or {}).get("file")
    if pub:
        files.add(pub)
    if data.get("bad_rows_file"):
        files.add(data["bad_rows_file"])
    return {f for f in files if isinstance(f, str)}


def _safe_rel(rel: str) -> bool:
    """Only paths the demo writes: relative, no '..', under one of its folders."""
    parts = Path(rel).parts
    if not parts or Path(rel).is_absolute() or ".." in parts:
        return False
    return parts[0] in _OWN_TOP or rel == "demo_bad_rows.csv"


def _old_files(out: Path) -> set[str]:
    listed: set[str] = set()
    for marker in (MANIFEST, PARTIAL_MARKER):
        p = out / marker
        if p.is_file():
            try:
                listed |= _listed_files(json.loads(p.read_text(encoding="utf-8")))
            except (OSError, ValueError, AttributeError):
                pass
    return {f for f in listed if _safe_rel(f)}


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _remove_old(out: Path, old: set[str], progress) -> None:
    """Remove an earlier demo's files (its manifest first) and the folders left empty."""
    man = out / MANIFEST
    if man.exists():
        man.unlink()
    removed = 0
    for rel in sorted(old):
        p = out / rel
        if p.is_file() or p.is_symlink():
            p.unlink()
            removed += 1
    for top in _OWN_TOP:
        base = out / top
        if not base.is_dir() or base.is_symlink():
            continue
        for root, _dirs, _files in os.walk(base, topdown=False):
            if not os.listdir(root):
                os.rmdir(root)
    if removed:
        progress(f"demo: removed {removed} files of the previous demo in {out}")


# ============================================================================================
# one snapshot: rows per office, written file by file
# ============================================================================================

STALE_FILE = 34  # pseudo file index of the stale delivery


def _file_name(code: str, latest: bool) -> str:
    if code == XLSX_PROVINCE:
        return f"{code}.xlsx"
    if code == PARQUET_PROVINCE:
        return f"{code}.parquet"
    if code == REDELIVERY_PROVINCE and latest:
        return f"{code}_revisi.csv"
    return f"{code}.csv"


def _planned_files(ref: _Reference, snaps: list[dt.date], k_late: int | None) -> list[str]:
    files = []
    for k, snap in enumerate(snaps):
        latest = k == len(snaps) - 1
        for code in ref.prov_codes:
            files.append(f"enrollment/{snap.isoformat()}/{_file_name(code, latest)}")
        if latest:
            files.append(f"enrollment/{snap.isoformat()}/{REDELIVERY_PROVINCE}.csv")
        if k == k_late:
            files.append(f"{LATE_DIR}/enrollment/{snap.isoformat()}/{LATE_PROVINCE}.csv")
    files += [_potential_rel(y) for y in _year_set(snaps)]
    files += list(TARGET_FILES) + [PUBLISHED_FILE, "demo_bad_rows.csv"]
    return files


class _Sink:
    """Writes files in the background (2 threads; XLSX in a separate process), keeping few in
    flight so memory stays bounded."""

    MAX_IN_FLIGHT = 3

    def __init__(self):
        self.pool = ThreadPoolExecutor(max_workers=2)
        self.xlsx = _XlsxRunner()
        self.futures: list = []

    def submit(self, kind: str, path: Path, args):
        if kind == "xlsx":
            self.xlsx.submit(path, args)
            return
        fn = _write_parquet if kind == "parquet" else _write_csv
        self.futures.append(self.pool.submit(fn, path, *args))
        while len(self.futures) > self.MAX_IN_FLIGHT:
            self.futures.pop(0).result()

    def close(self, ok: bool = True):
        try:
            if ok:
                for fut in self.futures:
                    fut.result()
                self.xlsx.wait()
        finally:
            self.pool.shutdown(wait=True)
            if self.xlsx.pool is not None:
                self.xlsx.pool.shutdown()


def _snapshot(out, k, snaps, k_late, seed, pop, ref, inst, tabs, profiles, sink, bad_log):
    """Rows of snapshot k, file by file. Returns (true view, written view, files as written,
    late file info or None, rows written, bad rows written)."""
    snap = snaps[k]
    latest = k == len(snaps) - 1
    prov_codes = ref.prov_codes
    xlsx_p = prov_codes.index(XLSX_PROVINCE)
    parquet_p = prov_codes.index(PARQUET_PROVINCE)
    redel_p = prov_codes.index(REDELIVERY_PROVINCE)
    late_p = prov_codes.index(LATE_PROVINCE) if k == k_late else -1
    srng = np.random.default_rng([seed, 1, snap.year, snap.month])
    snap_day, snap_m = _day(snap), _month(snap)
    snap_s = snap.isoformat()

    st = pop.state[k]
    bul = pop.bulan_at(k)
    prov_k = pop.prov_at(k)
    kab_k = pop.kab_at(k)
    all_offices = tuple(prov_codes)
    true_view = _View(pop, st, prov_k, kab_k, all_offices)
    if late_p >= 0:
        st_w = st.copy()
        st_w[(prov_k == late_p) & (st > 0)] = ABSENT
        written_view = _View(pop, st_w, prov_k, kab_k,
                             tuple(c for c in prov_codes if c != LATE_PROVINCE))
    else:
        written_view = true_view

    present = np.flatnonzero(st > 0)
    fileof = prov_k[present]
    order = np.argsort(fileof, kind="stable")
    fs, fc = _group_bounds(fileof[order], 34)

    # within-tier duplicates: an older row (earlier registration, strictly earlier month); none
    # for the late office's people in its missing snapshot (their own row must be the one gone)
    ok = bul[present] >= 0
    if late_p >= 0:
        ok &= fileof != late_p
    di = present[ok]
    di = di[srng.random(di.size) < DUP_RATE]
    d_tgl = pop.reg[di].astype(np.int64) - srng.integers(31, 731, di.size)
    lo = _days_to_months(d_tgl)
    hi = bul[di].astype(np.int64) - 1
    d_bulan = lo + (srng.random(di.size) * (hi - lo + 1)).astype(np.int64)
    assert (d_bulan < bul[di]).all() and (d_bulan >= lo).all()
    d_home = prov_k[di].astype(np.int64)
    d_prov = np.where(srng.random(di.size) < 0.6, d_home,
                      (d_home + srng.integers(1, 34, di.size)) % 34)
    d_tier = pop.tier[di]
    d_level = _TIER_LEVEL[d_tier].copy()
    klm = d_tier == KL
    d_level[klm] = np.where(pop.region_at(k, di[klm]) >= 0, 1, -1)
    d_region = ref.pick(d_level, d_prov, srng)
    dups = _Rows(file=d_prov.astype(np.int16), tier=d_tier, region=d_region,
                 tgl=d_tgl, bulan=d_bulan, seg=pop.seg[di], name=pop.name[di],
                 inst=inst.index(ref, d_tier, d_prov, d_region, srng), nik=pop.nik[di],
                 kpj=pop.kpj(di), bad=np.zeros(di.size, np.int8), pid=pop.pid[di].astype(np.int64))
    dups = dups.take(np.argsort(dups.file, kind="stable"))
    dfs, dfc = _group_bounds(dups.file, 34)

    # bad rows, cloned from valid posts of the receiving office's province
    n_valid = present.size + di.size
    by_prov = fc.astype(float)
    if by_prov.sum() > 0:
        n_bad = max(len(BAD_KINDS), _round(BAD_ROW_RATE * n_valid))
        kinds = np.concatenate([np.arange(1, len(BAD_KINDS) + 1),
                                srng.choice(np.arange(1, len(BAD_KINDS) + 1),
                                            size=max(0, n_bad - len(BAD_KINDS)), p=_BAD_WEIGHTS)])
        files = srng.choice(34, size=kinds.size, p=by_prov / by_prov.sum())
        if by_prov[xlsx_p] > 0:            # the XLSX office always has a NIK-as-number row
            kinds = np.append(kinds, B_NIK_FLOAT)
            files = np.append(files, xlsx_p)
    else:
        kinds = np.zeros(0, np.int64)
        files = np.zeros(0, np.int64)
    kinds[(files == parquet_p) & (kinds == B_DATE)] = B_TIER   # date32 cannot hold 31/02
    base = present[order[fs[files] + (srng.random(files.size) * fc[files]).astype(np.int64)]]
    # reserved person ids stay below 1e10, where the NIK's id digits are a bijection
    pid_next = _RESERVED_PID + (k % 90) * 10**7
    bads, over = _bad_rows(pop, ref, base, pop.region_at(k, base), bul[base],
                           pop.inst_at(k, base), files, kinds, snap_day, snap_m, pid_next,
                           srng, snap)
    pid_next += files.size
    border = np.argsort(bads.file, kind="stable")
    bads = bads.take(border)
    over = {c: v[border] for c, v in over.items()}
    bfs, bfc = _group_bounds(bads.file, 34)

    sdir = out / "enrollment" / snap_s
    sdir.mkdir(parents=True, exist_ok=True)
    files_info: dict[str, dict] = {}
    late_info = None
    n_rows = n_bad_rows = 0
    for fi in range(34):
        code = prov_codes[fi]
        posts = present[order[fs[fi]:fs[fi] + fc[fi]]]
        orig = _Rows(file=np.full(posts.size, fi, np.int16), tier=pop.tier[posts],
                     region=pop.region_at(k, posts), tgl=pop.reg[posts].astype(np.int64),
                     bulan=bul[posts].astype(np.int64), seg=pop.seg[posts], name=pop.name[posts],
                     inst=pop.inst_at(k, posts), nik=pop.nik[posts], kpj=pop.kpj(posts),
                     bad=np.zeros(posts.size, np.int8), pid=pop.pid[posts].astype(np.int64))
        bsel = np.arange(bfs[fi], bfs[fi] + bfc[fi])
        n_valid = posts.size + int(dfc[fi])
        frng = np.random.default_rng([seed, 2, snap.year, snap.month, fi])
        perm = frng.permutation(n_valid + bsel.size)
        parts = (orig, dups.take(np.arange(dfs[fi], dfs[fi] + dfc[fi])), bads.take(bsel))
        if latest and fi == redel_p:
            valid = _Rows.concat(parts[:2])
        rows = _Rows.concat(parts).take(perm)
        del parts, orig
        inv = np.empty_like(perm)
        inv[perm] = np.arange(perm.size)
        bad_pos = inv[n_valid:]
        enc = _Encoded(rows, {c: v[bsel] for c, v in over.items()}, bad_pos, ref, tabs,
                       profiles[fi], frng)
        n = len(rows)
        name = _file_name(code, latest)
        rel = f"enrollment/{snap_s}/{name}"
        fbad = rows.bad
        kc = np.bincount(fbad, minlength=len(BAD_KINDS) + 1)
        nb = int((fbad > 0).sum())
        info = {"status": "loaded", "rows_read": n, "rows_rejected": nb, "rows_loaded": n - nb,
                "bad_rows": {BAD_KINDS[i - 1]: int(kc[i])
                             for i in range(1, len(BAD_KINDS) + 1) if kc[i]}}
        bad_list = [(int(r) + 1, BAD_KINDS[fbad[r] - 1]) for r in np.flatnonzero(fbad)]
        if fi == late_p:
            path = out / LATE_DIR / "enrollment" / snap_s / name
            path.parent.mkdir(parents=True, exist_ok=True)
            late_info = {"snapshot": snap_s, "province": code,
                         "file": f"{LATE_DIR}/enrollment/{snap_s}/{name}", "delivered_as": rel,
                         "rows": n, "bad_rows": [list(b) for b in bad_list], "file_info": info}
        else:
            path = sdir / name
            files_info[rel] = info
            bad_log.extend((snap_s, rel, r, kind) for r, kind in bad_list)
            n_rows += n
            n_bad_rows += nb
        if fi == xlsx_p:
            sink.submit("xlsx", path, _xlsx_payload(enc, 0, n, frng))
        elif fi == parquet_p:
            sink.submit("parquet", path, (enc, 0, n))
        else:
            sink.submit("csv", path, (enc, 0, n, profiles[fi]))

        if latest and fi == redel_p:
            # stale delivery of the re-delivered province: most of its valid rows plus phantoms
            srng2 = np.random.default_rng([seed, 3, snap.year, snap.month])
            stale = valid.take(np.flatnonzero(srng2.random(len(valid)) < 0.92))
            n_ph = max(1, _round(0.06 * len(valid)))
            src = posts[(srng2.random(n_ph) * posts.size).astype(np.int64)] if posts.size else \
                present[:n_ph]
            ph_pid = pid_next + np.arange(src.size, dtype=np.int64)
            pid_next += src.size
            phantom = _Rows(file=np.full(src.size, STALE_FILE, np.int16), tier=pop.tier[src],
                            region=pop.region_at(k, src), tgl=pop.reg[src].astype(np.int64),
                            bulan=np.maximum(snap_m - 1, pop.reg_m[src]).astype(np.int64),
                            seg=pop.seg[src], name=pop.name[src], inst=pop.inst_at(k, src),
                            nik=_make_nik(ref, ph_pid, np.full(src.size, redel_p), srng2),
                            kpj=10**10 + (_KPJ_A * ph_pid + _KPJ_B) % 10**10,
                            bad=np.zeros(src.size, np.int8), pid=ph_pid)
            srows = _Rows.concat([stale, phantom])
            srows = srows.take(srng2.permutation(len(srows)))
            empty = {c: np.zeros(0, dtype=object) for c in over}
            senc = _Encoded(srows, empty, np.zeros(0, np.int64), ref, tabs, profiles[STALE_FILE],
                            srng2)
            srel = f"enrollment/{snap_s}/{code}.csv"
            files_info[srel] = {"status": "superseded", "rows_in_file": len(srows),
                                "superseded_by": rel}
            n_rows += len(srows)
            sink.submit("csv", sdir / f"{code}.csv", (senc, 0, len(srows), profiles[STALE_FILE]))
    return true_view, written_view, files_info, late_info, n_rows, n_bad_rows


# ============================================================================================
# main entry point
# ============================================================================================

def _set_time(folder: Path, day: dt.date, hour: int = 8) -> None:
    """Give every file under ``folder`` the modification time ``day`` ``hour``:00 WIB."""
    when = dt.datetime(day.year, day.month, day.day, hour,
                       tzinfo=dt.timezone(dt.timedelta(hours=7))).timestamp()
    for path in folder.rglob("*") if folder.exists() else ():
        if path.is_file():
            os.utime(path, (when, when))


def _delivery_times(out: Path, snaps) -> None:
    """Files look delivered when offices deliver them: a few days after the snapshot (the
    re-delivered 51_revisi.csv one day after the stale 51.csv; the late file a month later),
    so a run right after `cakupan demo` sees settled files and the newer re-delivery wins."""
    for snap in snaps:
        _set_time(out / "enrollment" / snap.isoformat(), snap + dt.timedelta(days=5))
        _set_time(out / "demo_late" / "enrollment" / snap.isoformat(),
                  snap + dt.timedelta(days=35))
    stale = out / "enrollment" / snaps[-1].isoformat() / f"{REDELIVERY_PROVINCE}.csv"
    if stale.exists():
        when = stale.stat().st_mtime - 86400
        os.utime(stale, (when, when))


def generate_landing(out: Path, scale: float = 1.0, snapshots: int = DEFAULT_SNAPSHOTS,
                     seed: int = 20211115, progress=print) -> dict:
    """Write a demo landing zone under `out` and return its manifest (also `out/demo_manifest.json`).

    `scale` multiplies every count (targets are ``max(1, round(figure * scale))``); `snapshots`
    monthly month-end snapshots end at 2021-10-31; the output is deterministic for a given
    (`scale`, `snapshots`, `seed`). `out` must be missing, empty, or a demo landing zone written
    earlier (then that demo is replaced); anything else raises `DemoRefused` and is left alone.
    The manifest is written last, so its presence means the zone is complete.
    """
    t_start = time.perf_counter()
    out = Path(out)
    scale = float(scale)
    snapshots = int(snapshots)
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive number, got {scale}")
    if not 1 <= snapshots <= MAX_SNAPSHOTS:
        raise ValueError(f"snapshots must be between 1 and {MAX_SNAPSHOTS}, got {snapshots}")
    if progress is None:
        progress = lambda *_a, **_k: None  # noqa: E731
    _refuse_foreign(out)

    ref = _Reference(REFERENCE_DIR / f"wilayah_{VINTAGE}.csv")
    snaps = snapshot_dates(snapshots)
    k_late = _late_index(len(snaps))
    out.mkdir(parents=True, exist_ok=True)
    old = _old_files(out)
    planned = _planned_files(ref, snaps, k_late)
    # the marker first: an interrupted run still leaves a zone the next run may replace
    _write_json(out / PARTIAL_MARKER, {"generator": "cakupan demo", "files": sorted(old | set(planned))})
    _remove_old(out, old, progress)

    inst = _Instansi(ref)
    tabs = _Tables(snaps[-1], ref, inst)
    rng = np.random.default_rng([seed, 0])
    pop = _Population(ref, inst, scale, snaps, rng)
    progress(f"demo: {pop.P:,} posts over the timeline ({pop.n_shared:,} held by people with two "
             f"posts), {snapshots} snapshots {snaps[0]} .. {snaps[-1]}, scale {scale:g}, seed "
             f"{seed} [{time.perf_counter() - t_start:.1f}s]")
    profiles = [{**_DEFAULT, **PROFILES[c]} for c in ref.prov_codes] + [{**_DEFAULT, **STALE_PROFILE}]

    manifest = {
        "scale": scale, "seed": int(seed), "grace_months": GRACE_MONTHS, "vintage": VINTAGE,
        "snapshots": [d.isoformat() for d in snaps],
        "targets_latest": {t: _scaled(v, scale) for t, v in ACTIVE_TARGETS.items()},
        "potential_national": None, "potential_provinces": None, "potential_files": [],
        "potential_sets": {},
        "special_files": {"xlsx_province": XLSX_PROVINCE, "parquet_province": PARQUET_PROVINCE,
                          "redelivered_province": REDELIVERY_PROVINCE,
                          "late_province": LATE_PROVINCE if k_late is not None else None},
        "bad_kinds": list(BAD_KINDS),
        "bad_rows_file": "demo_bad_rows.csv",
        "total_rows": 0,
        "late": None,
        "targets": None,
        "published": None,
        "expected": {},
    }
    bad_log: list[tuple] = []
    S = len(snaps)
    prov_true = np.zeros((S, 34, 6), dtype=np.int64)
    kab_true = np.zeros((S, ref.pool[1].size, 6), dtype=np.int64)
    written: list[dict] = []
    offices_hist: list[tuple] = []
    prev_w = prev_true = None
    sink = _Sink()
    ok = False
    try:
        for k, snap in enumerate(snaps):
            t0 = time.perf_counter()
            true_v, written_v, files, late_info, n_rows, n_bad = _snapshot(
                out, k, snaps, k_late, seed, pop, ref, inst, tabs, profiles, sink, bad_log)
            counts_w, prov_w, kab_w = _counts(pop, ref, written_v)
            offices_hist.append(written_v.offices)
            exp = _describe(pop, ref, snaps, k, written_v, counts_w, files, prev_w, offices_hist)
            if written_v is true_v:
                prov_true[k], kab_true[k] = prov_w, kab_w
            else:
                counts_t, prov_true[k], kab_true[k] = _counts(pop, ref, true_v)
            if k == S - 1:
                for name in TIERS:
                    assert exp["tiers"][name]["active"] == pop.n_active[name], name
            if late_info is not None:
                files_t = dict(files)
                files_t[late_info["delivered_as"]] = late_info.pop("file_info")
                late_info["expected_if_delivered"] = {
                    snap.isoformat(): _describe(pop, ref, snaps, k, true_v, counts_t, files_t,
                                                prev_w, offices_hist[:-1] + [true_v.offices])}
                manifest["late"] = late_info
            elif k_late is not None and k == k_late + 1:
                hist_t = list(offices_hist)
                hist_t[k_late] = prev_true.offices
                manifest["late"]["expected_if_delivered"][snap.isoformat()] = _describe(
                    pop, ref, snaps, k, written_v, counts_w, files, prev_true, hist_t)
            manifest["expected"][snap.isoformat()] = exp
            manifest["total_rows"] += n_rows
            written.append({"national_active": exp["national"]["active"],
                            "tiers": [exp["tiers"][t]["active"] for t in TIERS],
                            "prov": prov_w, "kab": kab_w})
            prev_w, prev_true = written_v, true_v
            progress(f"demo: {snap}: {n_rows:,} rows in {len(files)} files ({n_bad:,} bad), "
                     f"active people {exp['national']['active']:,}"
                     + (f", office {LATE_PROVINCE} late" if late_info else "")
                     + f" [{time.perf_counter() - t0:.1f}s]")
        ok = True
    finally:
        sink.close(ok)
    del prev_w, prev_true
    _delivery_times(out, snaps)

    sets = _write_potentials(out, ref, pop, scale, snaps, prov_true, kab_true)
    for folder in sorted((out / "potential").iterdir()):
        _set_time(folder, dt.date.fromisoformat(folder.name))
    latest_set = sets[max(sets)]
    manifest["potential_national"] = latest_set["national"]
    manifest["potential_provinces"] = latest_set["provinces"]
    manifest["potential_files"] = [v["file"] for _, v in sorted(sets.items())]
    manifest["potential_sets"] = sets
    manifest["targets"] = _write_targets(out, ref, snaps,
                                         _penetration_series(ref, snaps, sets, written))
    manifest["published"] = _write_published(out)
    with open(out / "demo_bad_rows.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["snapshot_date", "source_file", "row_number", "kind"])
        w.writerows(bad_log)
    _set_time(out / "targets", snaps[-1] + dt.timedelta(days=10))
    _set_time(out / "published", dt.date(2021, 11, 15))
    _write_json(out / MANIFEST, manifest)
    (out / PARTIAL_MARKER).unlink()
    progress(f"demo: wrote {manifest['total_rows']:,} rows for {len(snaps)} snapshots to {out} "
             f"[{time.perf_counter() - t_start:.1f}s]")
    return manifest
