"""The token prompt, against a real ``camhub up --demo`` whose gateway requires an API token.

Without a token every ``/api`` call is 401 and the UI asks for one; a wrong token is refused
again; the right one is kept in localStorage and sent as ``Authorization: Bearer`` (fetch, SSE,
WHEP) or ``?token=`` (the WebSocket relay), so every page and path then works.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, Request, WebSocket

from tests.ui.support import ConsoleLog, Stack, poll

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TOKEN = "ui-test-token-6f1c2a"
STACK_ENV = {"CAMHUB_API_TOKEN": TOKEN}


def token_dialog_open(page: Page) -> bool:
    return bool(page.locator("dialog[aria-labelledby='token-title']").evaluate("d => d.open"))


def test_token_prompt_then_everything_works(stack: Stack, page: Page, console: ConsoleLog) -> None:
    assert stack.api("GET", "/api/streams").status_code == 401
    console.allow(r"status of 401")
    authorized: list[str] = []

    def on_request(req: Request) -> None:
        if req.headers.get("authorization") == f"Bearer {TOKEN}" or f"token={TOKEN}" in req.url:
            authorized.append(req.url)

    page.on("request", on_request)
    sockets: list[str] = []

    def on_websocket(ws: WebSocket) -> None:
        sockets.append(ws.url)

    page.on("websocket", on_websocket)
    page.goto(f"{stack.base_url}/#/live")
    poll(lambda: token_dialog_open(page), 10, what="token prompt after a 401")

    dialog = page.locator("dialog[open]")
    dialog.get_by_label("Token").fill("wrong-token")
    dialog.get_by_role("button", name="Save").click()
    poll(lambda: token_dialog_open(page), 10, what="prompt again after a wrong token")
    assert "was rejected" in page.locator("dialog[open]").inner_text()

    dialog = page.locator("dialog[open]")
    dialog.get_by_label("Token").fill(TOKEN)
    page.keyboard.press("Enter")
    tile = page.locator("[data-stream='demo']")
    tile.wait_for(timeout=20_000)
    assert page.evaluate("localStorage.getItem('camhub.token')") == TOKEN
    assert TOKEN not in page.content()

    poll(lambda: tile.locator(".player").get_attribute("data-state") == "playing", 20, what="WHEP with the token")
    tile.locator("button[data-path='webcodecs']").click()
    poll(lambda: int(tile.locator("canvas").get_attribute("data-frames") or 0) > 5, 15, what="relay with ?token=")
    assert any("/whep/demo" in u for u in authorized)
    assert any(u.endswith(f"/ws/demo?token={TOKEN}") for u in sockets), sockets

    page.goto(f"{stack.base_url}/#/printers")
    card = page.locator("[data-printer='demo-printer']")
    card.wait_for()
    poll(lambda: "live updates" in card.locator(".card-foot").inner_text(), 15, what="SSE with the token")
    assert not token_dialog_open(page)
    console.assert_clean()
