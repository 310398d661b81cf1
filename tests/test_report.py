"""The HTML and XLSX reports of a real serving file (assets/render).

Real components only: the real `cakupan demo` and `cakupan run` (subprocesses, run side by side)
write three serving files: 13 monthly snapshots; a single snapshot (too little history for a
trend); two snapshots whose latest lacks office 11 (not comparable). The HTML is rendered in
Debian's headless Chromium through Playwright with every request but the file itself aborted;
the XLSX is read back with openpyxl. Screenshots go to tests/artifacts/.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import duckdb
import pytest
from openpyxl import load_workbook

from assets.render import write_html, write_xlsx
from schemas.tables import SERVING_TABLES, SERVING_VIEWS

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).parent / "artifacts"
KEY = "test-key-not-a-secret-0123456789abcdef"
SCALE = "0.005"


# ---------------------------------------------------------------- independent formatting
def id_int(n, sign=False) -> str:
    text = f"{n:+,}" if sign else f"{n:,}"
    return text.replace(",", ".").replace("-", "\u2212")


def id_dec(x, decimals=2, sign=False) -> str:
    text = f"{x:+,.{decimals}f}" if sign else f"{x:,.{decimals}f}"
    text = text.replace(",", "_").replace(".", ",").replace("_", ".")
    return text.replace("-", "\u2212")


def squash(text: str) -> str:
    return " ".join(text.replace("\u00a0", " ").split())


# ---------------------------------------------------------------- the serving files
def _pipeline(base: Path, *demo_args: str, drop: str | None = None) -> subprocess.Popen:
    """`cakupan demo` then `cakupan run` in a subprocess (returns at once)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CAKUPAN_") and k != "DAGSTER_HOME"}
    env.update(CAKUPAN_HMAC_KEY=KEY, DAGSTER_HOME=str(base / "dagster_home"))
    (base / "dagster_home").mkdir(parents=True)
    cli = f"{sys.executable} -m pipelines.cli"
    landing = base / "landing"
    steps = [f"{cli} demo --out {landing} --scale {SCALE} {' '.join(demo_args)}"]
    if drop:   # remove one office's files from the latest snapshot
        steps.append(f"latest=$(ls -d {landing}/enrollment/20* | sort | tail -n 1) && "
                     f"rm -f \"$latest\"/{drop}.* \"$latest\"/{drop}_*")
    steps.append(f"{cli} run --landing {landing} --warehouse {base / 'warehouse.duckdb'} "
                 f"--serving {base / 'serving.duckdb'}; rc=$?; "
                 "if [ $rc -eq 0 ] || [ $rc -eq 2 ]; then exit 0; else exit $rc; fi")
    return subprocess.Popen(["bash", "-c", " && ".join(steps)], env=env,
                            cwd=Path(__file__).parent.parent, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def servings():
    base = Path(tempfile.mkdtemp(prefix="cakupan-report-"))
    try:
        procs = {"full": _pipeline(base / "full"),
                 "single": _pipeline(base / "single", "--snapshots", "1"),
                 "late": _pipeline(base / "late", "--snapshots", "2", drop="11")}
        for name, proc in procs.items():
            out, _ = proc.communicate(timeout=600)
            assert proc.returncode == 0, f"{name} pipeline failed:\n{out[-3000:]}"
        yield {name: base / name / "serving.duckdb" for name in procs} | {"base": base}
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def reports(servings):
    out = {}
    for name in ("full", "single", "late"):
        html = servings["base"] / f"{name}.html"
        out[name] = (html, write_html(servings[name], html))
    return out


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Opened:
    def __init__(self, browser, path: Path, width: int = 1280):
        self.page = browser.new_page(viewport={"width": width, "height": 900})
        self.url = path.resolve().as_uri()
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.page.route("**/*", self._route)
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.goto(self.url)
        self.page.wait_for_selector("body[data-charts-ready]", state="attached", timeout=30000)

    def _route(self, route):
        if route.request.url == self.url:
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def text(self, selector: str) -> str:
        return squash(self.page.inner_text(selector))

    def count(self, selector: str) -> int:
        return self.page.locator(selector).count()

    def close(self):
        self.page.close()


@pytest.fixture(scope="module")
def full_page(browser, reports):
    opened = Opened(browser, reports["full"][0])
    yield opened
    opened.close()


def query(path: Path, sql: str, params=None):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


# ---------------------------------------------------------------- HTML
def test_html_is_one_self_contained_file(reports):
    path, stats = reports["full"]
    text = path.read_text(encoding="utf-8")
    assert stats["bytes"] == path.stat().st_size
    assert stats["bytes"] < 4_000_000, stats
    assert stats["charts"] == 3 and stats["maps"] == 1, stats
    lowered = text.lower()
    assert "<script src" not in lowered and "<link" not in lowered
    assert "@import" not in lowered and "@font-face" not in lowered
    assert "url(http" not in lowered
    assert "connect-src 'none'" in text          # the page forbids itself any fetch


def test_page_loads_offline_without_errors(full_page):
    assert full_page.blocked == []
    assert full_page.errors == []
    assert full_page.page.get_attribute("[data-chart='map']", "data-rendered") == "true"


def test_sections_in_order_with_charts_and_map(full_page, servings):
    ids = full_page.page.eval_on_selector_all("main > section", "els => els.map(e => e.id)")
    assert ids == ["ringkasan", "penetrasi", "arus", "peta", "prioritas", "target",
                   "rekonsiliasi", "kelengkapan"]
    for section in ("penetrasi", "arus", "peta"):
        assert full_page.count(f"#{section} [data-chart] svg") >= 1, section
    lines = full_page.count("#penetrasi [data-chart] svg g.mark-line path")
    assert lines == 7     # six tiers and the national line
    provinces = query(servings["full"], "SELECT count(DISTINCT region_code) FROM "
                      "coverage_by_region WHERE region_level = 'province'")[0][0]
    assert provinces == 34
    # one grey base layer and one coloured layer: every (dissolved) province drawn
    shapes = full_page.count("#peta [data-chart] svg g.mark-shape path")
    assert shapes >= 2 * 34, shapes
    caption = full_page.text("#peta figcaption")
    assert "91 = wilayah 91 + 93 + 94 + 95" in caption and "versi 2020" in caption
    assert "Cahya DSN" in full_page.text("#peta") and "MIT" in full_page.text("#peta")


def test_headline_numbers_match_the_serving_file(full_page, servings):
    (active, potential, pct, offices, change, change_yoy, pp, pp_yoy), = query(
        servings["full"],
        "SELECT n.active, n.potential, n.penetration_pct, n.offices_delivered, t.active_change, "
        "t.active_change_yoy, t.penetration_change_pp, t.penetration_change_yoy_pp "
        "FROM coverage_national n JOIN coverage_trend_national t USING (snapshot_date) "
        "ORDER BY snapshot_date DESC LIMIT 1")
    kpi = lambda key: full_page.text(f"#ringkasan [data-kpi='{key}']")  # noqa: E731
    assert kpi("active") == id_int(active)
    assert kpi("potential") == id_int(potential)
    assert kpi("penetration") == id_dec(pct) + " %"
    assert kpi("offices_delivered") == str(offices)
    assert kpi("active_change") == id_int(change, sign=True)
    assert kpi("active_change_yoy") == id_int(change_yoy, sign=True)
    assert kpi("penetration_change_pp") == id_dec(pp, sign=True) + " poin"
    assert kpi("penetration_change_yoy_pp") == id_dec(pp_yoy, sign=True) + " poin"
    assert full_page.count("#ringkasan [data-warning]") == 0     # latest is comparable
    # the tier table: every tier's label and penetration
    table = full_page.text("#ringkasan table")
    for tier, label, tier_pct in query(servings["full"],
                                       "SELECT tier, tier_label, penetration_pct FROM "
                                       "coverage_by_tier WHERE snapshot_date = (SELECT "
                                       "max(snapshot_date) FROM coverage_by_tier)"):
        assert label in table and id_dec(tier_pct) + " %" in table


def test_tier_selectors_switch_map_and_tables(full_page):
    page = full_page.page
    fills = "els => els.map(e => e.getAttribute('fill')).sort().join()"
    before = page.eval_on_selector_all("#peta svg g.mark-shape path", fills)
    page.select_option("#map-tier", "KEC")
    page.wait_for_function("document.querySelector('[data-label-for=map-tier]')"
                           ".textContent.startsWith('KEC')")
    page.wait_for_timeout(300)
    after = page.eval_on_selector_all("#peta svg g.mark-shape path", fills)
    assert before != after
    page.select_option("#top-tier", "KABKOTA")
    assert page.is_visible("[data-group-item='top'][data-key='KABKOTA']")
    assert not page.is_visible("[data-group-item='top'][data-key='RTRW']")
    page.select_option("#flows-tier", "DESA")
    page.wait_for_timeout(300)
    assert full_page.count("#arus svg g.mark-rect path") > 0
    assert full_page.errors == []


def test_top_regions_targets_reconciliation_and_completeness(full_page, servings):
    s = servings["full"]
    top = query(s, "SELECT region_code, region_name, uncovered FROM coverage_by_region WHERE "
                   "snapshot_date = (SELECT max(snapshot_date) FROM coverage_by_region) AND "
                   "tier = 'RTRW' AND region_level = 'province' AND uncovered_rank = 1")
    text = full_page.text("[data-group-item='top'][data-key='RTRW']")
    (code, name, uncovered), = top
    assert f"{code} {name}" in text and id_int(uncovered) in text

    targets = query(s, "SELECT count(*) FROM target_progress WHERE snapshot_date = "
                       "(SELECT max(snapshot_date) FROM target_progress)")[0][0]
    if targets:
        assert full_page.count("#target tbody tr") == targets
    else:
        assert "Belum ada target" in full_page.text("#target")

    findings = query(s, "SELECT (SELECT count(*) FROM reconciliation WHERE verdict <> 'match') "
                        "+ (SELECT count(*) FROM published_consistency WHERE verdict NOT IN "
                        "('consistent', 'match'))")[0][0]
    published = query(s, "SELECT (SELECT count(*) FROM reconciliation) + "
                         "(SELECT count(*) FROM published_consistency)")[0][0]
    if published:
        assert full_page.count("#rekonsiliasi li[data-finding]") == findings
    else:
        assert "Belum ada angka terbitan" in full_page.text("#rekonsiliasi")

    completeness = full_page.text("#kelengkapan")
    for source, status in query(s, "SELECT source_file, status FROM load_log "
                                   "WHERE status <> 'loaded'"):
        assert source in completeness
    offices = query(s, "SELECT offices_delivered FROM coverage_national ORDER BY 1 DESC "
                       "LIMIT 1")[0][0]
    assert f"{offices} dari" in completeness


def test_screenshots(browser, reports):
    """The whole page at the default tier, on a desktop and on a 390 px wide phone."""
    ARTIFACTS.mkdir(exist_ok=True)
    for width, name in ((1280, "report.png"), (390, "report-phone.png")):
        opened = Opened(browser, reports["full"][0], width=width)
        try:
            assert opened.errors == [] and opened.blocked == []
            # nothing wider than the viewport (wide tables scroll inside their own box)
            assert opened.page.evaluate("document.documentElement.scrollWidth") <= width
            opened.page.screenshot(path=str(ARTIFACTS / name), full_page=True)
        finally:
            opened.close()
        assert (ARTIFACTS / name).stat().st_size > 50_000


def test_single_snapshot_says_not_enough_history(browser, reports, servings):
    path, stats = reports["single"]
    assert stats["snapshots"] == 1 and stats["charts"] == 1     # only the map
    opened = Opened(browser, path)
    try:
        assert opened.errors == [] and opened.blocked == []
        for section in ("penetrasi", "arus"):
            assert "Riwayat belum cukup" in opened.text(f"#{section}"), section
            assert opened.count(f"#{section} [data-chart]") == 0
        assert opened.count("#peta [data-chart] svg") == 1
        (active,), = query(servings["single"], "SELECT active FROM coverage_national")
        assert opened.text("[data-kpi='active']") == id_int(active)
        assert "belum ada snapshot pembanding" in opened.text("#ringkasan")
    finally:
        opened.close()


def test_late_office_is_named_in_a_warning(browser, reports, servings):
    path, _ = reports["late"]
    (comparable, offices), = query(
        servings["late"], "SELECT t.comparable, n.offices_delivered FROM "
        "coverage_trend_national t JOIN coverage_national n USING (snapshot_date) "
        "ORDER BY snapshot_date DESC LIMIT 1")
    assert comparable is False and offices == 33
    opened = Opened(browser, path)
    try:
        assert opened.errors == [] and opened.blocked == []
        warning = opened.text("#ringkasan [data-warning]")
        assert "tidak sebanding" in warning and "11 ACEH" in warning
        assert "belum mengirim" in warning
        assert "11 ACEH" in opened.text("#kelengkapan")
        assert opened.text("[data-kpi='offices_delivered']") == "33"
    finally:
        opened.close()


# ---------------------------------------------------------------- XLSX
TEXT_TYPES = ("VARCHAR", "DATE", "TIMESTAMP")
NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
      "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
      "p": "http://schemas.openxmlformats.org/package/2006/relationships"}


@pytest.fixture(scope="module")
def workbook(servings):
    out = servings["base"] / "report.xlsx"
    stats = write_xlsx(servings["full"], out)
    wb = load_workbook(out, read_only=True)
    yield out, stats, wb
    wb.close()


def sheet_xml(path: Path) -> dict[str, ElementTree.Element]:
    """Each sheet's XML by sheet name (for what a read-only workbook does not show)."""
    with zipfile.ZipFile(path) as z:
        book = ElementTree.fromstring(z.read("xl/workbook.xml"))
        rels = ElementTree.fromstring(z.read("xl/_rels/workbook.xml.rels"))
        target = {r.get("Id"): r.get("Target") for r in rels.findall("p:Relationship", NS)}
        out = {}
        for sheet in book.find("m:sheets", NS):
            part = target[sheet.get(f"{{{NS['r']}}}id")].lstrip("/")
            part = part if part.startswith("xl/") else f"xl/{part}"
            out[sheet.get("name")] = ElementTree.fromstring(z.read(part))
        return out


def test_xlsx_has_every_table_and_explains_it(workbook, servings):
    out, stats, wb = workbook
    names = [t.name for t in SERVING_TABLES] + list(SERVING_VIEWS)
    assert wb.sheetnames[0] == "Keterangan"
    assert set(names) <= set(wb.sheetnames)
    notes = list(wb["Keterangan"].iter_rows(values_only=True))
    described = {r[0] for r in notes if r and r[0]}
    for t in SERVING_TABLES:
        assert t.name in described
        for c in t.cols(serving=True):
            assert c.name in described, (t.name, c.name)
    for view, (_, _, columns) in SERVING_VIEWS.items():
        assert view in described and set(columns) <= described
    rows = {r[0]: r for r in notes if r and r[0]}
    for t in SERVING_TABLES:
        assert rows[t.name][2].startswith(t.description), t.name
    for name in names:
        count = query(servings["full"], f"SELECT count(*) FROM {name}")[0][0]
        assert stats["rows"][name] == count, name
        assert sum(1 for _ in wb[name].iter_rows()) == count + 1, name


def test_xlsx_cells_are_typed(workbook, servings):
    _, _, wb = workbook
    con = duckdb.connect(str(servings["full"]), read_only=True)
    try:
        types = {(t, c): d for t, c, d in con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns()").fetchall()}
    finally:
        con.close()
    for name in [t.name for t in SERVING_TABLES] + list(SERVING_VIEWS):
        rows = wb[name].iter_rows(max_row=400)
        header = [c.value for c in next(rows)]
        for row in rows:
            for col, cell in zip(header, row):
                if cell.value is None:
                    continue
                sql = types[(name, col)]
                if sql.startswith(TEXT_TYPES):
                    assert cell.data_type == "s", (name, col, cell.value)
                elif sql == "BOOLEAN":
                    assert cell.data_type == "b", (name, col, cell.value)
                else:
                    assert cell.data_type == "n" and not isinstance(cell.value, str), \
                        (name, col, cell.value)
    region = list(wb["coverage_by_region"].iter_rows(values_only=True))
    code = region[0].index("region_code")
    codes = {r[code] for r in region[1:]}
    assert "11" in codes and "32.01" in codes           # text, not 11 or 32.01
    assert "2021-10-31" in {r[0] for r in region[1:]}   # ISO text, not an Excel date


def test_xlsx_header_frozen_and_columns_sized(workbook):
    out, _, _ = workbook
    sheets = sheet_xml(out)
    for name in [t.name for t in SERVING_TABLES] + list(SERVING_VIEWS):
        pane = sheets[name].find("m:sheetViews/m:sheetView/m:pane", NS)
        assert pane is not None and pane.get("state") == "frozen", name
        assert pane.get("topLeftCell") == "A2" and pane.get("ySplit") == "1", name
        cols = sheets[name].findall("m:cols/m:col", NS)
        assert cols and all(float(c.get("width")) >= 8 for c in cols), name
    region = sheets["coverage_by_region"].findall("m:cols/m:col", NS)
    assert max(float(c.get("width")) for c in region) > 20     # region_name is wide
