"""Browser tests: Playwright drives Debian's chromium against a live server, with a real Celery worker
and the shipped model. Chromium is never downloaded here: install it with `apt-get install chromium`
(.ci/run does), or point KIDNEYWEB_CHROMIUM at another Chromium binary."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from ..celery_worker import celery_worker, require_shipped_model

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
LAPTOP = {"width": 1280, "height": 900}
TABLET = {"width": 768, "height": 1024}
# Long enough for a worker to import TensorFlow and load the model on a busy two-core machine.
RESULT_TIMEOUT_MS = 120_000


def chromium_executable() -> str | None:
    candidates = [os.environ.get("KIDNEYWEB_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                  shutil.which("chromium-browser")]
    return next((c for c in candidates if c and Path(c).is_file()), None)


@pytest.fixture(scope="session")
def browser():
    executable = chromium_executable()
    if executable is None:
        pytest.skip("chromium not found (looked at $KIDNEYWEB_CHROMIUM, /usr/bin/chromium and PATH); "
                    "install it with `apt-get install -y chromium` to run the browser tests")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls the tests make between
    # browser steps are plain synchronous code, so Django's async-safety guard must stand aside.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, live_server, request):
    context = browser.new_context(viewport=LAPTOP, accept_downloads=True, base_url=live_server.url)
    # Generous: the machines that run this are small and busy.
    context.set_default_timeout(30_000)
    # expect()'s own default is 5 s, short for an upload's round trip on a busy two-core machine.
    expect.set_options(timeout=15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Chromium reports what the Content-Security-Policy blocked on the console; every browser test checks
    # that the pages it visits need nothing the policy forbids.
    if not request.node.get_closest_marker("blocks_content"):
        page.on("console", lambda message: errors.append(message.text)
                if "Content Security Policy" in message.text else None)
    yield page
    context.close()
    assert not errors, f"JavaScript errors or blocked content on the page: {errors}"


@pytest.fixture
def shipped_model() -> Path:
    return require_shipped_model()


@pytest.fixture
def start_worker(transactional_db, shipped_model, inference_queue, tmp_path):
    """Call to start a real worker (once); tests start it late to watch a queued scan change."""
    started = []

    def start():
        if not started:
            context = celery_worker(shipped_model, tmp_path / "worker.log")
            started.append((context, context.__enter__()))
        return started[0][1], tmp_path / "worker.log"

    yield start
    for context, _ in started:
        context.__exit__(None, None, None)


@pytest.fixture
def screenshot():
    """Saves screenshots to $KIDNEYWEB_SCREENSHOT_DIR when set (for looking at the pages), else nothing."""
    folder = os.environ.get("KIDNEYWEB_SCREENSHOT_DIR")

    def take(page, name: str) -> None:
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)

    return take


def log_in(page, username: str, password: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/")


def fits_without_horizontal_scrolling(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
