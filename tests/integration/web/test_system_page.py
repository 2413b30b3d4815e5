"""The System page in a real headless Chromium (Debian's) on a phone-sized screen: the
owner picks another time zone and taps Save; the box stores it (system.json, the
/etc/localtime link in the sandbox) and the page shows the saved value. The factory
reset dialog only arms its button for the box's name or ERASE and a password."""

from __future__ import annotations

import json
import os

import pytest

from tests.integration.web.cdp import Chromium, admin_phone_browser, needs_chromium
from tests.integration.web.test_system_api import Site

pytestmark = [
    needs_chromium(),
    pytest.mark.timeout(180),
]


@pytest.fixture
def site(tmp_path):
    s = Site(tmp_path / "box")
    yield s
    s.close()


@pytest.fixture
def browser(tmp_path, site):
    chrome = admin_phone_browser(tmp_path / "chromium-profile", site)
    yield chrome
    chrome.close()


def tap(browser: Chromium, selector: str) -> None:
    """A real (synthesised) tap in the middle of the element."""
    x, y = browser.evaluate(
        f"(() => {{ const el = document.querySelector({json.dumps(selector)}); "
        "el.scrollIntoView({block: 'center'}); const r = el.getBoundingClientRect(); "
        "return [r.left + r.width / 2, r.top + r.height / 2]; })()")
    for kind in ("mousePressed", "mouseReleased"):
        browser.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                     clickCount=1)


def type_into(browser: Chromium, selector: str, text: str) -> None:
    tap(browser, selector)
    browser.send("Input.insertText", text=text)


def fits_the_phone(browser: Chromium) -> bool:
    return browser.evaluate(
        "(() => { const w = document.documentElement.clientWidth; "
        "return [...document.querySelectorAll('main *')].every(el => "
        "el.getBoundingClientRect().right <= w + 1); })()")


def test_changing_the_time_zone_on_a_phone(site, browser, tmp_path):
    browser.navigate(f"{site.base}/system")
    browser.wait_for("window.vigilSystem && vigilSystem.loaded", 15)
    assert browser.evaluate("document.getElementById('timezone').value") == "UTC"
    assert browser.evaluate("document.getElementById('about-hostname').textContent") == \
        "vigil-0042"
    assert fits_the_phone(browser)

    # the owner picks Europe/Berlin in the list and taps Save
    browser.evaluate("(() => { const s = document.getElementById('timezone'); "
                     "s.value = 'Europe/Berlin'; s.dispatchEvent(new Event('change')); })()")
    tap(browser, "#time-form button[type=submit]")
    browser.wait_for("vigilSystem.saved && vigilSystem.saved.settings.time.timezone", 15,
                     check=lambda zone: zone == "Europe/Berlin")
    status = browser.wait_for("document.querySelector('#time-form .form-status').textContent",
                              5, check=lambda text: text == "Saved.")
    assert status == "Saved."
    assert "Europe/Berlin" in browser.evaluate(
        "document.getElementById('about-time').textContent")

    stored = json.loads((site.box.paths.config_dir / "system.json").read_text())
    assert stored["time"]["timezone"] == "Europe/Berlin"
    assert os.readlink(site.box.sandbox.root / "run/vigil/localtime") == \
        "/usr/share/zoneinfo/Europe/Berlin"
    assert [e["detail"] for e in site.accounts.audit_log() if e["what"] == "system_time"] == [
        "time zone UTC -> Europe/Berlin"]
    # after a reload the page shows what the box has
    browser.navigate(f"{site.base}/system")
    browser.wait_for("window.vigilSystem && vigilSystem.loaded", 15)
    assert browser.evaluate("document.getElementById('timezone').value") == "Europe/Berlin"
    assert fits_the_phone(browser)
    browser.screenshot(tmp_path / "system-phone.png")
    assert (tmp_path / "system-phone.png").stat().st_size > 10_000
    assert not [line for line in browser.console() if line.startswith("exception")]


def test_the_factory_reset_dialog_arms_only_when_confirmed(site, browser, tmp_path):
    browser.navigate(f"{site.base}/system")
    browser.wait_for("window.vigilSystem && vigilSystem.loaded", 15)
    tap(browser, "#reset-open")
    browser.wait_for("document.getElementById('reset-dialog').open", 5)
    go = "document.getElementById('reset-go').disabled"
    type_into(browser, "#reset-confirm", "erase")
    type_into(browser, "#reset-password", "correct horse battery")
    assert browser.evaluate(go) is True                 # not the name, not ERASE
    browser.evaluate("document.getElementById('reset-confirm').value = ''")
    type_into(browser, "#reset-confirm", "vigil-0042")
    assert browser.wait_for(go, 5, check=lambda disabled: disabled is False) is False
    browser.screenshot(tmp_path / "system-reset-dialog.png")
    tap(browser, "#reset-cancel")
    browser.wait_for("!document.getElementById('reset-dialog').open", 5)
    assert len(site.accounts.users()) == 1 and site.box.sandbox.commands == []
