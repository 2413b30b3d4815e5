"""`nvr record --registry`: the recorder subscribes to the events of each registered
ONVIF camera (issue 11) while it records the camera's stream: a motion start/stop pair
on the camera is one event in the recorder's index, and stopping the recorder
unsubscribes."""

from __future__ import annotations

import pytest

from appliance.cameras.credentials import CredentialStore, Credentials
from appliance.cameras.registry import Camera, CameraRegistry, StreamInfo
from appliance.config.cameras import build_camera_settings
from appliance.recorder.index import RecordingIndex
from hw.camsim.server import SimCamera
from tests.integration.cameras.fakeevents import MOTION, EventCamera, notification
from tests.integration.recorder_process import RecorderProcess
from tests.waiting import wait_until

CREDS = Credentials("admin", "pa55 word")


def events_of(data, camera):
    index = RecordingIndex(data, readonly=True)
    try:
        return index.events(camera)
    finally:
        index.close()


@pytest.mark.timeout(180)
def test_the_recorder_records_and_subscribes_to_a_registered_onvif_camera(
        tmp_path, camera_server, small_clip):
    stream = camera_server(SimCamera("/door", small_clip))
    config = tmp_path / "config" / "recorder.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[cameras]\nallowed_networks = "127.0.0.0/8"\n')
    registry = CameraRegistry(tmp_path / "config" / "cameras.json",
                              CredentialStore(tmp_path / "secrets"), build_camera_settings({}))
    data = tmp_path / "data"
    with EventCamera() as onvif:
        registry.add(Camera("door", "Door", "127.0.0.1", StreamInfo(stream.url("/door")),
                            xaddr=onvif.xaddr), CREDS)
        with RecorderProcess(data, {}, "--registry", str(registry.path), "--secrets",
                             str(tmp_path / "secrets"), "--config", str(config),
                             "--segment-seconds", "2") as rec:
            rec.wait_for(lambda e: e["event"] == "durable" and e.get("camera") == "door", 60,
                         what="door recording")
            wait_until(lambda: onvif.count("CreatePullPointSubscription"), 30,
                       "the recorder subscribed to the camera's events")
            onvif.push(notification(MOTION, "true"))
            wait_until(lambda: [e for e in events_of(data, "door") if e.end_us is None], 20,
                       "an open motion event")
            onvif.push(notification(MOTION, "false"))
            wait_until(lambda: [e for e in events_of(data, "door") if e.end_us], 20,
                       "the motion event closed")
            assert rec.stop() == 0
        assert onvif.count("Unsubscribe") >= 1
    [event] = events_of(data, "door")
    assert event.kind == "motion" and event.topic == MOTION and event.end_us > event.start_us
