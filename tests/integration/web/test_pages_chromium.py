"""The pages in a real headless Chromium (Debian's), driven over the DevTools protocol:
the recordings page loads a camera's day from the real API and a click plays recorded
video (vendored hls.js); the live page shows moving frames from the real camera while
the real recorder keeps recording it."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from appliance.recorder.index import RecordingIndex
from appliance.web.security import COOKIE
from hw.camsim.server import SimCamera, SimCameraServer, free_port
from tests.integration.recorder_process import RecorderProcess
from tests.integration.web.cdp import Chromium, find_chromium
from tests.integration.web.webserver import WebServer
from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="Debian's chromium is not installed (make setup installs it; see the Makefile DEBS)")

VIDEO = "document.getElementById('video')"


@pytest.fixture(scope="module")
def camera(tmp_path_factory, small_clip):
    tmp = tmp_path_factory.mktemp("pages-cam")
    server = SimCameraServer(free_port(), [SimCamera("/cam1", small_clip, audio="aac")],
                             log_path=tmp / "camsim.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def recorder(tmp_path_factory, camera):
    """The real recorder, recording the camera for the whole module (2 s segments)."""
    data = tmp_path_factory.mktemp("pages") / "data"
    with RecorderProcess(data, {"cam": camera.url("/cam1")}, "--segment-seconds", "2") as rec:
        rec.wait_for(lambda e: e["event"] == "segment", 60, count=3, what="segments")
        yield rec, data
        assert rec.stop() == 0


@pytest.fixture(scope="module")
def site(tmp_path_factory, recorder, camera):
    _, data = recorder
    server = WebServer(data, tmp_path_factory.mktemp("pages-accounts") / "accounts.sqlite3",
                       {"cam": camera.url("/cam1")})
    yield server
    server.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory, site):
    chrome = Chromium(tmp_path_factory.mktemp("chromium-profile"))
    token = next(c.value for c in site.client.jar if c.name == COOKIE)
    chrome.set_cookie(site.base + "/", COOKIE, token)  # logged in as the test's admin
    yield chrome
    chrome.close()


def advancing(browser: Chromium, seconds: float, timeout: float) -> float:
    """Wait until the video's currentTime has moved on by `seconds`; the new time."""
    start = browser.evaluate(f"{VIDEO}.currentTime")
    return browser.wait_for(f"{VIDEO}.currentTime", timeout,
                            check=lambda t: t is not None and t >= start + seconds)


def test_a_click_on_the_timeline_plays_recorded_video(site, browser, recorder, tmp_path):
    _, data = recorder
    index = RecordingIndex(data, readonly=True)
    first = index.segments("cam")[0]
    index.close()
    day = datetime.fromtimestamp(first.start_us / 1e6, timezone.utc).date().isoformat()
    browser.navigate(f"{site.base}/timeline?camera=cam&day={day}")  # Chromium runs in UTC
    spans = browser.wait_for("window.vigilTimeline.loaded && vigilTimeline.spans.length", 15)
    assert spans >= 1, browser.evaluate("vigilTimeline.error")
    # A real mouse click just left of the first recorded span: it plays from its start.
    x, y = browser.evaluate("(() => { const r = document.querySelector('#bar .span')"
                            ".getBoundingClientRect(); return [r.left - 1, r.top + r.height / 2];"
                            " })()")
    for kind in ("mousePressed", "mouseReleased"):
        browser.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                     clickCount=1)
    assert browser.wait_for("vigilTimeline.player", 5) == "hls.js"
    advancing(browser, 1.0, 20)
    assert browser.evaluate(f"{VIDEO}.videoWidth") == 640
    assert browser.evaluate(f"{VIDEO}.paused") is False
    # hls.js maps the playhead to wall time through EXT-X-PROGRAM-DATE-TIME.
    playing_ms = browser.evaluate("vigilTimeline.playing.from")
    assert abs(playing_ms * 1000 - first.start_us) < 2_000_000
    browser.screenshot(tmp_path / "timeline.png")


def test_camera_events_are_drawn_on_the_timeline(site, browser, recorder):
    from appliance.recorder.index import Event

    _, data = recorder
    index = RecordingIndex(data)
    first = index.segments("cam")[0]
    index.add_event(Event("cam", "tamper", first.start_us, first.start_us + 2_000_000,
                          "tns1:VideoSource/GlobalSceneChange/ImagingService"))
    index.close()
    day = datetime.fromtimestamp(first.start_us / 1e6, timezone.utc).date().isoformat()
    browser.navigate(f"{site.base}/timeline?camera=cam&day={day}")
    title = browser.wait_for("document.querySelector('#bar .event.tamper')?.title", 15,
                             check=lambda t: bool(t))
    assert title.startswith("tamper ") and "GlobalSceneChange" in title


def test_the_live_page_shows_moving_frames_while_recording_goes_on(site, browser, recorder,
                                                                    tmp_path):
    rec, _ = recorder
    segments_before = len(rec.matching(event="segment"))
    browser.navigate(f"{site.base}/live?camera=cam")
    browser.wait_for(f"{VIDEO}.videoWidth > 0", 20)
    assert browser.evaluate(f"{VIDEO}.videoWidth") == 640
    advancing(browser, 2.0, 15)
    browser.pump(3.0)  # steady state: measure the last 3 s
    live = browser.evaluate("window.vigilLive")
    assert live["status"] == "Live" and live["codec"].startswith('video/mp4; codecs="avc1.')
    assert live["lag"] is not None and live["lag"] < 1.0, live
    # Frame by frame: read from RTSP by the box (monotonic, here) -> on the screen in
    # Chromium (requestVideoFrameCallback, wall clock); matched by presentation time.
    wall_minus_mono = time.time() - time.monotonic()
    timings = site.hub.timings("cam")
    shown = []
    since_ms = (time.time() - 3.0) * 1000
    for media_time, shown_ms in live["frames"]:
        if shown_ms < since_ms:
            continue
        match = min(timings, key=lambda t: abs(t.media_time - media_time))
        if abs(match.media_time - media_time) < 0.002:
            shown.append(shown_ms / 1000 - (match.arrived + wall_minus_mono))
    shown.sort()
    assert len(shown) >= 50, (len(shown), live["frames"][:5])
    p50, p95 = shown[len(shown) // 2], shown[int(0.95 * (len(shown) - 1))]
    print(f"\nlive view in Chromium: RTSP packet read -> frame on screen p50 {p50 * 1000:.0f} ms, "
          f"p95 {p95 * 1000:.0f} ms over {len(shown)} frames; the player keeps "
          f"{live['lag'] * 1000:.0f} ms of buffer ({live['stalls']} stalls, {live['jumps']} "
          "jumps); the box delivers fragments "
          f"{site.hub.stats()['cam']['latency_ms']} ms after reading them")
    assert p95 < 1.0
    browser.screenshot(tmp_path / "live.png")
    # Leaving the page ends the stream; the recorder was never disturbed.
    browser.navigate("about:blank")
    wait_until(lambda: not site.hub.upstream_running("cam"), 15, "the live upstream to close")
    assert len(rec.matching(event="segment")) > segments_before
