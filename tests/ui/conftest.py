"""The console in a real browser: Playwright driving Debian's Chromium, against a real
daemon with a TCP listener and a real receiver (`make ui-check`).

Each scenario runs whole in a worker thread (Playwright's sync API), while the daemon and
the receiver go on in the test's trio run; the scenario reaches them with
`trio.from_thread`. Without Chromium or Playwright the tests fail, saying what to
install: they are never skipped silently (`make test` leaves tests/ui out; `make
ui-check` installs Chromium first).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

from tests.conftest import API_TOKEN, Running, free_port
from tests.receiver import Answer, Received, Receiver, serve_receiver

CHROMIUM = os.environ.get("HOOKD_CHROMIUM", "/usr/bin/chromium")
REBIND_HOST = "rebind.test"  # resolved to 127.0.0.1 by Chromium alone: a rebinding page
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    f"--host-resolver-rules=MAP {REBIND_HOST} 127.0.0.1",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "ui-screenshots"

T = TypeVar("T")


@dataclass
class Switch:
    """What the receiver answers: 500 with `excerpt` until `ok` is set."""

    ok: bool = False
    excerpt: bytes = b'{"erro":"banco fora do ar"}'
    seen: list[Received] = field(default_factory=list)

    def __call__(self, request: Received) -> Answer:
        self.seen.append(request)
        return Answer(200) if self.ok else Answer(500, body=self.excerpt)


@dataclass
class Stage:
    """A daemon with a TCP listener, a receiver, and where the browser reaches them."""

    running: Running
    receiver: Receiver
    switch: Switch
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call the API over the Unix socket from the browser's thread."""

        async def call() -> Any:
            answer = await self.running.client.request(method, path, json=body)
            assert answer.status_code < 300, answer.text
            return answer.json() if answer.content else None

        return trio.from_thread.run(call)


@pytest.fixture
async def stage(hookd_factory: Callable[..., Awaitable[Running]]) -> AsyncIterator[Stage]:
    _require_browser()
    port = free_port()
    running = await hookd_factory(
        f'[server]\nlisten = "127.0.0.1:{port}"\napi_token = "{API_TOKEN}"\n'
        '[delivery]\nretry_schedule = ["0s"]'
    )
    switch = Switch()
    async with serve_receiver(switch) as receiver:
        yield Stage(running, receiver, switch, port)


async def in_browser(scenario: Callable[[Any], T]) -> T:
    """Run `scenario(browser)` in a worker thread with Chromium launched."""
    return await trio.to_thread.run_sync(_with_browser, scenario)


def _with_browser(scenario: Callable[[Any], T]) -> T:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            return scenario(browser)
        finally:
            browser.close()


@contextmanager
def watched_page(browser: Any, locale: str = "en-US") -> Iterator[tuple[Any, list[str]]]:
    """A page in a fresh context, with every dialog it opens recorded (and dismissed)."""
    context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    try:
        yield page, dialogs
    finally:
        context.close()


def sign_in(page: Any, base: str) -> None:
    page.goto(f"{base}/ui/signin")
    page.fill("#token", API_TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/ui/")


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _require_browser() -> None:
    problems = []
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        problems.append(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        problems.append("no playwright module (pip install -e '.[dev]')")
    if problems:
        pytest.fail("the browser tests need " + " and ".join(problems) + ": run make ui-check")
