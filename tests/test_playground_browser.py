"""The playground in a real browser (Debian's Chromium, driven by Playwright), with the network to
anything but the server under test blocked: the IDE renders from the platform's own files, the demo
operator logs in through the panel, the saved operator overview runs and its result is read from the
result pane, a websocket to the same origin passes the page's CSP, and nothing else is asked for.

It saves the screenshot the docs show (docs/images/playground.png) when the file is missing or
``LEGETIME_TEST_UPDATE_SCREENSHOT=1``. Without Chromium or Playwright it skips with the reason, unless
``CI=true`` (``.ci/run`` installs Chromium; Playwright is a dev dependency). One browser launch, a few
seconds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "docs" / "images" / "playground.png"
LARS = "02818500125"  # the demo operator
CHROMIUM = os.environ.get("LEGETIME_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"

RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(`${e.effectiveDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""

OPEN_SOCKET = """async ([url, token]) => {
  const socket = new WebSocket(url, "graphql-transport-ws");
  return await new Promise((resolve) => {
    const init = {type: "connection_init", payload: {Authorization: `Bearer ${token}`}};
    socket.onopen = () => socket.send(JSON.stringify(init));
    socket.onmessage = (event) => { resolve(JSON.parse(event.data).type); socket.close(); };
    socket.onerror = () => resolve("error");
    socket.onclose = (event) => resolve(`closed ${event.code}`);
  });
}"""


def _unavailable(why: str) -> None:
    if IN_CI:
        pytest.fail(
            f"{why}; with CI=true the browser test must run (.ci/run installs Chromium)", pytrace=False
        )
    pytest.skip(f"{why}; install Debian's chromium package to run the browser test")


@pytest.fixture
def chromium() -> str:
    """Checked before the server starts: a skip costs nothing."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    if not Path(CHROMIUM).exists():
        _unavailable(f"no Chromium at {CHROMIUM}")
    return CHROMIUM


@pytest.fixture
def playwright(chromium: str) -> Iterator[Any]:
    """After the server (``address``): Playwright's sync API runs an event loop in this thread, and the
    demo data is written with ``asyncio.run``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


def test_the_playground_runs_offline_logs_in_and_answers(
    chromium: str, address: str, playwright: Any, tmp_path: Path
) -> None:
    base = f"http://{address}"
    # No name resolves but the server's address: the browser cannot reach anything else even by mistake.
    browser = playwright.chromium.launch(
        executable_path=chromium, args=["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
    )
    try:
        context = browser.new_context(viewport={"width": 1440, "height": 900}, service_workers="block")
        blocked: list[str] = []
        console: list[str] = []

        def only_the_server(route: Any) -> None:
            if route.request.url.startswith(f"{base}/") or route.request.url.startswith("data:"):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()

        context.route("**/*", only_the_server)
        context.add_init_script(RECORD_VIOLATIONS)
        page = context.new_page()
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))

        response = page.goto(f"{base}/graphql")
        assert response is not None and response.status == 200
        policy = response.headers["content-security-policy"]
        page.wait_for_selector(".graphiql-container", timeout=20_000)
        page.wait_for_selector("#lt-login:not([hidden])")

        # The panel: BankID (simulated here, confirmed at once) for the demo operator.
        page.fill("#lt-national-id", LARS)
        page.click("#lt-login-button")
        page.wait_for_selector("#lt-session:not([hidden])", timeout=15_000)
        assert re.search(r"Logged in as Lars \w+ \(operator\)", page.inner_text("#lt-who"))
        token = page.evaluate("window.sessionStorage.getItem('legetime.playground.token')")
        assert token

        # The saved operator overview, from the Examples pane, run in GraphiQL.
        page.click('button[data-example="operator-overview"]')
        page.wait_for_function(
            "() => document.querySelector('.graphiql-query-editor .CodeMirror')"
            "?.CodeMirror.getValue().includes('operatorOverview')"
        )
        page.click(".graphiql-execute-button")
        page.wait_for_function(
            "() => document.querySelector('.result-window .CodeMirror')"
            "?.CodeMirror.getValue().includes('openCases')",
            timeout=15_000,
        )
        result = json.loads(
            page.evaluate("document.querySelector('.result-window .CodeMirror').CodeMirror.getValue()")
        )
        assert "errors" not in result, result
        assert result["data"]["operatorOverview"]["openCases"] == 0  # the demo has no open case
        assert page.evaluate("window.localStorage.length") == 0  # token, tabs, history: the tab's storage
        page.evaluate("document.querySelector('.graphiql-plugin')?.scrollTo(0, 0)")
        page.screenshot(path=str(tmp_path / "playground.png"))

        # A dialog adds GraphiQL's one inline style (allowed by its hash: no violation below).
        page.click('button[aria-label="Open settings dialog"]')
        page.wait_for_selector(".graphiql-dialog")
        page.keyboard.press("Escape")

        # Subscriptions: a socket to the same origin passes connect-src 'self' and logs in.
        ws_url = f"ws://{address}/graphql"
        assert page.evaluate(OPEN_SOCKET, [ws_url, token]) == "connection_ack"

        # Logging out ends the session on the server and forgets the token.
        page.click("#lt-logout")
        page.wait_for_selector("#lt-login:not([hidden])")
        assert page.evaluate("window.sessionStorage.getItem('legetime.playground.token')") is None
        violations = page.evaluate("window.__violations")
    finally:
        browser.close()

    assert blocked == [], f"the page asked for other origins: {blocked}"
    assert all(url.startswith((f"{base}/", "data:")) for url in requested), requested
    assert violations == [], violations
    assert not [line for line in console if "Content Security Policy" in line or "pageerror" in line], console
    assert not re.search(r"https?://|wss?://", policy) and "'unsafe-inline'" not in policy, policy
    if not SCREENSHOT.exists() or os.environ.get("LEGETIME_TEST_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / "playground.png", SCREENSHOT)
