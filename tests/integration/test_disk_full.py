"""A full data disk: a clear state and gap, no crash, recording resumes when space returns,
and reconciliation leaves every file readable and indexed."""

from __future__ import annotations

import os
import subprocess

import pytest

from appliance.recorder.index import RecordingIndex
from appliance.recorder.reconcile import reconcile, segment_files
from hw.camsim.server import SimCamera
from tests.integration.conftest import video_packets
from tests.integration.recorder_process import RecorderProcess


@pytest.fixture
def tiny_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI and the dev machines run as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1200k,mode=0755", "tmpfs", str(mount)],
                   check=True, timeout=10)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False, timeout=10)


@pytest.mark.timeout(180)
def test_disk_full_gives_a_clear_state_and_recording_resumes_when_space_returns(
        small_clip, camera_server, tiny_disk):
    server = camera_server(SimCamera("/cam1", small_clip, shared=False))
    filler = tiny_disk / "filler"
    filler.write_bytes(b"\0" * 500_000)  # space the "owner" frees later
    data = tiny_disk / "data"
    with RecorderProcess(data, {"cam": server.url("/cam1")}, "--segment-seconds", "3",
                         "--backoff-initial", "0.5", "--backoff-cap", "2") as rec:
        full = rec.wait_state("cam", "disk_error", 90)
        assert "No space left" in full["detail"] or "full" in full["detail"]
        assert rec.proc.poll() is None, "the recorder keeps running"
        filler.unlink()
        rec.wait_for(lambda e: e["event"] == "durable" and e["_mono"] > full["_mono"], 60,
                     what="recording after space returned")
        assert rec.stop() == 0
    index = RecordingIndex(data)
    reconcile(data, index)  # what the next start does
    rows = {row.path: row for row in index.segments("cam")}
    assert set(rows) == set(segment_files(data))
    for path in rows:
        packets, _ = video_packets(data / path)
        assert packets > 0
    assert "disk_error" in {gap.cause for gap in index.gaps("cam")}
