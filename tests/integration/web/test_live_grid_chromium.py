"""The live grid in a real headless Chromium (Debian's) against the real app on waitress,
two simulated RTSP cameras and a camera registry in tmp_path: every camera the user may
see plays in its own tile with its label (as text) and recording state; a click opens one
large; layouts page through the cameras; a hidden tab lets its streams go; a full box
(429) is explained on the tile, which plays once a slot frees; a viewer sees only the
cameras granted to them. Screenshots (desktop and phone) are kept under tmp_path."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest

from appliance.cameras.manage import open_camera_registry
from appliance.cameras.registry import Camera, StreamInfo
from appliance.recorder.index import RecordingIndex
from appliance.web.security import COOKIE
from appliance.web.services import WebPaths
from hw.camsim.server import SimCamera, SimCameraServer, free_port
from tests.integration.web.cdp import Chromium, find_chromium
from tests.integration.web.webserver import WebServer
from tests.integration.web_session import ApiClient
from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="Debian's chromium is not installed (make setup installs it; see the Makefile DEBS)")

# A label that would be markup if it were ever parsed as HTML.
HOSTILE_LABEL = '<b>Yard</b> & "gate" <img src=x onerror="window.pwned=1">'
LABELS = {"cam1": "Front door", "cam2": HOSTILE_LABEL}
VIEWER_PASSWORD = "a long viewer password"
GRID = "vigilLiveGrid()"


@pytest.fixture(scope="module")
def cameras(tmp_path_factory, small_clip):
    tmp = tmp_path_factory.mktemp("grid-cams")
    server = SimCameraServer(free_port(), [SimCamera("/cam1", small_clip, audio="aac"),
                                           SimCamera("/cam2", small_clip, audio="aac")],
                             log_path=tmp / "camsim.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def paths(tmp_path_factory, cameras) -> WebPaths:
    """The camera registry with both cameras (what GET /api/v1/cameras lists)."""
    root = tmp_path_factory.mktemp("grid-config")
    paths = WebPaths(registry=root / "cameras.json", secrets=root / "secrets")
    registry = open_camera_registry(paths.registry, paths.secrets)
    for name, label in LABELS.items():
        registry.add(Camera(id=name, label=label, host="127.0.0.1",
                            main=StreamInfo(uri=cameras.url(f"/{name}"))))
    return paths


def urls(cameras) -> dict[str, str]:
    return {name: cameras.url(f"/{name}") for name in LABELS}


@pytest.fixture(scope="module")
def site(tmp_path_factory, cameras, paths):
    tmp = tmp_path_factory.mktemp("grid-site")
    data = tmp / "data"
    # The recorder's state as it writes it to its index (the list shows it on the badges).
    index = RecordingIndex(data)
    now_us = int(time.time() * 1e6)
    index.write_status("cam1", "recording", "h264 640x360", now_us, {})
    index.write_status("cam2", "auth_failed", "the camera refused the login", now_us, {})
    index.close()
    server = WebServer(data, tmp / "accounts.sqlite3", urls(cameras), paths=paths)
    yield server
    server.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory, site):
    chrome = Chromium(tmp_path_factory.mktemp("grid-chromium"))
    yield chrome
    chrome.close()


def log_in(browser: Chromium, site: WebServer, client: ApiClient | None = None) -> None:
    """The browser uses `client`'s session (the site's admin by default). Cookies are per
    host, not per port: every test sets the one it needs."""
    client = client or site.client
    token = next(c.value for c in client.jar if c.name == COOKIE)
    browser.set_cookie(site.base + "/", COOKIE, token)


def grid(browser: Chromium) -> dict:
    return browser.evaluate(GRID)


def open_grid(browser: Chromium, site: WebServer, cameras: list[str], timeout: float = 30):
    """Navigate to /live and wait until the grid shows exactly `cameras`, all playing."""
    browser.navigate(f"{site.base}/live")
    return wait_tiles_live(browser, cameras, timeout)


def wait_tiles_live(browser: Chromium, cameras: list[str], timeout: float = 30) -> dict:
    return browser.wait_for(
        GRID, timeout, check=lambda g: [t["camera"] for t in g["tiles"]] == cameras and all(
            t["phase"] == "live" and t["videoWidth"] > 0 for t in g["tiles"]))


def tiles_advance(browser: Chromium, seconds: float, timeout: float) -> None:
    """Every tile's currentTime moves on by `seconds` (all pictures are moving)."""
    start = {t["camera"]: t["currentTime"] for t in grid(browser)["tiles"]}
    browser.wait_for(GRID, timeout, check=lambda g: all(
        t["currentTime"] >= start[t["camera"]] + seconds for t in g["tiles"]))


def viewers(site: WebServer, camera: str) -> int:
    return site.hub.stats().get(camera, {}).get("viewers", 0)


def rect(browser: Chromium, selector: str) -> dict:
    return browser.evaluate(f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                            ".getBoundingClientRect(); return {left: r.left, top: r.top, "
                            "right: r.right, bottom: r.bottom, width: r.width}; })()")


@pytest.mark.timeout(180)
def test_the_grid_plays_every_camera_with_its_label_and_state_on_desktop_and_phone(
        site, browser, tmp_path):
    log_in(browser, site)
    browser.navigate(f"{site.base}/live")
    shown = wait_tiles_live(browser, ["cam1", "cam2"])
    assert shown["mode"] == "grid" and shown["layout"] == 4 and shown["pages"] == 1
    # Labels are text: the hostile one shows as typed and makes no element.
    assert [t["label"] for t in shown["tiles"]] == [LABELS["cam1"], HOSTILE_LABEL]
    assert browser.evaluate("document.querySelectorAll('#grid b, #grid img').length") == 0
    assert browser.evaluate("window.pwned") is None
    assert [t["badge"] for t in shown["tiles"]] == ["Recording", "Login refused"]
    tiles_advance(browser, 1.5, 20)
    # One live viewer per tile, one camera connection per camera.
    assert (viewers(site, "cam1"), viewers(site, "cam2")) == (1, 1)
    assert {t["videoWidth"] for t in grid(browser)["tiles"]} == {640}
    assert browser.evaluate("vigilLive.camera") == "cam1"  # the first tile's player
    # Desktop: two tiles side by side.
    one, two = rect(browser, '.tile[data-camera="cam1"]'), rect(browser, '.tile[data-camera="cam2"]')
    assert abs(one["top"] - two["top"]) < 1 and two["left"] >= one["right"]
    browser.screenshot(tmp_path / "live-grid-desktop.png")

    # A phone: one column, nothing wider than the screen, still playing.
    browser.emulate_device(390, 844)
    try:
        browser.wait_for("(() => { const t = document.querySelectorAll('.tile'); return "
                         "t[1].getBoundingClientRect().top >= t[0].getBoundingClientRect()"
                         ".bottom; })()", 10)
        one, two = rect(browser, '.tile[data-camera="cam1"]'), rect(browser, '.tile[data-camera="cam2"]')
        width = browser.evaluate("window.innerWidth")
        assert width == 390
        assert abs(one["left"] - two["left"]) < 1 and one["width"] > 0.9 * width
        assert browser.evaluate("document.documentElement.scrollWidth") <= width
        tiles_advance(browser, 1.0, 20)
        browser.screenshot(tmp_path / "live-grid-phone.png")
    finally:
        browser.reset_device()
    assert (tmp_path / "live-grid-desktop.png").stat().st_size > 10_000
    assert (tmp_path / "live-grid-phone.png").stat().st_size > 10_000


@pytest.mark.timeout(180)
def test_a_click_on_a_tile_opens_it_large_and_back_returns_to_the_grid(site, browser,
                                                                       tmp_path):
    log_in(browser, site)
    open_grid(browser, site, ["cam1", "cam2"])
    browser.click(*browser.center_of('.tile[data-camera="cam2"]'))
    browser.wait_for("location.search", 10, check=lambda s: s == "?camera=cam2")
    assert grid(browser)["mode"] == "single"
    browser.wait_for("document.getElementById('video').videoWidth", 20, check=lambda w: w == 640)
    assert browser.evaluate("document.getElementById('single-label').textContent") == HOSTILE_LABEL
    assert browser.evaluate("document.getElementById('grid').hidden") is True
    start = browser.evaluate("document.getElementById('video').currentTime")
    browser.wait_for("document.getElementById('video').currentTime", 15,
                     check=lambda t: t >= start + 1.5)
    live = browser.evaluate("window.vigilLive")
    assert live["camera"] == "cam2" and live["status"] == "Live", live
    # The grid's streams are let go: only the large view watches now.
    wait_until(lambda: (viewers(site, "cam1"), viewers(site, "cam2")) == (0, 1), 15,
               "the grid's streams to end")
    browser.screenshot(tmp_path / "live-single.png")

    browser.click(*browser.center_of("#back"))
    wait_tiles_live(browser, ["cam1", "cam2"])
    assert browser.evaluate("location.search") == ""
    wait_until(lambda: (viewers(site, "cam1"), viewers(site, "cam2")) == (1, 1), 15,
               "one stream per tile")


@pytest.mark.timeout(180)
def test_layout_one_pages_through_the_cameras(site, browser):
    log_in(browser, site)
    open_grid(browser, site, ["cam1", "cam2"])
    try:
        browser.click(*browser.center_of('#layouts button[data-layout="1"]'))
        wait_tiles_live(browser, ["cam1"])
        assert browser.evaluate("document.getElementById('pageno').textContent") == "1 / 2"
        wait_until(lambda: viewers(site, "cam2") == 0, 15, "the tile of page 2 to let go")
        browser.click(*browser.center_of("#next"))
        wait_tiles_live(browser, ["cam2"])
        assert browser.evaluate("document.getElementById('pageno').textContent") == "2 / 2"
        wait_until(lambda: (viewers(site, "cam1"), viewers(site, "cam2")) == (0, 1), 15,
                   "only the shown camera to stream")
        # The layout is remembered across visits.
        browser.navigate(f"{site.base}/live")
        shown = wait_tiles_live(browser, ["cam1"])
        assert shown["layout"] == 1 and shown["pages"] == 2
    finally:
        browser.click(*browser.center_of('#layouts button[data-layout="4"]'))
    wait_tiles_live(browser, ["cam1", "cam2"])


@pytest.mark.timeout(180)
def test_a_hidden_tab_or_stop_lets_the_streams_go_and_they_play_again(site, browser):
    log_in(browser, site)
    open_grid(browser, site, ["cam1", "cam2"])
    other = browser.open_tab()  # in front: the live page is hidden
    try:
        browser.wait_for(GRID, 10, check=lambda g: all(t["phase"] == "paused"
                                                       for t in g["tiles"]))
        wait_until(lambda: (viewers(site, "cam1"), viewers(site, "cam2")) == (0, 0), 15,
                   "the hidden page's streams to end")
        browser.bring_to_front()
        wait_tiles_live(browser, ["cam1", "cam2"])
        tiles_advance(browser, 1.0, 20)
    finally:
        browser.close_tab(other)
    # The Stop button lets them go too, and Resume plays them again.
    browser.click(*browser.center_of("#stop"))
    browser.wait_for(GRID, 10, check=lambda g: all(t["phase"] == "stopped" for t in g["tiles"]))
    wait_until(lambda: (viewers(site, "cam1"), viewers(site, "cam2")) == (0, 0), 15,
               "the stopped streams to end")
    assert browser.evaluate("document.getElementById('stop').textContent") == "Resume"
    browser.click(*browser.center_of("#stop"))
    wait_tiles_live(browser, ["cam1", "cam2"])


class HeldStream:
    """A live stream held open by another client (it takes one of the box's slots)."""

    def __init__(self, base: str, client: ApiClient, camera: str) -> None:
        self.resp = client.opener.open(urllib.request.Request(
            f"{base}/api/v1/cameras/{camera}/live.mp4"), timeout=30)
        assert self.resp.status == 200
        self.bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = self.resp.read1(65536)
                if not chunk:
                    return
                self.bytes += len(chunk)
        finally:
            self.resp.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.mark.timeout(180)
def test_a_full_box_is_explained_on_the_tile_which_plays_once_a_slot_frees(
        cameras, paths, site, browser, tmp_path):
    # The simulated camera refuses a second video-only RTSP client while one plays a mount
    # (gst-rtsp-server shared media): let the module's site close its connections first.
    browser.navigate("about:blank")
    wait_until(lambda: not any(site.hub.upstream_running(c) for c in LABELS), 20,
               "the other site's camera connections to close")
    full = WebServer(tmp_path / "data", tmp_path / "accounts.sqlite3", urls(cameras),
                     live_settings={"max_viewers_total": 2, "max_viewers_per_camera": 2},
                     paths=paths)
    held = None
    try:
        held = HeldStream(full.base, full.client, "cam1")
        wait_until(lambda: held.bytes > 0, 20, "the held stream to flow")
        log_in(browser, full)
        browser.navigate(f"{full.base}/live")
        # One slot left for two tiles: one plays, the other says why it waits.
        shown = browser.wait_for(GRID, 30, check=lambda g: sorted(
            t["phase"] for t in g["tiles"]) == ["busy", "live"])
        busy = next(t for t in shown["tiles"] if t["phase"] == "busy")
        assert "Too many live viewers" in busy["status"], busy
        assert "max_viewers_total" in busy["status"] and "Next try in" in busy["status"], busy
        assert busy["retryAt"] is not None
        message = browser.evaluate(
            f"document.querySelector('.tile[data-camera=\"{busy['camera']}\"] .tile-msg')"
            ".textContent")
        assert message == busy["status"]
        assert browser.evaluate(  # an empty player, not a broken one
            f"document.querySelector('.tile[data-camera=\"{busy['camera']}\"] video').error") is None
        # It keeps asking, at a slow pace.
        browser.wait_for(GRID, 30, check=lambda g: next(
            t for t in g["tiles"] if t["camera"] == busy["camera"])["busy"] >= 2)
        browser.screenshot(tmp_path / "live-grid-busy.png")
        held.close()
        wait_tiles_live(browser, ["cam1", "cam2"], timeout=45)
        assert full.hub.stats()["cam1"]["viewers"] == 1
    finally:
        if held is not None:
            held.close()
        browser.navigate("about:blank")
        full.close()


@pytest.mark.timeout(180)
def test_a_viewer_granted_one_camera_sees_only_its_tile(site, browser):
    status, answer = site.client.json("POST", "/api/v1/users", {
        "username": "vera", "password": VIEWER_PASSWORD, "role": "viewer",
        "cameras": ["cam1"]})
    assert status == 201, answer
    vera = ApiClient(site.base).login("vera", VIEWER_PASSWORD)
    log_in(browser, site, vera)
    try:
        shown = open_grid(browser, site, ["cam1"])
        assert [t["label"] for t in shown["tiles"]] == [LABELS["cam1"]]
        assert browser.evaluate("document.body.textContent").count("Yard") == 0
        # Asking for the other camera directly: refused, said so, not retried.
        browser.navigate(f"{site.base}/live?camera=cam2")
        live = browser.wait_for("window.vigilLive", 15, check=lambda s: s["phase"] == "failed")
        assert live["status"] == "not allowed for this user" and live["reconnects"] == 0, live
        assert viewers(site, "cam2") == 0
    finally:
        log_in(browser, site)



@pytest.mark.timeout(180)
def test_nine_per_page_plays_four_at_once_and_says_why_the_others_wait(small_clip, browser,
                                                                       tmp_path):
    """A live stream holds one of the browser's six connections to the box for as long as
    it plays: the page plays four, so the API still answers while they play."""
    names = [f"cam{n}" for n in range(1, 6)]
    server = SimCameraServer(free_port(), [SimCamera(f"/{n}", small_clip, audio="aac")
                                           for n in names], log_path=tmp_path / "camsim.log")
    server.start()
    paths = WebPaths(registry=tmp_path / "cameras.json", secrets=tmp_path / "secrets")
    registry = open_camera_registry(paths.registry, paths.secrets)
    for name in names:
        registry.add(Camera(id=name, label=f"Camera {name[-1]}", host="127.0.0.1",
                            main=StreamInfo(uri=server.url(f"/{name}"))))
    five = WebServer(tmp_path / "data", tmp_path / "accounts.sqlite3",
                     {n: server.url(f"/{n}") for n in names}, paths=paths)
    try:
        log_in(browser, five)
        browser.navigate(f"{five.base}/live")
        browser.wait_for(GRID, 15, check=lambda g: len(g["tiles"]) == 4)  # layout 4: a page
        assert browser.evaluate("document.getElementById('pageno').textContent") == "1 / 2"
        browser.click(*browser.center_of('#layouts button[data-layout="9"]'))
        shown = browser.wait_for(GRID, 40, check=lambda g: [t["phase"] for t in g["tiles"]] ==
                                 ["live"] * 4 + ["standby"] and all(
                                     t["videoWidth"] > 0 for t in g["tiles"][:4]))
        assert shown["pages"] == 1 and [t["camera"] for t in shown["tiles"]] == names
        assert "plays 4 cameras at once" in shown["tiles"][4]["status"]
        assert browser.evaluate("document.getElementById('pager').hidden") is True
        assert sum(s["viewers"] for s in five.hub.stats().values()) == 4
        assert "cam5" not in five.hub.stats()
        assert browser.evaluate("fetch('/api/v1/me').then((r) => r.status)",
                                await_promise=True) == 200
        browser.screenshot(tmp_path / "live-grid-nine.png")
        # The fifth opens large like any other; the grid's four let go.
        browser.click(*browser.center_of('.tile[data-camera="cam5"]'))
        browser.wait_for("document.getElementById('video').videoWidth", 20,
                         check=lambda w: w == 640)
        wait_until(lambda: {c: s["viewers"] for c, s in five.hub.stats().items()
                            if s["viewers"]} == {"cam5": 1}, 15, "only the large view to stream")
    finally:
        browser.navigate("about:blank")
        five.close()
        server.stop()
