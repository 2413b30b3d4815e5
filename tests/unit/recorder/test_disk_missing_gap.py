"""A data disk lost while recording takes the index with it, so the recorder notes the
loss in its runtime directory; the next start names the gap `disk_missing`, whether or not
the stop could still be written (tests/integration/test_data_volume.py runs the clean case
with a real loop disk; tests/image/test_image_usb_data_disk.py the real unplug)."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config.recorder import build_settings
from appliance.core.clock import SimulatedClock
from appliance.recorder.index import GapCause, RecordingIndex
from appliance.recorder.service import VOLUME_LOST_NOTE, Recorder

T = 1_800_000_000_000_000


@pytest.fixture
def run(tmp_path) -> Path:
    """systemd's RuntimeDirectory for the recorder: kept across its restarts."""
    path = tmp_path / "run"
    path.mkdir()
    return path


@pytest.fixture
def restarted(tmp_path, run):
    """The recorder's next start, after a stop written cleanly or not."""
    opened = []

    def start(clean: bool) -> Recorder:
        index = RecordingIndex(tmp_path / "data")
        index.set_meta("clean_shutdown", "1" if clean else "0")
        index.write_status("door", "recording", "", T, {})
        if clean:
            index.open_gap("door", T, GapCause.RECORDER_STOPPED, "stopped")
        index.close()
        rec = Recorder(tmp_path / "data", [], build_settings({}), clock=SimulatedClock(),
                       runtime_dir=run)
        rec.index = RecordingIndex(tmp_path / "data")
        rec._lost_note = rec._take_volume_lost_note()
        opened.append(rec.index)
        return rec

    yield start
    for index in opened:
        index.close()


def lose_the_disk(tmp_path, run) -> None:
    rec = Recorder(tmp_path / "data", [], build_settings({}), clock=SimulatedClock(),
                   runtime_dir=run)
    rec._volume_lost("the data disk marker /srv/vigil/.vigil-volume cannot be read (EIO)")
    assert (run / VOLUME_LOST_NOTE).exists()


def test_an_unclean_stop_after_a_lost_disk_is_a_disk_missing_gap(tmp_path, run, restarted):
    lose_the_disk(tmp_path, run)
    rec = restarted(clean=False)
    gap_id, cause = rec._initial_gap("door", clean=False)
    assert cause == GapCause.DISK_MISSING
    [gap] = rec.index.open_gaps("door")
    assert gap.id == gap_id and gap.start_us == T and "(EIO)" in gap.detail
    assert not (run / VOLUME_LOST_NOTE).exists()


def test_a_stop_written_before_the_disk_went_is_renamed(tmp_path, run, restarted):
    lose_the_disk(tmp_path, run)
    rec = restarted(clean=True)
    assert rec._initial_gap("door", clean=True)[1] == GapCause.DISK_MISSING
    assert [g.cause for g in rec.index.gaps("door")] == [GapCause.DISK_MISSING]


def test_without_a_note_a_crash_is_a_crash(restarted):
    assert restarted(clean=False)._initial_gap("door", clean=False)[1] == GapCause.CRASH


def test_a_damaged_note_is_ignored(run, restarted):
    (run / VOLUME_LOST_NOTE).write_bytes(b"\x00{not json")
    rec = restarted(clean=False)
    assert rec._lost_note is None and not (run / VOLUME_LOST_NOTE).exists()
    assert rec._initial_gap("door", clean=False)[1] == GapCause.CRASH
