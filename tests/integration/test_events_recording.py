"""Recording modes end to end: the real `nvr record` process and a real RTSP camera.

Events-only with pre 4 s / post 4 s: an event [t, t+3 s] written into the index (as the
ONVIF subscriber does) leaves footage from t-4 to t+7 on disk, indexed 'event' and
playable; everything else is removed (audited `rolling_window`, gap `no_event`) except
the current rolling window. And a schedule whose "off" window starts seconds from now:
the camera stops with an `outside_schedule` gap and resumes at the next change.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from appliance.recorder.index import GapCause, RecordingIndex
from appliance.recorder.reconcile import segment_files
from appliance.recorder.recording_settings import update_recording_settings
from appliance.recorder.schedule import WEEKDAYS
from appliance.storage.retention.classes import ROLLING_RULE
from hw.camsim.clips import ensure_clip
from hw.camsim.server import SimCamera
from tests.integration.conftest import CACHE, ffprobe_json, video_packets
from tests.integration.recorder_process import RecorderProcess
from tests.waiting import wait_until

S = 1_000_000
PRE, POST, SEG = 4, 4, 2


@pytest.fixture(scope="module")
def small_clip():
    """360p25, a keyframe every second, so 2-s segments cut where asked."""
    return ensure_clip(CACHE, codec="h264", audio=None, seconds=6, width=640, height=360,
                       fps=25, bitrate_kbps=800, gop=25)


def now_us() -> int:
    return int(time.time() * S)


@pytest.mark.timeout(180)
def test_events_only_keeps_the_event_window_and_trims_the_rest(small_clip, camera_server,
                                                                 tmp_path):
    server = camera_server(SimCamera("/cam", small_clip, shared=False))
    data, settings = tmp_path / "data", tmp_path / "recording.json"
    update_recording_settings(settings, {"cam": {"mode": "events", "pre_event_s": PRE,
                                                 "post_event_s": POST}})
    with RecorderProcess(data, {"cam": server.url("/cam")}, "--segment-seconds", str(SEG),
                         "--recording-settings", str(settings)) as rec:
        rec.wait_state("cam", "recording", 30)
        rec.wait_for(lambda e: e["event"] == "segment", 60, count=6, what="6 segments")
        index = RecordingIndex(data)  # a second writer, as the event subscriber is
        # the rolling buffer is already being trimmed before any event
        wait_until(lambda: index.deletions("cam"), 30, "the first rolling_window deletion")
        t = now_us()
        event_id = index.open_event("cam", "motion", t)
        wait_until(lambda: now_us() >= t + 3 * S, 10, "3 s of event")
        index.close_event(event_id, t + 3 * S)
        window = (t - PRE * S, t + 3 * S + POST * S)

        def done_deletions():    # the row is written 'pending' before the file goes
            return [d for d in index.deletions("cam") if d.state == "done"]
        wait_until(lambda: [d for d in done_deletions() if d.start_us >= window[1]], 60,
                   "rolling footage after the event removed")
        checked_at = now_us()
        deletions = done_deletions()     # before the listing: retention goes on meanwhile
        segments = index.segments("cam")
        on_disk = set(segment_files(data))
        rec.stop()

    events = [s for s in segments if s.retention_class == "event"]
    others = [s for s in segments if s.retention_class != "event"]
    assert events, segments
    # the whole window is there, without a hole, and nothing of it is 'rolling'
    assert events[0].start_us <= window[0] and events[-1].end_us >= window[1]
    for before, after in zip(events, events[1:]):
        assert after.start_us == before.end_us, (before, after)
    assert events[0].start_us > window[0] - 2 * SEG * S   # no more than a segment beyond
    for seg in events:
        packets, duration = video_packets(data / seg.path)
        assert packets > 0 and duration > 0.5
        assert ffprobe_json(data / seg.path, "-show_entries", "stream=codec_name")[
            "streams"][0]["codec_name"] == "h264"
    # outside the window only the current rolling window is left
    assert all(s.retention_class == "rolling" and s.start_us >= events[-1].end_us
               for s in others), others
    slack = (PRE + SEG + 2 + SEG + 1) * S  # window + a classify interval + a segment closing
    assert all(s.end_us > checked_at - slack for s in others), others
    assert not [s for s in segments if s.end_us <= events[0].start_us]
    # what was removed is audited and gone from the disk; the disk holds only the index's
    # files and the segment being written
    assert deletions and {d.rule for d in deletions} == {ROLLING_RULE}
    assert not on_disk & {d.path for d in deletions}
    assert len(on_disk - {s.path for s in segments}) <= 1
    # the gap map says "no event", merged into one span before and after the event
    no_event = [g for g in index.gaps("cam") if g.cause == GapCause.NO_EVENT]
    assert [g for g in no_event if g.end_us == events[0].start_us]
    after = [g for g in no_event if g.start_us == events[-1].end_us]
    assert len(after) == 1 and after[0].end_us >= window[1]
    index.close()


def off_between(start: datetime, end: datetime) -> dict:
    """A UTC schedule: continuous, except "off" from `start` to `end` (minute precision,
    split at midnight)."""
    week: dict[str, list] = {}
    day = start
    while day < end:
        midnight = (day + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        stop = min(end, midnight)
        week.setdefault(WEEKDAYS[day.weekday()], []).append(
            [day.strftime("%H:%M"), "24:00" if stop == midnight else stop.strftime("%H:%M"),
             "off"])
        day = stop
    return {"timezone": "UTC", "default": "continuous", "week": week}


@pytest.mark.timeout(240)
def test_off_window_stops_with_outside_schedule_and_resumes(small_clip, camera_server,
                                                           tmp_path):
    server = camera_server(SimCamera("/cam", small_clip, shared=False))
    data, settings = tmp_path / "data", tmp_path / "recording.json"
    with RecorderProcess(data, {"cam": server.url("/cam")}, "--segment-seconds", str(SEG),
                         "--recording-settings", str(settings)) as rec:
        rec.wait_for(lambda e: e["event"] == "segment", 60, count=2, what="2 segments")
        now = datetime.now(timezone.utc)
        start = now.replace(second=0, microsecond=0)
        end = start + timedelta(minutes=1 if (start + timedelta(minutes=1) - now).seconds >= 15
                                else 2)
        update_recording_settings(settings, {"cam": {"schedule": off_between(start, end)}})
        rec.wait_state("cam", "outside_schedule", 15)
        stopped = now_us()
        index = RecordingIndex(data, readonly=True)
        gap = wait_until(lambda: [g for g in index.gaps("cam")
                                  if g.cause == GapCause.OUTSIDE_SCHEDULE], 10,
                         "the outside_schedule gap")[0]
        assert gap.end_us is None and gap.start_us <= stopped
        before = len(rec.matching(event="segment"))
        # the second "recording" state of this camera: after the off window
        rec.wait_for(lambda e: e["event"] == "state" and e["state"] == "recording", 130,
                     count=2, what="recording again")
        rec.wait_for(lambda e: e["event"] == "segment", 30, count=before + 1,
                     what="a segment after the off window")
        assert rec.stop() == 0
    index = RecordingIndex(data, readonly=True)
    gap = [g for g in index.gaps("cam") if g.cause == GapCause.OUTSIDE_SCHEDULE][0]
    end_us = int(end.timestamp() * S)
    assert gap.end_us is not None and gap.end_us >= end_us
    # no footage inside the off window; footage again after it
    inside = index.segments("cam", gap.start_us, gap.end_us)
    assert not inside, inside
    assert index.segments("cam", end_us, None)
    assert gap.end_us - end_us < 15 * S, "resumed late"
    index.close()
