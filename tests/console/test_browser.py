"""The console in a real browser: Playwright driving Debian's Chromium against `tectonite serve`.

Screenshots of every page land in tests/console/screenshots/ (git-ignored) for review.
Skipped, with the reason, only when no Chromium executable is installed (`.ci/run` installs it).
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest

from tests.console.conftest import Keys, make_keys, seed_staging
from tests.serving.conftest import seed_fraud

SERVICE = "fraud_detection_feature_service"
SCREENSHOTS = Path(__file__).parent / "screenshots"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000


def _chromium() -> str | None:
    candidates = [os.environ.get("CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium found (apt-get install chromium; .ci/run does)"
)


def _merchant_rates(path: Path, count: int = 400) -> Path:
    """Rates for many merchants, fresher ones more common, so the charts have a shape."""
    generator = random.Random(17)
    now = datetime.now(UTC).replace(microsecond=0)
    lines = ["merchant,timestamp,is_fraud_mean_1d_1d,is_fraud_mean_30d_1d,is_fraud_mean_90d_1d"]
    for number in range(count):
        age = timedelta(hours=generator.expovariate(1 / 60))
        rate = generator.betavariate(2, 30)
        lines.append(
            f"shop{number},{(now - age).isoformat()},{rate:.4f},"
            f"{rate * generator.uniform(0.8, 1.2):.4f},{generator.gauss(0.05, 0.01):.4f}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def console(committed_runner, clean_database, tmp_path, server) -> tuple[str, Keys]:
    """The session's real server with prod (live, with values), staging (development), keys."""
    seed_fraud(committed_runner, clean_database, tmp_path / "prod", "prod")
    rates = _merchant_rates(tmp_path / "rates.csv")
    committed_runner.ok(
        "ingest", "--workspace", "prod", "--feature-view", "merchant_fraud_rate", str(rates)
    )
    seed_staging(committed_runner, tmp_path / "staging")
    return server.base_url, make_keys(committed_runner)


@pytest.fixture
def page() -> Iterator[object]:
    """A fresh Chromium profile per test (no cookies carried over)."""
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def _shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _sign_in(page, base_url: str, key: str) -> None:
    page.goto(f"{base_url}/console/")
    assert page.url.startswith(f"{base_url}/console/sign-in")
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/console/workspaces")


def test_admin_walks_every_page_and_tries_a_service(console, page):
    base_url, keys = console
    page.goto(f"{base_url}/console/sign-in")
    _shot(page, "sign-in")
    _sign_in(page, base_url, keys.admin)
    assert page.locator("text=staging").count() >= 1
    _shot(page, "workspaces")

    page.click("a[href='/console/workspaces/prod']")
    assert page.locator("h2", has_text="Push sources").count() == 1
    _shot(page, "workspace")

    page.click("a[href='/console/workspaces/prod/feature-views/user_profile']")
    assert page.inner_text("#entity-count") == "1"
    assert page.locator("svg.chart").count() == 2
    _shot(page, "feature-view")

    page.goto(f"{base_url}/console/workspaces/prod/feature-views/merchant_fraud_rate")
    assert page.inner_text("#entity-count") == "401"  # m1 from seed_fraud and 400 shops
    assert page.locator("svg.chart").count() == 4  # freshness and three numeric features
    _shot(page, "feature-view-many")
    page.screenshot(path=str(SCREENSHOTS / "readme.png"))  # the viewport: docs/console.png

    page.goto(f"{base_url}/console/workspaces/prod/feature-services/{SERVICE}")
    page.fill("input[name='join_key.user_id']", "user_1")
    page.fill("input[name='join_key.merchant']", "m1")
    page.fill("input[name='context.amt']", "100")
    page.check("input[name='include_serving_status']")
    page.click("#run")
    page.wait_for_selector("#features")
    assert page.inner_text("#status") == "200"
    shown = [
        (row.locator("td").nth(0).inner_text(), orjson.loads(row.locator("td").nth(1).inner_text()))
        for row in page.locator("#features tbody tr").all()
    ]
    answer = httpx.post(
        f"{base_url}/api/v1/feature-service/get-features",
        headers={"Authorization": f"Tecton-key {keys.prod_consumer}"},
        json={
            "params": {
                "workspaceName": "prod",
                "featureServiceName": SERVICE,
                "joinKeyMap": {"user_id": "user_1", "merchant": "m1"},
                "requestContextMap": {"amt": 100.0},
                "metadataOptions": {"includeNames": True},
            }
        },
        timeout=10,
    ).json()
    names = [f["name"] for f in answer["metadata"]["features"]]
    assert shown == list(zip(names, answer["result"]["features"], strict=True))
    assert "$TECTON_API_KEY" in page.inner_text("#curl")
    assert keys.admin not in page.content()
    _shot(page, "feature-service")

    page.click("a[href='/console/access']")
    assert page.locator(f"code:text-is('****{keys.prod_consumer[-4:]}')").count() == 1
    _shot(page, "access")
    for name in ("journal", "clock", "faults"):
        page.click(f"a[href='/console/{name}']")
        assert page.locator("h1").count() >= 1
        _shot(page, name)

    page.click("text=Sign out")
    page.wait_for_url(f"{base_url}/console/sign-in")
    page.goto(f"{base_url}/console/access")
    assert page.url.startswith(f"{base_url}/console/sign-in")


def test_a_consumer_cannot_see_another_workspace(console, page):
    base_url, keys = console
    _sign_in(page, base_url, keys.prod_consumer)
    assert page.locator("a[href='/console/workspaces/prod']").count() == 1
    assert page.locator("text=staging").count() == 0
    assert page.locator("a[href='/console/access']").count() == 0
    response = page.goto(f"{base_url}/console/workspaces/staging")
    assert response is not None and response.status == 403
    assert page.locator("h1", has_text="Not allowed").count() == 1
    _shot(page, "forbidden")


def test_admin_changes_the_clock_and_adds_and_removes_a_fault(console, page):
    base_url, keys = console
    _sign_in(page, base_url, keys.admin)
    page.goto(f"{base_url}/console/clock")
    page.fill("input[name='freeze_at']", "2030-01-02T03:04:05Z")
    page.click("#freeze")
    page.wait_for_selector("#clock-state:text-is('frozen')")
    assert page.inner_text("#clock-now").startswith("2030-01-02T03:04:05")
    page.fill("input[name='advance']", "90m")
    page.click("#advance")
    page.wait_for_selector("#clock-now:text-matches('^2030-01-02T04:34:05')")
    page.click("#reset")
    page.wait_for_selector("#clock-state:text-is('running')")

    page.goto(f"{base_url}/console/faults")
    page.select_option("select[name='endpoint']", "get-features")
    page.fill("input[name='workspace']", "prod")
    page.select_option("select[name='status']", "503")
    page.click("#add-fault")
    page.wait_for_selector("#faults tbody tr:has-text('503')")
    _shot(page, "faults-with-rule")
    page.click("#faults button:text('Remove')")
    page.wait_for_selector("text=No fault rules.")
