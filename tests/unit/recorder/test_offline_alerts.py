"""A camera that stops recording is an alert for the owner after a minute (with the
reason), once; recording again clears it; cameras off on purpose are not alerts."""

from __future__ import annotations

from appliance.config.recorder import build_settings
from appliance.core.clock import SimulatedClock
from appliance.recorder.index import RecordingIndex
from appliance.recorder.service import OFFLINE_ALERT_S, CameraView, Recorder


def view(name: str, state: str, detail: str = "") -> CameraView:
    return CameraView(name, state, detail, 0.0, 0, {})


def test_one_alert_per_outage_with_the_reason_then_cleared(tmp_path):
    clock = SimulatedClock()
    rec = Recorder(tmp_path, [], build_settings({}), clock=clock)
    rec.index = RecordingIndex(tmp_path)
    try:
        def tick(*views):
            rec._camera_offline_alerts(list(views), clock.monotonic())

        tick(view("door", "recording"), view("yard", "outside_schedule"),
             view("gate", "not_licensed"))
        tick(view("door", "retrying", "the camera did not answer within 10 s"))
        clock.advance(OFFLINE_ALERT_S - 1)
        tick(view("door", "retrying", "the camera did not answer within 10 s"))
        assert rec.index.alerts() == []                     # a short hiccup is no alert
        clock.advance(2)
        for _ in range(3):
            tick(view("door", "auth_failed", "wrong password"),
                 view("yard", "outside_schedule"), view("gate", "not_licensed"))
            clock.advance(30)
        [alert] = rec.index.alerts()
        assert (alert["severity"], alert["source"]) == ("warning", "camera:door")
        assert "has not recorded for 61 s" in alert["message"]
        assert "wrong password" in alert["message"]
        tick(view("door", "recording"))
        cleared = rec.index.alerts()[-1]
        assert (cleared["severity"], cleared["source"]) == ("info", "camera:door")
        assert "recording again" in cleared["message"]
        assert len(rec.index.alerts()) == 2
    finally:
        rec.index.close()
