"""Retention planning and deletion against a real SQLite index and real files."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from appliance.config.storage import CameraRetention, build_storage_settings
from appliance.core.clock import SimulatedClock
from appliance.recorder.index import RecordingIndex, Segment
from appliance.recorder.reconcile import reconcile
from appliance.recorder.segmenter import segment_relpath
from appliance.storage.gate import WriteGate
from appliance.storage.retention.delete import delete_segment
from appliance.storage.retention.forecast import forecast
from appliance.storage.retention.policy import DiskSpace, RetentionPolicy, Rule
from appliance.storage.retention.worker import APPROVAL_KEY, RetentionWorker

MIN = 60 * 1_000_000
DAY = 86_400 * 1_000_000
NOW = 1_800_000_000 * 1_000_000  # SimulatedClock's default wall time
PLENTY = DiskSpace(total_bytes=10**12, free_bytes=9 * 10**11)


class Archive:
    """A data directory with one-minute segments of given sizes, files and rows."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.index = RecordingIndex(root)

    def add(self, camera: str, start_us: int, size: int = 1000, minutes: int = 1) -> Segment:
        seq = self.index.max_seq(camera) + 1
        relpath = segment_relpath(camera, start_us, seq)
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * size)
        seg = Segment(camera, seq, start_us, start_us + minutes * MIN, size, relpath)
        self.index.add_segment(seg)
        return seg

    def run(self, camera: str, first_us: int, count: int, size: int = 1000) -> list[Segment]:
        return [self.add(camera, first_us + i * MIN, size) for i in range(count)]

    def paths(self, camera: str | None = None) -> list[str]:
        return [s.path for s in self.index.segments(camera)]


@pytest.fixture
def archive(tmp_path):
    arc = Archive(tmp_path)
    yield arc
    arc.index.close()


def policy(cameras=None, **values):
    return RetentionPolicy(build_storage_settings({"allow_boot_media": True, **values}),
                           cameras or {})


def test_max_age_deletes_what_is_older_and_keeps_newest_and_protected(archive):
    old = archive.run("a", NOW - 3 * DAY, 5)
    recent = archive.run("a", NOW - 30 * MIN, 5)
    archive.index.protect("a", old[1].start_us + 1, old[1].start_us + 2, "evidence", NOW)
    plan = policy(max_age_days=1).plan(archive.index, PLENTY, NOW)
    assert [p.segment.path for p in plan.items] == [s.path for s in old if s is not old[1]]
    assert {p.rule for p in plan.items} == {Rule.MAX_AGE}
    assert not plan.below_low_water and not plan.stop_recording
    assert all(s.path not in {p.segment.path for p in plan.items} for s in recent)


def test_protection_for_all_cameras_and_the_newest_minutes(archive):
    segs = archive.run("a", NOW - 2 * DAY, 20)
    archive.index.protect(None, segs[0].start_us, segs[0].end_us, "court order", NOW)
    plan = policy(max_age_days=1, keep_newest_minutes=5).plan(archive.index, PLENTY, NOW)
    deleted = [p.segment for p in plan.items]
    assert segs[0] not in deleted                 # protected for every camera
    assert deleted == segs[1:15]                  # the newest 5 minutes stay, even if old


def test_camera_size_limit_deletes_its_oldest_only(archive):
    a = archive.run("a", NOW - 60 * MIN, 10, size=100)
    archive.run("b", NOW - 120 * MIN, 10, size=100)
    limits = {"a": CameraRetention(max_gib=450 / 1024**3)}
    plan = policy(limits, keep_newest_minutes=0).plan(archive.index, PLENTY, NOW)
    assert [p.segment for p in plan.items] == a[:6]  # 1000 B held, 450 allowed: 6 go
    assert {p.rule for p in plan.items} == {Rule.MAX_BYTES}


def test_low_water_deletes_oldest_across_cameras_until_headroom(archive):
    archive.run("a", NOW - 60 * MIN, 10, size=1000)
    b = archive.run("b", NOW - 65 * MIN, 10, size=1000)
    space = DiskSpace(total_bytes=100_000, free_bytes=4_000)  # 4 % free, mark 5 % + 1 %
    plan = policy(keep_newest_minutes=0).plan(archive.index, space, NOW)
    assert [p.segment for p in plan.items] == b[:2]  # 2000 B needed: b is the older camera
    assert {p.rule for p in plan.items} == {Rule.LOW_WATER}
    assert plan.below_low_water and plan.short_of_space == 0


def test_low_water_reports_what_it_cannot_free(archive):
    segs = archive.run("a", NOW - 10 * MIN, 10, size=1000)
    archive.index.protect("a", segs[0].start_us, segs[-1].end_us, "all of it", NOW)
    space = DiskSpace(total_bytes=100_000, free_bytes=1_000)
    plan = policy(keep_newest_minutes=0).plan(archive.index, space, NOW)
    assert plan.items == [] and plan.short_of_space == 5_000


def test_stop_action_plans_no_deletion_but_stops_recording(archive):
    archive.run("a", NOW - 10 * MIN, 10)
    space = DiskSpace(total_bytes=100_000, free_bytes=1_000)
    plan = policy(full_disk_action="stop").plan(archive.index, space, NOW)
    assert plan.items == [] and plan.stop_recording


def test_a_clock_jump_does_not_make_the_newest_minutes_deletable(archive):
    segs = archive.run("a", NOW - 20 * MIN, 20)
    plan = policy(max_age_days=1).plan(archive.index, PLENTY, NOW + 365 * DAY)
    assert segs[-1] not in [p.segment for p in plan.items]
    assert segs[-10] not in [p.segment for p in plan.items]  # within the newest 10 minutes
    assert plan.exceeds(20)  # and the guard refuses the rest (see the worker test)


# --- worker: guard, deletion, audit, gate -------------------------------------------------
def worker_for(archive, clock, space_free=None, **values):
    pol = policy(**values)
    gate = WriteGate()
    lost = []
    worker = RetentionWorker(archive.root, archive.index, pol, clock, threading.Event(), gate,
                             lambda: set(), lost.append)
    return worker, gate, lost


def test_guard_stops_a_mass_deletion_after_a_clock_jump_until_approved(archive):
    clock = SimulatedClock()
    segs = archive.run("a", NOW - 60 * MIN, 60)
    worker, _, _ = worker_for(archive, clock, max_age_days=7)
    worker.run_pass()
    assert archive.paths() == [s.path for s in segs]       # nothing deleted yet: all young
    clock.advance(365 * 86_400)                            # the clock jumps a year ahead
    worker.run_pass()
    assert archive.paths() == [s.path for s in segs]       # the guard held
    alerts = archive.index.alerts()
    assert len(alerts) == 1 and alerts[0]["severity"] == "critical"
    assert "nvr retention approve" in alerts[0]["message"]
    worker.run_pass()
    assert len(archive.index.alerts()) == 1                # raised once, not every pass
    archive.index.set_meta(APPROVAL_KEY, "1")              # the owner approves
    worker.run_pass()
    assert archive.paths() == [s.path for s in segs[-10:]]  # the newest 10 minutes stay
    assert archive.index.get_meta(APPROVAL_KEY) == "0"      # one pass only


def test_deletions_remove_files_and_rows_and_are_audited(archive):
    clock = SimulatedClock()
    old = archive.run("a", NOW - 3 * DAY, 3)
    archive.run("a", NOW - 200 * MIN, 100)
    worker, _, _ = worker_for(archive, clock, max_age_days=1)
    worker.run_pass()
    for seg in old:
        assert not (archive.root / seg.path).exists()
    audit = archive.index.deletions()
    assert [(d.path, d.rule, d.state, d.bytes) for d in audit] == \
        [(s.path, "max_age", "done", 1000) for s in old]
    assert "older than 1 days" in audit[0].detail
    # emptied hour and day directories go too, the camera's directory stays
    assert not (archive.root / old[0].path).parent.exists()
    assert (archive.root / "recordings" / "a").is_dir()


def test_stop_action_closes_and_reopens_the_gate(archive, monkeypatch):
    from appliance.storage.retention import worker as worker_module

    clock = SimulatedClock()
    archive.run("a", NOW - 10 * MIN, 10)
    space = {"now": DiskSpace(100_000, 1_000)}
    monkeypatch.setattr(worker_module, "disk_space", lambda path: space["now"])
    worker, gate, _ = worker_for(archive, clock, full_disk_action="stop")
    worker.run_pass()
    assert not gate.is_open and "full" in gate.reason
    space["now"] = DiskSpace(100_000, 5_500)  # above the mark, but not the headroom
    worker.run_pass()
    assert not gate.is_open
    space["now"] = DiskSpace(100_000, 7_000)
    worker.run_pass()
    assert gate.is_open
    messages = [a["message"] for a in archive.index.alerts()]
    assert messages[0].startswith("recording stopped") and messages[-1].startswith("recording resumed")
    assert len(archive.paths()) == 10  # "stop" never deletes


def test_worker_reports_a_lost_volume(tmp_path):
    from appliance.storage.volume import write_marker

    disk = tmp_path / "disk"
    disk.mkdir()
    write_marker(disk)
    arc = Archive(disk)
    lost = []
    stop = threading.Event()
    worker = RetentionWorker(disk, arc.index, policy(allow_boot_media=False), SimulatedClock(),
                             stop, WriteGate(), lambda: set(),
                             lambda detail: (lost.append(detail), stop.set()))
    (disk / ".vigil-volume").unlink()  # what an unmounted disk looks like
    worker.start()
    assert worker.join(10)
    assert lost and "not on an initialised Vigil data disk" in lost[0]
    arc.index.close()


# --- crash safety ---------------------------------------------------------------------------
def test_reconcile_finishes_a_deletion_interrupted_before_the_unlink(archive):
    segs = archive.run("a", NOW - 10 * MIN, 3)
    archive.index.begin_deletion(segs[0], Rule.MAX_AGE, "test", NOW)  # then: power cut
    report = reconcile(archive.root, archive.index)
    assert report.finished_deletions == [segs[0].path] and report.missing == []
    assert not (archive.root / segs[0].path).exists()
    assert archive.paths() == [s.path for s in segs[1:]]
    assert [d.state for d in archive.index.deletions()] == ["done"]


def test_reconcile_finishes_a_deletion_interrupted_after_the_unlink(archive):
    segs = archive.run("a", NOW - 10 * MIN, 3)
    archive.index.begin_deletion(segs[0], Rule.MAX_AGE, "test", NOW)
    os.unlink(archive.root / segs[0].path)  # then: power cut before the row went
    report = reconcile(archive.root, archive.index)
    assert report.finished_deletions == [segs[0].path] and report.missing == []
    assert archive.paths() == [s.path for s in segs[1:]]


def test_unreadable_orphans_are_removed_and_audited(archive):
    clock = SimulatedClock()
    archive.run("a", NOW - 10 * MIN, 2)
    orphan = archive.root / segment_relpath("a", NOW - 20 * MIN, 99)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"not an mp4 at all" * 100)
    os.utime(orphan, (0, 0))  # written long ago, not a segment about to be indexed
    fresh = archive.root / segment_relpath("a", NOW - 1 * MIN, 100)
    fresh.write_bytes(b"being closed right now")
    worker, _, _ = worker_for(archive, clock)
    report = worker.collect_orphans()
    assert report.removed_unreadable == [str(orphan.relative_to(archive.root))]
    assert not orphan.exists() and fresh.exists()
    assert [(d.rule, d.state) for d in archive.index.deletions()] == [("orphan_unreadable", "done")]


def test_delete_segment_tolerates_a_file_already_gone(archive):
    seg = archive.add("a", NOW - DAY)
    os.unlink(archive.root / seg.path)
    delete_segment(archive.root, archive.index, seg, Rule.MAX_AGE, "x", NOW)
    assert archive.paths() == [] and archive.index.deletions()[0].state == "done"


# --- forecast -------------------------------------------------------------------------------
def test_forecast_takes_the_tightest_limit(archive):
    archive.run("a", NOW - 60 * MIN, 60, size=1_000_000)   # 1 MB per minute: 1.44 GB/day
    archive.run("b", NOW - 60 * MIN, 60, size=3_000_000)   # 4.32 GB/day
    space = DiskSpace(total_bytes=1_000_000_000_000, free_bytes=100_000_000_000)
    limits = {"a": CameraRetention(max_gib=1.0)}
    fc = forecast(archive.index, policy(limits, max_age_days=30), space, NOW)
    assert fc["a"].limited_by == "max_bytes"
    assert fc["a"].forecast_days == pytest.approx(1024**3 / 1.44e9, rel=0.01)
    disk_days = (240e6 + 100e9 - 50e9) / (1.44e9 + 4.32e9)
    assert fc["b"].limited_by == "disk" and fc["b"].forecast_days == pytest.approx(disk_days, rel=0.01)
    assert fc["b"].bytes_held == 180_000_000
    assert fc["b"].retained_days == pytest.approx(1 / 24, rel=0.01)
    fc = forecast(archive.index, policy(max_age_days=2), space, NOW)
    assert fc["b"].limited_by == "max_age" and fc["b"].forecast_days == 2
