"""The web console in a real browser: Debian's chromium, driven by Selenium through Debian's
chromium-driver, headless. It logs in with a token made by the CLI, creates a user and sees it
listed, browses a delivered HTML message (whose remote image must never be fetched), retries a
queued message, and saves a screenshot of every page under ``tests/artifacts/console/``."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.adminkit import ALICE, PASSWORD, client, enqueue, message, start_admin
from tests.support import MailwingServer, require_binary

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "console"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--window-size=1280,900")


class _Tracker(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        _Tracker.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def tracker() -> Iterator[str]:
    """A loopback web server standing in for a sender's tracking-pixel host."""
    _Tracker.hits = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Tracker)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    chromium = require_binary("chromium")
    driver_path = require_binary("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    driver.implicitly_wait(10)
    try:
        yield driver
    finally:
        driver.quit()


def wait_url(driver: Any, ending: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 20).until(lambda d: d.current_url.split("?")[0].endswith(ending))


def follow(driver: Any, element: Any) -> None:
    """Click a link or submit button and wait until the browser has left the page.

    Without the wait, the next ``find_element`` may still find the old page's
    element, which the arriving page then makes stale.
    """
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    old = driver.find_element(By.TAG_NAME, "html")

    def left(_: Any) -> bool:
        try:
            old.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            # Chromium's answer for an element of a document that is being replaced
            # (selenium's staleness_of lets it escape, which failed the test now and then)
            if "does not belong to the document" in str(exc):
                return True
            raise
        return False

    element.click()
    WebDriverWait(driver, 20).until(left)


def shot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def test_console_in_headless_chromium(server_factory: type[MailwingServer], tmp_path: Path,
                                      browser: Any, tracker: str) -> None:
    from selenium.webdriver.common.by import By

    srv, token = start_admin(server_factory, tmp_path / "srv", enable=("admin", "imap"))
    srv.add_user(ALICE, PASSWORD)
    srv.deliver(ALICE, message(
        "Quarterly report", "The plain text version.",
        f'<h2>Quarterly report</h2><p>Numbers are <b>up</b>.</p>'
        f'<img src="{tracker}/pixel.png" alt="tracker">'
        f'<script>document.title = "pwned"</script>'
        f'<p style="background:url({tracker}/bg.png)">styled</p>'))
    enqueue(srv, "QCONSOLE1")
    base = f"http://127.0.0.1:{srv.ports['admin']}"
    d = browser
    css = By.CSS_SELECTOR

    # a page without a session leads to the login form
    d.get(base + "/users")
    assert d.current_url.endswith("/login")
    shot(d, "01-login")
    d.find_element(css, "#token").send_keys("mwa_wrong")
    follow(d, d.find_element(css, "#login"))
    assert "not valid" in d.find_element(css, "#error").text
    d.find_element(css, "#token").send_keys(token)
    follow(d, d.find_element(css, "#login"))
    wait_url(d, f"{srv.ports['admin']}/")
    assert d.find_element(css, "h1").text == "Dashboard"
    cookie = d.get_cookie("mw_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    listeners = d.find_element(css, "#listeners").text
    assert f"127.0.0.1:{srv.ports['imap']}" in listeners
    assert d.find_element(css, "#queue-depth").text == "1"
    shot(d, "02-dashboard")

    # create a user and see it listed
    d.get(base + "/users")
    d.find_element(css, "#new-address").send_keys("bob@example.org")
    d.find_element(css, "#new-password").send_keys("bob-secret-1")
    d.find_element(css, "#new-quota").send_keys("1G")
    follow(d, d.find_element(css, "#add-user"))
    assert "user bob@example.org created" in d.find_element(css, "#notice").text
    assert "bob@example.org" in d.find_element(css, "#users").text
    assert "1.0 GiB" in d.find_element(
        By.XPATH, "//table[@id='users']//tr[td[contains(., 'bob@example.org')]]").text
    row = d.find_element(By.XPATH, "//table[@id='users']//tr[td[contains(., 'bob@example.org')]]")
    row.find_element(css, "input[name=quota]").send_keys("2M")
    follow(d, row.find_element(css, "button[value=quota]"))
    assert "quota of bob@example.org set to" in d.find_element(css, "#notice").text
    assert "2.0 MiB" in d.find_element(
        By.XPATH, "//table[@id='users']//tr[td[contains(., 'bob@example.org')]]").text
    shot(d, "03-users")

    d.get(base + "/domains")
    assert "example.org" in d.find_element(css, "#domains").text
    shot(d, "04-domains")
    d.get(base + "/domains/example.org/dns")
    records = d.find_element(css, "#records").text
    assert "_imap._tcp.example.org." in records and "_mta-sts.example.org." in records
    assert d.find_elements(css, "button[data-copy]")
    follow(d, d.find_element(css, "#dkim-keygen"))
    assert "DKIM key" in d.find_element(css, "#notice").text
    assert "_domainkey.example.org." in d.find_element(css, "#records").text
    shot(d, "05-dns")

    # browse the delivered message: sanitised HTML, the tracker is never contacted
    d.get(base + f"/mail?user={ALICE}")
    shot(d, "06-mailboxes")
    follow(d, d.find_element(By.LINK_TEXT, "INBOX"))
    d.find_element(css, "#messages")
    assert "Quarterly report" in d.find_element(css, "#messages").text
    shot(d, "07-messages")
    follow(d, d.find_element(By.LINK_TEXT, "Quarterly report"))
    d.find_element(css, "#subject")
    body = d.find_element(css, "#body")
    assert "Numbers are up." in body.text
    assert not body.find_elements(css, "img") and not body.find_elements(css, "script")
    assert d.title != "pwned"
    shot(d, "08-message")
    time.sleep(0.5)  # give a (wrongly) allowed image load time to arrive
    assert _Tracker.hits == []

    # retry the queued message
    with client(srv, token) as c:
        before = c.get("/api/v1/queue/QCONSOLE1").json()["next_attempt"]
    d.get(base + "/queue")
    assert "QCONSOLE1" in d.find_element(css, "#queue").text
    shot(d, "09-queue")
    follow(d, d.find_element(css, "#retry-QCONSOLE1"))
    assert "QCONSOLE1 is due now" in d.find_element(css, "#notice").text
    with client(srv, token) as c:
        assert c.get("/api/v1/queue/QCONSOLE1").json()["next_attempt"] < before
    shot(d, "10-queue-retried")

    # forms without the session's CSRF token are refused, even with the cookie
    session = {"mw_session": cookie["value"]}
    r = httpx.post(base + "/queue/action", data={"id": "QCONSOLE1", "action": "delete",
                                                "csrf": "forged"}, cookies=session)
    assert r.status_code == 403
    page = httpx.get(base + f"/mail?user={ALICE}&mailbox=INBOX&uid=1", cookies=session)
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert tracker not in page.text

    follow(d, d.find_element(css, "#logout"))
    wait_url(d, "/login")
    d.get(base + "/queue")
    wait_url(d, "/login")  # the session is over
