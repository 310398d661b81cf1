"""One self-contained HTML report of a serving DuckDB file.

`write_html(serving, out)` reads the serving file (read-only) and writes one HTML file that opens
offline with no network request: the Vega runtime, the styles, the script, the chart data and the
province polygons are all inlined (no font files, no CDN). Sections, in order:

1. national headline of the latest snapshot (and a warning when its offices differ from the
   previous or year-ago snapshot's); 2. penetration by tier over time; 3. new against lapsed and
   left; 4. choropleth of province penetration (tier switchable); 5. regions with the most
   uncovered potential; 6. target progress; 7. published figures against the data; 8. data
   completeness. Where the history is too short for a chart, the section says so in words.
"""
from __future__ import annotations

import html as _html
import json
import os
import string
import time
import uuid
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from schemas.enrollment import TIERS

from . import charts, fmt, geo
from .data import Serving

HERE = Path(__file__).parent
TIER_CODES = list(TIERS)
SHORT_HISTORY = "Riwayat belum cukup"   # the words every "not enough history" note starts with


def esc(text) -> str:
    return _html.escape("" if text is None else str(text), quote=True)


def _json_for_script(obj) -> str:
    """JSON that cannot close the <script> element it sits in."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def _atomic_write(out: Path, data: bytes) -> None:
    """Write beside ``out`` under a hidden temporary name, flush, rename over ``out``: a reader
    (or a browser reloading the page) sees the old report or the new one, never half of one."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _history_note(text: str) -> str:
    return f'<p class="note note-history">{esc(SHORT_HISTORY)}: {esc(text)}</p>'


def _change_class(value) -> str:
    if value is None or value == 0:
        return ""
    return "up" if value > 0 else "down"


def _names_list(codes, names: dict[str, str]) -> str:
    return ", ".join(f"{c} {names.get(c, '')}".strip() for c in sorted(codes))


class Report:
    def __init__(self, s: Serving, tier: str):
        self.s = s
        self.tier = tier
        self.specs: dict[str, dict] = {}
        self.maps = 0
        self.snapshots = [r["d"] for r in s.rows(
            "SELECT DISTINCT snapshot_date AS d FROM coverage_national ORDER BY 1",
            needs=("coverage_national",))]
        self.latest = self.snapshots[-1] if self.snapshots else None
        self.national = s.one("SELECT * FROM coverage_national WHERE snapshot_date = ?",
                              [self.latest], needs=("coverage_national",)) if self.latest else None
        self.trend = s.one("SELECT * FROM coverage_trend_national WHERE snapshot_date = ?",
                           [self.latest], needs=("coverage_trend_national",)) \
            if self.latest else None
        self.offices: dict = defaultdict(set)
        self.log = s.rows("SELECT * FROM load_log ORDER BY snapshot_date, source_file",
                          needs=("load_log",))
        for r in self.log:
            if r["status"] == "loaded" and r["province_code"]:
                self.offices[r["snapshot_date"]].add(r["province_code"])
        self.province_names = {r["code"]: r["name"] for r in s.rows(
            "SELECT region_code AS code, arg_max(region_name, snapshot_date) AS name "
            "FROM coverage_by_region WHERE region_level = 'province' GROUP BY 1",
            needs=("coverage_by_region",))}
        self.region_names = {}

    # ------------------------------------------------------------------ helpers
    def chart(self, name: str, spec: dict, label: str, css: str = "") -> str:
        self.specs[name] = charts.compile_spec(spec)
        return (f'<div class="vega {css}" data-chart="{esc(name)}" role="img" '
                f'aria-label="{esc(label)}"></div>')

    def tier_select(self, ident: str, options: list[str], default: str, *, view: str = "",
                    signal: str = "", group: str = "", national: bool = False) -> str:
        opts = []
        if national:
            opts.append(("NASIONAL", "Nasional (setiap orang sekali)"))
        opts += [(t, fmt.tier_name(t)) for t in options]
        html = "".join(f'<option value="{esc(v)}"{" selected" if v == default else ""}>'
                       f'{esc(text)}</option>' for v, text in opts)
        attrs = f'data-select="1" id="{esc(ident)}"'
        if view:
            attrs += f' data-view="{esc(view)}" data-signal="{esc(signal)}"'
        if group:
            attrs += f' data-group="{esc(group)}"'
        return (f'<div class="controls"><label for="{esc(ident)}">Tingkat</label>'
                f'<select {attrs}>{html}</select></div>')

    def offices_expected(self) -> set[str]:
        """The provinces of the latest snapshot: those with a region row (a potential or a
        person) and those that sent a file for it."""
        codes = {r["c"] for r in self.s.rows(
            "SELECT DISTINCT region_code AS c FROM coverage_by_region WHERE snapshot_date = ? "
            "AND region_level = 'province'", [self.latest], needs=("coverage_by_region",))}
        codes |= {r["province_code"] for r in self.log
                  if r["snapshot_date"] == self.latest and r["province_code"]}
        return codes

    def office_diff(self, other, label: str) -> str:
        """Sentences naming the offices that differ between the latest snapshot and `other`."""
        now, then = self.offices.get(self.latest, set()), self.offices.get(other, set())
        out = []
        missing, extra = then - now, now - then
        names = self.province_names
        if missing:
            out.append(f"Kantor provinsi {esc(_names_list(missing, names))} mengirim "
                       f"data untuk {fmt.date_long(other)} ({label}) tetapi <strong>belum "
                       f"mengirim</strong> untuk {fmt.date_long(self.latest)}.")
        if extra:
            out.append(f"Kantor provinsi {esc(_names_list(extra, names))} mengirim "
                       f"data untuk {fmt.date_long(self.latest)} tetapi tidak untuk "
                       f"{fmt.date_long(other)} ({label}).")
        return " ".join(out)

    # ------------------------------------------------------------------ 1. headline
    def headline(self) -> str:
        n, t = self.national, self.trend or {}
        if n is None:
            return ('<section id="ringkasan"><h2>Ringkasan nasional</h2><p class="note">Belum ada '
                    'snapshot dalam file serving: jalankan <code>cakupan run</code>.</p></section>')
        prev, year = t.get("previous_snapshot"), t.get("year_ago_snapshot")
        warnings = []
        if prev is not None and t.get("comparable") is False:
            warnings.append("<strong>Perubahan bulanan tidak sebanding.</strong> "
                            + self.office_diff(prev, "snapshot sebelumnya")
                            + " Kantor yang terlambat membuat seluruh provinsinya tampak "
                              "keluar; angka perubahan tetap ditampilkan tetapi jangan "
                              "dibandingkan.")
        if year is not None and t.get("comparable_yoy") is False:
            warnings.append("<strong>Perubahan tahunan tidak sebanding.</strong> "
                            + self.office_diff(year, "setahun sebelumnya"))
        expected = self.offices_expected()
        delivered = self.offices.get(self.latest, set())
        not_delivered = expected - delivered

        def changes(key_m, key_y, kind):
            f = fmt.pp if kind == "pp" else (lambda v: fmt.num(v, sign=True))
            lines = []
            for key, ref, cmp_key, label in ((key_m, prev, "comparable", "bulan ke bulan"),
                                             (key_y, year, "comparable_yoy", "tahun ke tahun")):
                value = t.get(key)
                if ref is None:
                    lines.append(f'<p class="change">{label.capitalize()}: <span class="unknown">'
                                 f'belum ada snapshot pembanding</span></p>')
                    continue
                flag = ('' if t.get(cmp_key) is not False
                        else ' <span class="flag" title="kantor yang mengirim berbeda">tidak '
                             'sebanding</span>')
                lines.append(f'<p class="change">{label.capitalize()}: <b class="'
                             f'{_change_class(value)}" data-kpi="{esc(key)}">{esc(f(value))}'
                             f'</b> <span class="caption">vs {esc(fmt.date_long(ref))}</span>'
                             f'{flag}</p>')
            return "".join(lines)

        pot_note = (f"set potensi {fmt.date_long(n['potential_set'])}" if n["potential_set"]
                    else "tanpa set potensi")
        pot_value = fmt.num(n["potential"])
        if n["potential"] is None:
            pot_note = "potensi nasional tidak lengkap: tidak semua enam tingkat punya potensi"
        office_text = (f"semua {len(expected)} kantor provinsi" if not not_delivered
                       else "belum mengirim: "
                            + esc(_names_list(not_delivered, self.province_names)))
        def value(key: str, text: str, small: str = "") -> str:
            n = max(4, len(text) + (len(small) * 0.45))
            tail = f" <small>{esc(small)}</small>" if small else ""
            return (f'<div class="value" style="--n:{n:.1f}"><span data-kpi="{key}">'
                    f'{esc(text)}</span>{tail}</div>')

        cards = f"""
<div class="kpis">
  <div class="kpi"><div class="label">Peserta aktif</div>
    {value('active', fmt.num(n['active']))}
    {changes('active_change', 'active_change_yoy', 'num')}
    <p class="caption">Setiap orang dihitung sekali. Jumlah per tingkat
      {esc(fmt.num(n['active_tier_sum']))} (orang dengan dua jabatan terhitung dua kali);
      tidak aktif {esc(fmt.num(n['inactive']))}.</p></div>
  <div class="kpi"><div class="label">Potensi</div>
    {value('potential', pot_value)}
    <p class="caption">Jumlah potensi nasional enam tingkat; {esc(pot_note)}.</p></div>
  <div class="kpi"><div class="label">Penetrasi</div>
    {value('penetration', fmt.pct(n['penetration_pct']))}
    {changes('penetration_change_pp', 'penetration_change_yoy_pp', 'pp')}</div>
  <div class="kpi"><div class="label">Kantor provinsi mengirim</div>
    {value('offices_delivered', fmt.num(n['offices_delivered']),
           f"dari {len(expected)}" if not_delivered else "")}
    <p class="caption">{office_text}.</p></div>
</div>"""
        warn = "".join(f'<div class="warning" role="alert" data-warning="offices">{w}</div>'
                       for w in warnings)
        return (f'<section id="ringkasan"><h2>Ringkasan nasional, '
                f'{esc(fmt.date_long(self.latest))}</h2>{warn}{cards}{self.tier_table()}'
                f'</section>')

    def tier_table(self) -> str:
        rows = self.s.rows(
            "SELECT c.tier, c.active, c.potential, c.penetration_pct, t.penetration_change_pp, "
            "t.penetration_change_yoy_pp, t.active_change, t.active_change_yoy "
            "FROM coverage_by_tier c "
            "LEFT JOIN coverage_trend_tier t USING (snapshot_date, tier) "
            "WHERE c.snapshot_date = ? ORDER BY list_position(?, c.tier)",
            [self.latest, TIER_CODES], needs=("coverage_by_tier", "coverage_trend_tier"))
        if not rows:
            return ""
        body = "".join(
            f"<tr><td>{esc(fmt.tier_name(r['tier']))}</td>"
            f"<td class='num'>{esc(fmt.num(r['active']))}</td>"
            f"<td class='num'>{esc(fmt.num(r['potential']))}</td>"
            f"<td class='num'><b>{esc(fmt.pct(r['penetration_pct']))}</b></td>"
            f"<td class='num'>{esc(fmt.num(r['active_change'], sign=True))}</td>"
            f"<td class='num'>{esc(fmt.pp(r['penetration_change_pp']))}</td>"
            f"<td class='num'>{esc(fmt.num(r['active_change_yoy'], sign=True))}</td>"
            f"<td class='num'>{esc(fmt.pp(r['penetration_change_yoy_pp']))}</td></tr>"
            for r in rows)
        n, t = self.national, self.trend or {}
        body += (f"<tr class='nat'><td>Nasional (setiap orang sekali)</td>"
                 f"<td class='num'>{esc(fmt.num(n['active']))}</td>"
                 f"<td class='num'>{esc(fmt.num(n['potential']))}</td>"
                 f"<td class='num'>{esc(fmt.pct(n['penetration_pct']))}</td>"
                 f"<td class='num'>{esc(fmt.num(t.get('active_change'), sign=True))}</td>"
                 f"<td class='num'>{esc(fmt.pp(t.get('penetration_change_pp')))}</td>"
                 f"<td class='num'>{esc(fmt.num(t.get('active_change_yoy'), sign=True))}</td>"
                 f"<td class='num'>{esc(fmt.pp(t.get('penetration_change_yoy_pp')))}</td></tr>")
        return ('<h3>Cakupan per tingkat</h3><div class="table-wrap"><table><thead><tr>'
                '<th rowspan="2">Tingkat</th><th class="num" rowspan="2">Peserta aktif</th>'
                '<th class="num" rowspan="2">Potensi</th><th class="num" rowspan="2">Penetrasi'
                '</th><th colspan="2">Perubahan bulanan</th><th colspan="2">Perubahan tahunan'
                '</th></tr><tr><th class="num">Aktif</th><th class="num">Penetrasi</th>'
                '<th class="num">Aktif</th><th class="num">Penetrasi</th></tr></thead>'
                f'<tbody>{body}</tbody></table></div>')

    # ------------------------------------------------------------------ 2. history
    def history(self) -> str:
        head = ('<section id="penetrasi"><h2>Penetrasi per tingkat dari waktu ke waktu</h2>'
                '<p class="lead">Peserta aktif dibagi potensi, per tingkat, dan garis nasional '
                '(tebal, setiap orang sekali).</p>')
        rows = self.s.rows(
            "SELECT snapshot_date AS d, tier, active, potential, penetration_pct AS pen "
            "FROM penetration_history WHERE penetration_pct IS NOT NULL "
            "ORDER BY snapshot_date, tier", needs=("penetration_history",))
        dates = sorted({r["d"] for r in rows})
        if len(dates) < 2:
            only = (f"baru ada {len(dates)} snapshot dengan penetrasi"
                    + (f" ({fmt.date_long(dates[0])})" if dates else ""))
            return head + _history_note(
                f"{only}. Grafik penetrasi dari waktu ke waktu memerlukan sedikitnya 2 "
                "snapshot.") + "</section>"
        present = [t for t in [*TIER_CODES, "NASIONAL"] if any(r["tier"] == t for r in rows)]
        names = {t: fmt.tier_name(t) if t != "NASIONAL" else "Nasional (setiap orang sekali)"
                 for t in present}
        values = [{"d": fmt.iso(r["d"]), "tier": r["tier"], "name": names[r["tier"]],
                   "pen": round(r["pen"], 6), "dl": fmt.date_long(r["d"]),
                   "pt": fmt.pct(r["pen"]), "at": fmt.num(r["active"]),
                   "ptn": fmt.num(r["potential"])} for r in rows if r["tier"] in names]
        gaps = self.noncomparable()
        note = ""
        if gaps:
            note = ("<p class='caption'>Snapshot dengan kantor pengirim berbeda dari snapshot "
                    "sebelumnya (tidak sebanding): "
                    + esc(", ".join(fmt.date_long(d) for d in gaps)) + ".</p>")
        return (head + '<figure class="chart-box">'
                + self.chart("history", charts.penetration_history(values, names),
                             "Grafik garis penetrasi per tingkat dan nasional per snapshot")
                + f'<figcaption>{len(dates)} snapshot, {esc(fmt.date_long(dates[0]))} s.d. '
                  f'{esc(fmt.date_long(dates[-1]))}.</figcaption></figure>' + note
                + "</section>")

    def noncomparable(self) -> list:
        return [r["d"] for r in self.s.rows(
            "SELECT snapshot_date AS d FROM coverage_trend_national WHERE comparable = false "
            "ORDER BY 1", needs=("coverage_trend_national",))]

    # ------------------------------------------------------------------ 3. flows
    def flows(self) -> str:
        head = ('<section id="arus"><h2>Arus peserta per snapshot</h2><p class="lead">'
                'Bertambah: <b>Baru</b> (belum ada sebelumnya) dan <b>Kembali aktif</b>. '
                'Berkurang: <b>Berhenti membayar</b> (masih terdaftar, tidak aktif) dan '
                '<b>Keluar</b> (tidak ada lagi dalam data). Belah ketupat hitam: perubahan '
                'bersih.</p>')
        nat = self.s.rows(
            "SELECT 'NASIONAL' AS scope, * FROM coverage_trend_national "
            "WHERE previous_snapshot IS NOT NULL ORDER BY snapshot_date",
            needs=("coverage_trend_national",))
        tiers = self.s.rows(
            "SELECT tier AS scope, * FROM coverage_trend_tier WHERE previous_snapshot IS NOT "
            "NULL ORDER BY snapshot_date, list_position(?, tier)", [TIER_CODES],
            needs=("coverage_trend_tier",))
        dates = sorted({r["snapshot_date"] for r in nat + tiers})
        if not dates:
            n = len(self.snapshots)
            return head + _history_note(
                f"baru ada {n} snapshot. Arus peserta (baru, kembali aktif, berhenti membayar, "
                "keluar) dihitung antara dua snapshot, jadi memerlukan sedikitnya 2 snapshot."
            ) + "</section>"
        labels = self._labels(dates)
        place = {d: i for i, d in enumerate(dates)}
        values = []
        for r in nat + tiers:
            x, dl = labels[r["snapshot_date"]], fmt.date_long(r["snapshot_date"])
            cmp_text = {True: "ya", False: "tidak (kantor berbeda)", None: "\u2013"}[
                r["comparable"]]
            for o, (flow, key, sign) in enumerate((("Baru", "new", 1),
                                                   ("Kembali aktif", "reactivated", 1),
                                                   ("Berhenti membayar", "lapsed", -1),
                                                   ("Keluar", "left", -1))):
                if r[key] is None:
                    continue
                values.append({"x": x, "i": place[r["snapshot_date"]], "scope": r["scope"],
                               "flow": flow, "o": o,
                               "v": sign * r[key], "cmp": r["comparable"] is not False,
                               "dl": dl, "vt": fmt.num(sign * r[key], sign=True),
                               "ct": cmp_text})
            if r["active_change"] is not None:
                values.append({"x": x, "i": place[r["snapshot_date"]], "scope": r["scope"],
                               "flow": "net", "o": 9,
                               "v": r["active_change"], "cmp": r["comparable"] is not False,
                               "dl": dl, "vt": fmt.num(r["active_change"], sign=True),
                               "ct": cmp_text})
        present = [t for t in TIER_CODES if any(r["scope"] == t for r in tiers)]
        note = ""
        gaps = [d for d in self.noncomparable() if d in labels]
        if gaps:
            note = ("<p class='caption'>Batang pudar: snapshot yang kantor pengirimnya berbeda "
                    "dari snapshot sebelumnya (" + esc(", ".join(fmt.date_long(d) for d in gaps))
                    + "); kantor yang terlambat tampak sebagai <b>Keluar</b>.</p>")
        one = ""
        if len(dates) == 1:
            one = _history_note("baru ada satu perbandingan antarsnapshot; tren arus belum "
                                "terlihat.")
        return (head + self.tier_select("flows-tier", present, "NASIONAL", view="flows",
                                        signal="scope", national=True)
                + '<figure class="chart-box">'
                + self.chart("flows", charts.flows(values, len(dates)),
                             "Grafik batang arus peserta per snapshot")
                + '<figcaption>Tingkat yang dipilih: <span data-label-for="flows-tier">'
                  'Nasional (setiap orang sekali)</span>. Snapshot pertama riwayat tidak punya '
                  'arus (tidak ada pembanding).</figcaption></figure>' + note + one
                + "</section>")

    @staticmethod
    def _labels(dates) -> dict:
        short = {d: fmt.date_short(d) for d in dates}
        if len(set(short.values())) < len(short):
            return {d: f"{d.day} {fmt.date_short(d)}" for d in dates}
        return short

    # ------------------------------------------------------------------ 4. map
    def province_map(self) -> str:
        head = ('<section id="peta"><h2>Penetrasi per provinsi</h2>')
        if self.latest is None:
            return head + '<p class="note">Belum ada snapshot.</p></section>'
        rows = self.s.rows(
            "SELECT tier, region_code, region_name, active, potential, penetration_pct, "
            "uncovered, vintage, suppressed FROM coverage_by_region WHERE snapshot_date = ? "
            "AND region_level = 'province' ORDER BY region_code",
            [self.latest], needs=("coverage_by_region",)) if "suppressed" in \
            self.s.columns("coverage_by_region") else self.s.rows(
            "SELECT tier, region_code, region_name, active, potential, penetration_pct, "
            "uncovered, vintage, NULL AS suppressed FROM coverage_by_region WHERE "
            "snapshot_date = ? AND region_level = 'province' ORDER BY region_code",
            [self.latest], needs=("coverage_by_region",))
        if not rows:
            return head + ('<p class="note">Tidak ada angka provinsi untuk snapshot '
                           f'{esc(fmt.date_long(self.latest))}.</p></section>')
        vintage = rows[0]["vintage"] or (self.national or {}).get("vintage")
        provs = geo.provinces(vintage)
        polygons = {f["properties"]["kode"] for f in provs.features}
        by_code: dict[str, dict] = defaultdict(dict)
        names = {}
        for r in rows:
            names[r["region_code"]] = r["region_name"]
            if r["suppressed"]:
                st = "disembunyikan (sel kecil)"
            elif r["penetration_pct"] is None:
                st = "tanpa potensi: penetrasi tidak dihitung"
            else:
                st = f"snapshot {fmt.date_long(self.latest)}"
            by_code[r["region_code"]][r["tier"]] = {
                "pen": None if r["penetration_pct"] is None else round(r["penetration_pct"], 6),
                "st": st, "pt": fmt.pct(r["penetration_pct"]), "at": fmt.num(r["active"]),
                "ptn": fmt.num(r["potential"]), "ut": fmt.num(r["uncovered"])}
        features = []
        for f in provs.features:
            code = f["properties"]["kode"]
            label = names.get(code) or f["properties"]["nama_2025"]
            features.append({"type": "Feature", "geometry": f["geometry"],
                             "properties": {"kode": code, "nama": f"{code} {label}",
                                            "v": by_code.get(code, {})}})
        collection = {"type": "FeatureCollection", "features": features}
        present = [t for t in TIER_CODES if any(r["tier"] == t for r in rows)]
        tier = self.tier if self.tier in present else present[0]
        unmapped = sorted(set(by_code) - polygons)
        nodata = sorted(polygons - set(by_code))
        extra = ""
        if unmapped:
            extra += (" Kode provinsi tanpa poligon (tidak tergambar): "
                      + esc(", ".join(f"{c} {names.get(c, '')}" for c in unmapped)) + ".")
        if nodata:
            extra += " Poligon tanpa angka (abu-abu): " + esc(", ".join(nodata)) + "."
        self.maps += 1
        return (head + '<p class="lead">Snapshot ' + esc(fmt.date_long(self.latest))
                + '. Warna lebih gelap: penetrasi lebih tinggi; skala warna menyesuaikan tingkat '
                  'yang dipilih. Abu-abu: tidak ada penetrasi (tanpa potensi, disembunyikan '
                  'atau tidak ada data).</p>'
                + self.tier_select("map-tier", present, tier, view="map", signal="tier")
                + '<figure class="chart-box">'
                + self.chart("map", charts.province_map(collection, tier),
                             "Peta penetrasi per provinsi", css="map")
                + f'<figcaption>Tingkat: <span data-label-for="map-tier">'
                  f'{esc(fmt.tier_name(tier))}</span>. {esc(provs.caption)}{extra}</figcaption>'
                  f'<p class="caption attribution">{esc(geo.ATTRIBUTION)}</p></figure>'
                + "</section>")

    # ------------------------------------------------------------------ 5. top regions
    def top_regions(self) -> str:
        head = ('<section id="prioritas"><h2>Wilayah dengan potensi belum terdaftar terbesar'
                '</h2><p class="lead">Peringkat 1 sampai 10 per tingkat menurut potensi dikurangi '
                'peserta aktif (<code>uncovered_rank</code>): di sini upaya pendaftaran paling '
                'berdampak.</p>')
        if self.latest is None:
            return head + '<p class="note">Belum ada snapshot.</p></section>'
        rows = self.s.rows(
            "SELECT tier, region_level, uncovered_rank, region_code, region_name, parent_code, "
            "active, potential, uncovered, penetration_pct FROM coverage_by_region "
            "WHERE snapshot_date = ? AND uncovered_rank BETWEEN 1 AND 10 "
            "ORDER BY list_position(?, tier), region_level DESC, uncovered_rank",
            [self.latest, TIER_CODES], needs=("coverage_by_region",))
        if not rows:
            return head + ('<p class="note">Tidak ada wilayah berperingkat: tidak ada potensi '
                           'per wilayah pada snapshot ini.</p></section>')
        present = [t for t in TIER_CODES if any(r["tier"] == t for r in rows)]
        tier = self.tier if self.tier in present else present[0]
        blocks = []
        for t in present:
            parts = []
            for level, title in (("regency", "Kabupaten/kota"), ("province", "Provinsi")):
                sub = [r for r in rows if r["tier"] == t and r["region_level"] == level]
                if not sub:
                    parts.append(f'<h3>{title}</h3><p class="caption">Tidak ada potensi tingkat '
                                 f'{title.lower()} untuk tingkat ini, jadi tidak ada peringkat.'
                                 '</p>')
                    continue
                body = "".join(
                    f"<tr><td class='region'><b>{r['uncovered_rank']}.</b> "
                    f"{esc(r['region_code'])} {esc(r['region_name'])}</td>"
                    + (f"<td>{esc(self.province_names.get(r['parent_code'], r['parent_code']))}"
                       "</td>" if level == "regency" else "")
                    + f"<td class='num'><b>{esc(fmt.num(r['uncovered']))}</b></td>"
                      f"<td class='num'>{esc(fmt.num(r['active']))}</td>"
                      f"<td class='num'>{esc(fmt.num(r['potential']))}</td>"
                      f"<td class='num'>{esc(fmt.pct(r['penetration_pct']))}</td></tr>"
                    for r in sub)
                parts.append(
                    f'<h3>{title}</h3><div class="table-wrap"><table><thead><tr>'
                    '<th>Peringkat, wilayah</th>'
                    + ('<th>Provinsi</th>' if level == "regency" else "")
                    + '<th class="num">Belum terdaftar</th><th class="num">Peserta aktif</th>'
                      '<th class="num">Potensi</th><th class="num">Penetrasi</th></tr></thead>'
                      f'<tbody>{body}</tbody></table></div>')
            hidden = "" if t == tier else " hidden"
            blocks.append(f'<div data-group-item="top" data-key="{esc(t)}"{hidden}>'
                          f'<p class="caption">Tingkat {esc(fmt.tier_name(t))}.</p>'
                          + "".join(parts) + "</div>")
        return (head + self.tier_select("top-tier", present, tier, group="top")
                + "".join(blocks) + "</section>")

    # ------------------------------------------------------------------ 6. targets
    def targets(self) -> str:
        head = ('<section id="target"><h2>Kemajuan menuju target</h2>')
        rows = self.s.rows(
            "SELECT * FROM target_progress WHERE snapshot_date = (SELECT max(snapshot_date) "
            "FROM target_progress) ORDER BY tier <> 'NASIONAL', list_position(?, region_level), "
            "list_position(?, tier), region_code",
            [["national", "province", "regency"], TIER_CODES], needs=("target_progress",))
        if not rows:
            return head + ('<p class="note">Belum ada target yang ditetapkan (tabel '
                           '<code>target_progress</code> kosong): tambahkan berkas '
                           '<code>targets/*.csv</code> di landing zone.</p></section>')
        snap = rows[0]["snapshot_date"]
        body = []
        for r in rows:
            where = ("" if r["tier"] == "NASIONAL" else "seluruh Indonesia"
                     if r["region_level"] == "national"
                     else f"{r['region_code']} {r['region_name'] or ''}".strip())
            target = float(r["target_pct"]) if r["target_pct"] is not None else None
            pen = r["penetration_pct"]
            width = 0 if pen is None else max(0.0, min(100.0, pen))
            mark = 0 if target is None else max(0.0, min(100.0, target))
            bar = (f'<div class="bar" aria-hidden="true"><span style="width:{width:.2f}%"></span>'
                   f'<i style="left:calc({mark:.2f}% - 1px)"></i></div>')
            if r["on_track"] is True:
                track = '<span class="yes">Ya</span>'
            elif r["on_track"] is False:
                track = '<span class="no">Tidak</span>'
            else:
                track = '<span class="unknown">Tidak diketahui</span>'
            if r["projected_date"] is not None:
                projected = fmt.date_long(r["projected_date"])
            elif r["potential"] is None:
                projected = "tanpa potensi"
            elif r["trend_pp_per_month"] is None:
                projected = "belum ada tren (kurang dari 3 snapshot)"
            else:
                projected = "tidak tercapai pada laju ini"
            trend = ("\u2013" if r["trend_pp_per_month"] is None
                     else fmt.num(r["trend_pp_per_month"], 2, sign=True) + "\u00a0poin")
            body.append(
                f"<tr><td>{esc(fmt.tier_name(r['tier']))}<span class='sub'>{esc(where)}</span></td>"
                f"<td class='num'>{esc(fmt.pct(target, fmt.decimals_of(r['target_pct'])))}<br>"
                f"<span class='caption'>{esc(fmt.date_long(r['target_date']))}</span></td>"
                f"<td class='num'>{esc(fmt.pct(pen))}{bar}</td>"
                f"<td class='num'>{esc(fmt.num(r['people_to_target']))}</td>"
                f"<td class='num'>{esc(trend)}</td>"
                f"<td class='wide'>{esc(projected)}</td><td>{track}</td></tr>")
        short = ""
        if len(self.snapshots) < 3:
            short = _history_note(f"baru ada {len(self.snapshots)} snapshot. Tren penetrasi per "
                                  "bulan dan tanggal proyeksi memerlukan sedikitnya 3 snapshot.")
        return (head + f'<p class="lead">Snapshot {esc(fmt.date_long(snap))}. Tren: kemiringan '
                'penetrasi (poin persentase per bulan) dari 12 snapshot terakhir; proyeksi '
                'tercapai bila laju itu bertahan. Batang: penetrasi; garis hitam: target.</p>'
                + short + '<div class="table-wrap"><table><thead><tr><th>Tingkat, wilayah</th>'
                '<th class="num">Target</th><th class="num">Penetrasi</th>'
                '<th class="num">Orang lagi untuk target</th><th class="num">Tren per bulan</th>'
                '<th>Proyeksi tercapai</th><th>Sesuai jalur</th></tr></thead><tbody>'
                + "".join(body) + "</tbody></table></div>"
                + ("<p class='caption'>Sumber target: " + esc("; ".join(sorted(
                    {r["sumber"] for r in rows if r.get("sumber")}))) + ".</p>"
                   if any(r.get("sumber") for r in rows) else "")
                + "</section>")

    # ------------------------------------------------------------------ 7. reconciliation
    def reconciliation(self) -> str:
        head = ('<section id="rekonsiliasi"><h2>Angka terbitan dibandingkan dengan data</h2>'
                '<p class="lead">Setiap angka dalam rilis resmi dicocokkan dengan angka yang '
                'dihitung dari data (snapshot terakhir pada atau sebelum tanggal rilis), dan '
                'rilis diperiksa terhadap dirinya sendiri. Satu kalimat per temuan yang tidak '
                'cocok.</p>')
        rec = self.s.rows("SELECT * FROM reconciliation ORDER BY published_date, source_file, "
                          "row_number", needs=("reconciliation",))
        con = self.s.rows("SELECT * FROM published_consistency ORDER BY published_date, "
                          "\"check\" DESC, list_position(?, tier)", [[*TIER_CODES, "NASIONAL"]],
                          needs=("published_consistency",))
        if not rec and not con:
            return head + ('<p class="note">Belum ada angka terbitan yang dicocokkan (tabel '
                           '<code>reconciliation</code> dan <code>published_consistency</code> '
                           'kosong): tambahkan rilis di <code>published/&lt;tanggal&gt;/</code>.'
                           '</p></section>')
        decimals = {(r["published_date"], r["tier"]): r["published_decimals"] for r in rec
                    if r["metric"] == "penetration_pct" and r["region_code"] is None
                    and r["published_decimals"] is not None}
        out = []
        for day in sorted({r["published_date"] for r in rec + con}):
            rs = [r for r in rec if r["published_date"] == day]
            cs = [r for r in con if r["published_date"] == day]
            files = sorted({r["source_file"] for r in rs})
            snaps = sorted({r["snapshot_date"] for r in rs if r["snapshot_date"] is not None})
            counts = defaultdict(int)
            for r in rs:
                counts[r["verdict"]] += 1
            summary = ", ".join(f"{n} {VERDICTS.get(v, v)}" for v, n in sorted(
                counts.items(), key=lambda kv: list(VERDICTS).index(kv[0])
                if kv[0] in VERDICTS else 99))
            sub = (f"<h3>Rilis {esc(fmt.date_long(day))}</h3><p class='caption'>"
                   + (esc(", ".join(files)) + ". " if files else "")
                   + (f"Dibandingkan dengan snapshot "
                      f"{esc(', '.join(fmt.date_long(d) for d in snaps))}. " if snaps else "")
                   + (f"{len(rs)} angka diperiksa: {esc(summary)}." if rs else "") + "</p>")
            own = [self._consistency_sentence(r, decimals.get((day, r["tier"])))
                   for r in cs if r["verdict"] not in ("consistent", "match")]
            data = [self._reconciliation_sentence(r) for r in rs if r["verdict"] != "match"]
            for title, items, checked in (
                    ("Rilis terhadap dirinya sendiri", own, cs),
                    ("Rilis terhadap data", data, rs)):
                if not checked:
                    continue
                sub += f"<p><b>{title}</b></p>"
                if items:
                    sub += ('<ul class="findings">'
                            + "".join(f'<li data-finding="1">{esc(i)}</li>' for i in items)
                            + "</ul>")
                else:
                    sub += "<p>Semua angka cocok.</p>"
            out.append(sub)
        return head + "".join(out) + "</section>"

    def _who(self, tier, region_code) -> str:
        who = "Nasional" if tier in (None, "NASIONAL") else tier
        if region_code:
            name = self.province_names.get(region_code) or self._region_name(region_code)
            who += f", wilayah {region_code}" + (f" {name}" if name else "")
        return who

    def _region_name(self, code: str) -> str | None:
        if code not in self.region_names:
            r = self.s.one("SELECT arg_max(region_name, snapshot_date) AS n FROM "
                           "coverage_by_region WHERE region_code = ?", [code],
                           needs=("coverage_by_region",))
            self.region_names[code] = r["n"] if r else None
        return self.region_names[code]

    def _reconciliation_sentence(self, r: dict) -> str:
        metric = r["metric"]
        who = self._who(r["tier"], r["region_code"])
        label = fmt.METRIC_LABELS.get(metric, metric or "angka")
        pub, comp = r["published_value"], r["computed_value"]
        dec = r["published_decimals"]
        if dec is None:
            dec = fmt.decimals_of(pub)
        is_pct = metric == "penetration_pct"
        show = (lambda v: fmt.pct(v, dec)) if is_pct else (lambda v: fmt.num(v))
        where = f"baris {r['row_number']}"
        msg = f" ({r['message']})" if r.get("message") else ""
        verdict = r["verdict"]
        if verdict == "unreadable":
            return f"Baris {r['row_number']} tidak terbaca{msg or '.'}".rstrip(".") + "."
        if verdict == "no_data":
            return (f"{who} {label} {show(pub) if pub is not None else ''}: tidak ada angka "
                    f"dari data untuk dibandingkan{msg}.").replace("  ", " ")
        if verdict == "truncated" and is_pct and comp is not None:
            return (f"{who} {show(pub)}: terpotong (dibulatkan "
                    f"{fmt.pct(fmt.round_half_up(comp, dec), dec)}).")
        if is_pct and comp is not None:
            return (f"{who}, penetrasi: {show(pub)} dilaporkan; dihitung dari data "
                    f"{fmt.pct(fmt.round_half_up(comp, dec), dec)}.")
        if comp is not None:
            diff = r["difference"] if r["difference"] is not None else float(pub) - comp
            return (f"{who}, {label}: dilaporkan {show(pub)}, dihitung dari data {show(comp)} "
                    f"(selisih {fmt.num(diff, sign=True)}).")
        return f"{who} {label}: {VERDICTS.get(verdict, verdict)} ({where}){msg}."

    def _consistency_sentence(self, r: dict, dec: int | None) -> str:
        pub, rec = r["published_value"], r["recomputed_value"]
        msg = f" ({r['message']})" if r.get("message") else ""
        if r["check"] == "tier_sum_vs_national":
            if r["verdict"] == "incomplete" or rec is None:
                return (f"Jumlah aktif per tingkat tidak dapat dibandingkan dengan angka "
                        f"nasional {fmt.num(pub)}: ada tingkat tanpa angka aktif maupun "
                        f"potensi dan persentase{msg}.")
            diff = r["difference"] if r["difference"] is not None else float(pub) - rec
            return (f"Jumlah aktif per tingkat dijumlahkan {fmt.num(rec)}, bukan {fmt.num(pub)} "
                    f"seperti dilaporkan (selisih {fmt.num(abs(diff))}).")
        who = self._who(r["tier"], None)
        if dec is None:
            dec = fmt.decimals_of(pub)
        if r["verdict"] == "truncated" and rec is not None:
            return (f"{who} {fmt.pct(pub, dec)}: terpotong (dibulatkan "
                    f"{fmt.pct(fmt.round_half_up(rec, dec), dec)}).")
        if rec is None:
            return f"{who} {fmt.pct(pub, dec)}: {VERDICTS.get(r['verdict'], r['verdict'])}{msg}."
        return (f"{who}: {fmt.pct(pub, dec)} dilaporkan; dihitung dari angka yang sama "
                f"{fmt.pct(fmt.round_half_up(rec, dec), dec)}.")

    # ------------------------------------------------------------------ 8. completeness
    def completeness(self) -> str:
        head = '<section id="kelengkapan"><h2>Kelengkapan data</h2>'
        if not self.log:
            return head + '<p class="note">Log pemuatan kosong.</p></section>'
        out = []
        if self.latest is not None:
            expected = self.offices_expected()
            now = [r for r in self.log if r["snapshot_date"] == self.latest]
            loaded = self.offices.get(self.latest, set())
            rejected = {r["province_code"] for r in now if r["status"] == "rejected"} - loaded
            chips = []
            for code in sorted(expected | loaded):
                name = self.province_names.get(code, "")
                if code in loaded:
                    chips.append(f'<li title="terkirim">{esc(code)} {esc(name)}</li>')
                elif code in rejected:
                    chips.append(f'<li class="rejected" title="berkas ditolak">\u26a0 {esc(code)} '
                                 f'{esc(name)}</li>')
                else:
                    chips.append(f'<li class="missing" title="belum mengirim">\u2717 {esc(code)} '
                                 f'{esc(name)}</li>')
            missing = sorted(expected - loaded)
            out.append(
                f"<p>Snapshot {esc(fmt.date_long(self.latest))}: <b>{len(loaded)} dari "
                f"{len(expected)}</b> kantor provinsi mengirim data yang dimuat."
                + (f" <b class='down'>Belum ada data dimuat dari: "
                   f"{esc(_names_list(missing, self.province_names))}.</b>" if missing else
                   " Semua kantor mengirim.") + "</p>"
                '<ul class="offices" aria-label="Kantor provinsi">' + "".join(chips) + "</ul>"
                '<p class="caption">Hijau: dimuat; merah: belum mengirim; kuning: berkas '
                'ditolak.</p>')
        bad = [r for r in self.log if r["status"] != "loaded"]
        if bad:
            body = "".join(
                f"<tr><td class='nowrap'>{esc(fmt.date_long(r['snapshot_date']))}</td>"
                f"<td>{esc(r['source_file'])}</td>"
                f"<td>{'ditolak' if r['status'] == 'rejected' else 'diganti'}</td>"
                f"<td>{esc(r['message'] or '')}</td></tr>"
                for r in sorted(bad, key=lambda r: (r["snapshot_date"], r["source_file"]),
                                reverse=True))
            n_rej = sum(r["status"] == "rejected" for r in bad)
            out.append(f"<h3>Berkas ditolak atau diganti</h3><p>{n_rej} berkas ditolak "
                       f"seluruhnya, {len(bad) - n_rej} diganti oleh kiriman ulang.</p>"
                       '<div class="table-wrap"><table><thead><tr><th>Snapshot</th>'
                       '<th>Berkas</th><th>Status</th><th>Alasan</th></tr></thead><tbody>'
                       + body + "</tbody></table></div>")
        else:
            out.append("<p>Tidak ada berkas yang ditolak.</p>")
        per = defaultdict(lambda: {"files": 0, "loaded": 0, "rejected": 0, "superseded": 0,
                                   "read": 0, "ok": 0, "quarantined": 0})
        for r in self.log:
            p = per[r["snapshot_date"]]
            p["files"] += 1
            p[r["status"]] = p.get(r["status"], 0) + 1
            p["read"] += r["rows_read"] or 0
            p["ok"] += r["rows_loaded"] or 0
            p["quarantined"] += r["rows_rejected"] or 0
        expected = defaultdict(set)
        for r in self.s.rows("SELECT DISTINCT snapshot_date AS d, region_code AS c FROM "
                             "coverage_by_region WHERE region_level = 'province'",
                             needs=("coverage_by_region",)):
            expected[r["d"]].add(r["c"])
        for r in self.log:
            if r["province_code"]:
                expected[r["snapshot_date"]].add(r["province_code"])

        def absent(d) -> str:
            codes = sorted(expected[d] - self.offices.get(d, set()))
            return ", ".join(f"{c} {self.province_names.get(c, '')}".strip() for c in codes)

        body = "".join(
            f"<tr><td class='nowrap'>{esc(fmt.date_long(d))}</td>"
            f"<td class='num'>{len(self.offices.get(d, ()))}</td>"
            f"<td class='{'down' if absent(d) else ''}'>{esc(absent(d) or chr(8211))}</td>"
            f"<td class='num'>{p['rejected']}</td><td class='num'>{p['superseded']}</td>"
            f"<td class='num'>{esc(fmt.num(p['read']))}</td>"
            f"<td class='num'>{esc(fmt.num(p['ok']))}</td>"
            f"<td class='num'>{esc(fmt.num(p['quarantined']))}</td></tr>"
            for d, p in sorted(per.items(), reverse=True))
        out.append('<h3>Per snapshot</h3><div class="table-wrap"><table><thead><tr>'
                   '<th>Snapshot</th><th class="num">Kantor dimuat</th>'
                   '<th>Belum dimuat</th><th class="num">Berkas ditolak</th>'
                   '<th class="num">Berkas diganti</th>'
                   '<th class="num">Baris dibaca</th><th class="num">Baris dimuat</th>'
                   '<th class="num">Baris dikarantina</th></tr></thead><tbody>'
                   + body + "</tbody></table></div>"
                   '<p class="caption">Baris dikarantina melanggar aturan kontrak dan tidak '
                   'dihitung; alasannya ada di tabel karantina gudang data (tidak di file '
                   'serving).</p>')
        return head + "".join(out) + "</section>"


VERDICTS = {"match": "cocok", "truncated": "terpotong", "differs": "berbeda",
            "no_data": "tanpa data", "unreadable": "tidak terbaca"}

SECTIONS = (("ringkasan", "Ringkasan"), ("penetrasi", "Penetrasi"), ("arus", "Arus"),
            ("peta", "Peta"), ("prioritas", "Prioritas"), ("target", "Target"),
            ("rekonsiliasi", "Angka terbitan"), ("kelengkapan", "Kelengkapan data"))


def write_html(serving: Path, out: Path, tier: str = "RTRW") -> dict:
    """Write the report of `serving` to `out` (atomically). Returns bytes, charts (Vega views),
    maps, the snapshot shown and the build seconds."""
    started = time.perf_counter()
    serving, out = Path(serving), Path(out)
    with Serving(serving) as s:
        rep = Report(s, tier)
        body = "\n".join((rep.headline(), rep.history(), rep.flows(), rep.province_map(),
                          rep.top_regions(), rep.targets(), rep.reconciliation(),
                          rep.completeness()))
        latest, national = rep.latest, rep.national
    sub = []
    if latest is not None:
        sub.append(f"Snapshot terakhir {fmt.date_long(latest)}")
        if national and national.get("vintage"):
            sub.append(f"kode wilayah Kemendagri versi {national['vintage']}")
        if national and national.get("potential_set"):
            sub.append(f"set potensi {fmt.date_long(national['potential_set'])}")
    sub.append(f"{len(rep.snapshots)} snapshot dalam riwayat")
    generated = datetime.now().astimezone()
    dot = " \u00b7 "
    subtitle = (f"<p>{esc(dot.join(sub))}</p>"
                f"<p>Dibuat {esc(fmt.date_long(generated))} pukul "
                f"{generated:%H.%M} dari <code>{esc(serving.name)}</code>.</p>")
    toc = "".join(f'<a href="#{key}">{esc(text)}</a>' for key, text in SECTIONS)
    v = charts.versions()
    footer = (f"<p>{esc(geo.ATTRIBUTION)}</p><p>Grafik: Vega {esc(v['vega'])}, Vega-Lite "
              f"{esc(v['vega-lite'])} dan vega-embed {esc(v['vega-embed'])}, \u00a9 University of "
              "Washington Interactive Data Lab, lisensi BSD-3-Clause; disertakan dalam berkas "
              "ini (dibundel oleh vl-convert), tanpa akses jaringan.</p>"
              "<p>Data agregat dari file serving cakupan: tidak memuat NIK maupun nama. "
              "Angka dalam format Indonesia (titik pemisah ribuan, koma desimal). Penetrasi = "
              "peserta aktif / potensi \u00d7 100.</p>")
    payload = {"locale": {"number": fmt.D3_NUMBER, "time": fmt.D3_TIME}, "specs": rep.specs}
    template = string.Template((HERE / "page.html").read_text(encoding="utf-8"))
    page = template.substitute(
        generator="report", title=esc("Cakupan BPJS Ketenagakerjaan non-ASN"
                                      + (f", {fmt.date_long(latest)}" if latest else "")),
        heading=esc("Cakupan BPJS Ketenagakerjaan pekerja non-ASN pemerintah"),
        subtitle=subtitle, toc=toc, body=body, footer=footer,
        style=(HERE / "report.css").read_text(encoding="utf-8"),
        specs=_json_for_script(payload), vega=charts.vega_runtime(),
        script=(HERE / "report.js").read_text(encoding="utf-8"))
    data = page.encode("utf-8")
    _atomic_write(out, data)
    return {"path": str(out), "bytes": len(data), "charts": len(rep.specs), "maps": rep.maps,
            "snapshot": fmt.iso(latest), "snapshots": len(rep.snapshots),
            "seconds": round(time.perf_counter() - started, 3)}
