"""Export from the recordings page in a real headless Chromium (Debian's), on footage the
real recorder wrote: the range is prefilled from the day shown (or dragged across the
timeline), Export starts a job whose progress bar moves to 100 %, the download link
answers with the MP4; Cancel stops a running export; a viewer sees no export panel; the
panel fits a phone's width."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pytest

from appliance.recorder.index import RecordingIndex
from appliance.storage.volume import write_marker
from appliance.web.security import COOKIE
from appliance.web.services import WebPaths
from hw.camsim.server import SimCamera, SimCameraServer, free_port
from tests.integration.recorder_process import RecorderProcess
from tests.integration.web.cdp import Chromium, find_chromium
from tests.integration.web.webserver import WebServer
from tests.integration.web_session import ApiClient

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="Debian's chromium is not installed (make setup installs it; see the Makefile DEBS)")

PASSWORD = "a long user password"
JOBS = "window.vigilExport.jobs"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, small_clip):
    """One camera recorded by the real recorder in 2 s segments (then stopped), on a
    directory marked as an initialised data disk."""
    tmp = tmp_path_factory.mktemp("export-page")
    camera = SimCameraServer(free_port(), [SimCamera("/cam1", small_clip, audio="aac")],
                             log_path=tmp / "camsim.log")
    camera.start()
    data = tmp / "data"
    try:
        with RecorderProcess(data, {"cam": camera.url("/cam1")}, "--segment-seconds", "2") as rec:
            rec.wait_for(lambda e: e["event"] == "segment", 60, count=4, what="segments")
            assert rec.stop() == 0
    finally:
        camera.stop()
    write_marker(data)
    index = RecordingIndex(data, readonly=True)
    segments = sorted(index.segments("cam"), key=lambda s: s.seq)
    index.close()
    return {"data": data, "tmp": tmp, "segments": segments}


@pytest.fixture(scope="module")
def site(recorded):
    server = WebServer(recorded["data"], recorded["tmp"] / "accounts.sqlite3", {},
                       paths=WebPaths(device_key=recorded["tmp"] / "keys" / "device.pem"))
    server.accounts.add_user("op", PASSWORD, "operator")
    server.accounts.add_user("vera", PASSWORD, "viewer", ("cam",))
    yield server
    server.app.config["VIGIL_EXPORT_BYTES_PER_S"] = 0
    server.close()


def token(site, user: str) -> str:
    client = ApiClient(site.base).login(user, PASSWORD)
    return next(c.value for c in client.jar if c.name == COOKIE)


@pytest.fixture(scope="module")
def browser(tmp_path_factory, site):
    chrome = Chromium(tmp_path_factory.mktemp("chromium-export"))
    chrome.set_cookie(site.base + "/", COOKIE, token(site, "op"))  # an operator
    yield chrome
    chrome.close()


def open_page(browser, site, recorded) -> None:
    first = recorded["segments"][0]
    day = datetime.fromtimestamp(first.start_us / 1e6, timezone.utc).date().isoformat()
    browser.navigate(f"{site.base}/timeline?camera=cam&day={day}")  # Chromium runs in UTC
    browser.wait_for("window.vigilTimeline.loaded && window.vigilExport.ready", 20)
    assert browser.evaluate("document.getElementById('export').hidden") is False


def pace(site, recorded, seconds: float) -> None:
    """Read the recordings at a rate that makes an export of all of them take `seconds`."""
    total = sum(s.bytes for s in recorded["segments"])
    site.app.config["VIGIL_EXPORT_BYTES_PER_S"] = total / seconds


def input_us(browser, element: str) -> int:
    """A datetime-local input's value (local time = UTC here; Chromium leaves out :00
    seconds) in microseconds."""
    value = browser.evaluate(f"document.getElementById('{element}').value")
    return int(datetime.fromisoformat(value).replace(tzinfo=timezone.utc).timestamp() * 1e6)


@pytest.mark.timeout(120)
def test_export_from_the_timeline_page_with_a_progress_bar_and_a_download(
        site, browser, recorded, tmp_path):
    segs = recorded["segments"]
    open_page(browser, site, recorded)
    browser.click(*browser.center_of("#export summary"))
    assert browser.evaluate("document.getElementById('export').open") is True
    # Prefilled with what is recorded on the day shown; the camera on screen is ticked.
    assert input_us(browser, "export-start") == math.floor(segs[0].start_us / 1e6) * 1e6
    assert input_us(browser, "export-end") == math.ceil(segs[-1].end_us / 1e6) * 1e6
    assert browser.evaluate("[...document.querySelectorAll('#export-cameras input:checked')]"
                            ".map((i) => i.value)") == ["cam"]

    pace(site, recorded, 4.0)   # long enough to see the bar move between polls
    browser.click(*browser.center_of("#export-go"))
    export_id = browser.wait_for("window.vigilExport.started", 10)
    browser.wait_for(f"{JOBS}.length && {JOBS}[0].id === {export_id!r} && "
                     f"{JOBS}[0].state === 'done'", 60)
    row = f"document.querySelector('#export-jobs li[data-id=\"{export_id}\"]')"
    assert browser.evaluate(f"{row}.querySelector('progress').value") == 100
    assert browser.evaluate(f"{row}.querySelector('.export-words').textContent").startswith(
        "Ready: 1 MP4 file(s)")
    seen = browser.evaluate(f"window.vigilExport.seen[{export_id!r}]")
    assert any(0 < p < 100 for p in seen), seen
    assert seen == sorted(seen) and seen[-1] == 100
    browser.screenshot(tmp_path / "export-done.png")

    # The download link answers with the MP4 (fetched by the page, with its session).
    links = browser.evaluate(f"[...{row}.querySelectorAll('a')].map((a) => "
                             "[a.className, a.getAttribute('download')])")
    assert [kind for kind, _ in links] == ["export-video", "export-manifest",
                                           "export-signature"]
    answer = browser.evaluate(
        f"fetch({row}.querySelector('a.export-video').href).then(async (r) => [r.status, "
        "r.headers.get('content-type'), r.headers.get('content-disposition'), "
        "(await r.arrayBuffer()).byteLength])", await_promise=True)
    status, content_type, disposition, size = answer
    assert (status, content_type) == (200, "video/mp4")
    assert disposition == f"attachment; filename={links[0][1]}"
    assert size == (recorded["data"] / "exports" / export_id / links[0][1]).stat().st_size

    # On a phone the panel is one column and nothing is wider than the screen.
    browser.emulate_device(390, 844)
    try:
        browser.pump(0.5)
        assert browser.evaluate("document.documentElement.scrollWidth") <= 390
        widths = browser.evaluate(
            "['export-start', 'export-end', 'export-go'].map((id) => "
            "document.getElementById(id).getBoundingClientRect().right)")
        assert all(right <= 390 for right in widths), widths
        browser.center_of(f"#export-jobs li[data-id=\"{export_id}\"] a.export-video")
        browser.screenshot(tmp_path / "export-phone.png")
    finally:
        browser.reset_device()
    assert not [line for line in browser.console() if line.startswith("exception")]


@pytest.mark.timeout(120)
def test_cancel_on_the_page_stops_the_export_and_keeps_nothing(site, browser, recorded,
                                                              tmp_path):
    open_page(browser, site, recorded)
    browser.click(*browser.center_of("#export summary"))
    pace(site, recorded, 60.0)
    browser.click(*browser.center_of("#export-go"))
    export_id = browser.wait_for("window.vigilExport.started", 10)
    row = f"#export-jobs li[data-id=\"{export_id}\"]"
    browser.wait_for(f"document.querySelector('{row} progress')?.value > 0", 30)
    browser.click(*browser.center_of(f"{row} .export-cancel"))
    browser.wait_for(f"document.querySelector('{row}').dataset.state === 'cancelled'", 15)
    assert browser.evaluate("document.getElementById('export-status').textContent") == \
        "Export cancelled; nothing of it was kept."
    assert browser.evaluate(f"document.querySelector('{row} a')") is None
    browser.screenshot(tmp_path / "export-cancelled.png")
    exports = recorded["data"] / "exports"
    assert not list(exports.glob(f"*{export_id}*"))


def test_dragging_across_the_timeline_chooses_the_range_without_playing(site, browser,
                                                                        recorded):
    open_page(browser, site, recorded)
    left, top, width, height = browser.evaluate(
        "(() => { const r = document.getElementById('bar').getBoundingClientRect(); "
        "return [r.left, r.top, r.width, r.height]; })()")
    y = top + height / 2
    x1, x2 = left + width * 0.25, left + width * 0.5      # 06:00 to 12:00 of the day
    browser.send("Input.dispatchMouseEvent", type="mousePressed", x=x1, y=y, button="left",
                 clickCount=1)
    for step in range(1, 6):
        browser.send("Input.dispatchMouseEvent", type="mouseMoved", x=x1 + (x2 - x1) * step / 5,
                     y=y, button="left", buttons=1)
    browser.send("Input.dispatchMouseEvent", type="mouseReleased", x=x2, y=y, button="left",
                 clickCount=1)
    browser.pump(0.3)
    assert browser.evaluate("window.vigilTimeline.playing") is None   # no playback started
    assert browser.evaluate("document.getElementById('export').open") is True
    assert browser.evaluate("document.getElementById('export-range').hidden") is False
    day_start = browser.evaluate("window.vigilTimeline.dayStart") * 1000
    pixel_us = 86_400e6 / width
    for element, x in (("export-start", x1), ("export-end", x2)):
        expected_us = day_start + (x - left) / width * 86_400e6
        assert abs(input_us(browser, element) - expected_us) <= pixel_us + 1e6, element


def test_a_viewer_sees_no_export_panel(site, browser, recorded):
    browser.set_cookie(site.base + "/", COOKIE, token(site, "vera"))
    try:
        first = recorded["segments"][0]
        day = datetime.fromtimestamp(first.start_us / 1e6, timezone.utc).date().isoformat()
        browser.navigate(f"{site.base}/timeline?camera=cam&day={day}")
        assert browser.wait_for("window.vigilExport.role", 15) == "viewer"
        browser.wait_for("window.vigilTimeline.loaded", 15)
        assert browser.evaluate("document.getElementById('export').hidden") is True
    finally:
        browser.set_cookie(site.base + "/", COOKIE, token(site, "op"))
