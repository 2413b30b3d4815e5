"""Recording modes through the web API (issue 11): admin only, all or nothing, unknown
cameras and bad schedules refused with the reason, the file the recorder reads written
atomically, every change audited."""

from __future__ import annotations

import json

import pytest

from appliance.cameras.registry import Camera, StreamInfo
from appliance.recorder.recording_settings import recording_settings_path
from tests.integration.web.manage_site import ManageSite

SCHEDULE = {"timezone": "Europe/Berlin", "default": "events",
            "week": {"mon": [["08:00", "18:00", "continuous"]]},
            "holidays": {"2026-12-25": "sunday"}}


@pytest.fixture
def site(tmp_path):
    s = ManageSite(tmp_path / "site")
    from appliance.cameras.manage import open_camera_registry

    reg = open_camera_registry(s.registry, s.secrets, s.config)
    for name in ("door", "yard"):
        reg.add(Camera(name, name, "127.0.0.1", StreamInfo(f"rtsp://127.0.0.1:8554/{name}")))
    yield s
    s.close()


def test_modes_and_schedules_are_saved_for_the_recorder_and_audited(site):
    status, body = site.admin.json("GET", "/api/v1/recording")
    assert status == 200 and body["cameras"] == {} and "events" in body["modes"]
    status, body = site.admin.json("PUT", "/api/v1/recording", {"cameras": {
        "door": {"mode": "events", "pre_event_s": 4, "post_event_s": 8},
        "yard": {"schedule": SCHEDULE, "event_max_age_days": 90}}})
    assert status == 200, body
    saved = json.loads(recording_settings_path(site.config).read_text())
    assert saved["cameras"]["door"]["mode"] == "events"
    assert saved["cameras"]["yard"]["schedule"]["timezone"] == "Europe/Berlin"
    assert any(e["what"] == "recording_changed" and "door: continuous (default) -> events"
               in e["detail"] for e in site.audit())
    status, body = site.admin.json("PUT", "/api/v1/recording", {"cameras": {"door": None}})
    assert status == 200 and set(body["cameras"]) == {"yard"}


@pytest.mark.parametrize("cameras, words", [
    ({"garage": {"mode": "events"}}, "no camera named garage"),
    ({"door": {"mode": "sometimes"}}, "door"),
    ({"door": {"mode": "events", "schedule": SCHEDULE}}, "not both"),
    ({"door": {"pre_event_s": -1}}, "pre_event_s"),
    ({"door": {"pre_event_s": "5"}}, "pre_event_s"),
    ({"door": {"post_event_s": 1e9}}, "post_event_s"),
    ({"door": {"schedule": {**SCHEDULE, "timezone": "../../etc/passwd"}}}, "door"),
    ({"door": {"schedule": {"week": {"mon": [["18:00", "08:00", "continuous"]]}}}}, "door"),
    ({"door": {"mode": "$(touch /tmp/vigil-canary)"}}, "door"),
    ({"door": {"x": 1}}, "unknown setting"),
    (["door"], "cameras"),
    ({"door": {"mode": "events"}, "yard": {"mode": "bogus"}}, "yard"),  # all or nothing
])
def test_bad_changes_are_refused_and_change_nothing(site, cameras, words):
    site.admin.json("PUT", "/api/v1/recording", {"cameras": {"door": {"mode": "continuous"}}})
    before = recording_settings_path(site.config).read_bytes()
    status, body = site.admin.json("PUT", "/api/v1/recording", {"cameras": cameras})
    assert status == 400 and words in body["error"], body
    assert recording_settings_path(site.config).read_bytes() == before


def test_only_admins_change_recording_modes(site):
    operator = site.user("guard", "operator")
    viewer = site.user("visitor", "viewer", ("door",))
    for client in (operator, viewer):
        assert client.json("GET", "/api/v1/recording")[0] == 403
        assert client.json("PUT", "/api/v1/recording",
                           {"cameras": {"door": {"mode": "off"}}})[0] == 403
    assert not recording_settings_path(site.config).exists()
