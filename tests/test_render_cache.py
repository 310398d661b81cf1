"""The report's cache (assets/render/cache.py): what it returns is what the computation returns.

Real components: the real Vega-Lite compiler (vl-convert) and the real shapely dissolve, in a
cache folder of the test's own (XDG_CACHE_HOME). The expected values are the direct
computations, not the cache's.
"""
from __future__ import annotations

import json

import pytest
import vl_convert

from assets.render import charts, geo

HISTORY = [{"d": "2021-05-31", "tier": "KL", "name": "KL", "pen": 10.5, "dl": "31 Mei 2021",
            "pt": "10,50 %", "at": "1.050", "ptn": "10.000"},
           {"d": "2021-06-30", "tier": "NASIONAL", "name": "Nasional", "pen": 12.0,
            "dl": "30 Jun 2021", "pt": "12,00 %", "at": "1.200", "ptn": "10.000"}]
FLOWS = [{"x": "Jun 2021", "i": 1, "scope": "NASIONAL", "flow": "Baru", "v": 7, "o": 1, "cmp": True,
          "dl": "30 Jun 2021", "vt": "7", "ct": "ya"},
         {"x": "Jun 2021", "i": 1, "scope": "NASIONAL", "flow": "net", "v": 5, "o": 5, "cmp": True,
          "dl": "30 Jun 2021", "vt": "+5", "ct": "ya"}]


def _map():
    features = [{"type": "Feature", "properties": {"kode": "11", "nama": "Aceh",
                                                  "v": {"RTRW": {"pen": 1.5, "pt": "1,50 %"}}},
                 "geometry": {"type": "Polygon",
                              "coordinates": [[[95, 5], [96, 5], [96, 6], [95, 5]]]}}]
    return charts.province_map({"type": "FeatureCollection", "features": features}, "RTRW")


SPECS = {"history": lambda: charts.penetration_history(HISTORY, {"KL": "KL", "NASIONAL": "N"}),
         "flows": lambda: charts.flows(FLOWS, 2),
         "map": _map}


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "cakupan"


def _files(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("name", sorted(SPECS))
def test_compiled_chart_is_the_compilers_output_cold_and_warm(cache_home, name):
    direct = vl_convert.vegalite_to_vega(SPECS[name]())
    cold = charts._vegalite_to_vega(SPECS[name]())
    assert len(_files(cache_home)) == 1
    warm = charts._vegalite_to_vega(SPECS[name]())
    assert cold == direct and warm == direct


def test_new_figures_reuse_the_compiled_chart_a_new_spec_does_not(cache_home):
    charts._vegalite_to_vega(charts.penetration_history(HISTORY, {"KL": "KL"}))
    changed = [dict(r, pen=r["pen"] + 1, at="9.999") for r in HISTORY]
    again = charts._vegalite_to_vega(charts.penetration_history(changed, {"KL": "KL"}))
    assert len(_files(cache_home)) == 1
    assert [r["pen"] for r in again["data"][0]["values"]] == [11.5, 13.0]
    charts._vegalite_to_vega(charts.penetration_history(HISTORY, {"KL": "KL", "PROV": "P"}))
    assert len(_files(cache_home)) == 2


def test_a_corrupt_cache_file_is_computed_again(cache_home):
    spec = SPECS["flows"]()
    charts._vegalite_to_vega(spec)
    (only,) = cache_home.iterdir()
    only.write_text('{"data": [', encoding="utf-8")
    assert charts._vegalite_to_vega(SPECS["flows"]()) == vl_convert.vegalite_to_vega(spec)
    assert json.loads(only.read_text(encoding="utf-8"))["data"][0]["name"] == charts.DATA_NAME


def test_an_unwritable_cache_costs_only_the_computation(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    spec = SPECS["history"]()
    assert charts._vegalite_to_vega(spec) == vl_convert.vegalite_to_vega(SPECS["history"]())


@pytest.mark.parametrize("vintage", ["2020", "2023", "2025"])
def test_province_polygons_from_the_cache_are_the_dissolved_ones(cache_home, vintage):
    merges = geo.merges_for(vintage)
    direct = json.loads(json.dumps(geo._features(merges)))
    geo._provinces.cache_clear()
    cold = geo.provinces(vintage).features
    geo._provinces.cache_clear()
    warm = geo.provinces(vintage).features
    assert cold == direct and warm == direct
    assert len(direct) == {"2020": 34, "2023": 37, "2025": 38}[vintage]
    assert _files(cache_home) and all(n.startswith("provinces.json-") for n in _files(cache_home))
