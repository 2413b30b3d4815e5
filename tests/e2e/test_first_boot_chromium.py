"""The first-boot flow in a real Chromium against `nvr run` (what `make run` starts):
from the first page to a camera recording, one screenshot per step (issue 9).

The owner opens the box's address, lands on the wizard, creates the admin (there is no
default password), sets the time zone, keeps DHCP, sees the development disk note, sees
the PoE cameras recording and adds one more by its RTSP URL, keeps the retention
defaults, reads the security checklist and finishes. The new camera then records: its
segments are in the recorder's index. The wizard cannot be entered again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.recorder.index import RecordingIndex
from hw.camsim.server import SimCamera
from tests.e2e.devmode_process import DevMode
from tests.integration.conftest import ROOT
from tests.integration.web.cdp import Chromium, find_chromium
from tests.integration.web_session import ApiClient
from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="Debian's chromium is not "
                                "installed (make setup installs it; see the Makefile DEBS)")

ARTIFACTS = ROOT / "var" / "test-artifacts" / "first-boot"
PASSWORD = "correct horse battery"


def visible_step(browser: Chromium) -> str:
    return browser.evaluate("[...document.querySelectorAll('section.step')]"
                            ".filter(s => !s.hidden).map(s => s.id).join(',')")


def fill(browser: Chromium, values: dict[str, str]) -> None:
    for element_id, value in values.items():
        browser.evaluate(f"(() => {{ const e = document.getElementById({json.dumps(element_id)});"
                         f" e.value = {json.dumps(value)}; e.dispatchEvent(new Event('input'));"
                         " })()")


def click(browser: Chromium, selector: str) -> None:
    browser.click(*browser.center_of(selector))


def next_step(browser: Chromium, button: str, step: str, shots: Path, n: int) -> None:
    browser.screenshot(shots / f"{n:02d}-{visible_step(browser)}.png")
    click(browser, button)
    browser.wait_for("document.getElementById('status').className.includes('error') ? "
                     "'error: ' + document.getElementById('status').textContent : "
                     f"!document.getElementById({json.dumps(step)}).hidden", 30,
                     check=lambda v: v is True or (isinstance(v, str) and v.startswith("error")))
    status = browser.evaluate("document.getElementById('status').textContent")
    assert visible_step(browser) == step, f"stuck before {step}: {status}"


@pytest.mark.timeout(420)
def test_from_the_first_page_to_a_camera_recording(tmp_path, camera_server, small_clip):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    lan_camera = camera_server(SimCamera("/door", small_clip))
    box = DevMode(tmp_path / "var")
    browser = Chromium(tmp_path / "chromium-profile")
    try:
        browser.navigate(box.base + "/")
        browser.wait_for("location.pathname", 20, check=lambda p: p == "/setup")
        browser.wait_for("!document.getElementById('step-admin').hidden", 20)

        fill(browser, {"admin-user": "owner", "admin-pass": PASSWORD, "admin-pass2": PASSWORD})
        next_step(browser, "#admin-next", "step-time", ARTIFACTS, 1)

        browser.wait_for("document.getElementById('tz').options.length", 20,
                         check=lambda n: n and n > 100)
        fill(browser, {"tz": "Europe/Berlin"})
        next_step(browser, "#time-next", "step-network", ARTIFACTS, 2)

        next_step(browser, "#network-next", "step-disks", ARTIFACTS, 3)
        browser.wait_for("document.getElementById('disk-list').textContent", 20,
                         check=lambda t: "Development mode records into ./var/data" in (t or ""))
        next_step(browser, "#disks-next", "step-cameras", ARTIFACTS, 4)

        # the simulated PoE cameras were adopted by themselves and record
        browser.wait_for("document.getElementById('camera-rows').textContent", 30,
                         check=lambda t: t and "Port 1" in t and "recording" in t)
        fill(browser, {"cam-name": "door", "cam-address": lan_camera.url("/door")})
        click(browser, "#cam-add")
        browser.wait_for("document.getElementById('status').textContent", 30,
                         check=lambda t: "door added" in (t or "") or "error" in (t or ""))
        browser.wait_for("[...document.querySelectorAll('#camera-rows tr')].map(r => "
                         "r.textContent).join('|')", 60,
                         check=lambda t: any(r.startswith("door") and "recording" in r
                                             for r in (t or "").split("|")))
        next_step(browser, "#cameras-next", "step-retention", ARTIFACTS, 5)

        browser.wait_for("document.querySelectorAll('#retention-fields [data-setting]').length",
                         20, check=lambda n: n and n > 0)
        next_step(browser, "#retention-next", "step-summary", ARTIFACTS, 6)

        items = browser.wait_for("[...document.querySelectorAll('#checklist li')]"
                                 ".map(li => li.textContent)", 20, check=lambda v: v and len(v) >= 6)
        assert any(i.startswith("Accounts:") and "no default password" in i for i in items)
        assert any(i.startswith("Clock:") and "Europe/Berlin" in i for i in items)
        assert any(i.startswith("Cameras:") and "3 camera(s)" in i for i in items)
        browser.screenshot(ARTIFACTS / "07-summary.png")
        click(browser, "#finish")
        browser.wait_for("location.pathname", 20, check=lambda p: p == "/live")
        browser.screenshot(ARTIFACTS / "08-live.png")

        # the camera added in the wizard records (segments in the index), and the wizard
        # is closed for good
        index_dir = box.var / "data"
        wait_until(lambda: _segments(index_dir, "door"), 60, "a recorded segment of door")
        browser.navigate(box.base + "/setup")
        browser.wait_for("location.pathname", 20, check=lambda p: p == "/live")
        api = ApiClient(box.base).login("owner", PASSWORD)
        status, _ = api.json("POST", "/api/v1/setup/wizard", {"step": "time"})
        assert status == 409
        audit = [e["what"] for e in api.json("GET", "/api/v1/audit")[1]["entries"]]
        for what in ("setup", "system_time", "camera_added", "setup_finished"):
            assert what in audit, audit
    finally:
        browser.close()
        code = box.stop()
    assert code == 0, box.output()[-3000:]


def _segments(data: Path, camera: str) -> int:
    try:
        index = RecordingIndex(data, readonly=True)
    except Exception:  # noqa: BLE001 - not created yet
        return 0
    try:
        return len(index.segments(camera))
    finally:
        index.close()
