"""Logging in and out in a real headless Chromium (Debian's): a fresh browser opening
/storage lands on /login, logs in through the form, comes back to /storage with the
disk, RAID and forecast shown (also on a phone-sized screen), logs out with the header's
button, and the old session cookie is refused afterwards. Screenshots in tmp_path."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from appliance.storage.volume import write_marker
from appliance.web.security import COOKIE
from tests.integration.web.cdp import Chromium, find_chromium
from tests.integration.web.test_storage_api import record, running_sites, snapshot
from tests.integration.web_session import ADMIN, PASSWORD

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="Debian's chromium is not installed (make setup installs it; see the Makefile DEBS)")


def status_with_cookie(base: str, token: str) -> int:
    req = urllib.request.Request(base + "/api/v1/me", headers={"Cookie": f"{COOKIE}={token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def session_cookie(browser: Chromium) -> str | None:
    cookies = browser.send("Network.getCookies")["cookies"]
    return next((c["value"] for c in cookies if c["name"] == COOKIE), None)


def fill(browser: Chromium, element: str, text: str) -> None:
    """Focus a field and type into it as a keyboard would (Input.insertText)."""
    browser.evaluate(f"document.getElementById('{element}').value = ''")
    browser.evaluate(f"document.getElementById('{element}').focus()")
    browser.send("Input.insertText", text=text)


@pytest.mark.timeout(180)
def test_login_storage_logout_in_chromium(tmp_path):
    with running_sites(tmp_path / "site") as start:
        site = start()
        write_marker(site.data)
        record(site.data, "door", 90)
        snapshot(site.state, site.root)
        browser = Chromium(tmp_path / "profile")
        try:
            browser.navigate(f"{site.base}/storage")
            # The login script has run once safeNext exists (the URL changes before).
            browser.wait_for("location.pathname === '/login' && location.search && "
                             "typeof safeNext === 'function'", 15)
            assert browser.evaluate("location.search") == "?next=%2Fstorage"
            assert session_cookie(browser) is None
            # Only same-site paths are followed after login.
            for raw, safe in (("//evil.example/x", "/"), ("/\\\\evil.example", "/"),
                              ("https://evil.example/", "/"), ("javascript:alert(1)", "/"),
                              ("/storage?x=1", "/storage?x=1"), ("/login", "/")):
                assert browser.evaluate(f"safeNext({raw!r})") == safe, raw

            fill(browser, "username", ADMIN)
            fill(browser, "password", "not the password")
            browser.evaluate("document.getElementById('submit').click()")
            browser.wait_for("vigilLogin.error", 10)
            assert browser.evaluate("vigil.$('status').textContent") == \
                "Wrong user name or password."
            browser.screenshot(tmp_path / "login-failed.png")

            fill(browser, "password", PASSWORD)
            browser.evaluate("document.getElementById('submit').click()")
            browser.wait_for("location.pathname === '/storage' && window.vigilStorage && "
                             "vigilStorage.loaded", 20)
            assert browser.evaluate("vigilStorage.error") == ""
            text = browser.evaluate("document.querySelector('main').innerText")
            assert "md0" in text and "resync 59.9 %" in text
            assert "door" in browser.evaluate("document.getElementById('forecast').innerText")
            assert browser.evaluate("document.getElementById('retention-settings')"
                                    ".querySelectorAll('[data-setting]').length") >= 5
            browser.screenshot(tmp_path / "storage.png")

            # A phone: nothing wider than the screen (wide tables scroll inside their box).
            browser.send("Emulation.setDeviceMetricsOverride", width=390, height=844,
                         deviceScaleFactor=2, mobile=True)
            browser.navigate(f"{site.base}/storage")
            browser.wait_for("window.vigilStorage && vigilStorage.loaded", 20)
            browser.wait_for("innerWidth === 390 && "
                             "document.documentElement.scrollWidth <= innerWidth", 10)
            browser.screenshot(tmp_path / "storage-phone.png")
            browser.send("Emulation.clearDeviceMetricsOverride")

            token = session_cookie(browser)
            assert token and status_with_cookie(site.base, token) == 200
            browser.evaluate("document.getElementById('logout').click()")
            browser.wait_for("location.pathname === '/login'", 15)
            browser.screenshot(tmp_path / "logged-out.png")
            assert status_with_cookie(site.base, token) == 401
            assert "logout" in [e["what"] for e in site.accounts.audit_log()]
        finally:
            browser.close()


@pytest.mark.timeout(120)
def test_alerts_and_users_pages_in_chromium(tmp_path):
    from appliance.storage.alerts import Alert
    from tests.integration.web.test_alerts_api import T0, hwd_log

    with running_sites(tmp_path / "site") as start:
        site = start(hwd=False)
        site.user("watcher", "viewer", ["door"])
        hwd_log(site, T0, Alert("critical", "raid:md0", "md0 degraded <img src=x onerror=1>", "k"))
        browser = Chromium(tmp_path / "profile")
        try:
            token = next(c.value for c in site.admin.jar if c.name == COOKIE)
            browser.set_cookie(site.base + "/", COOKIE, token)
            browser.navigate(f"{site.base}/alerts")
            browser.wait_for("window.vigilAlerts && vigilAlerts.loaded", 15)
            item = "document.querySelector('#alerts li')"
            assert browser.evaluate(f"{item}.querySelector('.text').textContent") == \
                "md0 degraded <img src=x onerror=1>"  # shown as text, never as markup
            assert browser.evaluate("document.querySelectorAll('#alerts img').length") == 0
            browser.evaluate(f"{item}.querySelector('button.ack').click()")
            browser.wait_for(f"{item}.innerText.includes('acknowledged by owner')", 10)
            browser.screenshot(tmp_path / "alerts.png")

            browser.navigate(f"{site.base}/users")
            browser.wait_for("window.vigilUsers && vigilUsers.loaded", 15)
            card = "document.querySelector('[data-user=watcher]')"
            assert browser.evaluate(f"{card}.querySelector('.confirm-box').offsetParent") is None
            browser.evaluate(f"{card}.querySelector('select.role').value = 'operator'")
            browser.evaluate(f"{card}.querySelector('button.save').click()")
            browser.wait_for("vigilUsers.users.some(u => u.username === 'watcher' && "
                             "u.role === 'operator')", 10)
            browser.evaluate(f"{card}.querySelector('button.delete').click()")
            assert browser.evaluate(f"{card}.querySelector('.confirm-box').offsetParent") \
                is not None
            browser.screenshot(tmp_path / "users-confirm.png")
            browser.evaluate(f"{card}.querySelector('button.confirm').click()")
            browser.wait_for("vigilUsers.users.length === 1", 10)
            assert [u.username for u in site.accounts.users()] == ["owner"]
            assert browser.console() == []
        finally:
            browser.close()
