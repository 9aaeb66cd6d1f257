"""Manage and Cameras pages in real Chromium against a real ``camhub up --demo``.

Forms go through the real gateway (its registry in NATS KV): what the form adds, the API lists
and the Printers page shows; what the gateway refuses, the form shows in the gateway's words.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, Request

from tests.support.nats import free_port
from tests.ui.support import PHONE, ConsoleLog, Stack, horizontal_overflow, poll, publish_browser_camera

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ACCESS_CODE = "ab12cd34"


def open_manage(stack: Stack, page: Page) -> None:
    page.goto(f"{stack.base_url}/#/manage")
    page.locator("[data-testid='printers-table']").wait_for()


def printer_form(page: Page) -> Locator:
    page.get_by_role("button", name="Add printer").click()
    form = page.locator("[data-testid='printer-form']")
    form.wait_for()
    return form


def fill_printer(form: Locator, *, name: str, pid: str, port: int) -> None:
    form.get_by_label("Name", exact=True).fill(name)
    form.get_by_label("Id", exact=True).fill(pid)
    form.get_by_label("Host / IP", exact=True).fill("127.0.0.1")
    form.get_by_label("Serial number", exact=True).fill("01P00A000000042")
    form.get_by_label("LAN access code", exact=True).fill(ACCESS_CODE)
    form.get_by_label("MQTT port", exact=True).fill(str(port))


def test_add_printer_through_the_form(stack: Stack, page: Page, console: ConsoleLog, artifacts: Path) -> None:
    open_manage(stack, page)
    form = printer_form(page)
    # MQTT port with nothing listening: the new printer is honestly not online
    fill_printer(form, name="Workshop P1S", pid="workshop-p1s", port=free_port())
    form.get_by_role("button", name="Add printer").click()
    page.locator("[data-printer-row='workshop-p1s']").wait_for()
    assert page.locator("[data-testid='printer-form']").count() == 0
    listed = {p["id"]: p for p in stack.api("GET", "/api/printers").json()}
    assert listed["workshop-p1s"]["name"] == "Workshop P1S"
    assert listed["workshop-p1s"]["accessCodeSet"] is True
    assert "accessCode" not in listed["workshop-p1s"]
    assert ACCESS_CODE not in page.content()

    page.goto(f"{stack.base_url}/#/printers")
    card = page.locator("[data-printer='workshop-p1s']")
    card.wait_for()
    assert card.locator(".card-title").inner_text() == "Workshop P1S"
    honest = ("Connecting…", "Offline", "No status yet")
    poll(lambda: card.locator("[data-testid='printer-state']").inner_text() in honest, 15, what="a not-online state")
    page.screenshot(path=str(artifacts / "ui-printers-added.png"), full_page=True)
    console.assert_clean()


def test_form_checks_the_id_rule_before_sending(stack: Stack, page: Page, console: ConsoleLog, artifacts: Path) -> None:
    posts: list[str] = []

    def on_request(req: Request) -> None:
        if req.method == "POST" and req.url.endswith("/api/printers"):
            posts.append(req.url)

    page.on("request", on_request)
    open_manage(stack, page)
    form = printer_form(page)
    fill_printer(form, name="Bad", pid="Bad.Id", port=8883)
    form.get_by_role("button", name="Add printer").click()
    id_input = form.get_by_label("Id", exact=True)
    assert id_input.get_attribute("aria-invalid") == "true"
    assert "start with a lower-case letter or digit" in form.inner_text()
    id_input.fill("bad.id")
    form.get_by_role("button", name="Add printer").click()
    assert "only a-z, 0-9" in form.inner_text()
    form.screenshot(path=str(artifacts / "ui-manage-form-errors.png"))
    page.wait_for_timeout(300)
    assert posts == [], "an invalid form must not reach the gateway"
    console.assert_clean()


def test_server_refusal_is_shown_in_its_words(stack: Stack, page: Page, console: ConsoleLog) -> None:
    stack.api(
        "POST",
        "/api/printers",
        json={"id": "dup-printer", "name": "Dup", "host": "127.0.0.1", "serial": "01P00A000000043", "accessCode": "x1"},
    ).raise_for_status()
    refused = stack.api(
        "POST",
        "/api/printers",
        json={"id": "dup-printer", "name": "Dup", "host": "127.0.0.1", "serial": "01P00A000000043", "accessCode": "x1"},
    )
    assert refused.status_code == 409
    console.allow(r"Failed to load resource: the server responded with a status of 409")
    open_manage(stack, page)
    form = printer_form(page)
    fill_printer(form, name="Dup", pid="dup-printer", port=8883)
    form.get_by_role("button", name="Add printer").click()
    banner = form.locator("[data-testid='form-error']")
    banner.wait_for()
    assert refused.json()["error"] in banner.inner_text()
    assert "HTTP 409" in banner.inner_text()
    console.assert_clean()


def test_edit_keeps_the_access_code_write_only(stack: Stack, page: Page, console: ConsoleLog) -> None:
    stack.api(
        "POST",
        "/api/printers",
        json={
            "id": "edit-me",
            "name": "Edit me",
            "host": "127.0.0.1",
            "serial": "01P00A000000044",
            "accessCode": ACCESS_CODE,
        },
    ).raise_for_status()
    open_manage(stack, page)
    page.get_by_role("button", name="Edit Edit me").click()
    form = page.locator("[data-testid='printer-form']")
    code = form.get_by_label("LAN access code", exact=True)
    assert code.get_attribute("type") == "password"
    assert code.input_value() == ""
    assert "stored" in (code.get_attribute("placeholder") or "")
    form.get_by_label("Name", exact=True).fill("Edited")
    form.get_by_role("button", name="Save").click()
    poll(lambda: page.locator("[data-printer-row='edit-me'] td").first.inner_text() == "Edited", 10, what="row renamed")
    body = stack.api("GET", "/api/printers/edit-me").json()
    assert body["name"] == "Edited" and body["accessCodeSet"] is True, "an empty access code keeps the stored one"
    assert ACCESS_CODE not in page.content()
    console.assert_clean()


@pytest.mark.parametrize("route", ["manage", "cameras"])
def test_fits_a_phone_screen(stack: Stack, page: Page, console: ConsoleLog, artifacts: Path, route: str) -> None:
    page.set_viewport_size(PHONE)
    page.goto(f"{stack.base_url}/#/{route}")
    page.locator("main section").first.wait_for()
    page.wait_for_timeout(1000)
    assert horizontal_overflow(page) <= 0, f"#{route} is wider than a phone screen"
    page.screenshot(path=str(artifacts / f"ui-{route}-phone.png"), full_page=True)
    console.assert_clean()


def test_delete_printer_after_confirmation(stack: Stack, page: Page, console: ConsoleLog) -> None:
    stack.api(
        "POST",
        "/api/printers",
        json={
            "id": "delete-me",
            "name": "Delete me",
            "host": "127.0.0.1",
            "serial": "01P00A000000045",
            "accessCode": "x1",
        },
    ).raise_for_status()
    open_manage(stack, page)
    page.get_by_role("button", name="Delete Delete me").click()
    dialog = page.locator("dialog[open]")
    dialog.wait_for()
    dialog.get_by_role("button", name="Delete").click()
    page.locator("[data-printer-row='delete-me']").wait_for(state="detached")
    assert stack.api("GET", "/api/printers/delete-me").status_code == 404
    console.assert_clean()


def test_camera_command_shows_the_gateway_answer(stack: Stack, page: Page, console: ConsoleLog) -> None:
    """A WebRTC camera with no publisher connected: Start is answered by the real gateway/ingest
    path with an error, and the card shows that answer (the ack case needs a camera peer)."""
    open_manage(stack, page)
    page.get_by_role("button", name="Add camera").click()
    form = page.locator("[data-testid='camera-form']")
    form.get_by_label("Name", exact=True).fill("Front door")
    form.get_by_label("Kind", exact=True).select_option("webrtc")
    form.get_by_role("button", name="Add camera").click()
    page.locator("[data-camera-row='front-door']").wait_for()

    expected = stack.api("POST", "/api/cameras/front-door/start", json={})
    assert expected.status_code >= 400
    console.allow(rf"Failed to load resource: the server responded with a status of {expected.status_code}")
    page.goto(f"{stack.base_url}/#/cameras")
    card = page.locator("[data-camera='front-door']")
    card.wait_for()
    card.get_by_role("button", name="Start").click()
    result = card.locator("[data-testid='camera-result']")
    result.wait_for(timeout=15_000)
    assert result.inner_text().startswith("Start: ")
    assert expected.json()["error"] in result.inner_text()
    assert result.get_attribute("role") == "alert"
    console.assert_clean()


def test_camera_start_shows_the_camera_ack(stack: Stack, page: Page, console: ConsoleLog, artifacts: Path) -> None:
    camera = publish_browser_camera(stack, page, "browser-cam")
    page.goto(f"{stack.base_url}/#/cameras")
    card = page.locator("[data-camera='browser-cam']")
    card.wait_for()
    poll(lambda: "connected" in card.locator(".card-sub").inner_text(), 10, what="camera connected")
    result = card.locator("[data-testid='camera-result']")
    card.get_by_role("button", name="Start").click()
    poll(lambda: result.count() == 1 and result.inner_text().startswith("Start: acknowledged"), 15, what="start ack")
    assert '"applied":"start"' in result.inner_text()
    assert result.get_attribute("role") == "status"
    assert [c["type"] for c in camera.evaluate("window.cameraCommands")] == ["start"]
    page.screenshot(path=str(artifacts / "ui-cameras.png"), full_page=True)
    camera.evaluate("window.cameraPc.close()")
    console.assert_clean()


def test_camera_config_refusal_is_shown(stack: Stack, page: Page, console: ConsoleLog) -> None:
    camera = publish_browser_camera(stack, page, "browser-cam2")
    console.allow(r"Failed to load resource: the server responded with a status of 502")
    page.goto(f"{stack.base_url}/#/cameras")
    card = page.locator("[data-camera='browser-cam2']")
    card.wait_for()
    result = card.locator("[data-testid='camera-result']")
    card.get_by_label("Bitrate (kbit/s)").fill("12000")
    card.get_by_role("button", name="Apply").click()
    poll(lambda: result.count() == 1 and result.inner_text().startswith("Config:"), 15, what="config answer")
    assert "bitrate above 8000 kbit/s" in result.inner_text()
    assert result.get_attribute("role") == "alert"
    sent = camera.evaluate("window.cameraCommands")
    assert [c["type"] for c in sent] == ["config"]
    assert sent[0]["bitrate"] == 12000 and sent[0]["width"] == 1280 and sent[0]["height"] == 720
    camera.evaluate("window.cameraPc.close()")
    console.assert_clean()
