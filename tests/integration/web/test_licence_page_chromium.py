"""The Licence page in a real Chromium at phone size: it shows the licence in force and
this box's serial; installing a genuine file raises the channel count; a licence for
another box is refused with the reason and the old licence stays (issue 9)."""

from __future__ import annotations

import json

import pytest

from appliance.licensing.keys import load_private
from appliance.licensing.licence import Licence, sign
from appliance.web.security import COOKIE
from tests.integration.conftest import ROOT
from tests.integration.web.cdp import Chromium, find_chromium
from tests.integration.web.manage_site import ManageSite

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="Debian's chromium is not "
                                "installed (make setup installs it; see the Makefile DEBS)")

KEY = ROOT / "keys/dev/licence-vendor-DEV-ONLY.pem"


def choose_file(browser: Chromium, path) -> None:
    """Put a file into the page's <input type=file> (what the file dialog does)."""
    node = browser.send("Runtime.evaluate", expression="document.getElementById('file')")
    browser.send("DOM.setFileInputFiles", files=[str(path)],
                 objectId=node["result"]["objectId"])


def text_of(browser: Chromium, element_id: str) -> str:
    return browser.evaluate(f"document.getElementById({json.dumps(element_id)}).textContent")


@pytest.mark.timeout(120)
def test_the_licence_page_installs_a_genuine_file_and_refuses_another_boxs(tmp_path):
    site = ManageSite(tmp_path / "site", channels=4)
    browser = Chromium(tmp_path / "chromium-profile")
    try:
        token = next(c.value for c in site.admin.jar if c.name == COOKIE)
        browser.set_cookie(site.base + "/", COOKIE, token)
        browser.send("Emulation.setDeviceMetricsOverride", width=390, height=844,
                     deviceScaleFactor=2, mobile=True)
        browser.navigate(site.base + "/licence")
        browser.wait_for("document.getElementById('licence').textContent", 20,
                         check=lambda t: t and "SIM00000001" in t and "board default" in t)
        assert "0 of 4 in use" in text_of(browser, "licence")

        key = load_private(KEY)
        good = tmp_path / "good.lic"
        good.write_bytes(sign(Licence("lic-page-1", "SIM00000001", 16, "standard",
                                      "2026-01-01", None), key))
        choose_file(browser, good)
        browser.click(*browser.center_of("#install-button"))
        browser.wait_for("document.getElementById('status').textContent", 20,
                         check=lambda t: t and "installed: 16 channels" in t)
        browser.wait_for("document.getElementById('licence').textContent", 20,
                         check=lambda t: t and "0 of 16 in use" in t and "lic-page-1" in t)
        browser.screenshot(tmp_path / "licence-installed.png")

        other = tmp_path / "other.lic"
        other.write_bytes(sign(Licence("lic-page-2", "SIM00000002", 32, "standard",
                                       "2026-01-01", None), key))
        choose_file(browser, other)
        browser.click(*browser.center_of("#install-button"))
        status = browser.wait_for("document.getElementById('status').textContent", 20,
                                  check=lambda t: t and t.startswith("Not installed"))
        assert "not for this box" in status and "licence in force stays" in status
        assert site.licence.channel_limit() == 16
        assert browser.evaluate("document.getElementById('status').className") == "error"
        browser.screenshot(tmp_path / "licence-refused.png")
        assert "licence_installed" in [e["what"] for e in site.audit()]
    finally:
        browser.close()
        site.close()
