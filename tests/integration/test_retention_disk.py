"""Retention on a real, small filesystem filled by the real recorder: recording never
stops, the oldest footage goes first, protected footage stays, every deletion is
audited; and a clock jump of a year on that archive deletes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest

from appliance.recorder.index import RecordingIndex
from appliance.recorder.reconcile import reconcile, segment_files
from hw.camsim.clips import ensure_clip
from hw.camsim.server import SimCamera
from tests.integration.conftest import CACHE, ROOT
from tests.integration.disks import loop_disk
from tests.integration.recorder_process import RecorderProcess
from tests.waiting import wait_until

LOW_WATER = 20.0


@pytest.fixture(scope="module")
def busy_clip():
    """About 6 Mb/s, so two cameras fill a 64 MiB disk in about half a minute."""
    return ensure_clip(CACHE, codec="h264", audio=None, seconds=6, width=640, height=360,
                       fps=25, bitrate_kbps=6000, gop=25)


def free_percent(path) -> float:
    st = os.statvfs(path)
    return 100.0 * st.f_bavail / st.f_blocks


def iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, timezone.utc).isoformat()


def clock_jump_pass(data, index):
    """A year's clock jump on the archive just recorded: the guard must hold."""
    import threading

    from appliance.config.storage import build_storage_settings
    from appliance.core.clock import SimulatedClock
    from appliance.storage.gate import WriteGate
    from appliance.storage.retention.policy import RetentionPolicy
    from appliance.storage.retention.worker import RetentionWorker

    before = {s.path for s in index.segments()}
    policy = RetentionPolicy(build_storage_settings({"max_age_days": 30, "min_free_percent": 1,
                                                    "keep_newest_minutes": 0.1}), {})
    worker = RetentionWorker(data, index, policy, SimulatedClock(time.time() + 365 * 86_400),
                             threading.Event(), WriteGate(), set, lambda detail: None)
    plan = worker.run_pass()
    assert {s.path for s in index.segments()} == before, "a clock jump mass-deleted footage"
    assert all(p.exists() for p in (data / path for path in before))
    assert "nvr retention approve" in index.alerts()[-1]["message"]
    return plan


@pytest.mark.timeout(240)
def test_low_water_retention_keeps_recording_on_a_full_disk(busy_clip, camera_server, tmp_path):
    server = camera_server(SimCamera("/a", busy_clip, shared=False),
                           SimCamera("/b", busy_clip, shared=False))
    with loop_disk(tmp_path, size_mib=64) as disk:
        data = disk.mountpoint
        with RecorderProcess(data, {"a": server.url("/a"), "b": server.url("/b")},
                             "--segment-seconds", "2", "--min-free-percent", str(LOW_WATER),
                             "--free-headroom-percent", "5", "--keep-newest-minutes", "0.1",
                             "--retention-interval", "1", data_volume=True) as rec:
            first = rec.wait_for(lambda e: e["event"] == "segment" and e["camera"] == "a", 60,
                                 what="a's first segment")[0]
            index = RecordingIndex(data, readonly=True)
            row = next(s for s in index.segments("a") if s.path == first["path"])
            index.close()
            out = subprocess.run(
                [sys.executable, "-m", "appliance.cli", "protect", "--data", str(data),
                 "--camera", "a", "--from", iso(row.start_us + 1000), "--to",
                 iso(row.start_us + 2000), "--reason", "evidence for the test"],
                cwd=ROOT, capture_output=True, text=True, timeout=30)
            assert out.returncode == 0, out.stderr

            def deleted_enough():
                idx = RecordingIndex(data, readonly=True)
                try:
                    return len(idx.deletions()) >= 12
                finally:
                    idx.close()
            wait_until(deleted_enough, 150, "a dozen retention deletions")
            after = time.monotonic()
            rec.wait_for(lambda e: e["event"] == "durable" and e["_mono"] > after, 30,
                         count=4, what="recording going on after the deletions")
            assert free_percent(data) >= LOW_WATER - 6  # at most a few segments below the mark
            assert rec.stop() == 0
            closed = {e["path"] for e in rec.matching(event="segment")}
        index = RecordingIndex(data)
        report = reconcile(data, index)
        rows = index.segments()
        audit = index.deletions()
        gaps = index.gaps()
        jumped = clock_jump_pass(data, index)
        index.close()
        files = set(segment_files(data))

    assert jumped.items and jumped.exceeds(20), "the clock jump plan must be refused by the guard"

    assert report.missing == [] and report.recovered == [] and report.removed_unreadable == []
    kept = {s.path for s in rows}
    assert files == kept, "files and index rows differ"
    assert row.path in kept, "protected footage was deleted"
    deleted = {d.path for d in audit}
    assert closed <= kept | deleted, "a segment vanished without an audit entry"
    assert not kept & deleted
    assert {d.rule for d in audit} == {"low_water"} and {d.state for d in audit} == {"done"}
    # oldest first: nothing deleted is newer than anything kept (protected aside)
    newest_deleted = max(d.start_us for d in audit)
    oldest_kept = min(s.start_us for s in rows if s.path != row.path)
    assert newest_deleted <= oldest_kept
    # recording never stopped: the only gaps are the start and the final stop
    causes = {g.cause for g in gaps}
    assert causes <= {"recorder_stopped"}, causes
