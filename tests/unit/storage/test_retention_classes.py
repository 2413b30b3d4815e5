"""Retention classes against a real SQLite index and real files: event footage is
promoted, the events-only rolling buffer is trimmed (audited, with no_event gaps), and
retention keeps event footage by its own age and deletes it last at the low-water mark."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config.storage import build_storage_settings
from appliance.recorder.index import Event, GapCause, RecordingIndex, Segment
from appliance.recorder.segmenter import segment_relpath
from appliance.storage.retention.classes import ROLLING_RULE, classify_camera
from appliance.storage.retention.policy import DiskSpace, RetentionPolicy, Rule

S = 1_000_000
DAY = 86_400 * S
NOW = 1_800_000_000 * S
SEG = 2  # seconds per segment


class Archive:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.index = RecordingIndex(root)

    def run(self, camera: str, first_us: int, count: int, cls: str, seconds: int = SEG,
            size: int = 1000) -> list[Segment]:
        out = []
        for i in range(count):
            seq = self.index.max_seq(camera) + 1
            start = first_us + i * seconds * S
            relpath = segment_relpath(camera, start, seq)
            (self.root / relpath).parent.mkdir(parents=True, exist_ok=True)
            (self.root / relpath).write_bytes(b"\0" * size)
            seg = Segment(camera, seq, start, start + seconds * S, size, relpath,
                          retention_class=cls)
            self.index.add_segment(seg)
            out.append(seg)
        return out

    def classes(self, camera: str) -> dict[int, str]:
        return {(s.start_us - NOW) // S: s.retention_class for s in self.index.segments(camera)}


@pytest.fixture
def archive(tmp_path):
    arc = Archive(tmp_path)
    yield arc
    arc.index.close()


def test_event_window_is_promoted_and_the_rest_of_the_rolling_buffer_removed(archive):
    # 60 s of rolling 2-s segments from NOW-60s; an event [NOW-30s, NOW-27s], pre 4, post 4
    segs = archive.run("cam", NOW - 60 * S, 30, "rolling")
    archive.index.add_event(Event("cam", "motion", NOW - 30 * S, NOW - 27 * S))
    report = classify_camera(archive.root, archive.index, "cam", 4, 4, SEG, NOW)
    kept = archive.index.segments("cam")
    events = [s for s in kept if s.retention_class == "event"]
    # [NOW-34, NOW-23] is covered by the 2-s segments starting -34 .. -24
    assert [(s.start_us - NOW) // S for s in events] == list(range(-34, -23, 2))
    assert events[0].start_us <= NOW - 34 * S and events[-1].end_us >= NOW - 23 * S
    # the rolling window (4 s pre + one 2-s segment) stays: segments ending after NOW-6
    rolling = [s for s in kept if s.retention_class == "rolling"]
    assert [(s.start_us - NOW) // S for s in rolling] == [-6, -4, -2]
    assert len(report.removed) == 30 - len(events) - len(rolling)
    for seg in segs:
        on_disk = (archive.root / seg.path).exists()
        assert on_disk == (seg.path not in report.removed)
    audit = archive.index.deletions("cam")
    assert {d.rule for d in audit} == {ROLLING_RULE} and len(audit) == len(report.removed)
    gaps = [(g.start_us, g.end_us, g.cause) for g in archive.index.gaps("cam")]
    assert gaps == [(NOW - 60 * S, NOW - 34 * S, GapCause.NO_EVENT),   # merged, not 13 gaps
                    (NOW - 22 * S, NOW - 6 * S, GapCause.NO_EVENT)]
    # a second pass changes nothing more; the next pass extends the gap, not a new one
    assert classify_camera(archive.root, archive.index, "cam", 4, 4, SEG, NOW).removed == []
    classify_camera(archive.root, archive.index, "cam", 4, 4, SEG, NOW + 2 * S)
    assert archive.index.gaps("cam")[-1].end_us == NOW - 4 * S
    assert len(archive.index.gaps("cam")) == 2


def test_open_event_keeps_everything_from_its_start_minus_pre(archive):
    archive.run("cam", NOW - 40 * S, 20, "rolling")
    archive.index.open_event("cam", "intrusion", NOW - 20 * S)
    classify_camera(archive.root, archive.index, "cam", 4, 4, SEG, NOW)
    classes = archive.classes("cam")
    assert all(cls == "event" for start, cls in classes.items() if start >= -24)
    assert min(classes) == -24  # older rolling footage is gone


def test_protected_rolling_footage_stays_and_other_cameras_are_untouched(archive):
    archive.run("cam", NOW - 40 * S, 20, "rolling")
    archive.run("other", NOW - 40 * S, 20, "rolling")
    archive.index.protect("cam", NOW - 36 * S, NOW - 33 * S, "evidence", NOW)
    classify_camera(archive.root, archive.index, "cam", 4, 4, SEG, NOW)
    assert sorted(archive.classes("cam")) == [-36, -34, -6, -4, -2]
    assert len(archive.index.segments("other")) == 20


def test_continuous_with_events_marks_without_removing(archive):
    archive.run("cam", NOW - 40 * S, 20, "continuous")
    archive.index.add_event(Event("cam", "motion", NOW - 20 * S, NOW - 19 * S))
    report = classify_camera(archive.root, archive.index, "cam", 2, 2, SEG, NOW)
    assert report.removed == []
    classes = archive.classes("cam")
    assert [s for s, c in classes.items() if c == "event"] == [-22, -20, -18]
    assert len(classes) == 20


def test_event_footage_follows_its_own_age_and_goes_last_at_low_water(archive):
    old = archive.run("cam", NOW - 40 * DAY, 3, "continuous")
    old_events = archive.run("cam", NOW - 39 * DAY, 3, "event")
    archive.run("cam", NOW - 1 * DAY, 3, "continuous")
    settings = build_storage_settings({"allow_boot_media": True, "max_age_days": 30,
                                       "keep_newest_minutes": 0})
    plenty = DiskSpace(10**12, 9 * 10**11)
    # without an event age, event footage ages like the rest
    plan = RetentionPolicy(settings, {}).plan(archive.index, plenty, NOW)
    assert {p.segment.path for p in plan.items} == {s.path for s in old + old_events}
    # with 90 days for events, only the continuous ones go
    plan = RetentionPolicy(settings, {}, {"cam": 90}).plan(archive.index, plenty, NOW)
    assert {p.segment.path for p in plan.items} == {s.path for s in old}
    plan = RetentionPolicy(settings, {}, {"cam": 10}).plan(archive.index, plenty, NOW)
    rules = {p.segment.path: p.rule for p in plan.items}
    assert {rules[s.path] for s in old_events} == {Rule.EVENT_MAX_AGE}
    # low water: the event segments, though oldest-but-three, are taken after the newer
    # continuous ones
    no_age = build_storage_settings({"allow_boot_media": True, "keep_newest_minutes": 0,
                                     "min_free_percent": 10, "free_headroom_percent": 0})
    tight = DiskSpace(total_bytes=100_000, free_bytes=100_000 * 10 // 100 - 5_000)
    plan = RetentionPolicy(no_age, {}).plan(archive.index, tight, NOW)
    taken = [p.segment.retention_class for p in sorted(plan.items, key=lambda p: p.segment.id)]
    assert taken == ["continuous"] * 5 and plan.short_of_space == 0
