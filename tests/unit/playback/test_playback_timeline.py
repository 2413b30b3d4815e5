"""The timeline: spans merged inside SQLite, gaps clipped to the range, bad ranges refused."""

from __future__ import annotations

import pytest

from appliance.core.errors import InvalidConfig
from appliance.playback.timeline import timeline
from appliance.recorder.index import RecordingIndex, Segment

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
