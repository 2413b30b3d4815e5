"""The cameras and PoE pages in a real headless Chromium (Debian's), on a phone-sized
screen: a camera whose label is an XSS payload shows as text (no dialog, no element made
from it); the add form and the confirmed remove work; the PoE page's power-cycle button,
once confirmed, really cycles the simulated port (vigil-hwd's PoE service and control
socket run in this process, as in `test_poe_api.py`)."""

from __future__ import annotations

import json

import pytest

from appliance.core.control import ControlServer
from appliance.poe.control import control_handlers
from appliance.poe.manager import PortState
from appliance.poe.runtime import PoeService, build_manager
from hw.board import load_profile
from tests.integration.web.cdp import Chromium, admin_phone_browser, find_chromium
from tests.integration.web.manage_site import ManageSite

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="Debian's chromium is not installed (make setup installs it; see the Makefile DEBS)")

XSS = '<img src=x onerror=alert(1)>'
XSS2 = '<script>alert(2)</script>'
OFF_S = 6


@pytest.fixture(scope="module")
def hwd(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hwd")
    manager, _ = build_manager(load_profile("sim"), {
        "max_cycles_per_hour": 2, "cycle_off_seconds": OFF_S, "poll_interval": 0.2})
    service = PoeService(manager, tmp / "state")
    service.start()
    server = ControlServer(tmp / "h.sock", control_handlers(manager)).start()
    yield manager, tmp
    server.close()
    service.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory, hwd):
    _, tmp = hwd
    s = ManageSite(tmp_path_factory.mktemp("site"), hwd_state=tmp / "state",
                   hwd_socket=tmp / "h.sock")
    yield s
    s.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory, site):
    chrome = admin_phone_browser(tmp_path_factory.mktemp("chromium-profile"), site)
    yield chrome
    chrome.close()


def dialogs(browser: Chromium) -> list[dict]:
    return [e for e in browser.events if e["method"] == "Page.javascriptDialogOpening"]


def click(browser: Chromium, selector: str) -> None:
    """A real (synthesised) tap in the middle of the element."""
    x, y = browser.evaluate(
        f"(() => {{ const el = document.querySelector({json.dumps(selector)}); "
        "el.scrollIntoView({block: 'center'}); const r = el.getBoundingClientRect(); "
        "return [r.left + r.width / 2, r.top + r.height / 2]; })()")
    for kind in ("mousePressed", "mouseReleased"):
        browser.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                     clickCount=1)


def fits_the_phone(browser: Chromium) -> bool:
    return browser.evaluate(
        "(() => { const w = document.documentElement.clientWidth; "
        "return [...document.querySelectorAll('main *')].every(el => "
        "el.getBoundingClientRect().right <= w + 1); })()")


@pytest.mark.timeout(120)
def test_cameras_page_shows_an_xss_label_as_text_and_manages_cameras(site, browser, tmp_path):
    for name, label in (("door", XSS), ("yard", XSS2)):
        status, body = site.admin.json("POST", "/api/v1/cameras", {
            "name": name, "label": label, "rtsp": "rtsp://192.168.1.30/s", "username": "admin",
            "password": "Secret-pw-9"})
        assert status == 201, body
    browser.navigate(f"{site.base}/cameras")
    browser.wait_for("window.vigilCameras && vigilCameras.loaded && "
                     "document.querySelectorAll('#cameras li').length", 15,
                     check=lambda n: n == 2)
    assert browser.evaluate("vigilCameras.error") == ""
    labels = browser.evaluate("[...document.querySelectorAll('#cameras .camera-label')]"
                              ".map(el => el.textContent)")
    assert labels == [XSS, XSS2]
    assert browser.evaluate("document.querySelectorAll('main img, main script').length") == 0
    assert XSS in browser.evaluate("document.querySelector('#cameras').innerText")
    assert "Secret-pw-9" not in browser.evaluate("document.documentElement.outerHTML")
    assert dialogs(browser) == []
    assert fits_the_phone(browser)
    browser.screenshot(tmp_path / "cameras-phone.png")

    # the add form: an RTSP camera
    click(browser, "#add input[name=kind][value=rtsp]")
    browser.evaluate("(() => { const f = document.getElementById('add').elements; "
                     "f.name.value = 'gate'; f.label.value = 'Gate & drive'; "
                     "f.rtsp.value = 'rtsp://192.168.1.31:554/main'; })()")
    click(browser, "#add-button")
    browser.wait_for("document.querySelectorAll('#cameras li').length", 15,
                     check=lambda n: n == 3)
    assert browser.evaluate("document.querySelector('[data-camera=gate] .camera-label')"
                            ".textContent") == "Gate & drive"
    assert "gate" in {c.id for c in site_registry(site)}

    # a refused add shows the API's reason (the form is back on ONVIF after an add)
    click(browser, "#add input[name=kind][value=rtsp]")
    browser.evaluate("(() => { const f = document.getElementById('add').elements; "
                     "f.name.value = 'meta'; "
                     "f.rtsp.value = 'rtsp://169.254.169.254/latest'; })()")
    click(browser, "#add-button")
    message = browser.wait_for("document.getElementById('status').textContent", 10,
                               check=lambda t: "link-local" in (t or ""))
    assert browser.evaluate("document.getElementById('status').classList.contains('error')")
    assert "meta" not in {c.id for c in site_registry(site)}, message

    # remove, confirmed on the page (no browser dialog)
    click(browser, "[data-camera=door] button.remove")
    question = browser.wait_for("document.querySelector('[data-camera=door] .confirm p')"
                                "?.textContent", 5)
    assert question.startswith(f"Remove {XSS}?") and "recordings stay" in question
    assert "door" in {c.id for c in site_registry(site)}           # not before the Yes
    click(browser, "[data-camera=door] .confirm button.danger")
    browser.wait_for("document.querySelector('[data-camera=door]') === null", 10)
    assert "door" not in {c.id for c in site_registry(site)}
    assert dialogs(browser) == []
    browser.screenshot(tmp_path / "cameras-after.png")


def site_registry(site: ManageSite):
    from appliance.cameras.manage import open_camera_registry

    return open_camera_registry(site.registry, site.secrets, site.config).cameras()


@pytest.mark.timeout(120)
def test_the_poe_page_power_cycles_a_port_after_confirmation(site, browser, hwd, tmp_path):
    manager, _ = hwd
    assert site.admin.json("POST", "/api/v1/cameras", {
        "name": "porch", "label": "Porch", "rtsp": "rtsp://192.168.1.40/s"})[0] == 201
    assert site.admin.json("PATCH", "/api/v1/cameras/porch", {"poe_port": "Port 1"})[0] == 200
    browser.navigate(f"{site.base}/poe")
    card = "#ports [data-port='1']"
    browser.wait_for(f"document.querySelector(\"{card} .badge\")?.textContent", 15,
                     check=lambda t: t == "Powered")
    assert browser.evaluate("document.querySelectorAll('#ports li').length") == 8
    assert "Porch (porch)" in browser.evaluate(f"document.querySelector(\"{card}\").innerText")
    assert "allocated" in browser.evaluate("document.getElementById('budget-text').textContent")
    assert fits_the_phone(browser)
    browser.screenshot(tmp_path / "poe-phone.png")
    assert manager.port_state(1) is PortState.POWERED

    click(browser, f"{card} button.cycle")
    question = browser.wait_for(f"document.querySelector(\"{card} .confirm p\")?.textContent", 5)
    assert question.startswith("Power-cycle Port 1? Porch (porch) loses power")
    assert manager.port_state(1) is PortState.POWERED               # nothing before the Yes
    click(browser, f"{card} .confirm button.danger")
    browser.wait_for(f"document.querySelector(\"{card} .badge\").textContent", OFF_S,
                     check=lambda t: t == "Off")
    assert manager.port_state(1) is PortState.DISABLED
    assert "Port 1 is off for" in browser.evaluate("document.getElementById('status').textContent")
    browser.screenshot(tmp_path / "poe-cycling.png")
    browser.wait_for(f"document.querySelector(\"{card} .badge\").textContent", OFF_S + 15,
                     check=lambda t: t == "Powered")
    history = manager.history(1)
    assert history[-2:] == [PortState.CLASSIFIED, PortState.POWERED] and \
        PortState.DISABLED in history
    assert browser.evaluate(f"[...document.querySelectorAll(\"{card} dd\")].at(-1)"
                            ".textContent") == "1"                  # cycles in the last hour
    assert dialogs(browser) == []
    who = [e for e in site.audit() if e["what"] == "poe_power_cycle"]
    assert who and who[0]["who"] == "owner" and who[0]["detail"] == "Port 1 (camera porch)"
    browser.screenshot(tmp_path / "poe-after.png")
