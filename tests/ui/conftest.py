"""Fixtures for the browser tests: a real camhub stack and a real headless Chromium.

* ``stack`` (module scope): ``python -m services.cli up --demo`` as a child process, on free
  ports (``CAMHUB_NATS_PORT``, ``CAMHUB_NATS_MONITOR_PORT``, ``CAMHUB_HTTP_PORT``) with its own
  ``CAMHUB_DATA_DIR``, so it runs beside any other stack; a module's ``STACK_ENV`` dict adds
  settings. Ready when ``GET /readyz`` answers
  200; stopped with SIGINT (the supervisor stops every child) and waited for, SIGKILL after 25 s.
* ``browser`` (module scope): Debian's ``/usr/bin/chromium`` driven by Playwright, closed in
  ``finally``.
* ``page`` (per test): a fresh context (1280x860) whose console errors and uncaught page errors
  are recorded in ``page.console`` (:class:`ConsoleLog`); each test ends with
  ``console.assert_clean()``.

Every wait is bounded; the UI is the built ``web/dist`` the gateway serves.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, chromium_path
from tests.support.nats import free_port
from tests.ui.support import ConsoleLog, Stack, stop_process

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "web" / "dist" / "index.html"
ARTIFACTS = ROOT / "tests" / "artifacts"
READY_TIMEOUT_S = 45.0

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if os.environ.get("CAMHUB_BROWSER_TESTS", "1") == "0":
        pytest.skip("CAMHUB_BROWSER_TESTS=0")
    if not DIST.exists():
        pytest.fail("web/dist is not built: run scripts/setup (or `cd web && npm ci && npm run build`)")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/setup --test does it)")
    root = tmp_path_factory.mktemp("stack")
    http_port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "CAMHUB_NATS_PORT": str(free_port()),
            "CAMHUB_NATS_MONITOR_PORT": str(free_port()),
            "CAMHUB_HTTP_PORT": str(http_port),
            "CAMHUB_HTTP_HOST": "127.0.0.1",
            "CAMHUB_DATA_DIR": str(root / "data"),
            "CAMHUB_HEARTBEAT_SECONDS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("CAMHUB_NATS_URL", None)
    env.pop("CAMHUB_API_TOKEN", None)
    env.update(getattr(request.module, "STACK_ENV", {}))  # a module's own settings, e.g. an API token
    log_path = root / "stack.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "up", "--demo"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    st = Stack(f"http://127.0.0.1:{http_port}", root / "data", log_path, proc)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"camhub up exited with {proc.returncode}:\n{st.log_tail()}")
            try:
                if httpx.get(f"{st.base_url}/readyz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"camhub up not ready within {READY_TIMEOUT_S:.0f} s:\n{st.log_tail()}")
            time.sleep(0.3)
        yield st
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    b = playwright_driver.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, timeout=30_000)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def console() -> ConsoleLog:
    return ConsoleLog()


@pytest.fixture
def page(browser: Browser, console: ConsoleLog) -> Iterator[Page]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    ctx.set_default_timeout(15_000)
    pg = ctx.new_page()
    pg.on("console", console.on_console)
    pg.on("pageerror", console.on_page_error)
    try:
        yield pg
    finally:
        ctx.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
