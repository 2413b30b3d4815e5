"""The state machine: property notifications -> events with start and end, in a real
index (SQLite in tmp_path)."""

from __future__ import annotations


from appliance.cameras.onvif.events import Notification
from appliance.events.state import ALERT_REPEAT_US, EventTracker

S = 1_000_000
T0 = 1_800_000_000 * S
MOTION = "tns1:VideoSource/MotionAlarm"
SRC = (("Source", "vsc1"),)


def note(topic=MOTION, state="true", operation="Changed", source=SRC, data_name="State"):
    data = ((data_name, state),) if state is not None else ()
    return Notification(topic, None, operation, source, data)


def spans(index, camera="cam"):
    return [(e.kind, e.start_us - T0, None if e.end_us is None else e.end_us - T0)
            for e in index.events(camera)]


def test_true_opens_false_closes(index):
    t = EventTracker("cam", index)
    t.handle(note(state="true"), T0 + 1 * S)
    assert spans(index) == [("motion", S, None)]
    t.handle(note(state="true"), T0 + 2 * S)          # a repeat changes nothing
    t.handle(note(state="false"), T0 + 5 * S)
    assert spans(index) == [("motion", S, 5 * S)]
    ev = index.events("cam")[0]
    assert ev.topic == MOTION and "Source=vsc1" in ev.detail
    t.handle(note(state="false"), T0 + 6 * S)         # false without an open event: nothing
    assert len(index.events("cam")) == 1


def test_sources_are_separate_events(index):
    t = EventTracker("cam", index)
    t.handle(note(source=(("Source", "vsc1"),)), T0)
    t.handle(note(source=(("Source", "vsc2"),)), T0 + S)
    t.handle(note(state="false", source=(("Source", "vsc1"),)), T0 + 2 * S)
    assert spans(index) == [("motion", 0, 2 * S), ("motion", S, None)]


def test_initialized_true_opens_and_false_does_nothing(index):
    t = EventTracker("cam", index)
    t.handle(note(state="false", operation="Initialized"), T0)
    assert spans(index) == []
    t.handle(note(state="true", operation="Initialized"), T0 + S)
    assert spans(index) == [("motion", S, None)]


def test_initialized_without_state_is_not_an_event(index):
    t = EventTracker("cam", index)
    t.handle(note(topic="tns1:Device/HardwareFailure/StorageFailure", state=None,
                  operation="Initialized"), T0)
    assert spans(index) == []


def test_deleted_closes(index):
    t = EventTracker("cam", index)
    t.handle(note(state="true"), T0)
    t.handle(note(state=None, operation="Deleted"), T0 + 3 * S)
    assert spans(index) == [("motion", 0, 3 * S)]


def test_a_pulse_is_an_instant_event(index):
    t = EventTracker("cam", index)
    t.handle(note(topic="tns1:RuleEngine/LineDetector/Crossed", state=None,
                  data_name="ObjectId", operation=""), T0 + 7 * S)
    assert spans(index) == [("line_crossing", 7 * S, 7 * S)]


def test_unknown_topics_are_kept_raw(index):
    t = EventTracker("cam", index)
    t.handle(note(topic="tnsacme:Gadget/Door", state="true"), T0)
    assert [(e.kind, e.topic) for e in index.events("cam")] == [("other", "tnsacme:Gadget/Door")]


def test_lost_subscription_closes_open_events_at_the_loss_time(index):
    t = EventTracker("cam", index)
    t.handle(note(state="true"), T0)
    t.handle(note(topic="tns1:Device/Trigger/DigitalInput", data_name="LogicalState",
                  source=(("InputToken", "di0"),)), T0 + S)
    assert t.lost(T0 + 9 * S, "camera unreachable") == 2
    assert spans(index) == [("motion", 0, 9 * S), ("input", S, 9 * S)]
    assert all("subscription lost (camera unreachable)" in e.detail for e in index.events("cam"))
    assert index.open_events("cam") == []
    # The next subscription's Initialized true opens a new event.
    t.handle(note(state="true", operation="Initialized"), T0 + 12 * S)
    assert spans(index)[-1] == ("motion", 12 * S, None)


def test_recover_closes_what_a_previous_run_left_open(index):
    EventTracker("cam", index).handle(note(state="true"), T0)
    EventTracker("other", index).handle(note(state="true"), T0)
    assert EventTracker("cam", index).recover(T0 + 60 * S) == 1
    assert spans(index) == [("motion", 0, 60 * S)]
    assert "closed at restart" in index.events("cam")[0].detail
    assert index.open_events("other") != []


def test_tamper_raises_one_warning_alert_per_ten_minutes(index):
    t = EventTracker("cam", index)
    tamper = "tns1:VideoSource/GlobalSceneChange/ImagingService"
    t.handle(note(topic=tamper), T0)
    t.handle(note(topic=tamper, state="false"), T0 + S)
    t.handle(note(topic=tamper), T0 + 2 * S)                       # flapping: no new alert
    t.handle(note(topic=tamper, state="false"), T0 + 3 * S)
    t.handle(note(topic=tamper), T0 + ALERT_REPEAT_US + S)
    t.handle(note(), T0)                                           # motion: never an alert
    alerts = index.alerts()
    assert [(a["severity"], a["source"]) for a in alerts] == [("warning", "events")] * 2
    assert alerts[0]["message"] == ("camera cam: tamper detected "
                                    "(VideoSource/GlobalSceneChange/ImagingService, Source=vsc1)")
    assert [e.kind for e in index.events("cam")].count("tamper") == 3
