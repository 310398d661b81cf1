"""The report's charts: Vega-Lite specifications, compiled to Vega in Python.

The page carries vega-embed with Vega and Vega-Lite, bundled from the `vl-convert-python` wheel
(about 0.9 MB, no network). The Vega-Lite compiler runs here, at build time: the page gets Vega
specs (vega-embed's "vega" mode). The data is inlined in each spec; every text a tooltip shows
is formatted in Python (Indonesian format), axis labels through the Indonesian d3 locale the page
gives vega-embed.
"""
from __future__ import annotations

import json
from functools import lru_cache

import vl_convert

from .cache import cached_json, cached_text, key_of

FONT = ('system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Helvetica Neue", Arial, '
        'sans-serif')

CONFIG = {
    "font": FONT,
    "background": "#ffffff",
    "padding": 4,
    "axis": {"labelFontSize": 14, "titleFontSize": 15, "labelColor": "#1a1a1a",
             "titleColor": "#111111", "gridColor": "#e2e2e2", "domainColor": "#555555",
             "tickColor": "#555555", "titleFontWeight": "bold", "labelOverlap": True},
    "legend": {"labelFontSize": 14, "titleFontSize": 15, "labelColor": "#1a1a1a",
               "titleColor": "#111111", "symbolSize": 160, "labelLimit": 320,
               "symbolStrokeWidth": 3},
    "view": {"stroke": None},
    "line": {"strokeWidth": 2.5},
}

# One colour per tier, colour-blind-safe (Okabe-Ito, darkened for contrast on white); the
# national line black and thicker.
TIER_COLOURS = {"KL": "#0060a8", "PROV": "#c26a00", "KABKOTA": "#007a5a", "KEC": "#b0407f",
                "DESA": "#b34700", "RTRW": "#4a7fc1", "NASIONAL": "#111111"}
FLOW_COLOURS = {"Baru": "#1a7f37", "Kembali aktif": "#7fc97f", "Berhenti membayar": "#e69f00",
                "Keluar": "#b3261e"}


def _base(**spec) -> dict:
    return {"$schema": "https://vega.github.io/schema/vega-lite/v6.json", "config": CONFIG,
            **spec}


def penetration_history(rows: list[dict], names: dict[str, str]) -> dict:
    """rows: d (ISO date), tier, name, pen, and tooltip texts dl, pt, at, ptn."""
    domain = [names[t] for t in names]
    return _base(
        width="container", height=380,
        autosize={"type": "fit-x", "contains": "padding"},
        data={"values": rows},
        mark={"type": "line", "point": {"size": 50, "filled": True}, "interpolate": "linear"},
        encoding={
            "x": {"field": "d", "type": "temporal", "title": None, "scale": {"type": "utc"},
                  "axis": {"format": "%b %Y", "labelAngle": 0}},
            "y": {"field": "pen", "type": "quantitative", "title": "Penetrasi (%)",
                  "scale": {"domainMin": 0, "nice": True}, "axis": {"format": ",.0f"}},
            "color": {"field": "name", "type": "nominal", "title": None,
                      "scale": {"domain": domain,
                                "range": [TIER_COLOURS.get(t, "#666666") for t in names]},
                      "legend": {"orient": "bottom", "columns": 4, "direction": "vertical",
                                 "labelLimit": 250}},
            "strokeWidth": {"condition": {"test": "datum.tier === 'NASIONAL'", "value": 5},
                            "value": 2.5},
            "tooltip": [{"field": "name", "title": "Tingkat"},
                        {"field": "dl", "title": "Snapshot"},
                        {"field": "pt", "title": "Penetrasi"},
                        {"field": "at", "title": "Peserta aktif"},
                        {"field": "ptn", "title": "Potensi"}],
        },
    )


FLOWS = ("Baru", "Kembali aktif", "Berhenti membayar", "Keluar")


def flows(rows: list[dict], snapshots: int, scope: str = "NASIONAL") -> dict:
    """rows: x (label), i (the snapshot's place on the axis), scope, flow (one of FLOWS or
    'net'), v (signed), o (stack order), cmp, and tooltip texts. The axis is sorted by ``i``,
    not by a list of the labels, so the spec (and its compiled Vega, :mod:`.cache`) stays the
    same from one month to the next."""
    x = {"field": "x", "type": "ordinal", "sort": {"field": "i", "op": "min"}, "title": None,
         "axis": {"labelAngle": -40 if snapshots > 6 else 0}}
    return _base(
        width="container", height=380,
        autosize={"type": "fit-x", "contains": "padding"},
        params=[{"name": "scope", "value": scope}],
        data={"values": rows},
        transform=[{"filter": "datum.scope === scope"}],
        layer=[
            {"transform": [{"filter": "datum.flow !== 'net'"}],
             "mark": {"type": "bar", "stroke": "#ffffff", "strokeWidth": 0.5},
             "encoding": {
                 "x": x,
                 "y": {"field": "v", "type": "quantitative", "stack": "zero",
                       "title": "Orang (bertambah + / berkurang \u2212)",
                       "axis": {"format": ",.0f"}},
                 "color": {"field": "flow", "type": "nominal", "title": None,
                           "scale": {"domain": list(FLOWS),
                                     "range": [FLOW_COLOURS[f] for f in FLOWS]},
                           "legend": {"orient": "bottom", "columns": 4, "direction": "vertical"}},
                 "order": {"field": "o", "type": "quantitative"},
                 "opacity": {"condition": {"test": "datum.cmp", "value": 1}, "value": 0.35},
                 "tooltip": [{"field": "dl", "title": "Snapshot"},
                             {"field": "flow", "title": "Arus"},
                             {"field": "vt", "title": "Orang"},
                             {"field": "ct", "title": "Sebanding"}]}},
            {"transform": [{"filter": "datum.flow === 'net'"}],
             "mark": {"type": "point", "shape": "diamond", "filled": True, "size": 170,
                      "color": "#111111", "stroke": "#ffffff", "strokeWidth": 1.5},
             "encoding": {
                 "x": x, "y": {"field": "v", "type": "quantitative"},
                 "tooltip": [{"field": "dl", "title": "Snapshot"},
                             {"field": "vt", "title": "Perubahan bersih"},
                             {"field": "ct", "title": "Sebanding"}]}},
        ],
        resolve={"scale": {"y": "shared"}},
    )


def province_map(collection: dict, tier: str = "RTRW") -> dict:
    """collection: a GeoJSON FeatureCollection whose features carry properties.kode, .nama and
    .v[tier] = {pen, st (status), pt, at, ptn, ut} (texts already formatted)."""
    row = "(datum.properties.v[tier] || {})"
    calc = [{"calculate": f"{row}.pen", "as": "pen"},
            {"calculate": f"{row}.st || 'tidak ada data'", "as": "st"},
            {"calculate": f"{row}.pt || '\u2013'", "as": "pt"},
            {"calculate": f"{row}.at || '\u2013'", "as": "at"},
            {"calculate": f"{row}.ptn || '\u2013'", "as": "ptn"},
            {"calculate": f"{row}.ut || '\u2013'", "as": "ut"},
            {"calculate": "datum.properties.nama", "as": "nama"}]
    tooltip = [{"field": "nama", "title": "Provinsi"}, {"field": "pt", "title": "Penetrasi"},
               {"field": "at", "title": "Peserta aktif"}, {"field": "ptn", "title": "Potensi"},
               {"field": "ut", "title": "Belum terdaftar"}, {"field": "st", "title": "Catatan"}]
    return _base(
        width="container", height="container",
        autosize={"type": "fit", "contains": "padding"},
        params=[{"name": "tier", "value": tier}],
        data={"values": collection, "format": {"type": "json", "property": "features"}},
        projection={"type": "mercator"},
        transform=calc,
        layer=[
            {"mark": {"type": "geoshape", "fill": "#bdbdbd", "stroke": "#4d4d4d",
                      "strokeWidth": 0.4},
             "encoding": {"tooltip": tooltip}},
            {"transform": [{"filter": "isValid(datum.pen)"}],
             "mark": {"type": "geoshape", "stroke": "#4d4d4d", "strokeWidth": 0.4},
             "encoding": {
                 "color": {"field": "pen", "type": "quantitative", "title": "Penetrasi (%)",
                           "scale": {"scheme": {"name": "blues", "extent": [0.15, 1]},
                                     "zero": False, "nice": False},
                           "legend": {"orient": "bottom", "direction": "horizontal",
                                      "gradientLength": 300, "format": ",.1f",
                                      "tickCount": 4}},
                 "tooltip": tooltip}},
        ],
    )


# the name of a chart's inline data in its compiled Vega (what Vega-Lite calls it)
DATA_NAME = "source_0"


def _vegalite_to_vega(spec: dict) -> dict:
    """Vega-Lite -> Vega, compiled without the data (which the compiler never reads) and kept in
    the cache (:mod:`.cache`): a night whose figures changed compiles nothing, and the compiler
    (0.3 s to start) is not started at all. The data goes back where the compiler names it."""
    data = spec.get("data")
    if not (isinstance(data, dict) and "values" in data):
        return vl_convert.vegalite_to_vega(spec)
    shell = {**spec, "data": {"name": DATA_NAME, **{k: v for k, v in data.items()
                                                    if k != "values"}}}
    text = json.dumps(shell, sort_keys=True)
    vega = cached_json("vega-spec", key_of(versions(), text),
                       lambda: vl_convert.vegalite_to_vega(json.loads(text)))
    for entry in vega.get("data", []):
        if entry.get("name") == DATA_NAME:
            entry["values"] = data["values"]
            return vega
    raise ValueError(f"the compiled chart has no data named {DATA_NAME}")


def compile_spec(spec: dict) -> dict:
    """Vega-Lite -> Vega (raises ValueError on a bad spec), with legends that follow the
    chart's width: as many columns as fit (one on a phone), a gradient no wider than the chart."""
    vega = _vegalite_to_vega(spec)
    for legend in vega.get("legends", []):
        if "columns" in legend:
            legend["columns"] = {"signal": "max(1, min(4, floor(width / 250)))"}
        if "gradientLength" in legend:
            legend["gradientLength"] = {"signal": "clamp(width - 40, 120, 300)"}
    return vega


RUNTIME_SNIPPET = "window.vegaEmbed = vegaEmbed;"


@lru_cache(maxsize=1)
def vega_runtime() -> str:
    """vega-embed, Vega and Vega-Lite as one script, bundled by the installed vl-convert-python
    wheel (no network): defines `window.vegaEmbed`. (vl-convert's bundle leaves `vega` itself
    null, so the page goes through vega-embed.) Bundling costs about 3 s per process, so the
    bundle is kept in the cache (:mod:`.cache`), keyed by the wheel's versions and the snippet."""
    return cached_text("vega-runtime", key_of(versions(), RUNTIME_SNIPPET) + ".js",
                       lambda: vl_convert.javascript_bundle(RUNTIME_SNIPPET))


@lru_cache(maxsize=1)
def versions() -> dict:
    return {"vega": vl_convert.get_vega_version(),
            "vega-embed": vl_convert.get_vega_embed_version(),
            "vega-lite": vl_convert.get_vegalite_versions()[-1],
            "vl-convert": getattr(vl_convert, "__version__", "")}
