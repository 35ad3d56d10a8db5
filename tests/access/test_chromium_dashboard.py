"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium driven by
Playwright) against uvicorn on a loopback port: sign in through the form, open every
page, check the figures against the catalogue, follow an ingest report, switch the
language; screenshots of every page go to ``<pytest basetemp>/screenshots/``.

The staff session runs with JavaScript disabled: the pages must work without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from preservation.access.app import create_app
from tests.access.conftest import live_server
from tests.access.dashboard_fixtures import World, expected, shared_world

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium"
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return shared_world(tmp_path_factory)


@pytest.fixture(scope="module")
def base_url(world: World) -> Iterator[str]:
    with live_server(create_app(world.repo)) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(exist_ok=True)
    return folder


def figure(page: Any, name: str) -> str:
    return str(page.get_attribute(f"[data-figure='{name}']", "data-value"))


def attributes(rows: Any, name: str) -> list[str]:
    return [str(rows.nth(i).get_attribute(name)) for i in range(rows.count())]


def follow(page: Any, selector: str) -> None:
    """Click a link or submit button and wait until the page it opens has loaded.

    A bare ``click`` returns once the click is dispatched; reading the title or the
    content straight after it can see a page that is still blank.
    """
    with page.expect_navigation(wait_until="load"):
        page.click(selector)


def sign_in(page: Any, base_url: str, world: World, role: str, start: str) -> None:
    page.goto(base_url + start)
    assert "/login" in page.url  # not signed in: sent to the form, with ?next=
    page.fill("#name", f"{role}1")
    page.fill("#token", world.tokens[role])
    follow(page, "button[type=submit]")
    assert page.url.startswith(base_url + start), page.url


def shot(page: Any, folder: Path, name: str) -> None:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5000


def chart_drawn(page: Any, selector: str) -> None:
    box = page.locator(f"{selector} svg").first.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 150


def test_staff_session_without_javascript(
    browser: Any, base_url: str, world: World, shots: Path
) -> None:
    context = browser.new_context(java_script_enabled=False, locale="en-US",
                                  viewport={"width": 1280, "height": 900})  # fmt: skip
    page = context.new_page()
    try:
        sign_in(page, base_url, world, "auditor", "/dashboard/?lang=en")
        want = expected(world, sees_restricted=True)
        for key, value in want.items():
            assert figure(page, key) == str(value), key
        assert page.inner_text("h1") == "Overview"
        assert page.inner_text("strong.principal") == "auditor1"
        chart_drawn(page, "#chart-copies")
        shot(page, shots, "staff-overview-en")

        follow(page, "nav >> text=Replication health")
        offsite = page.locator("#stores tr[data-store='offsite'] td[data-col]")
        replicated = sum(a.replicated for a in world.aips)
        pending = len(world.aips) - replicated
        assert offsite.all_inner_texts() == [str(replicated), str(pending), "0", "0"]
        below = attributes(page.locator("#below-policy tbody tr"), "data-aip")
        assert below == [a.aip for a in world.aips if not a.replicated]
        chart_drawn(page, "#chart-replication")
        shot(page, shots, "staff-replication")

        follow(page, "nav >> text=Audits")
        assert figure(page, "checks-passed") == "3" and figure(page, "checks-failed") == "0"
        assert figure(page, "incidents") == str(len(world.incidents))
        chart_drawn(page, "#chart-audits")
        shot(page, shots, "staff-audits")

        follow(page, "nav >> text=Formats")
        assert figure(page, "files") == str(sum(a.files for a in world.aips))
        chart_drawn(page, "#chart-formats")
        shot(page, shots, "staff-formats")

        follow(page, "nav >> text=Ingest history")
        assert figure(page, "ingests") == str(len(world.aips) + 1)
        secret = next(a for a in world.aips if not a.public)
        assert page.locator(f"tr[data-aip='{secret.aip}']").count() == 1
        shot(page, shots, "staff-ingests")
        follow(page, f"tr[data-aip='{secret.aip}'] a")
        assert page.inner_text("td[data-col='files']") == str(secret.files)
        shot(page, shots, "staff-ingest-job")
        follow(page, "#report-link")
        assert "四性检测报告" in page.title() and secret.aip in page.content()
        shot(page, shots, "staff-ingest-report")

        # back in Chinese
        page.goto(base_url + "/dashboard/?lang=zh")
        assert page.inner_text("h1") == "概览"
        shot(page, shots, "staff-overview-zh")
    finally:
        context.close()


def test_reader_session_sees_public_figures_only(
    browser: Any, base_url: str, world: World, shots: Path
) -> None:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        sign_in(page, base_url, world, "reader", "/dashboard/formats")
        assert page.inner_text("h1") == "文件格式"  # Accept-Language zh-CN
        assert figure(page, "files") == str(sum(a.files for a in world.aips if a.public))
        shot(page, shots, "reader-formats")
        follow(page, "nav >> text=概览")
        want = expected(world, sees_restricted=False)
        for key, value in want.items():
            assert figure(page, key) == str(value), key
        assert page.locator("#public-only").count() == 1
        nav = page.locator("nav a").all_inner_texts()
        assert "副本健康" not in nav and "审计" not in nav
        shot(page, shots, "reader-overview")
        follow(page, "nav >> text=接收记录")
        shown = set(attributes(page.locator("#ingests tbody tr"), "data-aip"))
        assert shown == {a.aip for a in world.aips if a.public}
        shot(page, shots, "reader-ingests")
        html = page.content()
        for a in world.aips:
            if not a.public:
                assert a.aip not in html and a.reference_code not in html
        response = page.goto(base_url + "/dashboard/audits")
        assert response is not None and response.status == 403
        # a GET of /logout only asks; the header's button posts the form (with the
        # session's CSRF token) and ends the session
        page.goto(base_url + "/logout")
        assert page.locator("form[action='/logout'] button#sign-out").count() == 1
        page.goto(base_url + "/dashboard/")
        follow(page, "header #sign-out")
        assert "/login" in page.url
        page.goto(base_url + "/dashboard/")
        assert "/login" in page.url  # signed out: back to the sign-in form
    finally:
        context.close()
