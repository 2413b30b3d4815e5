"""The cameras API on the real app (waitress) with a real camera registry, credential
store, settings file, licence store and recorder index in tmp_path; ONVIF cameras are
the strict fake camera on loopback. Roles, every refusal (licence, budget, duplicate,
SSRF addresses, names, types), hostile names that change nothing, credentials that never
come back, the recorder's state in the list, and the audit log."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from appliance.recorder.index import RecordingIndex
from tests.integration.cameras.fakecam import FakeCamera
from tests.integration.cameras.hostile import DiscoveryResponder
from tests.integration.web.manage_site import ManageSite

SECRET = "Cam-Secret-7q"
ENDPOINT = "urn:uuid:1a2b3c4d-0000-1111-2222-001122334455"   # the fake camera's


@pytest.fixture
def site(tmp_path):
    made = []

    def start(**kwargs) -> ManageSite:
        made.append(ManageSite(tmp_path / f"site{len(made)}", **kwargs))
        return made[-1]
    yield start
    for s in made:
        s.close()


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One site per module for the refusal tables (a refusal changes nothing, so they can
    share it): `loopback` allows 127.0.0.0/8, `default` has the default camera networks;
    each has one camera, "first"."""
    sites = {"loopback": ManageSite(tmp_path_factory.mktemp("loopback")),
             "default": ManageSite(tmp_path_factory.mktemp("default"), networks=None)}
    for one in sites.values():
        assert add_rtsp(one.admin, "first")[0] == 201
    yield sites
    for one in sites.values():
        one.close()


def add_rtsp(client, name: str, url: str = "rtsp://192.168.1.30:554/s1", **extra):
    return client.json("POST", "/api/v1/cameras", {"name": name, "rtsp": url, **extra})


def cameras(client) -> dict:
    status, body = client.json("GET", "/api/v1/cameras")
    assert status == 200, body
    return body


def whole_registry(s: ManageSite) -> str:
    """Every file the camera registry and its credentials consist of."""
    return "".join(p.read_text() for p in [s.registry, *s.secrets.glob("*")] if p.is_file())


# --- adding, listing, credentials ----------------------------------------------------------

def test_add_by_rtsp_url_list_and_the_password_never_comes_back(site):
    s = site()
    status, body = add_rtsp(s.admin, "gate", label="Gate", sub="rtsp://192.168.1.30:554/s2",
                            bitrate_kbps=4000, username="admin", password=SECRET)
    assert status == 201, body
    cam = body["camera"]
    assert (cam["id"], cam["label"], cam["address"], cam["enabled"]) == \
        ("gate", "Gate", "192.168.1.30", True)
    assert cam["main"]["uri"] == "rtsp://192.168.1.30:554/s1" and cam["has_login"] is True
    listed = cameras(s.admin)
    assert [c["id"] for c in listed["cameras"]] == ["gate"]
    assert listed["licence"] == {"used": 1, "allowed": 8}
    assert listed["bandwidth"] == {"used_kbps": 4000 + 512, "budget_kbps": 64000}
    assert listed["cameras"][0]["recording"]["state"] == "waiting"
    assert SECRET not in json.dumps(body) + json.dumps(listed)
    assert SECRET not in s.registry.read_text()               # only in the 0600 store
    assert oct((s.secrets / "gate.json").stat().st_mode & 0o777) == "0o600"
    [entry] = [e for e in s.audit() if e["what"] == "camera_added"]
    assert entry["who"] == "owner" and entry["detail"].startswith("gate (Gate) by RTSP")
    assert SECRET not in json.dumps(s.audit())


@pytest.mark.timeout(60)
def test_add_an_onvif_camera_and_replace_its_password(site):
    s = site()
    with FakeCamera(password=SECRET) as cam:
        status, body = s.admin.json("POST", "/api/v1/cameras", {
            "name": "lobby", "label": "Lobby", "xaddr": cam.xaddr, "username": "admin",
            "password": SECRET, "rotate_password": True})
        assert status == 201, body
        assert body["password_rotated"] is True
        assert cam.password != SECRET                 # the camera has the new one ...
        stored = json.loads((s.secrets / "lobby.json").read_text())
        assert stored["password"] == cam.password     # ... and so has the box
        listed = cameras(s.admin)["cameras"][0]
        assert (listed["maker"], listed["model"], listed["onvif"]) == \
            ("HIKVISION", "DS-2CD2143G2-I", True)
        assert listed["main"]["codec"] == "h265" and listed["main"]["resolution"]
        assert listed["sub"] is not None
        status, done = s.admin.json("POST", "/api/v1/cameras/lobby/rotate-password", {})
        assert status == 200 and done["rotated"] is True, done
        assert json.loads((s.secrets / "lobby.json").read_text())["password"] == cam.password
        every_answer = json.dumps([body, listed, done, s.audit()])
        assert SECRET not in every_answer and cam.password not in every_answer
        # the same device again, under another name: refused, nothing added
        status, again = s.admin.json("POST", "/api/v1/cameras", {
            "name": "lobby2", "xaddr": cam.xaddr, "username": "admin", "password": cam.password})
    assert status == 409 and "already added as lobby" in again["error"]
    assert [c["id"] for c in cameras(s.admin)["cameras"]] == ["lobby"]
    whats = [e["what"] for e in s.audit()]
    assert {"camera_added", "camera_password_rotated", "camera_add_refused"} <= set(whats)


def test_rtsp_cameras_cannot_have_their_password_rotated(site):
    s = site()
    add_rtsp(s.admin, "gate")
    status, body = s.admin.json("POST", "/api/v1/cameras/gate/rotate-password", {})
    assert status == 409 and "not added over ONVIF" in body["error"]
    assert s.admin.json("POST", "/api/v1/cameras/nope/rotate-password", {})[0] == 404


# --- roles --------------------------------------------------------------------------------

def test_role_matrix(site):
    s = site()
    for name in ("door", "yard"):
        assert add_rtsp(s.admin, name, username="admin", password=SECRET)[0] == 201
    viewer = s.user("watcher", "viewer", ("yard",))
    operator = s.user("guard", "operator")
    seen = cameras(viewer)
    assert [c["id"] for c in seen["cameras"]] == ["yard"]          # only what was granted
    assert "address" not in seen["cameras"][0] and "uri" not in seen["cameras"][0]["main"]
    assert "licence" not in seen and "bandwidth" not in seen
    assert [c["id"] for c in cameras(operator)["cameras"]] == ["door", "yard"]
    assert cameras(operator)["cameras"][0]["address"] == "192.168.1.30"
    before = s.registry_bytes()
    for client in (viewer, operator):
        for method, path, body in (
                ("POST", "/api/v1/cameras", {"name": "x", "rtsp": "rtsp://192.168.1.9/"}),
                ("PATCH", "/api/v1/cameras/door", {"enabled": False}),
                ("DELETE", "/api/v1/cameras/door", {}),
                ("POST", "/api/v1/cameras/discover", {"timeout": 0.5}),
                ("POST", "/api/v1/cameras/door/rotate-password", {})):
            assert client.json(method, path, body)[0] == 403, (method, path)
    assert s.registry_bytes() == before
    from tests.integration.web_session import ApiClient
    assert ApiClient(s.base).json("GET", "/api/v1/cameras")[0] == 401


# --- refusals -------------------------------------------------------------------------------

def test_the_camera_beyond_the_licence_is_refused(site):
    s = site(channels=2)
    assert add_rtsp(s.admin, "cam1", "rtsp://192.168.1.31/")[0] == 201
    assert add_rtsp(s.admin, "cam2", "rtsp://192.168.1.32/")[0] == 201
    before = s.registry_bytes()
    status, body = add_rtsp(s.admin, "cam3", "rtsp://192.168.1.33/")
    assert status == 429 and "the licence allows 2 cameras" in body["error"]
    assert s.registry_bytes() == before
    # added disabled, it fits; enabling it does not
    assert add_rtsp(s.admin, "cam3", "rtsp://192.168.1.33/", enabled=False)[0] == 201
    status, body = s.admin.json("PATCH", "/api/v1/cameras/cam3", {"enabled": True})
    assert status == 429 and "licence" in body["error"]
    assert cameras(s.admin)["licence"] == {"used": 2, "allowed": 2}
    assert [c["enabled"] for c in cameras(s.admin)["cameras"]] == [True, True, False]


def test_concurrent_adds_never_exceed_the_licence(site):
    import threading

    s = site(channels=2)
    results = []

    def attempt(i: int) -> None:
        results.append(add_rtsp(s.admin, f"cam{i}", f"rtsp://192.168.1.{40 + i}/")[0])
    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [201, 201, 429, 429, 429, 429]
    assert len(cameras(s.admin)["cameras"]) == 2


def test_the_bandwidth_budget(site):
    s = site(budget_mbps=10)
    assert add_rtsp(s.admin, "big", "rtsp://192.168.1.31/", bitrate_kbps=6000)[0] == 201
    before = s.registry_bytes()
    status, body = add_rtsp(s.admin, "bigger", "rtsp://192.168.1.32/", bitrate_kbps=6000)
    assert status == 429 and "incoming bandwidth" in body["error"] and "6.0 Mb/s" in body["error"]
    assert s.registry_bytes() == before


def test_a_duplicate_name_is_refused(site):
    s = site()
    assert add_rtsp(s.admin, "gate")[0] == 201
    before = s.registry_bytes()
    status, body = add_rtsp(s.admin, "gate", "rtsp://192.168.1.99/")
    assert status == 409 and "already exists" in body["error"]
    assert s.registry_bytes() == before


@pytest.mark.parametrize("url, words", [
    ("http://192.168.1.30/stream", "only rtsp:// or rtsps://"),
    ("file:///etc/passwd", "only rtsp:// or rtsps://"),
    ("exec:/bin/sh", "only rtsp:// or rtsps://"),
    ("ffmpeg:rtsp://192.168.1.30/", "only rtsp:// or rtsps://"),
    ("-i /etc/passwd", "spaces"),
    ("rtsp://192.168.1.30/a b", "spaces"),
    ("rtsp://192.168.1.30/\nx", "control characters"),
    ("rtsp://169.254.169.254/latest/meta-data", "link-local"),
    ("rtsp://[fe80::1]/", "link-local"),
    ("rtsp://100.100.100.200/", "metadata"),
    ("rtsp://0.0.0.0/", "unspecified"),
    ("rtsp://224.0.0.1/", "multicast"),
    ("rtsp://8.8.8.8/", "outside the allowed camera networks"),
    ("rtsp://2130706433/", "loopback"),          # 127.0.0.1 spelled as a number
    ("rtsp://127.0.0.1/", "loopback"),
    ("rtsp://admin:pw@192.168.1.30/", "user name or password"),
    ("rtsp:///nohost", "no host"),
    ("rtsp://192.168.1.30:99999/", "invalid port"),
    ("rtsp://" + "a" * 3000, "at most 2048 characters"),
    ("", "give the address"),
    (["rtsp://192.168.1.30/"], "give the address"),
])
def test_bad_stream_urls_are_refused(shared, url, words):
    s = shared["default"]                   # the default camera networks: no loopback
    before = s.registry_bytes()
    status, body = add_rtsp(s.admin, "cam", url)
    assert status == 400 and words in body["error"], body
    assert s.registry_bytes() == before


def test_loopback_is_a_camera_network_only_when_named_and_never_the_boxs_own_services(site):
    s = site(networks="127.0.0.0/8")
    for port in (22, 80, 443, s.port):
        status, body = add_rtsp(s.admin, "cam", f"rtsp://127.0.0.1:{port}/")
        assert status == 400 and "this appliance's own services" in body["error"], port
    status, body = add_rtsp(s.admin, "cam", "rtsp://127.0.0.1:8554/cam1",
                            sub=f"rtsp://127.0.0.1:{s.port}/")
    assert status == 400 and "own services" in body["error"]
    assert not s.registry.exists()
    assert add_rtsp(s.admin, "cam", "rtsp://127.0.0.1:8554/cam1")[0] == 201


@pytest.mark.timeout(30)
def test_onvif_addresses_are_checked_before_anything_is_sent(site):
    s = site(networks=None)
    with FakeCamera() as cam:
        status, body = s.admin.json("POST", "/api/v1/cameras", {
            "name": "lobby", "xaddr": cam.xaddr, "username": "admin", "password": "pa55 word"})
        assert status == 400 and "loopback" in body["error"]
        assert cam.requests == []
    for xaddr, words in (("http://169.254.169.254/onvif/device_service", "link-local"),
                         ("gopher://192.168.1.20/", "only http:// or https://"),
                         ("http://8.8.8.8/onvif/device_service", "outside")):
        status, body = s.admin.json("POST", "/api/v1/cameras", {"name": "x", "xaddr": xaddr})
        assert status == 400 and words in body["error"], xaddr
    assert not s.registry.exists()


CANARY = Path("/tmp/canary")
HOSTILE_NAMES = ['<img src=x onerror=alert(1)>', "$(touch /tmp/canary)", "`touch /tmp/canary`",
                 "cam; touch /tmp/canary", "../../etc", "..", "/etc/passwd", "a" * 10_000,
                 "cam\x00x", "cam\nx", " cam", "cam%2e%2e", "кам", "", None, 1, 1.5, True,
                 ["cam"], {"name": "cam"}, "' OR 1=1--"]


def canary() -> int | None:
    """/tmp/canary's modification time (None: absent): a shell running `touch` changes it."""
    try:
        return CANARY.stat().st_mtime_ns
    except FileNotFoundError:
        return None


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: repr(n)[:30])
def test_hostile_names_are_refused_and_change_nothing(shared, name):
    s = shared["loopback"]
    touched = canary()
    before = s.registry_bytes()
    status, body = add_rtsp(s.admin, name)
    assert status == 400 and "camera name" in body["error"], body
    if name not in (None, "") and (not isinstance(name, str) or not name.strip() or
                                   len(name) > 64 or any(ord(c) < 32 for c in name)):
        # as a label too (other text is a fine label; none or "" means "use the name")
        status, body = add_rtsp(s.admin, "second", label=name)
        assert status == 400 and "label" in body["error"], body
    assert s.registry_bytes() == before
    assert canary() == touched
    assert [c["id"] for c in cameras(s.admin)["cameras"]] == ["first"]


def test_a_label_is_free_text_stored_as_typed(site):
    """Labels are shown with textContent: markup in one is text, not refused."""
    s = site()
    xss = '<img src=x onerror=alert(1)>'
    status, body = add_rtsp(s.admin, "door", label=xss)
    assert status == 201 and body["camera"]["label"] == xss
    assert cameras(s.admin)["cameras"][0]["label"] == xss
    for bad in ("a" * 65, "a\x00b", "a\u202eb", "   ", "line\nbreak", 5, ["x"]):
        status, body = s.admin.json("PATCH", "/api/v1/cameras/door", {"label": bad})
        assert status == 400 and "label" in body["error"], bad
    assert cameras(s.admin)["cameras"][0]["label"] == xss


@pytest.mark.parametrize("body, words", [
    ([], "JSON object"),
    ("gate", "JSON object"),
    ({"name": "cam"}, "one of the two"),
    ({"name": "cam", "rtsp": "rtsp://192.168.1.30/", "xaddr": "http://192.168.1.30/"},
     "one of the two"),
    ({"name": "cam", "rtsp": "rtsp://192.168.1.30/", "bitrate_kbps": "8"}, "bitrate_kbps"),
    ({"name": "cam", "rtsp": "rtsp://192.168.1.30/", "bitrate_kbps": -1}, "bitrate_kbps"),
    ({"name": "cam", "rtsp": "rtsp://192.168.1.30/", "bitrate_kbps": 2 ** 63}, "bitrate_kbps"),
    ({"name": "cam", "rtsp": "rtsp://192.168.1.30/", "bitrate_kbps": 1.5}, "bitrate_kbps"),
    ({"name": "cam", "rtsp": "rtsp://192.168.1.30/", "bitrate_kbps": True}, "bitrate_kbps"),
    ({"name": "cam", "rtsp": "rtsp://192.168.1.30/", "enabled": "yes"}, "true or false"),
    ({"name": "cam", "rtsp": "rtsp://192.168.1.30/", "username": "admin"}, "give both"),
    ({"name": "cam", "rtsp": "rtsp://192.168.1.30/", "username": ["a"], "password": "x"},
     "give both"),
    ({"name": "cam", "rtsp": "rtsp://192.168.1.30/", "username": "a", "password": "x\ny"},
     "control characters"),
    ({"name": "cam", "rtsp": "rtsp://192.168.1.30/", "username": "a", "password": "x" * 129},
     "1-128"),
    ({"name": "cam", "rtsp": "rtsp://192.168.1.30/", "rotate_password": True}, "ONVIF"),
    ({"name": "cam", "xaddr": "http://192.168.1.30/", "sub": "rtsp://192.168.1.30/2"},
     "for cameras added by RTSP URL"),
    ({"name": "cam", "xaddr": "http://192.168.1.30/", "rotate_password": True},
     "current username and password"),
    ({"name": "cam", "rtsp": "rtsp://192.168.1.30/", "sub": 7}, "give the address"),
    ({"name": "cam", "rtsp": "rtsp://192.168.1.30/", "id[]": "x"}, "unknown field"),
    ({"name": "cam", "rtsp": "rtsp://192.168.1.30/", "poe_port": "Port 1"}, "unknown field"),
])
def test_type_confusion_and_contradictions_are_refused(shared, body, words):
    s = shared["loopback"]
    before = s.registry_bytes()
    status, answer = s.admin.json("POST", "/api/v1/cameras", body)
    assert status == 400 and words in answer["error"], answer
    assert s.registry_bytes() == before


def test_non_json_and_non_finite_numbers(site):
    s = site()
    status, _ = s.admin.request("POST", "/api/v1/cameras", None, {
        "Content-Type": "text/plain"})
    assert status == 415
    raw = b'{"name": "cam", "rtsp": "rtsp://192.168.1.30/", "bitrate_kbps": NaN}'
    import urllib.request
    req = urllib.request.Request(s.base + "/api/v1/cameras", data=raw, method="POST", headers={
        "Content-Type": "application/json", "X-CSRF-Token": s.admin.csrf})
    try:
        s.admin.opener.open(req, timeout=10)
        status = 201
    except urllib.error.HTTPError as err:
        status = err.code
    assert status == 400 and not s.registry.exists()


# --- changes and removal -------------------------------------------------------------------

def test_change_label_enabled_and_poe_port(site):
    s = site()
    add_rtsp(s.admin, "door", username="admin", password=SECRET)
    status, body = s.admin.json("PATCH", "/api/v1/cameras/door",
                                {"label": "Front door", "enabled": False, "poe_port": "Port 3"})
    assert status == 200, body
    cam = body["camera"]
    assert (cam["label"], cam["enabled"], cam["poe_port"]) == ("Front door", False, "Port 3")
    assert cam["recording"]["state"] == "disabled"
    assert cameras(s.admin)["licence"]["used"] == 0
    status, body = s.admin.json("PATCH", "/api/v1/cameras/door", {"enabled": True})
    assert status == 200 and body["camera"]["enabled"] is True
    before = s.registry_bytes()
    for bad in ({}, {"name": "door2"}, {"enabled": "false"}, {"enabled": None},
                {"poe_port": 3}, {"poe_port": "Port 3; reboot"}, {"label": None}):
        status, body = s.admin.json("PATCH", "/api/v1/cameras/door", bad)
        assert status == 400, (bad, body)
    assert s.admin.json("PATCH", "/api/v1/cameras/nope", {"enabled": False})[0] == 404
    assert s.admin.json("PATCH", "/api/v1/cameras/..%2F..%2Fetc", {"enabled": False})[0] == 404
    assert s.admin.json("PATCH", "/api/v1/cameras/%24(id)", {"enabled": False})[0] == 400
    assert s.registry_bytes() == before
    changes = [e["detail"] for e in s.audit() if e["what"] == "camera_changed"]
    assert changes[-1] == "door: disabled, label 'Front door', PoE port 'Port 3'"


def test_remove_keeps_the_recordings_and_says_so(site):
    s = site()
    add_rtsp(s.admin, "door", username="admin", password=SECRET)
    recording = s.data / "recordings" / "door" / "2026-01-01" / "00" / "x.mp4"
    recording.parent.mkdir(parents=True)
    recording.write_bytes(b"\0" * 100)
    status, body = s.admin.json("DELETE", "/api/v1/cameras/door", {})
    assert status == 200 and body["recordings"] == "kept" and "recordings stay" in body["note"]
    assert recording.exists() and not (s.secrets / "door.json").exists()
    assert cameras(s.admin)["cameras"] == []
    assert s.admin.json("DELETE", "/api/v1/cameras/door", {})[0] == 404
    [entry] = [e for e in s.audit() if e["what"] == "camera_removed"]
    assert entry["who"] == "owner" and entry["detail"].startswith("door")


# --- the recorder's view -----------------------------------------------------------------

def test_the_list_shows_the_recorders_state_and_last_error_without_credentials(site):
    s = site()
    for name in ("door", "yard", "shed"):
        add_rtsp(s.admin, name, username="admin", password=SECRET)
    assert cameras(s.admin)["recorder"]["ok"] is False            # no index yet
    now_us = int(time.time() * 1e6)
    index = RecordingIndex(s.data)
    index.write_status("door", "recording", "h264 1920x1080", now_us, {"bitrate_bps": 4e6})
    index.write_status("yard", "auth_failed", "the camera refused rtsp://admin:***@192.168.1.30/"
                       "s1; next try in 60 s", now_us,
                       {"last_gap": {"cause": "auth_failed", "detail": "401 from "
                                     "rtsp://admin@192.168.1.30/s1", "start_us": now_us,
                                     "end_us": None}})
    index.write_status("shed", "recording", "", now_us - 120_000_000, {})
    index.close()
    listed = {c["id"]: c["recording"] for c in cameras(s.admin)["cameras"]}
    assert listed["door"]["state"] == "recording" and listed["door"]["last_error"] == ""
    assert listed["yard"]["state"] == "auth_failed"
    assert listed["yard"]["last_error"].startswith("the camera refused rtsp://192.168.1.30/s1")
    assert listed["yard"]["last_gap"]["detail"] == "401 from rtsp://192.168.1.30/s1"
    assert listed["shed"]["stale"] is True and listed["shed"]["heartbeat_age_s"] >= 119
    assert "admin" not in json.dumps(listed)
    viewer = s.user("watcher", "viewer", ("yard",))
    [seen] = cameras(viewer)["cameras"]
    assert seen["recording"]["last_error"].startswith("the camera refused (the camera)")
    assert "192.168" not in json.dumps(seen)


# --- discovery ---------------------------------------------------------------------------

def probe_match(message_id: str, endpoint: str, xaddr: str, name: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
            'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
            'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"><s:Header>'
            f"<a:RelatesTo>{message_id}</a:RelatesTo></s:Header><s:Body><d:ProbeMatches>"
            f"<d:ProbeMatch><a:EndpointReference><a:Address>{endpoint}</a:Address>"
            "</a:EndpointReference><d:Types>dn:NetworkVideoTransmitter</d:Types>"
            f"<d:Scopes>onvif://www.onvif.org/name/{name}</d:Scopes>"
            f"<d:XAddrs>{xaddr}</d:XAddrs></d:ProbeMatch></d:ProbeMatches></s:Body>"
            "</s:Envelope>").encode()


@pytest.mark.timeout(60)
def test_discovery_suggests_and_marks_the_cameras_already_added(site):
    s = site()
    with FakeCamera(host="127.0.0.2") as cam:
        assert s.admin.json("POST", "/api/v1/cameras", {
            "name": "lobby", "xaddr": cam.xaddr, "username": "admin",
            "password": "pa55 word"})[0] == 201
        stranger = "urn:uuid:99999999-8888-7777-6666-555555555555"
        with DiscoveryResponder(lambda mid: [
                probe_match(mid, ENDPOINT, cam.xaddr, "Lobby"),
                probe_match(mid, stranger, "http://127.0.0.2:8999/onvif/device_service",
                            "%3Cscript%3Ealert(1)%3C/script%3E"),
                probe_match(mid, "urn:uuid:00000000-0000-0000-0000-000000000001",
                            "http://169.254.169.254/onvif/device_service", "Meta")],
                host="127.0.0.2") as responder:
            requests_before = len(cam.requests)
            started = time.monotonic()
            status, body = s.admin.json("POST", "/api/v1/cameras/discover", {
                "timeout": 0.5, "addresses": ["127.0.0.2"], "port": responder.port})
            took = time.monotonic() - started
            assert len(cam.requests) == requests_before   # suggestions: nothing fetched
    assert status == 200, body
    assert took < 5
    found = {d["endpoint"]: d for d in body["devices"]}
    assert found[ENDPOINT]["registered_as"] == "lobby"
    assert found[stranger]["registered_as"] is None
    assert found[stranger]["name"] == "<script>alert(1)</script>"   # data; the page shows text
    assert found[stranger]["usable_xaddrs"] == ["http://127.0.0.2:8999/onvif/device_service"]
    meta = found["urn:uuid:00000000-0000-0000-0000-000000000001"]
    assert meta["usable_xaddrs"] == [] and "link-local" in meta["xaddrs"][0]["refused"]
    assert any(e["what"] == "camera_discovery" for e in s.audit())


@pytest.mark.parametrize("body, words", [
    ({"timeout": 60}, "timeout"), ({"timeout": "3"}, "timeout"), ({"timeout": True}, "timeout"),
    ({"timeout": 0}, "timeout"), ({"addresses": "127.0.0.2"}, "addresses"),
    ({"addresses": ["1.2.3.4"] * 17}, "addresses"), ({"addresses": [1]}, "addresses"),
    ({"addresses": ["169.254.169.254"], "timeout": 0.5}, "link-local"),
    ({"addresses": ["127.0.0.1"], "timeout": 0.5, "port": 443}, "own services"),
    ({"addresses": ["not a host!"], "timeout": 0.5}, "not an IP address"),
    ({"addresses": ["door"], "timeout": 0.5}, "not an IP address"),  # no lookups
    ({"port": 0}, "port"), ({"interface": "eth0"}, "unknown field"),
])
def test_discovery_bounds(shared, body, words):
    s = shared["loopback"]
    status, answer = s.admin.json("POST", "/api/v1/cameras/discover", body)
    assert status == 400 and words in answer["error"], answer


def test_nothing_leaks_the_password_anywhere(site):
    """An authenticated walk of every GET of this API, for every role, never shows it."""
    s = site()
    add_rtsp(s.admin, "door", username="admin", password=SECRET)
    add_rtsp(s.admin, "yard", "rtsp://192.168.1.31/", username="admin",
             password=SECRET + "2")
    for client in (s.admin, s.user("guard", "operator"), s.user("watcher", "viewer", ("door",))):
        status, raw = client.request("GET", "/api/v1/cameras")
        assert status == 200 and SECRET.encode() not in raw
    assert os.stat(s.secrets).st_mode & 0o777 == 0o700
