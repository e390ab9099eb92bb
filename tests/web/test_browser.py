"""The UI in a real browser: Playwright driving Debian's Chromium against `sqlorch ui`.

One example project, built once, one server, one browser for the module. The tests save
the screenshots the README shows (docs/screenshots/).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, copy_example, run_cli
from webclient import get, start_ui

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = REPO / "docs" / "screenshots"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The example project, built twice (plots of two points), June of raw.flights wiped."""
    project = copy_example(tmp_path_factory.mktemp("browser") / "nycflights")
    for args in (
        ("build",),
        ("build", "--full"),
        ("wipe", "raw.flights", "--from", "2013-06-01", "--to", "2013-06-30"),
    ):
        result = run_cli(project, *args)
        assert result.exit_code == 0, result.describe()
    process, url = start_ui(project)
    try:
        yield project, url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Chromium page (fresh profile) at a desktop size."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=ARGS,
            viewport={"width": 1400, "height": 900},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


def test_graph_then_an_asset_page_with_its_plots(server: tuple[Path, str], browser: Any) -> None:
    _project, url = server
    page = browser
    page.goto(url)
    page.wait_for_selector("[data-testid=graph-svg]")
    assets = json.loads(get(url + "api/graph"))["assets"]
    assert page.locator("svg.graph a.node").count() == len(assets)  # every asset is drawn
    # June of raw.flights was wiped: it and what reads it are stale, and the hover says why
    hover = page.locator('a.node[data-key="raw.flights"] title').text_content() or ""
    assert "state: stale" in hover and "stale: " in hover
    assert page.locator("svg.graph a.node.fresh").count() > 0
    shot(page, "graph")
    page.locator('a.node[data-key="analytics.route_delay_score"]').click()
    page.wait_for_selector("[data-testid=asset-key]")
    assert (
        page.locator("[data-testid=asset-key]")
        .inner_text()
        .startswith("analytics.route_delay_score")
    )
    # uPlot drew the plots: rows, duration and the asset's numeric metadata
    page.wait_for_selector(".plot[data-ready='1'] canvas")
    assert page.locator(".plot canvas").count() >= 3
    assert page.locator("[data-testid=check-strip] .cell.pass").count() >= 2
    shot(page, "asset")


def test_column_lineage_opens_in_place(server: tuple[Path, str], browser: Any) -> None:
    _project, url = server
    page = browser
    page.goto(url + "assets/marts.route_stats")
    page.locator("[data-testid=lineage-up]").first.click()
    page.wait_for_selector("#lineage-panel [data-testid=lineage]", timeout=120_000)
    assert "marts.route_stats." in page.locator("#lineage-panel").inner_text()


def test_backfill_a_month_from_the_partitions_grid_and_watch_it_live(
    server: tuple[Path, str], browser: Any
) -> None:
    _project, url = server
    page = browser
    page.goto(url + "partitions/raw.flights")
    page.wait_for_selector("[data-testid=partition-grid] .seg")
    assert page.locator(".seg").count() < 10  # ranges, not 365 cells
    missing = page.locator(".seg.missing")
    assert missing.count() == 1
    assert "2013-06-01 .. 2013-06-30 (30 partitions)" in (missing.get_attribute("title") or "")
    missing.click()
    assert page.locator("#range-start").input_value() == "2013-06-01"
    assert page.locator("#range-end").input_value() == "2013-06-30"
    shot(page, "partitions")
    page.locator("button[value=backfill]").click()
    page.wait_for_selector("[data-testid=plan]")
    plan = page.locator("[data-testid=plan]").inner_text()
    assert "raw.flights" in plan and "marts.fct_delays" in plan  # and downstream
    page.locator("[data-testid=confirm]").click()
    page.wait_for_url("**/runs/**", timeout=120_000)
    page.wait_for_selector("#run-status:text('success')", timeout=300_000)
    page.wait_for_selector(".gantt .g-bar")
    assert page.locator("[data-testid=log] tr").count() > 5
    assert "backfill" in page.locator("h1 + p").inner_text()
    shot(page, "run")
    page.goto(url + "partitions/raw.flights")
    assert page.locator(".seg.missing").count() == 0


def test_screenshots_are_where_the_readme_shows_them() -> None:
    readme = (REPO / "README.md").read_text()
    for name in ("graph", "asset", "partitions", "run"):
        assert f"docs/screenshots/{name}.png" in readme
