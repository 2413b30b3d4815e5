"""Topics from different makers -> the six event kinds; unknown topics stay "other"."""

from __future__ import annotations

import pytest

from appliance.events.normalise import kind_of, source_text, state_of, topic_path


@pytest.mark.parametrize("topic, kind", [
    ("tns1:VideoSource/MotionAlarm", "motion"),
    ("tns1:RuleEngine/CellMotionDetector/Motion", "motion"),
    ("tns1:RuleEngine/MotionRegionDetector/Motion", "motion"),
    ("tns1:videosource/motionalarm", "motion"),
    ("tns1:VideoSource/GlobalSceneChange/ImagingService", "tamper"),
    ("tns1:VideoSource/GlobalSceneChange/AnalyticsService", "tamper"),
    ("tns1:VideoSource/ImageTooBlurry/ImagingService", "tamper"),
    ("tns1:VideoSource/ImageTooDark/AnalyticsService", "tamper"),
    ("tns1:VideoSource/ImageTooBright/RecordingService", "tamper"),
    ("tns1:RuleEngine/TamperDetector/Tamper", "tamper"),
    ("tns1:RuleEngine/LineDetector/Crossed", "line_crossing"),
    ("tns1:RuleEngine/FieldDetector/ObjectsInside", "intrusion"),
    ("tns1:Device/Trigger/DigitalInput", "input"),
    ("tns1:Device/tnsaxis:IO/DigitalInput", "input"),        # vendor prefix inside the path
    ("tns1:Device/Trigger/Relay", "other"),                  # an output, not an input
    ("tns1:VideoSource/MotionAlarmX", "other"),              # a prefix of a word is no match
    ("tnsacme:Gadget/Thing", "other"),
    ("", "other"),
])
def test_kinds(topic, kind):
    assert kind_of(topic) == kind


def test_topic_path_drops_prefixes_and_empty_steps():
    assert topic_path(" tns1:RuleEngine//tnsaxis:Foo/Bar/ ") == "RuleEngine/Foo/Bar"


@pytest.mark.parametrize("data, state", [
    ((("State", "true"),), True), ((("State", "false"),), False),
    ((("IsMotion", "1"),), True), ((("IsTamper", "0"),), False),
    ((("IsInside", "TRUE"),), True), ((("LogicalState", "false"),), False),
    ((("ObjectId", "12"),), None),                # a pulse (line crossed): no state
    ((("State", "maybe"),), None), ((), None),
])
def test_state(data, state):
    assert state_of(data) is state


def test_source_text_is_stable():
    assert source_text((("b", "2"), ("a", "1"))) == "a=1, b=2"
