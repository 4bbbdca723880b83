"""The issue's five scenarios, in Chromium: a failed delivery resent and turning delivered
live; an endpoint made in the console getting its test event, its secret shown once;
hostile strings shown as text with no dialog; foreign Host, missing CSRF and signed-out
requests refused; every page by keyboard alone, each page's screenshot saved."""

from __future__ import annotations

import re
import time
from typing import Any

from hookd.domain.signing import verify_spec
from tests.conftest import API_TOKEN
from tests.ui.conftest import (
    REBIND_HOST,
    Stage,
    in_browser,
    screenshot,
    sign_in,
    watched_page,
)

HOSTILE = "<img src=x onerror=alert(1)>"
SCRIPT_EXCERPT = b"<script>alert(2)</script> fora do ar"


def wait_until(check: Any, timeout: float = 10.0) -> Any:
    """Poll `check()` from the browser's thread until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def failed_delivery(stage: Stage, data: dict[str, Any] | None = None, **endpoint: Any) -> Any:
    """An endpoint on the receiver and one event whose delivery ends failed (500)."""
    spec = {"url": stage.receiver.url, "events": ["*"], **endpoint}
    made = stage.api("POST", "/v1/endpoints", spec)
    stage.api("POST", "/v1/events", {"event": "cliente.criado", "data": data or {"id": 1}})

    def failed() -> Any:
        [delivery] = stage.api("GET", "/v1/deliveries")["items"]
        return delivery if delivery["status"] == "failed" else None

    return made, wait_until(failed)


async def test_a_failed_delivery_resent_turns_delivered_live(stage: Stage) -> None:
    def scenario(browser: Any) -> None:
        _, delivery = failed_delivery(stage)
        with watched_page(browser, "pt-BR") as (page, dialogs):
            sign_in(page, stage.base)
            page.click("nav >> text=Entregas")
            row = page.locator(f'#deliveries tr[data-id="{delivery["id"]}"]')
            assert row.locator('[data-field="status"]').inner_text() == "falhou"
            row.locator("a").first.click()
            page.wait_for_url(re.compile(rf"/ui/deliveries/{delivery['id']}$"))
            attempt = page.locator("#attempts .attempt").first
            assert attempt.locator(".code").inner_text() == "500"
            assert "banco fora do ar" in attempt.locator(".excerpt").inner_text()
            page.evaluate("window.notReloaded = true")
            stage.switch.ok = True  # the receiver recovers
            page.click("#retry button")
            status = page.locator('#delivery [data-field="status"]')
            status.filter(has_text="entregue").wait_for(timeout=10_000)
            assert page.evaluate("window.notReloaded === true")  # no reload happened
            assert page.locator("#attempts .attempt").count() == 2
            assert page.locator("#attempts .attempt .code").nth(1).inner_text() == "200"
            screenshot(page, "entrega-reenviada")
            assert not dialogs

    await in_browser(scenario)


async def test_an_endpoint_made_in_the_console_gets_its_test_event(stage: Stage) -> None:
    def scenario(browser: Any) -> None:
        stage.switch.ok = True
        with watched_page(browser) as (page, dialogs):
            sign_in(page, stage.base)
            page.click("nav >> text=Endpoints")
            page.fill("#url", stage.receiver.url)
            page.fill("#events", "hookd.teste, cliente.*")
            page.fill("#description", "ERP do cliente")
            page.click("#create button")
            secret = page.locator("#secret").inner_text().strip()
            assert secret.startswith("whsec_")
            page.locator(".secret a").click()
            page.click("#test button")
            page.locator(".note").wait_for()
            request = wait_until(lambda: stage.switch.seen and stage.switch.seen[0])
            assert request.headers["x-webhook-event"] == "hookd.teste"
            assert verify_spec(secret, request.body, request.headers["x-webhook-signature"])
            screenshot(page, "endpoint")
            for path in ("/ui/endpoints", page.url.split("/test")[0], "/ui/audit", "/ui/"):
                page.goto(path if path.startswith("http") else stage.base + path)
                assert secret not in page.content(), path
            assert not dialogs

    await in_browser(scenario)


async def test_hostile_strings_render_as_text_and_no_dialog_fires(stage: Stage) -> None:
    stage.switch.excerpt = SCRIPT_EXCERPT

    def scenario(browser: Any) -> None:
        made, delivery = failed_delivery(stage, {"cliente": {"nome": HOSTILE}}, description=HOSTILE)
        with watched_page(browser) as (page, dialogs):
            sign_in(page, stage.base)
            pages = [
                "/ui/endpoints",
                f"/ui/endpoints/{made['id']}",
                "/ui/events",
                f"/ui/events/{delivery['event_id']}",
                f"/ui/deliveries/{delivery['id']}",
                "/ui/deliveries",
                "/ui/",
            ]
            for path in pages:
                page.goto(stage.base + path)
                assert page.locator("img[src=x]").count() == 0, path
                assert page.locator("main script").count() == 0, path
            page.goto(f"{stage.base}/ui/events/{delivery['event_id']}")
            assert HOSTILE in page.locator("pre.body").inner_text()
            page.goto(f"{stage.base}/ui/deliveries/{delivery['id']}")
            assert "<script>alert(2)</script>" in page.locator(".excerpt").first.inner_text()
            page.goto(f"{stage.base}/ui/endpoints")
            assert HOSTILE in page.locator("#endpoints").inner_text()
            screenshot(page, "hostile-strings")
            time.sleep(0.5)  # anything that would fire late
            assert dialogs == []

    await in_browser(scenario)


async def test_foreign_host_missing_csrf_and_signed_out_are_refused(stage: Stage) -> None:
    def scenario(browser: Any) -> None:
        with watched_page(browser) as (page, _):
            # A page of another origin whose name resolves to 127.0.0.1 (DNS rebinding).
            answer = page.goto(f"http://{REBIND_HOST}:{stage.port}/ui/signin")
            assert answer.status == 421
            assert REBIND_HOST in page.content()
            answer = page.goto(f"http://{REBIND_HOST}:{stage.port}/v1/status")
            assert answer.status == 421
            # Signed out, every page leads to the sign-in page.
            for path in ("/ui/", "/ui/deliveries", "/ui/deliveries/1", "/ui/endpoints",
                         "/ui/events", "/ui/catalog", "/ui/audit"):  # fmt: skip
                page.goto(stage.base + path)
                assert page.url == f"{stage.base}/ui/signin", path
            screenshot(page, "signin")
            # A form posted without its CSRF token changes nothing.
            sign_in(page, stage.base)
            page.goto(f"{stage.base}/ui/endpoints")
            page.locator('#create input[name="csrf"]').evaluate("input => input.remove()")
            page.fill("#url", stage.receiver.url)
            with page.expect_navigation() as navigation:
                page.click("#create button")
            assert navigation.value.status == 403
            assert "CSRF" in page.content()
            assert stage.api("GET", "/v1/endpoints")["items"] == []
            screenshot(page, "csrf-refused")

    await in_browser(scenario)


def tab_to(page: Any, selector: str, limit: int = 80) -> None:
    """Press Tab until the focused element matches `selector`."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


async def test_every_page_by_keyboard_alone(stage: Stage) -> None:
    def scenario(browser: Any) -> None:
        stage.switch.ok = True
        with watched_page(browser) as (page, dialogs):
            keys = page.keyboard
            page.goto(f"{stage.base}/ui/signin")
            tab_to(page, "#token")
            keys.type("x" * 32)
            keys.press("Enter")
            page.locator(".error").wait_for()
            tab_to(page, "#token")
            keys.type(API_TOKEN)
            keys.press("Enter")
            page.wait_for_url(f"{stage.base}/ui/")
            screenshot(page, "overview")

            tab_to(page, 'nav a[href="/ui/endpoints"]')
            keys.press("Enter")
            page.wait_for_url(f"{stage.base}/ui/endpoints")
            tab_to(page, "#url")
            keys.type(stage.receiver.url)
            tab_to(page, "#description")
            keys.type("by keyboard")
            keys.press("Enter")
            page.locator("#secret").wait_for()
            screenshot(page, "endpoints")
            tab_to(page, ".secret a")
            keys.press("Enter")
            page.wait_for_url(re.compile(r"/ui/endpoints/[^/]+$"))
            tab_to(page, "#test button")
            keys.press("Enter")
            page.locator(".note").wait_for()
            screenshot(page, "endpoint-page")

            tab_to(page, 'nav a[href="/ui/deliveries"]')
            keys.press("Enter")
            page.wait_for_url(f"{stage.base}/ui/deliveries")
            page.locator("#deliveries tbody tr").first.wait_for()
            screenshot(page, "deliveries")
            tab_to(page, "#deliveries tbody a")
            keys.press("Enter")
            page.wait_for_url(re.compile(r"/ui/deliveries/\d+$"))
            page.locator('#delivery [data-field="status"]').filter(has_text="delivered").wait_for()
            tab_to(page, "#retry button")
            keys.press("Enter")
            wait_until(lambda: len(stage.switch.seen) >= 2)
            screenshot(page, "delivery")

            tab_to(page, 'nav a[href="/ui/events"]')
            keys.press("Enter")
            page.wait_for_url(f"{stage.base}/ui/events")
            tab_to(page, 'input[name="type"]')
            keys.type("hookd.teste")
            keys.press("Enter")
            page.wait_for_url(re.compile(r"type=hookd.teste"))
            assert page.locator("#events tbody tr").count() == 1
            screenshot(page, "events")

            tab_to(page, 'nav a[href="/ui/catalog"]')
            keys.press("Enter")
            page.wait_for_url(f"{stage.base}/ui/catalog")
            tab_to(page, "#type-cliente\\.criado summary")
            keys.press("Enter")
            tab_to(page, "#type-cliente\\.criado button")
            keys.press("Enter")
            page.locator(".note").wait_for()
            screenshot(page, "catalog")

            tab_to(page, 'nav a[href="/ui/audit"]')
            keys.press("Enter")
            page.wait_for_url(f"{stage.base}/ui/audit")
            assert page.locator("#audit tbody tr").count() >= 1
            screenshot(page, "audit")

            tab_to(page, 'nav a[href="/ui/"]')
            keys.press("Enter")
            page.wait_for_url(f"{stage.base}/ui/")
            page.locator("#health tbody tr").first.wait_for()
            screenshot(page, "overview-with-traffic")

            tab_to(page, ".signout button")
            keys.press("Enter")
            page.wait_for_url(f"{stage.base}/ui/signin")
            assert not dialogs

    await in_browser(scenario)
