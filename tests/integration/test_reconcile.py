"""Start-up reconciliation against real segment files and a real SQLite index."""

from __future__ import annotations

from pathlib import Path

import av

from appliance.recorder.fmp4 import inspect
from appliance.recorder.index import RecordingIndex, Segment
from appliance.recorder.reconcile import reconcile
from appliance.recorder.segmenter import SegmentWriter, segment_relpath

START = 1_795_000_000_000_000
SECOND = 1_000_000


def record_file(clip: Path, data_dir: Path, camera: str, seq: int, start_us: int) -> Path:
    relpath = segment_relpath(camera, start_us, seq)
    with av.open(str(clip)) as src:
        video = src.streams.video[0]
        writer = SegmentWriter(data_dir, relpath, video, None, 1)
        for packet in src.demux(video):
            if packet.dts is not None:
                writer.write_video(packet, packet.dts, packet.pts, packet.duration)
        writer.close()
    return data_dir / relpath


def index_row(index: RecordingIndex, path: Path, data_dir: Path, camera: str, seq: int,
              start_us: int) -> None:
    index.add_segment(Segment(camera=camera, seq=seq, start_us=start_us,
                              end_us=start_us + 6 * SECOND, bytes=path.stat().st_size,
                              path=str(path.relative_to(data_dir))))


def test_a_torn_orphan_is_trimmed_and_indexed_as_recovered(small_clip, tmp_path):
    index = RecordingIndex(tmp_path)
    first = record_file(small_clip, tmp_path, "cam1", 1, START)
    index_row(index, first, tmp_path, "cam1", 1, START)
    orphan = record_file(small_clip, tmp_path, "cam1", 2, START + 6 * SECOND)
    full = inspect(orphan)
    with open(orphan, "r+b") as fh:  # a crash in the middle of the 5th fragment
        fh.truncate(full.file_bytes - 30_000 - 2_000)
    report = reconcile(tmp_path, index)
    assert report.recovered == [str(orphan.relative_to(tmp_path))]
    assert report.trimmed == report.recovered
    rows = index.segments("cam1")
    assert [(r.seq, r.status) for r in rows] == [(1, "ok"), (2, "recovered")]
    recovered = rows[1]
    assert recovered.fragments == inspect(orphan).fragments >= 4
    assert recovered.packets == 25 * recovered.fragments
    assert recovered.end_us - recovered.start_us == recovered.fragments * SECOND
    assert recovered.bytes == orphan.stat().st_size
    # Idempotent: a second pass finds nothing to do.
    again = reconcile(tmp_path, index)
    assert not (again.recovered or again.trimmed or again.missing)


def test_a_file_without_any_whole_fragment_is_removed(small_clip, tmp_path):
    index = RecordingIndex(tmp_path)
    orphan = record_file(small_clip, tmp_path, "cam1", 1, START)
    with open(orphan, "r+b") as fh:
        fh.truncate(inspect(orphan).readable_bytes // 20)
    report = reconcile(tmp_path, index)
    assert report.removed_unreadable == [str(orphan.relative_to(tmp_path))]
    assert not orphan.exists() and index.segments() == []


def test_rows_without_files_are_marked_missing(small_clip, tmp_path):
    index = RecordingIndex(tmp_path)
    paths = [record_file(small_clip, tmp_path, "cam1", i + 1, START + i * 6 * SECOND)
             for i in range(3)]
    for i, path in enumerate(paths):
        index_row(index, path, tmp_path, "cam1", i + 1, START + i * 6 * SECOND)
    paths[1].unlink()
    report = reconcile(tmp_path, index)
    assert report.missing == [str(paths[1].relative_to(tmp_path))]
    assert [r.status for r in index.segments("cam1")] == ["ok", "missing", "ok"]
    assert index.last_segment_end("cam1") == START + 18 * SECOND


def test_an_implausible_share_of_missing_files_changes_nothing_and_alerts(tmp_path):
    index = RecordingIndex(tmp_path)
    for i in range(40):
        index.add_segment(Segment(camera="cam1", seq=i + 1, start_us=START + i * 60 * SECOND,
                                  end_us=START + (i + 1) * 60 * SECOND, bytes=1000,
                                  path=segment_relpath("cam1", START + i * 60 * SECOND, i + 1)))
    report = reconcile(tmp_path, index)  # e.g. the data disk is not mounted
    assert "40 of 40" in report.refused
    assert all(r.status == "ok" for r in index.segments())
    alerts = index.alerts()
    assert alerts and alerts[0]["severity"] == "critical" and "mounted" in alerts[0]["message"]


def test_a_file_that_shrank_after_indexing_is_retrimmed(small_clip, tmp_path):
    index = RecordingIndex(tmp_path)
    path = record_file(small_clip, tmp_path, "cam1", 1, START)
    index_row(index, path, tmp_path, "cam1", 1, START)
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)
    report = reconcile(tmp_path, index)
    assert report.trimmed
    row = index.segments("cam1")[0]
    assert row.status == "recovered" and row.bytes == path.stat().st_size
    assert row.end_us - row.start_us == row.fragments * SECOND


def test_foreign_files_are_left_alone(tmp_path):
    index = RecordingIndex(tmp_path)
    odd = tmp_path / "recordings" / "cam1" / "2026-11-18" / "07" / "holiday.mp4"
    odd.parent.mkdir(parents=True)
    odd.write_bytes(b"not ours")
    report = reconcile(tmp_path, index)
    assert report.unknown_files == [str(odd.relative_to(tmp_path))] and odd.exists()
