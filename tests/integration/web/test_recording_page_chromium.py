"""The Cameras page's recording modes in a real Chromium at phone size: an admin sets a
camera to events-only with its pre/post seconds and the recorder's file says so."""

from __future__ import annotations

import json

import pytest

from appliance.cameras.manage import open_camera_registry
from appliance.cameras.registry import Camera, StreamInfo
from appliance.recorder.recording_settings import recording_settings_path
from appliance.web.security import COOKIE
from tests.integration.web.cdp import Chromium, find_chromium
from tests.integration.web.manage_site import ManageSite

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="Debian's chromium is not "
                                "installed (make setup installs it; see the Makefile DEBS)")

ROW = "document.querySelector('#modes li[data-mode-camera=\"door\"]')"


@pytest.mark.timeout(120)
def test_an_admin_sets_a_camera_to_events_only_on_the_cameras_page(tmp_path):
    site = ManageSite(tmp_path / "site")
    reg = open_camera_registry(site.registry, site.secrets, site.config)
    reg.add(Camera("door", "Front <b>door</b>", "127.0.0.1",
                   StreamInfo("rtsp://127.0.0.1:8554/door")))
    browser = Chromium(tmp_path / "chromium-profile")
    try:
        token = next(c.value for c in site.admin.jar if c.name == COOKIE)
        browser.set_cookie(site.base + "/", COOKIE, token)
        browser.send("Emulation.setDeviceMetricsOverride", width=390, height=844,
                     deviceScaleFactor=2, mobile=True)
        browser.navigate(site.base + "/cameras")
        browser.wait_for(f"{ROW} && {ROW}.textContent", 20,
                         check=lambda t: t and "Front <b>door</b>" in t)  # as text
        browser.evaluate(f"(() => {{ const r = {ROW}; r.querySelector('select').value = 'events';"
                         " const [pre, post] = r.querySelectorAll('input'); pre.value = '6';"
                         " post.value = '12'; })()")
        browser.click(*browser.center_of('#modes li[data-mode-camera="door"] button'))
        browser.wait_for("document.getElementById('status').textContent", 20,
                         check=lambda t: t and "saved" in t)
        saved = json.loads(recording_settings_path(site.config).read_text())["cameras"]["door"]
        assert (saved["mode"], saved["pre_event_s"], saved["post_event_s"]) == ("events", 6, 12)
        assert browser.evaluate(  # nothing wider than the phone's screen
            "(() => { const w = document.documentElement.clientWidth; return [...document"
            ".querySelectorAll('main *')].every(e => e.getBoundingClientRect().right <= w + 1);"
            " })()")
        browser.screenshot(tmp_path / "recording-modes.png")
    finally:
        browser.close()
        site.close()
