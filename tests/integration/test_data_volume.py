"""Recordings go only onto an initialised data disk: never onto the boot media when the
disk is missing or unplugged, and recording resumes when the disk is back."""

from __future__ import annotations

import time

import pytest

from appliance.recorder.index import GapCause, RecordingIndex
from appliance.recorder.service import EXIT_VOLUME_LOST, VOLUME_LOST_NOTE
from hw.camsim.server import SimCamera
from tests.integration.disks import loop_disk
from tests.integration.recorder_process import RecorderProcess
from tests.waiting import wait_until


def files_under(path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def wait_for_log(rec: RecorderProcess, text: str, timeout: float) -> None:
    def seen() -> bool:
        assert rec.proc.poll() is None, f"recorder exited:\n{rec.log_tail()}"
        return text in rec.log_tail(200)
    wait_until(seen, timeout, f"{text!r} in the recorder's log", step=0.2)


@pytest.mark.timeout(180)
def test_unplugged_disk_stops_writes_and_recording_resumes_on_return(small_clip, camera_server,
                                                                      tmp_path):
    server = camera_server(SimCamera("/cam", small_clip))
    cams = {"cam": server.url("/cam")}
    run = tmp_path / "run"      # systemd's RuntimeDirectory: kept across restarts
    run.mkdir()
    flags = ("--segment-seconds", "2", "--runtime-dir", str(run))
    with loop_disk(tmp_path, size_mib=64) as disk:
        data = disk.mountpoint
        with RecorderProcess(data, cams, *flags, data_volume=True) as rec:
            rec.wait_for(lambda e: e["event"] == "durable", 60, what="recording on the disk")
            disk.unmount()  # the USB disk is pulled
            unplugged = time.monotonic()
            assert rec.proc.wait(30) == EXIT_VOLUME_LOST
            assert time.monotonic() - unplugged < 10, "the loss must be noticed within 10 s"
            assert "data disk lost" in rec.log_tail(50)
        assert files_under(data) == [], "something was written to the boot media"
        assert (run / VOLUME_LOST_NOTE).exists(), "the cause, noted off the lost disk"

        # systemd restarts the recorder: it waits, writing nothing, until the disk is back
        with RecorderProcess(data, cams, *flags, data_volume=True) as rec:
            wait_for_log(rec, "not recording:", 30)
            assert files_under(data) == []
            disk.mount()
            rec.wait_for(lambda e: e["event"] == "durable", 60, what="recording after the return")
            assert rec.stop() == 0
        index = RecordingIndex(data, readonly=True)
        try:
            causes = [g.cause for g in index.gaps("cam")]
        finally:
            index.close()
        # the time the disk was out says so, not "power loss or crash"
        assert GapCause.DISK_MISSING in causes and GapCause.CRASH not in causes, causes
        assert not (run / VOLUME_LOST_NOTE).exists(), "used once"


@pytest.mark.timeout(60)
def test_a_plain_directory_is_refused_unless_allowed(small_clip, camera_server, tmp_path):
    server = camera_server(SimCamera("/cam", small_clip))
    missing = tmp_path / "no-disk-here"
    with RecorderProcess(missing, {"cam": server.url("/cam")}, data_volume=True) as rec:
        wait_for_log(rec, "does not exist: no data disk is mounted there", 30)
        assert not missing.exists(), "the recorder created its data directory on the boot media"
        assert rec.stop() == 0
    plain = tmp_path / "plain"
    plain.mkdir()
    with RecorderProcess(plain, {"cam": server.url("/cam")}, data_volume=True) as rec:
        wait_for_log(rec, "is not on an initialised Vigil data disk", 30)
        assert files_under(plain) == []
        assert rec.stop() == 0
