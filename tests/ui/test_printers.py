"""Printer cards in real Chromium against ``camhub up --demo`` and its simulated Bambu printer.

The simulator (services/sim/printer) is a real MQTT peer that prints: its reports reach the card
over control, NATS and the gateway's SSE. A command pressed in the card travels the other way
and the simulator's own state (``GET /api/printers/{id}/status``, fed by its reports) proves it
arrived.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page

from tests.ui.support import PHONE, ConsoleLog, Stack, horizontal_overflow, poll

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PRINTER = "demo-printer"
CARD = f"[data-printer='{PRINTER}']"


def open_card(stack: Stack, page: Page) -> Locator:
    page.goto(f"{stack.base_url}/#/printers")
    card = page.locator(CARD)
    card.wait_for(timeout=20_000)
    poll(lambda: card.get_attribute("data-state") == "online", 25, what="printer online")
    poll(lambda: card.get_attribute("data-job-state") == "RUNNING", 25, what="simulator printing")
    return card


def api_job_state(stack: Stack) -> str:
    return str(stack.api("GET", f"/api/printers/{PRINTER}/status").json().get("jobState"))


def snapshot(card: Locator) -> tuple[str, str, str, str]:
    return (
        card.locator("[data-testid='progress']").get_attribute("aria-valuenow") or "",
        card.locator("[data-testid='temp-nozzle']").inner_text(),
        card.locator("[data-testid='temp-bed']").inner_text(),
        card.locator("[data-testid='remaining']").inner_text(),
    )


def test_card_shows_live_status_that_changes(stack: Stack, page: Page, console: ConsoleLog, artifacts: Path) -> None:
    card = open_card(stack, page)
    assert card.locator("[data-testid='printer-state']").inner_text() == "Online"
    assert card.locator("[data-testid='job-state']").inner_text() == "Printing"
    assert re.fullmatch(r"\d+ / \d+ °C|\d+ °C", card.locator("[data-testid='temp-nozzle']").inner_text())
    assert re.search(r"\d+ (h|min)|< 1 min", card.locator("[data-testid='remaining']").inner_text())
    first = snapshot(card)
    poll(lambda: snapshot(card)[0] != first[0], 30, what=f"progress to change from {first[0]}%")
    poll(lambda: snapshot(card)[1:3] != first[1:3], 30, what=f"temperatures to change from {first[1:3]}")
    # the chart has the history plus live points, drawn as SVG paths
    poll(lambda: card.locator("[data-testid='temp-chart'] path.line").count() >= 2, 10, what="chart lines")
    card.screenshot(path=str(artifacts / "ui-printer-card.png"))
    page.screenshot(path=str(artifacts / "ui-printers.png"), full_page=True)
    console.assert_clean()


def test_pause_reaches_the_simulator_and_resume_restores(stack: Stack, page: Page, console: ConsoleLog) -> None:
    card = open_card(stack, page)
    card.get_by_role("button", name="Pause").click()
    poll(lambda: card.get_attribute("data-job-state") == "PAUSE", 15, what="card shows PAUSE")
    assert card.locator("[data-testid='job-state']").inner_text() == "Paused"
    assert api_job_state(stack) == "PAUSE"
    assert card.locator("[data-testid='command-result']").inner_text() == "Pause sent"
    assert card.get_by_role("button", name="Pause").is_disabled()
    card.get_by_role("button", name="Resume").click()
    poll(lambda: card.get_attribute("data-job-state") == "RUNNING", 15, what="card shows RUNNING again")
    assert api_job_state(stack) == "RUNNING"
    console.assert_clean()


def test_stop_asks_for_confirmation_and_escape_cancels(stack: Stack, page: Page, console: ConsoleLog) -> None:
    card = open_card(stack, page)
    card.get_by_role("button", name="Stop").click()
    dialog = card.locator("dialog")
    poll(lambda: dialog.evaluate("d => d.open"), 5, what="confirmation dialog open")
    assert "Stop the print" in dialog.inner_text()
    page.keyboard.press("Escape")
    poll(lambda: not dialog.evaluate("d => d.open"), 5, what="dialog closed by Escape")
    page.wait_for_timeout(1500)
    assert api_job_state(stack) == "RUNNING", "Escape must not stop the print"
    console.assert_clean()


def test_light_toggle_round_trips(stack: Stack, page: Page, console: ConsoleLog) -> None:
    card = open_card(stack, page)
    light = card.locator("[data-testid='light']")
    poll(lambda: light.inner_text() in ("Light: on", "Light: off"), 10, what="light state known")
    before = light.inner_text()
    light.click()
    poll(lambda: light.inner_text() not in (before, "Light: ?"), 15, what=f"light to change from {before!r}")
    want = "on" if before.endswith("off") else "off"
    assert stack.api("GET", f"/api/printers/{PRINTER}/status").json().get("light") == want
    light.click()
    poll(lambda: light.inner_text() == before, 15, what="light back")
    console.assert_clean()


def test_card_fits_a_phone_screen(stack: Stack, page: Page, console: ConsoleLog, artifacts: Path) -> None:
    page.set_viewport_size(PHONE)
    card = open_card(stack, page)
    assert horizontal_overflow(page) <= 0, "the printers page is wider than a phone screen"
    box = card.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    card.screenshot(path=str(artifacts / "ui-printer-card-phone.png"))
    console.assert_clean()


def test_wrong_access_code_is_shown_as_auth_failed(
    stack: Stack, page: Page, console: ConsoleLog, artifacts: Path
) -> None:
    """A second printer entry for the simulator with a wrong LAN access code: the simulator's MQTT
    broker refuses the login, and the card says so instead of showing stale or empty data."""

    def registered() -> dict[str, object]:
        resp = stack.api("GET", f"/api/printers/{PRINTER}")
        return resp.json() if resp.status_code == 200 else {}  # type: ignore[no-any-return]

    demo = poll(registered, 20, what="the simulator registered")
    body = {
        "id": "wrong-code",
        "name": "Wrong code",
        "host": demo["host"],
        "serial": demo["serial"],
        "mqttPort": demo["mqttPort"],
        "accessCode": "not-the-code",
    }
    stack.api("POST", "/api/printers", json=body).raise_for_status()
    page.goto(f"{stack.base_url}/#/printers")
    card = page.locator("[data-printer='wrong-code']")
    card.wait_for()
    poll(lambda: card.get_attribute("data-state") == "auth_failed", 20, what="auth_failed state")
    assert card.locator("[data-testid='printer-state']").inner_text() == "Auth failed"
    banner = card.locator("[data-testid='printer-banner']")
    assert banner.inner_text().startswith("Auth failed.")
    assert card.get_by_role("button", name="Pause").is_disabled()
    assert "not-the-code" not in page.content()
    card.screenshot(path=str(artifacts / "ui-printer-auth-failed.png"))
    console.assert_clean()
