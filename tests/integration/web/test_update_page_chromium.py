"""The Update page in a real headless Chromium at phone size, against the update API and a
real vigil-hwd control socket with a fake update service (test_update_api.UpdateRig): it
shows the running release and the rolled-back update in plain words; choosing a file and
tapping Install sends it (upload bar to 100 %), follows the install job (its bar at the
fake's 40 %, then done) and says "Rebooting into 0.2.0…"; a refused bundle shows why."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.integration.web.cdp import Chromium, PHONE, admin_phone_browser, needs_chromium
from tests.integration.web.test_update_api import (INSTALL_PHASE, REFUSAL, UpdateRig,
                                                   bundle_bytes)

pytestmark = [
    needs_chromium(),
    pytest.mark.timeout(180),
]


@pytest.fixture
def rig(tmp_path):
    r = UpdateRig(tmp_path / "box")
    yield r
    r.close()


@pytest.fixture
def browser(tmp_path, rig):
    chrome = admin_phone_browser(tmp_path / "chromium-profile", rig.site, locale="en-US")
    yield chrome
    chrome.close()


def text_of(browser: Chromium, element_id: str) -> str:
    return browser.evaluate(f"document.getElementById({json.dumps(element_id)}).textContent")


def value_of(browser: Chromium, element_id: str):
    return browser.evaluate(f"document.getElementById({json.dumps(element_id)}).value")


def choose_file(browser: Chromium, element_id: str, path) -> None:
    """Put a file into the page's <input type=file> (what the file dialog does)."""
    node = browser.send("Runtime.evaluate",
                        expression=f"document.getElementById({json.dumps(element_id)})")
    browser.send("DOM.setFileInputFiles", files=[str(path)],
                 objectId=node["result"]["objectId"])


def open_page(browser: Chromium, rig: UpdateRig) -> None:
    browser.navigate(rig.site.base + "/update")
    browser.wait_for("document.getElementById('running-version').textContent", 20,
                     check=lambda text: text == "0.1.0")


def fits_the_phone(browser: Chromium) -> bool:
    return browser.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def exceptions(browser: Chromium) -> list[str]:
    return [line for line in browser.console() if line.startswith("exception")]


def test_the_page_shows_the_rollback_and_installs_a_bundle(rig, browser, tmp_path):
    open_page(browser, rig)
    assert text_of(browser, "running-slot") == "A"
    assert text_of(browser, "running-build") == "Jan 1, 2026"
    banner = text_of(browser, "last-result")
    assert banner.startswith("Update to 0.2.0 failed and was rolled back: the recorder "
                             "failed to start 3 times."), banner
    assert browser.evaluate("document.getElementById('last-result').className") == "banner bad"
    assert browser.evaluate("document.getElementById('trial').hidden") is True
    slots = browser.evaluate("[...document.querySelectorAll('#slots tbody tr')].map("
                             "r => [...r.cells].map(c => c.textContent))")
    assert [row[:4] for row in slots] == [
        ["A", "running now", "good", "0.1.0 (built Jan 1, 2026)"],
        ["B", "standby", "bad (not started)", "0.2.0 (built Feb 1, 2026)"]]
    assert fits_the_phone(browser)
    browser.screenshot(tmp_path / "update-status.png")
    assert "Update" in browser.evaluate("document.querySelector('nav [aria-current=page]')"
                                        ".textContent")

    body = bundle_bytes(2 * 1024 * 1024 + 5)
    bundle = tmp_path / "vigil-nvr-0.2.0.raucb"
    bundle.write_bytes(body)
    choose_file(browser, "bundle", bundle)
    browser.click(*browser.center_of("#install-button"))

    # the upload is done and vigil-hwd's job is at the fake's 40 % until the test lets it end
    assert rig.service.installing.wait(30)
    browser.wait_for("document.getElementById('install-progress').value", 20,
                     check=lambda value: value == 40)
    assert text_of(browser, "install-phase") == INSTALL_PHASE[0].upper() + INSTALL_PHASE[1:]
    assert value_of(browser, "upload-progress") == 100
    assert text_of(browser, "upload-percent") == "100 %"
    assert browser.evaluate("document.getElementById('install-button').disabled") is True
    assert rig.service.applied[0]["sha256"] == hashlib.sha256(body).hexdigest()
    assert fits_the_phone(browser)
    browser.screenshot(tmp_path / "update-installing.png")

    rig.service.finish.set()
    outcome = browser.wait_for("document.getElementById('outcome').textContent", 20,
                               check=lambda text: text and text.startswith("Rebooting"))
    assert outcome.startswith("Rebooting into 0.2.0…"), outcome
    assert value_of(browser, "install-progress") == 100
    assert browser.evaluate("document.getElementById('outcome').className") == "banner"
    assert rig.service.rebooted.wait(30)
    browser.screenshot(tmp_path / "update-rebooting.png")
    assert exceptions(browser) == []


def test_a_refused_bundle_shows_why(rig, browser, tmp_path):
    rig.service.refusal = REFUSAL
    open_page(browser, rig)
    bundle = tmp_path / "not-signed.raucb"
    bundle.write_bytes(bundle_bytes(100_000))
    choose_file(browser, "bundle", bundle)
    browser.click(*browser.center_of("#install-button"))
    outcome = browser.wait_for("document.getElementById('outcome').textContent", 20,
                               check=lambda text: text and text.startswith("Not installed"))
    assert outcome == f"Not installed: {REFUSAL}. The running system is unchanged."
    assert browser.evaluate("document.getElementById('outcome').className") == "banner bad"
    assert browser.evaluate("document.getElementById('install-button').disabled") is False
    assert text_of(browser, "install-phase") == "Stopped while checking the bundle"
    assert rig.uploaded_files() == [] and not rig.service.rebooted.is_set()
    browser.screenshot(tmp_path / "update-refused.png")
    assert exceptions(browser) == []


def test_a_file_that_is_not_an_update_is_not_sent(rig, browser, tmp_path):
    open_page(browser, rig)
    photo = tmp_path / "holiday.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0 not an update")
    choose_file(browser, "bundle", photo)
    browser.click(*browser.center_of("#install-button"))
    outcome = browser.wait_for("document.getElementById('outcome').textContent", 20)
    assert outcome == "This is not an update file: an update's name ends in .raucb."
    assert rig.service.applied == [] and rig.uploaded_files() == []
