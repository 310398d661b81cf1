"""The Dagster UI, driven by a real headless browser (Debian's /usr/bin/chromium via Playwright).

A two-office landing zone refreshed once by `cakupan run`, then `cakupan dev` (what `make dev`
runs: `dagster dev -w workspace.yaml`, webserver and daemon) on a free loopback port, started
by absolute path with the virtualenv NOT on PATH, the embedded profile in a temp DAGSTER_HOME.
The test opens the global asset graph, expands every group and finds every asset; finds the
generated checks; reads the tier table previewed on coverage_by_tier's page; launches a
materialization of `region_reference` with the UI's Materialize button and waits (GraphQL,
bounded) for its run, in a worker process of its own, to succeed. Screenshots go to
tests/artifacts/.

No browser is ever downloaded: `make test` installs Debian's chromium when run as root.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import HEADER, TEST_KEY, Landing
from schemas.tables import SERVING_TABLES
from test_dagster import GRAPH
from services import (WORKSPACE, Service, base_env, executable, free_port, location_loaded, runs,
                      server_info, wait_until)

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ASSETS = sorted(GRAPH)
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
    landing = Landing(base / "landing")
    landing.potential("2021-01-01", ["PROV,31,10,RDP", "KL,,100,RDP"])
    landing.enrollment("2021-11-30", "31_kanreg.csv", [
        "3171010101800001,21000000001,Siti Aminah,BPU,provinsi,31,NPP001,Pemprov DKI,2021-01-05,"
        "2021-10",
        "3171010101800002,21000000002,Budi Santoso,BPU,provinsi,31,NPP001,Pemprov DKI,"
        "2021-02-05,2021-11"], header=HEADER)
    port = free_port()
    env = base_env(home, CAKUPAN_HMAC_KEY=TEST_KEY, CAKUPAN_LANDING=str(landing.root),
                   CAKUPAN_WAREHOUSE=str(base / "warehouse.duckdb"),
                   CAKUPAN_SERVING=str(base / "serving" / "cakupan.duckdb"),
                   # only the runs this test launches: no landing-sensor or nightly runs
                   CAKUPAN_SENSOR_DEFAULT="stopped", CAKUPAN_NIGHTLY_DEFAULT="stopped")
    done = subprocess.run([executable("cakupan"), "run"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    dev = Service("cakupan-dev", [executable("cakupan"), "dev", "--host", "127.0.0.1",
                                  "--port", str(port)], env, base)
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
    page.get_by_text("serving_file", exact=True).first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "asset_graph.png"))
    # the graph shortens long names; the catalog lists every asset by its full name
    page.goto(f"http://127.0.0.1:{port}/assets", wait_until="domcontentloaded")
    for name in ASSETS:
        page.get_by_text(name, exact=True).first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "asset_catalog.png"), full_page=True)

    checked = [t.name for t in SERVING_TABLES]
    assert checked, "the generated checks cover the serving tables"
    for table in checked:
        page.goto(f"http://127.0.0.1:{port}/assets/{table}?view=checks",
                  wait_until="domcontentloaded")
        page.get_by_text("matches_schema").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "asset_checks.png"))


def test_the_tier_table_is_previewed_on_the_asset_page(ui, page):
    port, _ = ui
    page.goto(f"http://127.0.0.1:{port}/assets/coverage_by_tier?view=events",
              wait_until="domcontentloaded")
    _dismiss_welcome(page)
    page.get_by_text("2021-11-30").first.wait_for()
    page.get_by_text("tiers", exact=True).first.wait_for()
    page.get_by_text("dagster/row_count").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "coverage_by_tier_events.png"), full_page=True)
    page.goto(f"http://127.0.0.1:{port}/assets/coverage_by_tier?view=partitions",
              wait_until="domcontentloaded")
    page.get_by_text("2021-11-30").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "coverage_by_tier_partitions.png"))


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
    tags = {t["key"]: t["value"] for t in new[0]["tags"]}
    assert tags.get("cakupan/worker_pid"), tags   # launched in a worker of its own
    page.goto(f"http://127.0.0.1:{port}/runs/{new[0]['runId']}", wait_until="domcontentloaded")
    page.get_by_text("Success").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "region_reference_run.png"))
