"""Province polygons for the map, in the Kemendagri vintage of the snapshot shown.

`provinces_2025.geojson` (beside this file; provenance in PROVENANCE.md, licence in
LICENSE-wilayah-data.txt) has the 38 provinces of the 2025 vintage. Older vintages have fewer:
2020 and 2022 have 34 (91 Papua covered today's 91+93+94+95, 92 Papua Barat covered 92+96), 2023
has 37 (92 covered 92+96). A figure counted under an old vintage is only ever drawn over the area
it was counted for: the member polygons are dissolved into one (shapely), never joined to the
smaller 2025 polygon of the same code.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .cache import cached_json, key_of

HERE = Path(__file__).parent
GEOJSON = HERE / "provinces_2025.geojson"
ATTRIBUTION = ("Batas provinsi: cahyadsn/wilayah_boundaries, \u00a9 Cahya DSN, lisensi MIT "
               "(disederhanakan; hanya untuk peta skala nasional).")

_PAPUA_2020 = {"91": ("91", "93", "94", "95"), "92": ("92", "96")}
_PAPUA_2023 = {"92": ("92", "96")}
# vintage -> {code in that vintage: the 2025 codes covering the same area}
MERGES: dict[str, dict[str, tuple[str, ...]]] = {
    "2020": _PAPUA_2020, "2022": _PAPUA_2020, "2023": _PAPUA_2023, "2025": {},
}


def merges_for(vintage: str | None) -> dict[str, tuple[str, ...]]:
    """The dissolve rule of a vintage; an unknown vintage by its year (before 2023: Papua as in
    2020; 2023-2024: as in 2023; later: the 2025 provinces)."""
    if vintage in MERGES:
        return MERGES[vintage]
    try:
        year = int(str(vintage)[:4])
    except ValueError:
        return {}
    return _PAPUA_2020 if year < 2023 else _PAPUA_2023 if year < 2025 else {}


@dataclass(frozen=True)
class Provinces:
    vintage: str | None
    features: list[dict]          # GeoJSON features, properties: kode, nama_2025
    merged: dict[str, tuple[str, ...]]
    caption: str


@lru_cache(maxsize=1)
def _source() -> tuple[dict, ...]:
    return tuple(json.loads(GEOJSON.read_text(encoding="utf-8"))["features"])


def _clean(geom, close: float = 0.0):
    """Dissolve gaps left by separately simplified neighbours (a morphological closing), keep
    the 0.001 degree grid, and orient rings clockwise: d3-geo (Vega) reads a counter-clockwise
    exterior ring (RFC 7946) as the rest of the globe."""
    import shapely

    if close:
        geom = geom.buffer(close, quad_segs=2).buffer(-close, quad_segs=2)
        geom = shapely.simplify(geom, 0.005, preserve_topology=True)
    geom = shapely.set_precision(geom, 0.001)
    return shapely.orient_polygons(geom, exterior_cw=True)


def _features(merges: dict[str, tuple[str, ...]]) -> list[dict]:
    import shapely
    from shapely.geometry import mapping, shape

    member_of = {m: code for code, members in merges.items() for m in members}
    by_code = {f["properties"]["kode"]: f for f in _source()}
    groups: dict[str, list[dict]] = {}
    for code, feature in by_code.items():
        groups.setdefault(member_of.get(code, code), []).append(feature)
    features = []
    for code in sorted(groups):
        parts = groups[code]
        if len(parts) == 1:
            geom = _clean(shape(parts[0]["geometry"]))
        else:
            geom = _clean(shapely.union_all([shape(p["geometry"]) for p in parts]), close=0.006)
        features.append({"type": "Feature",
                         "properties": {"kode": code,
                                        "nama_2025": " + ".join(p["properties"]["nama"]
                                                                for p in parts)},
                         "geometry": mapping(geom)})
    return features


def _key(merges) -> str:
    """What the polygons depend on: the boundaries, this module's code, shapely, the merges."""
    import importlib.metadata
    import hashlib

    digest = hashlib.sha256(GEOJSON.read_bytes() + Path(__file__).read_bytes()).hexdigest()
    return key_of(digest, importlib.metadata.version("shapely"), sorted(merges.items()))


@lru_cache(maxsize=8)
def _provinces(vintage: str | None) -> Provinces:
    merges = merges_for(vintage)
    # JSON round trip either way: the same lists whether computed now or read from the cache
    features = cached_json("provinces", _key(merges), lambda: _features(merges))
    if merges:
        said = "; ".join(f"{code} = wilayah {' + '.join(m)} sekarang"
                         for code, m in sorted(merges.items()))
        caption = (f"Snapshot ini memakai kode wilayah Kemendagri versi {vintage}, dengan "
                   f"{len(features)} provinsi. Poligon provinsi 2025 digabung agar warna sesuai "
                   f"wilayah yang dihitung: {said}. Angka Papua lama tidak pernah digambar pada "
                   f"poligon 2025 yang lebih kecil.")
    else:
        caption = (f"Kode wilayah Kemendagri versi {vintage or '2025'}: {len(features)} provinsi, "
                   "sama dengan poligon 2025.")
    return Provinces(vintage, features, merges, caption)


def provinces(vintage: str | None) -> Provinces:
    return _provinces(vintage)
