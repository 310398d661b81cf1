"""Demo landing zone for cakupan (`cakupan demo`).

`generate_landing(out, scale, snapshots, seed)` writes a synthetic but realistic landing zone:

- ``enrollment/<YYYY-MM-DD>/<PP>.<ext>``: one extract per province office (34 provinces of the
  Kemendagri 2020 vintage) per monthly snapshot, the latest being 2021-10-31. Province 65
  (Kalimantan Utara) delivers XLSX, province 63 (Kalimantan Selatan) Parquet, every other office
  CSV in its own dialect (delimiter, BOM, line endings, quoting, header case and order, dotted or
  plain codes, date formats, tier spellings, padding, extra or missing optional columns).
- In the latest snapshot province 51 (Bali) is delivered twice: a stale ``51.csv`` and the newer
  ``51_revisi.csv`` (modified later); the stale one must be ``superseded``.
- ``potential/2021-01-01/potensi.csv``: national potential per tier plus province rows that add up
  to it exactly.
- ``demo_manifest.json``: the generator's own bookkeeping (what a correct pipeline must report),
  derived from how the data were constructed, not by reading the written files back.
- ``demo_bad_rows.csv``: every planted bad row (snapshot, source_file, 1-based data row number,
  kind), for checking the quarantine.

At ``scale=1`` the latest snapshot's active people per tier are exactly the published figures
(KL 103,942; PROV 23,523; KABKOTA 1,547,500; KEC 204,578; DESA 764,400; RTRW 160,000); at other
scales each is ``round(figure * scale)`` (at least 1).

How the population is built (all vectorised with numpy / pyarrow):

- A *post* is one person's position in one tier. Every post has a province, a region code of the
  tier's level inside that province, a registration date and a payment behaviour:
  *ongoing* (pays; active in every snapshot it appears in), *lapsed* (last paid month ``L`` at
  least 4 months before the latest snapshot) or *never paid* (empty month).
- The number of ongoing posts of a tier is its active target. Ongoing posts join over time
  (registration date inside the month of the snapshot they join in), so the ongoing count grows
  linearly from 60 % in the first snapshot to 100 % in the latest. Lapsed posts can still be
  active in early snapshots (churn).
- Some people hold two posts (RTRW+DESA, RTRW+KABKOTA, KEC+DESA; same province, same NIK).
- Each snapshot adds within-tier duplicates of about 1 % of the posts: an older row of the same
  NIK and tier with an earlier registration date and a strictly earlier ``bulan_iuran_terakhir``,
  in the same or another province's file, so the original row decides.
- Bad rows (about 0.5 %) are added on top, each breaking exactly one rule, with NIKs that never
  occur in a valid row of that snapshot.

Manifest (``demo_manifest.json``)::

    {"scale", "seed", "grace_months", "vintage", "snapshots": [...], "targets_latest": {tier: n},
     "potential_national": {tier: n}, "potential_provinces": {PP: {tier: n}},
     "potential_files": [...], "special_files": {...}, "bad_kinds": [...],
     "bad_rows_file": "demo_bad_rows.csv", "total_rows": n,
     "expected": {snapshot: {
        "tiers": {tier: {"active", "inactive"}},          # distinct NIK per tier after dedupe
        "national": {"active", "inactive", "active_tier_sum"},
        "provinces": {PP: {tier: {"active", "inactive"}}},     # region of the deciding row;
        "regencies": {"PP.RR": {tier: {"active", "inactive"}}},  # absent = nobody there
        "files": {"enrollment/<date>/<file>": {"status": "loaded", "rows_read", "rows_rejected",
                                               "rows_loaded", "bad_rows": {kind: n}}
                  | {"status": "superseded", "rows_in_file", "superseded_by"}}}}}
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

__all__ = [
    "generate_landing",
    "ACTIVE_TARGETS",
    "POTENTIAL_NATIONAL",
    "TIERS",
    "LATEST_SNAPSHOT",
    "XLSX_PROVINCE",
    "PARQUET_PROVINCE",
    "REDELIVERY_PROVINCE",
]

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "reference"
VINTAGE = "2020"

TIERS = ("KL", "PROV", "KABKOTA", "KEC", "DESA", "RTRW")
KL, PROV, KABKOTA, KEC, DESA, RTRW = range(6)

#: Active people per tier in the latest snapshot at scale 1 (RDP Komisi IX, 15 Nov 2021).
ACTIVE_TARGETS = {"KL": 103_942, "PROV": 23_523, "KABKOTA": 1_547_500,
                  "KEC": 204_578, "DESA": 764_400, "RTRW": 160_000}
#: National potential (denominator) per tier at scale 1.
POTENTIAL_NATIONAL = {"KL": 350_000, "PROV": 345_933, "KABKOTA": 2_500_000,
                      "KEC": 205_000, "DESA": 1_200_000, "RTRW": 9_000_000}
#: Inactive people per tier, as a share of the tier's active people.
INACTIVE_SHARE = {"KL": 0.12, "PROV": 0.18, "KABKOTA": 0.14, "KEC": 0.10, "DESA": 0.17, "RTRW": 0.20}
#: Share of wage earners (PU) per tier; the rest BPU.
PU_SHARE = (0.92, 0.90, 0.85, 0.85, 0.60, 0.25)

GRACE_MONTHS = 3
LATEST_SNAPSHOT = dt.date(2021, 10, 31)
POTENTIAL_DATE = "2021-01-01"
XLSX_PROVINCE = "65"        # Kalimantan Utara (small)
PARQUET_PROVINCE = "63"     # Kalimantan Selatan (medium)
REDELIVERY_PROVINCE = "51"  # Bali (small to medium)

BAD_ROW_RATE = 0.005        # share of a snapshot's valid rows added as bad rows
DUP_RATE = 0.01             # share of posts that get an older duplicate row in the same tier
ACTIVE_START_SHARE = 0.60   # ongoing posts in the first snapshot, relative to the latest

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


# ============================================================================================
# population (posts over the whole timeline)
# ============================================================================================

ONGOING, LAPSED, NEVER = 0, 1, 2
_TIER_LEVEL = np.array([-9, 0, 1, 2, 3, 3], dtype=np.int8)   # KL handled separately


def _tier_weights(ref: _Reference) -> np.ndarray:
    pop = np.array([POPULATION[c] for c in ref.prov_codes])
    n_kec = ref.pool_count[2].astype(float)
    n_desa = ref.pool_count[3].astype(float)
    kl = pop.copy()
    kl[ref.prov_codes.index("31")] *= 5.0          # ministries' head offices in Jakarta
    return np.vstack([kl, np.sqrt(pop) * 3, pop, np.sqrt(pop * n_kec), np.sqrt(pop * n_desa), pop])


class _Population:
    def __init__(self, ref: _Reference, inst: _Instansi, scale: float, snaps: list[dt.date],
                 rng: np.random.Generator):
        weights = _tier_weights(ref)
        self.weights = weights
        S = len(snaps)
        snap_day = np.array([_day(d) for d in snaps], dtype=np.int64)
        tiers, provs, kinds = [], [], []
        self.n_active = {}
        for t, name in enumerate(TIERS):
            n_act = _scaled(ACTIVE_TARGETS[name], scale)
            n_inact = max(1, _round(n_act * INACTIVE_SHARE[name]))
            self.n_active[name] = n_act
            pa_ = _allocate(n_act, weights[t])
            pi_ = _allocate(n_inact, weights[t])
            p = np.concatenate([np.repeat(np.arange(34), pa_), np.repeat(np.arange(34), pi_)])
            k = np.concatenate([np.full(n_act, ONGOING, np.int8),
                                np.where(rng.random(n_inact) < 0.75, LAPSED, NEVER).astype(np.int8)])
            tiers.append(np.full(p.size, t, np.int8))
            provs.append(p.astype(np.int16))
            kinds.append(k)
        tier = np.concatenate(tiers)
        prov = np.concatenate(provs)
        kind = np.concatenate(kinds)
        P = tier.size
        self.P = P

        # region codes
        level = _TIER_LEVEL[tier].copy()
        kl = tier == KL
        level[kl] = rng.choice(np.array([-1, 0, 1, 2, 3], np.int8), size=int(kl.sum()),
                               p=[0.40, 0.25, 0.25, 0.05, 0.05])
        region = ref.pick(level, prov, rng)

        # join snapshot of ongoing posts: linear growth from ACTIVE_START_SHARE to 100 %
        join = np.zeros(P, dtype=np.int16)
        if S > 1:
            frac = ACTIVE_START_SHARE + (1 - ACTIVE_START_SHARE) * np.arange(S) / (S - 1)
            for t in range(6):
                idx = np.flatnonzero((tier == t) & (kind == ONGOING))
                thresholds = np.round(frac * idx.size).astype(np.int64)
                thresholds[-1] = idx.size
                rank = rng.permutation(idx.size)
                join[idx] = np.searchsorted(thresholds, rank, side="right")

        # registration dates and last paid month of lapsed posts
        d2015, d2019 = _day(dt.date(2015, 1, 1)), _day(dt.date(2019, 1, 1))
        d2021 = _day(dt.date(2021, 1, 1))
        reg = np.zeros(P, dtype=np.int64)
        u = rng.random(P)
        ongo = kind == ONGOING
        j0 = ongo & (join == 0)
        lo = np.where(rng.random(P) < 0.5, d2015, min(d2021, snap_day[0]))
        reg[j0] = lo[j0] + (u[j0] * (snap_day[0] - lo[j0] + 1)).astype(np.int64)
        jn = ongo & (join > 0)
        prev = snap_day[np.maximum(join - 1, 0)]
        cur = snap_day[join]
        reg[jn] = prev[jn] + 1 + (u[jn] * (cur[jn] - prev[jn])).astype(np.int64)
        latest_m = _month(snaps[-1])
        lapse = np.full(P, 10**6, dtype=np.int64)              # ongoing: never lapses
        lap = kind == LAPSED
        gap = np.where(rng.random(P) < 0.25, 0, 1 + rng.geometric(0.12, P))
        lapse[lap] = latest_m - (GRACE_MONTHS + 1) - np.minimum(gap[lap], 60)
        # lapsed: registered no later than the end of the last paid month
        lapse_end = (lapse + 1).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) - 1
        hi = np.minimum(lapse_end, snap_day[-1])
        lo_l = np.minimum(d2015, hi)
        reg[lap] = lo_l[lap] + (u[lap] * (hi[lap] - lo_l[lap] + 1)).astype(np.int64)
        nev = kind == NEVER
        lo_n = np.full(P, d2019)
        reg[nev] = lo_n[nev] + (u[nev] * (snap_day[-1] - lo_n[nev] + 1)).astype(np.int64)
        self.reg = reg
        self.reg_m = _days_to_months(reg)
        assert (self.reg_m[lap] <= lapse[lap]).all()

        # person attributes (of the post's own person; shared posts adopt another person)
        birth = np.where(rng.random(P) < 0.85, prov,
                         rng.choice(34, size=P, p=weights[2] / weights[2].sum())).astype(np.int64)
        self.pid = np.arange(P, dtype=np.int64)
        female = rng.random(P) < 0.45
        self.nik_own = _make_nik(ref, self.pid, birth, rng, female)
        n_first = max(len(_MALE), len(_FEMALE))
        self.name_own = (female * n_first + rng.integers(0, n_first, P)) * len(_LAST) \
            + rng.integers(0, len(_LAST), P)
        self.kpj_own = 10**10 + (_KPJ_A * self.pid + _KPJ_B) % 10**10

        # people with two posts (same province, different tiers)
        taken = np.zeros(P, dtype=bool)
        for rt, dtier, frac in ((RTRW, DESA, 0.12), (RTRW, KABKOTA, 0.04), (KEC, DESA, 0.02)):
            self._share(tier, prov, rt, dtier, frac, taken, rng)
        pid = self.pid
        # one person, one post per tier
        key = np.sort(pid * 8 + tier)
        assert (np.diff(key) > 0).all(), "a person holds two posts in one tier"

        self.tier, self.prov, self.kind, self.region = tier, prov, kind, region
        self.join, self.lapse = join, lapse
        self.seg = (rng.random(P) >= np.array(PU_SHARE)[tier]).astype(np.int8)  # 0 PU, 1 BPU
        self.nik = self.nik_own[pid]
        self.name = self.name_own[pid]
        self.kpj = self.kpj_own[pid]
        self.inst = inst.index(ref, tier, prov, region, rng)
        self.n_shared = int((pid != np.arange(P)).sum())

    def _share(self, tier, prov, rt, dtier, frac, taken, rng):
        P = tier.size
        rec = np.flatnonzero((tier == rt) & ~taken)
        rec = rec[rng.random(rec.size) < frac]
        don = np.flatnonzero((tier == dtier) & (self.pid == np.arange(P)))
        if rec.size == 0 or don.size == 0:
            return
        don = don[np.lexsort((rng.random(don.size), prov[don]))]
        rec = rec[np.lexsort((rng.random(rec.size), prov[rec]))]
        dstart, dcount = _group_bounds(prov[don], 34)
        rstart, _ = _group_bounds(prov[rec], 34)
        rank = np.arange(rec.size) - rstart[prov[rec]]
        ok = rank < dcount[prov[rec]]
        rec, rank = rec[ok], rank[ok]
        self.pid[rec] = self.pid[don[dstart[prov[rec]] + rank]]
        taken[rec] = True


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
# one snapshot: rows (numeric), bookkeeping, formatting, writing
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


def _bulan_for(pop: _Population, idx: np.ndarray, snap_m: int, rng) -> np.ndarray:
    """Last paid month (months since 1970-01; -1 = empty) of posts `idx` at a snapshot."""
    n = idx.size
    lag = rng.choice(np.array([0, 1, 2, 3, -1, -2, -3, -12]), size=n,
                     p=[0.45, 0.24, 0.12, 0.08, 0.05, 0.03, 0.025, 0.005])
    b = np.minimum(snap_m - lag, pop.lapse[idx])
    b = np.maximum(b, pop.reg_m[idx])
    return np.where(pop.kind[idx] == NEVER, -1, b)


def _expected(pop: _Population, ref: _Reference, idx: np.ndarray, active: np.ndarray) -> dict:
    """Manifest figures of one snapshot, from the posts that appear in it (their rows decide)."""
    tier = pop.tier[idx].astype(np.int64)
    act = active.astype(np.int64)
    tiers = {}
    tc = np.bincount(tier * 2 + act, minlength=12)
    for t, name in enumerate(TIERS):
        tiers[name] = {"active": int(tc[2 * t + 1]), "inactive": int(tc[2 * t])}
    pid = pop.pid[idx]                      # person ids of valid posts are < pop.P
    seen = np.zeros(pop.P, dtype=bool)
    seen[pid] = True
    seen_active = np.zeros(pop.P, dtype=bool)
    seen_active[pid[active]] = True
    n_people, n_active = int(seen.sum()), int(seen_active.sum())
    national = {"active": n_active,
                "inactive": n_people - n_active,
                "active_tier_sum": int(sum(v["active"] for v in tiers.values()))}
    prov = pop.prov[idx].astype(np.int64)
    pc_ = np.bincount((prov * 6 + tier) * 2 + act, minlength=34 * 12).reshape(34, 6, 2)
    provinces = {}
    for p, code in enumerate(ref.prov_codes):
        d = {TIERS[t]: {"active": int(pc_[p, t, 1]), "inactive": int(pc_[p, t, 0])}
             for t in range(6) if pc_[p, t].sum()}
        if d:
            provinces[code] = d
    region = pop.region[idx]
    has_kab = region >= 0
    has_kab[has_kab] = ref.level[region[has_kab]] >= 1
    kab = ref.kab[region[has_kab]].astype(np.int64)
    kab_rank = ref.rank[kab].astype(np.int64)
    n_kab = ref.pool[1].size
    kc = np.bincount((kab_rank * 6 + tier[has_kab]) * 2 + act[has_kab],
                     minlength=n_kab * 12).reshape(n_kab, 6, 2)
    regencies = {}
    for r in np.flatnonzero(kc.sum(axis=(1, 2))):
        code = ref.code[ref.pool[1][r]]
        regencies[code] = {TIERS[t]: {"active": int(kc[r, t, 1]), "inactive": int(kc[r, t, 0])}
                           for t in range(6) if kc[r, t].sum()}
    return {"tiers": tiers, "national": national, "provinces": provinces, "regencies": regencies}


def _bad_rows(pop, ref, inst, base_idx, files, kinds, snap_day, snap_m, pid_start, rng,
              snap_date: dt.date):
    """Bad rows cloned from valid posts of the file's province; each breaks one rule.

    Returns the numeric rows and per-row text overrides {column: object array or None}.
    """
    n = base_idx.size
    b_tier = pop.tier[base_idx].copy()
    region = pop.region[base_idx].copy()
    tgl = pop.reg[base_idx].copy()
    bulan = _bulan_for(pop, base_idx, snap_m, rng)
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
                 inst=pop.inst[base_idx], nik=nik, kpj=10**10 + (_KPJ_A * pid + _KPJ_B) % 10**10,
                 bad=kinds.astype(np.int8), pid=pid)
    return rows, over


def _padded(arr: pa.Array, pad: str = " ") -> pa.Array:
    """`arr` followed by the same values padded with whitespace on both sides."""
    return pa.concat_arrays([arr, pc.binary_join_element_wise(pad, arr, pad + pad, "")])


class _Tables:
    """String dictionaries shared by all snapshots (each followed by its padded copy)."""

    def __init__(self, latest: dt.date, ref: _Reference, inst: _Instansi):
        self.d0 = _day(dt.date(2010, 1, 1))
        d1 = _day(latest) + 800
        days = np.arange(self.d0, d1).astype("datetime64[D]")
        iso = np.datetime_as_string(days, unit="D")
        dmy = [f"{s[8:10]}/{s[5:7]}/{s[0:4]}" for s in iso]
        self.nd = len(iso)
        self.dates = _padded(pa.array(list(iso) + dmy, pa.string()))           # 4 * nd
        self.m0 = _month(dt.date(2010, 1, 1))
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


def _profile_arrays(profiles: list[dict]):
    g = lambda k: np.array([p[k] for p in profiles])  # noqa: E731
    return dict(plain=g("plain").astype(float), dmy=g("dmy").astype(float), bulan=g("bulan"),
                labels=np.array([_STYLE_CODES[p["labels"]] for p in profiles]),
                seg=np.array([{"upper": 0, "lower": 1, "title": 2, "mixed": -1}[p["seg"]]
                              for p in profiles]),
                pad=g("pad").astype(float), nbsp=g("nbsp").astype(bool))


DICT_COLUMNS = ("nama", "segmen", "tingkat", "kode_wilayah", "npp", "nama_instansi",
                "tgl_kepesertaan", "bulan_iuran_terakhir")


class _Encoded:
    """The rows of one snapshot in file order, as dictionary indices (-1 = empty) and integers.

    Text is materialised per file by the writer threads (`_file_columns`)."""

    def __init__(self, rows: _Rows, over: dict, bad_pos: np.ndarray, ref: _Reference,
                 tabs: _Tables, prof: dict, rng: np.random.Generator):
        n = len(rows)
        f = rows.file.astype(np.int64)
        pad_p = prof["pad"][f]
        any_pad = bool(pad_p.any())

        def pad() -> np.ndarray:
            return (rng.random(n) < pad_p) if any_pad else np.zeros(n, dtype=bool)

        idx: dict[str, np.ndarray] = {}
        dicts: dict[str, pa.Array] = {}
        idx["nama"] = rows.name + tabs.n_names * pad()
        dicts["nama"] = tabs.names
        seg_case = prof["seg"][f]
        seg_case = np.where(seg_case < 0, rng.integers(0, 3, n), seg_case)
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
        lab = tabs.label_idx[prof["labels"][f], tier, variant]
        anyl = rng.random(n) < 0.03
        lab = np.where(anyl, tabs.any_label_off[tier]
                       + (rng.random(n) * tabs.any_label_n[tier]).astype(np.int64), lab)
        idx["tingkat"] = lab + tabs.n_labels * pad()
        dicts["tingkat"] = tabs.labels

        plain = rng.random(n) < prof["plain"][f]
        idx["kode_wilayah"] = np.where(has, r0 + ref.n * plain + tabs.n_codes * pad(), -1)
        dicts["kode_wilayah"] = tabs.codes
        idx["npp"] = rows.inst
        dicts["npp"] = tabs.npp
        idx["nama_instansi"] = rows.inst
        dicts["nama_instansi"] = tabs.instansi

        dmy = rng.random(n) < prof["dmy"][f]
        di = rows.tgl - tabs.d0
        assert di.min(initial=0) >= 0 and di.max(initial=0) < tabs.nd, "date outside the table"
        idx["tgl_kepesertaan"] = di + tabs.nd * dmy + 2 * tabs.nd * pad()
        dicts["tgl_kepesertaan"] = tabs.dates
        bf = prof["bulan"][f]
        bf = np.where(bf < 0, rng.integers(0, 3, n), bf)
        valid_b = rows.bulan >= 0
        mi = rows.bulan - tabs.m0
        assert not valid_b.any() or (mi[valid_b].min() >= 0 and mi.max() < tabs.nm), \
            "month outside the table"
        idx["bulan_iuran_terakhir"] = np.where(valid_b, mi + tabs.nm * bf, -1)
        dicts["bulan_iuran_terakhir"] = tabs.months

        # bad rows' text: appended to the column's dictionary
        for key, col in (("tingkat", "tingkat"), ("tgl", "tgl_kepesertaan"),
                         ("segmen", "segmen"), ("kode", "kode_wilayah")):
            vals = over[key]
            m = np.array([v is not None for v in vals], dtype=bool)
            if m.any():
                base = len(dicts[col])
                dicts[col] = pa.concat_arrays([dicts[col], pa.array(list(vals[m]), pa.string())])
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
        self.nik_nbsp = prof["nbsp"][f]
        self.kpj = rows.kpj
        self.kpj_valid = rng.random(n) >= 0.03
        self.tgl = rows.tgl
        self.bulan = rows.bulan
        self.bad = rows.bad
        self._sanitized: dict = {}
        self._lock = threading.Lock()

    def sanitized(self, col: str, delim: str) -> pa.Array:
        """The column's dictionary without the delimiter and quotes (cached; thread-safe)."""
        with self._lock:
            key = (col, delim)
            if key not in self._sanitized:
                d = pc.replace_substring(self.dicts[col], delim, " ")
                self._sanitized[key] = pc.replace_substring(d, '"', "")
            return self._sanitized[key]


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
        sp = "\u00a0" if enc.nik_nbsp[a] else " "
        padded = pc.binary_join_element_wise(sp, pc.take(nik, pa.array(pos)), sp, "")
        nik = pc.replace_with_mask(nik, pa.array(padm), padded)
    cols["nik"] = nik
    kv = enc.kpj_valid[a:a + n]
    cols["kpj"] = pa.array(enc.kpj[a:a + n], mask=~kv)
    return cols


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


# ============================================================================================
# potential
# ============================================================================================

def _write_potential(out: Path, ref: _Reference, pop: _Population, scale: float,
                     latest_prov_active: np.ndarray) -> tuple[str, dict, dict]:
    """National potential per tier plus province rows adding up to it exactly.

    A province's potential is its latest active count plus a share (by the tier's province
    weights) of the national gap, so no province shows more than 100 %."""
    national = {t: _scaled(v, scale) for t, v in POTENTIAL_NATIONAL.items()}
    rows = []
    by_prov: dict[str, dict] = {}
    for t, name in enumerate(TIERS):
        nat = national[name]
        act = latest_prov_active[:, t]
        extra = nat - int(act.sum())
        alloc = act + _allocate(extra, pop.weights[t]) if extra >= 0 else _allocate(nat, pop.weights[t])
        assert int(alloc.sum()) == nat
        label = _LABEL_STYLES["label"][t][0] if t % 2 == 0 else name
        rows.append([label, "", str(nat), "RDP Komisi IX DPR RI, 15 November 2021"])
        for p, code in enumerate(ref.prov_codes):
            by_prov.setdefault(code, {})[name] = int(alloc[p])
            rows.append([name if p % 3 else _LABEL_STYLES["label"][t][0], code, str(int(alloc[p])),
                         "Estimasi Kanwil BPJS Ketenagakerjaan berdasarkan data Pemda"])
    rel = f"potential/{POTENTIAL_DATE}/potensi.csv"
    path = out / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["tingkat", "kode_wilayah", "potensi", "sumber"])
        w.writerows(rows)
    return rel, national, by_prov


# ============================================================================================
# main entry point
# ============================================================================================

def _clean_previous(out: Path, progress):
    """Remove the files a previous demo run listed in its manifest (the manifest first)."""
    man = out / "demo_manifest.json"
    if not man.exists():
        return
    try:
        old = json.loads(man.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = {}
    man.unlink()
    listed = set(old.get("potential_files", []))
    for snap in (old.get("expected") or {}).values():
        listed.update((snap.get("files") or {}).keys())
    listed.add("demo_bad_rows.csv")
    removed = 0
    for rel in listed:
        p = out / rel
        if p.is_file():
            p.unlink()
            removed += 1
    for sub in ("enrollment", "potential"):
        base = out / sub
        if base.is_dir():
            for d in sorted(base.iterdir(), reverse=True):
                if d.is_dir() and not any(d.iterdir()):
                    d.rmdir()
    progress(f"demo: removed {removed} files of the previous demo in {out}")


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


def generate_landing(out: Path, scale: float = 1.0, snapshots: int = 6, seed: int = 20211115,
                     progress=print) -> dict:
    """Write a demo landing zone under `out` and return its manifest (also `out/demo_manifest.json`).

    `scale` multiplies every count (targets are ``max(1, round(figure * scale))``); `snapshots`
    monthly month-end snapshots end at 2021-10-31; the output is deterministic for a given
    (`scale`, `snapshots`, `seed`). A previous demo in `out` (found through its manifest) is
    removed first; the manifest is written last, so its presence means the zone is complete.
    """
    t_start = time.perf_counter()
    out = Path(out)
    scale = float(scale)
    snapshots = int(snapshots)
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive number, got {scale}")
    if snapshots < 1:
        raise ValueError(f"snapshots must be at least 1, got {snapshots}")
    if progress is None:
        progress = lambda *_a, **_k: None  # noqa: E731
    out.mkdir(parents=True, exist_ok=True)
    _clean_previous(out, progress)

    ref = _Reference(REFERENCE_DIR / f"wilayah_{VINTAGE}.csv")
    inst = _Instansi(ref)
    snaps = snapshot_dates(snapshots)
    tabs = _Tables(snaps[-1], ref, inst)
    rng = np.random.default_rng([seed, 0])
    pop = _Population(ref, inst, scale, snaps, rng)
    progress(f"demo: {pop.P:,} posts ({pop.n_shared:,} held by people with two posts), "
             f"{snapshots} snapshots {snaps[0]} .. {snaps[-1]}, scale {scale:g}, seed {seed} "
             f"[{time.perf_counter() - t_start:.1f}s]")

    prov_codes = ref.prov_codes
    profiles = [{**_DEFAULT, **PROFILES[c]} for c in prov_codes] + [{**_DEFAULT, **STALE_PROFILE}]
    prof = _profile_arrays(profiles)

    manifest = {
        "scale": scale, "seed": int(seed), "grace_months": GRACE_MONTHS, "vintage": VINTAGE,
        "snapshots": [d.isoformat() for d in snaps],
        "targets_latest": {t: _scaled(v, scale) for t, v in ACTIVE_TARGETS.items()},
        "potential_national": None, "potential_provinces": None, "potential_files": [],
        "special_files": {"xlsx_province": XLSX_PROVINCE, "parquet_province": PARQUET_PROVINCE,
                          "redelivered_province": REDELIVERY_PROVINCE},
        "bad_kinds": list(BAD_KINDS),
        "bad_rows_file": "demo_bad_rows.csv",
        "total_rows": 0,
        "expected": {},
    }
    bad_log: list[tuple] = []
    writers = ThreadPoolExecutor(max_workers=2)
    xlsx = _XlsxRunner()
    futures = []
    latest_prov_active = None
    try:
        for k, snap in enumerate(snaps):
            t0 = time.perf_counter()
            latest = k == len(snaps) - 1
            exp, jobs, n_rows, n_bad, latest_prov = _snapshot(
                out, k, snap, latest, seed, pop, ref, inst, tabs, prof, profiles, bad_log)
            for kind, path, args in jobs:
                if kind == "xlsx":
                    xlsx.submit(path, args)
                elif kind == "parquet":
                    futures.append(writers.submit(_write_parquet, path, *args))
                else:
                    futures.append(writers.submit(_write_csv, path, *args))
            if latest:
                latest_prov_active = latest_prov
            manifest["expected"][snap.isoformat()] = exp
            manifest["total_rows"] += n_rows
            # keep at most one snapshot's writes in flight (memory)
            while len(futures) > 40:
                futures.pop(0).result()
            progress(f"demo: {snap}: {n_rows:,} rows in {len(exp['files'])} files "
                     f"({n_bad:,} bad), active people {exp['national']['active']:,} "
                     f"[{time.perf_counter() - t0:.1f}s]")
        for fut in futures:
            fut.result()
        xlsx.wait()
    finally:
        writers.shutdown(wait=True)
    # the re-delivery: the revisi file is clearly newer than the stale one
    sdir = out / "enrollment" / snaps[-1].isoformat()
    now = time.time()
    os.utime(sdir / f"{REDELIVERY_PROVINCE}.csv", (now - 2 * 86400, now - 2 * 86400))
    os.utime(sdir / f"{REDELIVERY_PROVINCE}_revisi.csv", (now, now))

    rel, national, prov_pot = _write_potential(out, ref, pop, scale, latest_prov_active)
    manifest["potential_national"] = national
    manifest["potential_provinces"] = prov_pot
    manifest["potential_files"] = [rel]
    with open(out / "demo_bad_rows.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["snapshot_date", "source_file", "row_number", "kind"])
        w.writerows(bad_log)
    tmp = out / "demo_manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, out / "demo_manifest.json")
    progress(f"demo: wrote {manifest['total_rows']:,} rows for {len(snaps)} snapshots to {out} "
             f"[{time.perf_counter() - t_start:.1f}s]")
    return manifest


STALE_FILE = 34  # pseudo file index of the stale delivery


def _snapshot(out, k, snap, latest, seed, pop, ref, inst, tabs, prof, profiles, bad_log):
    """Rows, bookkeeping and write jobs of one snapshot."""
    prov_codes = ref.prov_codes
    xlsx_p = prov_codes.index(XLSX_PROVINCE)
    parquet_p = prov_codes.index(PARQUET_PROVINCE)
    redel_p = prov_codes.index(REDELIVERY_PROVINCE)
    srng = np.random.default_rng([seed, 1, snap.year, snap.month])
    snap_day, snap_m = _day(snap), _month(snap)

    # posts present in this snapshot and their last paid month
    idx = np.flatnonzero(pop.reg <= snap_day)
    bulan = _bulan_for(pop, idx, snap_m, srng)
    active = (bulan >= 0) & (snap_m - bulan <= GRACE_MONTHS)
    assert (pop.kind[idx][~active] != ONGOING).all()
    expected = _expected(pop, ref, idx, active)
    latest_prov = None
    if latest:
        for name in TIERS:
            assert expected["tiers"][name]["active"] == pop.n_active[name], name
        latest_prov = np.zeros((34, 6), dtype=np.int64)
        for code, d in expected["provinces"].items():
            for name, v in d.items():
                latest_prov[prov_codes.index(code), TIERS.index(name)] = v["active"]

    orig = _Rows(file=pop.prov[idx].astype(np.int16), tier=pop.tier[idx], region=pop.region[idx],
                 tgl=pop.reg[idx], bulan=bulan, seg=pop.seg[idx], name=pop.name[idx],
                 inst=pop.inst[idx], nik=pop.nik[idx], kpj=pop.kpj[idx],
                 bad=np.zeros(idx.size, np.int8), pid=pop.pid[idx])

    # within-tier duplicates: an older row (earlier registration, strictly earlier month)
    di = np.flatnonzero((bulan >= 0) & (srng.random(idx.size) < DUP_RATE))
    d_post = idx[di]
    d_tgl = pop.reg[d_post] - srng.integers(31, 731, di.size)
    lo = _days_to_months(d_tgl)
    hi = bulan[di] - 1
    d_bulan = lo + (srng.random(di.size) * (hi - lo + 1)).astype(np.int64)
    assert (d_bulan < bulan[di]).all() and (d_bulan >= lo).all()
    d_prov = np.where(srng.random(di.size) < 0.6, pop.prov[d_post],
                      (pop.prov[d_post] + srng.integers(1, 34, di.size)) % 34).astype(np.int16)
    d_tier = pop.tier[d_post]
    d_level = _TIER_LEVEL[d_tier].copy()
    klm = d_tier == KL
    d_level[klm] = np.where(pop.region[d_post][klm] >= 0, 1, -1)
    d_region = ref.pick(d_level, d_prov, srng)
    dups = _Rows(file=d_prov, tier=d_tier, region=d_region, tgl=d_tgl, bulan=d_bulan,
                 seg=pop.seg[d_post], name=pop.name[d_post],
                 inst=inst.index(ref, d_tier, d_prov, d_region, srng), nik=pop.nik[d_post],
                 kpj=pop.kpj[d_post], bad=np.zeros(di.size, np.int8), pid=pop.pid[d_post])

    # bad rows, cloned from valid posts of the receiving office's province
    n_bad = max(len(BAD_KINDS), _round(BAD_ROW_RATE * (idx.size + di.size)))
    by_prov = np.bincount(pop.prov[idx], minlength=34).astype(float)
    kinds = np.concatenate([np.arange(1, len(BAD_KINDS) + 1),
                            srng.choice(np.arange(1, len(BAD_KINDS) + 1),
                                        size=max(0, n_bad - len(BAD_KINDS)), p=_BAD_WEIGHTS)])
    files = srng.choice(34, size=kinds.size, p=by_prov / by_prov.sum())
    if by_prov[xlsx_p] > 0:            # the XLSX office always has a NIK-as-number row
        kinds = np.append(kinds, B_NIK_FLOAT)
        files = np.append(files, xlsx_p)
    kinds[(files == parquet_p) & (kinds == B_DATE)] = B_TIER   # date32 cannot hold 31/02
    order = np.argsort(pop.prov[idx], kind="stable")
    ps, pn = _group_bounds(pop.prov[idx][order], 34)
    base = idx[order[ps[files] + (srng.random(files.size) * pn[files]).astype(np.int64)]]
    # reserved person ids stay below 1e10, where the NIK's id digits are a bijection
    pid_next = _RESERVED_PID + (k % 90) * 10**7
    bads, over = _bad_rows(pop, ref, inst, base, files, kinds, snap_day, snap_m, pid_next,
                           srng, snap)
    pid_next += files.size

    parts = [orig, dups, bads]
    if latest:
        # stale delivery of the re-delivered province: most of its valid rows plus phantoms
        both = _Rows.concat([orig, dups])
        valid_r = np.flatnonzero(both.file == redel_p)
        stale = both.take(valid_r[srng.random(valid_r.size) < 0.92])
        n_ph = max(1, _round(0.06 * valid_r.size))
        if pn[redel_p]:
            src = idx[order[ps[redel_p] + (srng.random(n_ph) * pn[redel_p]).astype(np.int64)]]
        else:
            src = idx[:n_ph]
        ph_pid = pid_next + np.arange(src.size, dtype=np.int64)
        phantom = _Rows(file=np.full(src.size, redel_p, np.int16), tier=pop.tier[src],
                        region=pop.region[src], tgl=pop.reg[src],
                        bulan=np.maximum(snap_m - 1, pop.reg_m[src]), seg=pop.seg[src],
                        name=pop.name[src], inst=pop.inst[src],
                        nik=_make_nik(ref, ph_pid, np.full(src.size, redel_p), srng),
                        kpj=10**10 + (_KPJ_A * ph_pid + _KPJ_B) % 10**10,
                        bad=np.zeros(src.size, np.int8), pid=ph_pid)
        stale_rows = _Rows.concat([stale, phantom])
        stale_rows.file = np.full(len(stale_rows), STALE_FILE, np.int16)
        parts.append(stale_rows)
    rows = _Rows.concat(parts)
    bad_src = np.arange(len(orig) + len(dups), len(orig) + len(dups) + len(bads))

    # file order: by office, rows shuffled within an office
    perm = np.lexsort((srng.random(len(rows)), rows.file))
    rows = rows.take(perm)
    inv = np.empty_like(perm)
    inv[perm] = np.arange(perm.size)
    enc = _Encoded(rows, over, inv[bad_src], ref, tabs, prof, srng)
    fstart, fcount = _group_bounds(rows.file, 35)

    snap_s = snap.isoformat()
    sdir = out / "enrollment" / snap_s
    sdir.mkdir(parents=True, exist_ok=True)
    files_info: dict[str, dict] = {}
    jobs = []
    for fi in range(35):
        if fi == STALE_FILE and not latest:
            continue
        a, n = int(fstart[fi]), int(fcount[fi])
        code = prov_codes[fi] if fi < 34 else REDELIVERY_PROVINCE
        if fi == xlsx_p:
            name = f"{code}.xlsx"
        elif fi == parquet_p:
            name = f"{code}.parquet"
        elif fi == redel_p and latest:
            name = f"{code}_revisi.csv"
        else:
            name = f"{code}.csv"
        rel = f"enrollment/{snap_s}/{name}"
        fbad = rows.bad[a:a + n]
        if fi == STALE_FILE:
            files_info[rel] = {"status": "superseded", "rows_in_file": n,
                               "superseded_by": f"enrollment/{snap_s}/{code}_revisi.csv"}
        else:
            kc = np.bincount(fbad, minlength=len(BAD_KINDS) + 1)
            nb = int((fbad > 0).sum())
            files_info[rel] = {"status": "loaded", "rows_read": n, "rows_rejected": nb,
                               "rows_loaded": n - nb,
                               "bad_rows": {BAD_KINDS[i - 1]: int(kc[i])
                                            for i in range(1, len(BAD_KINDS) + 1) if kc[i]}}
            for r in np.flatnonzero(fbad):
                bad_log.append((snap_s, rel, int(r) + 1, BAD_KINDS[fbad[r] - 1]))
        path = sdir / name
        if fi == xlsx_p:
            jobs.append(("xlsx", path, _xlsx_payload(enc, a, n, srng)))
        elif fi == parquet_p:
            jobs.append(("parquet", path, (enc, a, n)))
        else:
            jobs.append(("csv", path, (enc, a, n, profiles[fi])))
    expected["files"] = dict(sorted(files_info.items()))
    return expected, jobs, len(rows), int((rows.bad > 0).sum()), latest_prov
