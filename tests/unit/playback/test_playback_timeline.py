"""The timeline: spans merged inside SQLite, gaps clipped to the range, bad ranges refused."""

from __future__ import annotations

import pytest

from appliance.core.errors import InvalidConfig
from appliance.playback.timeline import timeline
from appliance.recorder.index import Event, RecordingIndex, Segment

S = 1_000_000
T0 = 1_800_000_000 * S


@pytest.fixture
def index(tmp_path):
    idx = RecordingIndex(tmp_path)
    seq = 0
    for start, end in [(0, 60), (60, 120), (120.5, 180), (300, 360), (360, 420)]:
        seq += 1
        idx.add_segment(Segment("cam", seq, T0 + int(start * S), T0 + int(end * S), 1, f"p{seq}"))
    idx.add_segment(Segment("other", 1, T0, T0 + 60 * S, 1, "o1"))
    gap = idx.open_gap("cam", T0 + 180 * S, "camera_unreachable", "no route")
    idx.close_gap(gap, T0 + 300 * S)
    idx.open_gap("cam", T0 + 420 * S, "recorder_stopped")
    yield idx
    idx.close()


def test_spans_and_gaps(index):
    tl = timeline(index, "cam", T0 - 10 * S, T0 + 500 * S, now_us=T0 + 450 * S)
    assert [(s["start_us"] - T0, s["end_us"] - T0, s["segments"]) for s in tl["spans"]] == \
        [(0, 180 * S, 3), (300 * S, 420 * S, 2)]
    assert [(g["start_us"] - T0, g["end_us"] - T0, g["cause"], g["ongoing"]) for g in tl["gaps"]] \
        == [(180 * S, 300 * S, "camera_unreachable", False),
            (420 * S, 450 * S, "recorder_stopped", True)]
    assert tl["recorded_us"] == 300 * S


def test_range_clips_spans_and_gaps(index):
    tl = timeline(index, "cam", T0 + 90 * S, T0 + 330 * S)
    assert [(s["start_us"] - T0, s["end_us"] - T0) for s in tl["spans"]] == \
        [(90 * S, 180 * S), (300 * S, 330 * S)]
    assert [(g["start_us"] - T0, g["end_us"] - T0) for g in tl["gaps"]] == [(180 * S, 300 * S)]


def test_missing_files_are_not_recorded_time(index):
    index.update_segment(4, status="missing")
    tl = timeline(index, "cam", T0, T0 + 500 * S)
    assert [(s["start_us"] - T0, s["end_us"] - T0) for s in tl["spans"]] == \
        [(0, 180 * S), (360 * S, 420 * S)]


@pytest.mark.parametrize("start, end, message", [(10, 5, "after its start"),
                                                 (0, 32 * 86_400 * S, "at most 31 days")])
def test_bad_ranges(index, start, end, message):
    with pytest.raises(InvalidConfig, match=message):
        timeline(index, "cam", start, end)


# --- events (from the cameras' own detection, appliance/events) -----------------------------

@pytest.fixture
def with_events(index):
    motion = index.open_event("cam", "motion", T0 + 10 * S, "tns1:VideoSource/MotionAlarm")
    index.close_event(motion, T0 + 20 * S)
    index.open_event("cam", "tamper", T0 + 400 * S, "tns1:VideoSource/GlobalSceneChange/Imaging")
    early = index.open_event("cam", "intrusion", T0 - 100 * S, "tns1:RuleEngine/FieldDetector")
    index.close_event(early, T0 - 50 * S)
    other = index.open_event("other", "motion", T0 + 10 * S, "tns1:VideoSource/MotionAlarm")
    index.close_event(other, T0 + 15 * S)
    return index


def test_events_in_range_with_open_ones(with_events):
    tl = timeline(with_events, "cam", T0, T0 + 500 * S)
    assert [(e["kind"], e["start_us"] - T0, e["end_us"] and e["end_us"] - T0, e["ongoing"])
            for e in tl["events"]] == [("motion", 10 * S, 20 * S, False),
                                       ("tamper", 400 * S, None, True)]
    assert tl["events"][0]["topic"] == "tns1:VideoSource/MotionAlarm"
    assert tl["events_truncated"] is False


def test_events_overlapping_the_range_edges(with_events):
    # The motion event (10-20 s) overlaps a range starting at 15 s; the open tamper event
    # (from 400 s) overlaps anything after its start; nothing before the range's start.
    assert [e["kind"] for e in timeline(with_events, "cam", T0 + 15 * S, T0 + 900 * S)["events"]] \
        == ["motion", "tamper"]
    assert [e["kind"] for e in timeline(with_events, "cam", T0 + 21 * S, T0 + 399 * S)["events"]] \
        == []
    assert [e["kind"] for e in timeline(with_events, "cam", T0 - 200 * S, T0 - 60 * S)["events"]] \
        == ["intrusion"]


def test_events_are_looked_for_a_week_back(index):
    topic = "tns1:Device/Trigger/DigitalInput"
    long_ago = index.open_event("cam", "input", T0 - 8 * 86_400 * S, topic)
    index.close_event(long_ago, T0 + 10 * S)
    week = index.open_event("cam", "input", T0 - 6 * 86_400 * S, topic)
    index.close_event(week, T0 + 10 * S)
    assert [e["start_us"] for e in timeline(index, "cam", T0, T0 + 60 * S)["events"]] == \
        [T0 - 6 * 86_400 * S]


def test_events_are_capped(index, monkeypatch):
    import appliance.playback.timeline as module

    monkeypatch.setattr(module, "MAX_EVENTS", 3)
    for n in range(5):
        index.add_event(Event("cam", "motion", T0 + n * S, T0 + n * S + 1, "t"))
    tl = timeline(index, "cam", T0, T0 + 60 * S)
    assert [e["start_us"] - T0 for e in tl["events"]] == [0, S, 2 * S]
    assert tl["events_truncated"] is True


def test_five_thousand_events_stay_fast(index):
    import time

    for n in range(5000):   # one motion event a minute for three and a half days
        index.add_event(Event("cam", "motion", T0 + n * 60 * S, T0 + n * 60 * S + 5 * S,
                              "tns1:VideoSource/MotionAlarm"))
    began = time.perf_counter()
    tl = timeline(index, "cam", T0, T0 + 31 * 86_400 * S)
    assert len(tl["events"]) == 5000
    assert time.perf_counter() - began < 0.5
