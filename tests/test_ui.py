"""The Dagster UI, driven by a real headless browser (Debian's /usr/bin/chromium via Playwright).

`dagster dev -w workspace.yaml` (webserver + daemon) on a free loopback port, a temp
DAGSTER_HOME with the embedded profile and a two-row landing zone. The test opens the global
asset graph, expands every group and finds every asset; finds the generated `matches_schema`
checks; launches a materialization of `region_reference` with the UI's Materialize button and
waits (GraphQL, bounded) for the run to succeed. Screenshots go to tests/artifacts/.

No browser is ever downloaded: `make test` installs Debian's chromium when run as root.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import HEADER, TEST_KEY, Landing
from pipelines.instance import EMBEDDED_DAGSTER_YAML
from schemas.tables import SERVING_TABLES
from services import (WORKSPACE, Service, base_env, executable, free_port, location_loaded, runs,
                      server_info, wait_until)

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ASSETS = ["region_reference", "potential", "enrollment_rows", "quarantine", "load_log",
          "enrollment", "coverage_by_tier", "coverage_national", "coverage_by_region",
          "serving_file"]
STARTUP_S, RUN_S, UI_MS = 180, 180, 60_000

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason=(
        "Debian chromium is not installed at /usr/bin/chromium (`make test` installs it as "
        "root: apt-get install -y --no-install-recommends chromium)")),
]


@pytest.fixture(scope="module")
def playwright_api():
    return pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """`dagster dev` serving the code location; stopped (with its process group) at the end."""
    base = tmp_path_factory.mktemp("ui")
    home = base / "dagster_home"
    home.mkdir()
    # the embedded profile, without the first-visit newsletter dialog (it races the clicks)
    (home / "dagster.yaml").write_text(EMBEDDED_DAGSTER_YAML + "nux:\n  enabled: false\n")
    landing = Landing(base / "landing")
    landing.enrollment("2021-11-30", "kanreg_31.csv", [
        "3171010101800001,21000000001,Siti Aminah,BPU,provinsi,31,NPP001,Pemprov DKI,2021-01-05,"
        "2021-10",
        "3171010101800002,21000000002,Budi Santoso,BPU,provinsi,31,NPP001,Pemprov DKI,"
        "2021-02-05,2021-11"], header=HEADER)
    port = free_port()
    env = base_env(home, CAKUPAN_HMAC_KEY=TEST_KEY, CAKUPAN_LANDING=str(landing.root),
                   CAKUPAN_WAREHOUSE=str(base / "warehouse.duckdb"),
                   CAKUPAN_SERVING=str(base / "serving" / "cakupan.duckdb"),
                   # only the run this test launches: no landing-sensor or nightly runs
                   CAKUPAN_SENSOR_DEFAULT="stopped", CAKUPAN_SCHEDULE_DEFAULT="stopped")
    dev = Service("dagster-dev", [executable("dagster"), "dev", "-w", str(WORKSPACE),
                                  "-h", "127.0.0.1", "-p", str(port)], env, base)
    try:
        wait_until(lambda: server_info(port), STARTUP_S, "/server_info", [dev])
        wait_until(lambda: location_loaded(port), STARTUP_S, "the code location", [dev])
        yield port, dev
    finally:
        dev.stop()


@pytest.fixture
def page(playwright_api, request):
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            pg = browser.new_page(viewport={"width": 1600, "height": 1000})
            pg.set_default_timeout(UI_MS)
            yield pg
            pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.final.png"))
        finally:
            browser.close()


def _dismiss_welcome(pg) -> None:
    """Belt and braces: the newsletter dialog is disabled (nux), skip it should it show."""
    skip = pg.get_by_role("button", name="Skip")
    if skip.count():
        skip.first.click()


def test_asset_graph_shows_every_asset_and_the_schema_checks(ui, page):
    port, _ = ui
    page.goto(f"http://127.0.0.1:{port}/asset-groups", wait_until="domcontentloaded")
    page.get_by_text("Materialize all").wait_for()
    _dismiss_welcome(page)
    # groups start collapsed: the graph's context menu expands them all
    canvas = page.get_by_text("Global asset lineage").bounding_box()
    page.mouse.click(canvas["x"] + 1000, canvas["y"] + 700, button="right")
    page.get_by_role("menuitem", name="Expand all groups").click()
    for name in ASSETS:
        page.get_by_text(name, exact=True).first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "asset_graph.png"))

    checked = [t.name for t in SERVING_TABLES]
    assert checked, "the generated checks cover the serving tables"
    for table in checked:
        page.goto(f"http://127.0.0.1:{port}/assets/{table}?view=checks",
                  wait_until="domcontentloaded")
        page.get_by_text("matches_schema").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "asset_checks.png"))


def test_materialize_region_reference_from_the_ui(ui, page):
    port, dev = ui
    before = {r["runId"] for r in runs(port)}
    page.goto(f"http://127.0.0.1:{port}/assets/region_reference", wait_until="domcontentloaded")
    _dismiss_welcome(page)
    button = page.locator("button", has_text=re.compile(r"^\W*Materialize$"))
    button.click()

    def finished():
        new = [r for r in runs(port) if r["runId"] not in before
               and {"key": "dagster/from_ui", "value": "true"} in r["tags"]]
        return new if new and all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED")
                                  for r in new) else None

    new = wait_until(finished, RUN_S, "the region_reference run", [dev], interval=2)
    assert [r["status"] for r in new] == ["SUCCESS"], new
    page.goto(f"http://127.0.0.1:{port}/runs/{new[0]['runId']}", wait_until="domcontentloaded")
    page.get_by_text("Success").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "region_reference_run.png"))
