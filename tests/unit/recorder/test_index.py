import sqlite3

import pytest

from appliance.core.errors import DataLoss
from appliance.recorder.index import GapCause, RecordingIndex, Segment


def seg(camera, seq, start, end, **kw):
    return Segment(camera=camera, seq=seq, start_us=start, end_us=end, bytes=100,
                   path=f"recordings/{camera}/{seq}.mp4", **kw)


def test_segments_by_time_range_and_camera(tmp_path):
    index = RecordingIndex(tmp_path)
    for i in range(5):
        index.add_segment(seg("a", i + 1, i * 60_000_000, (i + 1) * 60_000_000))
    index.add_segment(seg("b", 1, 0, 60_000_000))
    assert [s.seq for s in index.segments("a", 90_000_000, 200_000_000)] == [2, 3, 4]
    assert index.max_seq("a") == 5 and index.max_seq("zzz") == 0
    assert index.last_segment_end("a") == 300_000_000
    assert index.cameras() == ["a", "b"]


def test_gap_lifecycle(tmp_path):
    index = RecordingIndex(tmp_path)
    gap_id = index.open_gap("a", 1000, GapCause.UNREACHABLE, "refused")
    assert [g.id for g in index.open_gaps("a")] == [gap_id]
    index.close_gap(gap_id, 500)  # never before its start
    gap = index.gaps("a")[0]
    assert (gap.start_us, gap.end_us, gap.cause) == (1000, 1000, "camera_unreachable")
    assert index.open_gaps("a") == []


@pytest.mark.parametrize("closed_first", [True, False])
def test_a_note_lands_in_the_gap_it_happened_in_whichever_write_comes_first(tmp_path,
                                                                            closed_first):
    # the PoE service writes the note while the recorder may be closing that very gap
    index = RecordingIndex(tmp_path)
    first = index.open_gap("a", 1000, GapCause.UNREACHABLE, "did not answer")
    if closed_first:
        index.close_gap(first, 2000)
        second = index.open_gap("a", 2000, GapCause.STREAM_ERROR, "not RTSP")
    index.add_note("a", 1999, "PoE Port 1 power-cycled")
    index.add_note("b", 1999, "another camera's note")
    if not closed_first:
        index.close_gap(first, 2000)
        second = index.open_gap("a", 2000, GapCause.STREAM_ERROR, "not RTSP")
    index.close_gap(second, 3000)
    assert [g.detail for g in index.gaps("a")] == ["did not answer; PoE Port 1 power-cycled",
                                                   "not RTSP"]


def test_a_new_cause_replaces_the_open_gap_with_no_moment_between_them(tmp_path):
    index = RecordingIndex(tmp_path)
    first = index.open_gap("a", 1000, GapCause.UNREACHABLE, "did not answer")
    second = index.open_gap("a", 2000, GapCause.STREAM_ERROR, "not RTSP", replacing=first)
    assert [(g.id, g.start_us, g.end_us) for g in index.gaps("a")] == [
        (first, 1000, 2000), (second, 2000, None)]
    index.add_note("a", 2500, "PoE Port 1 power-cycled")
    assert index.open_gaps("a")[0].detail == "not RTSP; PoE Port 1 power-cycled"


def test_a_note_outside_every_gap_is_kept_but_changes_no_gap(tmp_path):
    index = RecordingIndex(tmp_path)
    index.close_gap(index.open_gap("a", 1000, GapCause.UNREACHABLE, "refused"), 2000)
    index.add_note("a", 5000, "PoE Port 1 power-cycled")
    assert index.gaps("a")[0].detail == "refused"
    assert [tuple(r) for r in index.query("SELECT time_us, text FROM camera_notes")] == [
        (5000, "PoE Port 1 power-cycled")]


def test_duplicate_paths_and_sequence_numbers_are_refused(tmp_path):
    index = RecordingIndex(tmp_path)
    index.add_segment(seg("a", 1, 0, 10))
    with pytest.raises(sqlite3.IntegrityError):
        index.add_segment(seg("a", 1, 20, 30))


def test_status_round_trip_and_readonly_reader(tmp_path):
    index = RecordingIndex(tmp_path)
    index.write_status("a", "recording", "h264", 42, {"segments": 3})
    index.write_status("a", "unreachable", "refused", 43, {"segments": 3})
    reader = RecordingIndex(tmp_path, readonly=True)
    assert reader.statuses()["a"] == {"state": "unreachable", "detail": "refused",
                                      "heartbeat_us": 43, "segments": 3}
    with pytest.raises(sqlite3.OperationalError):
        reader.add_alert(1, "info", "test", "readers cannot write")


def test_wal_mode_and_a_damaged_index_is_reported(tmp_path):
    index = RecordingIndex(tmp_path)
    assert index._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    index.close()
    with pytest.raises(DataLoss):
        RecordingIndex(tmp_path / "nowhere", readonly=True)
    path = tmp_path / "index.sqlite3"
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"index.sqlite3{suffix}").unlink(missing_ok=True)
    raw = bytearray(path.read_bytes())
    raw[100:4096] = b"\xff" * (4096 - 100)
    path.write_bytes(bytes(raw))
    with pytest.raises((DataLoss, sqlite3.DatabaseError)):
        RecordingIndex(tmp_path)


def test_events_open_close_and_overlap_queries(tmp_path):
    from appliance.recorder.index import Event

    index = RecordingIndex(tmp_path)
    motion = index.open_event("a", "motion", 1000, "tns1:VideoSource/MotionAlarm", "State=true")
    index.add_event(Event("a", "tamper", 5000, 6000))
    index.add_event(Event("b", "motion", 1000, 2000))
    assert [e.kind for e in index.open_events("a")] == ["motion"]
    assert [e.kind for e in index.events("a", 4000, 4500)] == ["motion"]   # still open
    index.close_event(motion, 3000)
    index.close_event(motion, 9000)   # closed once: the first end stays
    assert [e.kind for e in index.events("a", 4000, 4500)] == []
    assert [(e.kind, e.end_us) for e in index.events("a", 0, 10_000)] == [
        ("motion", 3000), ("tamper", 6000)]
    assert index.open_events("a") == []
    lost = index.open_event("b", "motion", 7000)
    index.close_event(lost, 8000, note="subscription lost: connection refused")
    assert index.events("b", 7000, 7001)[0].detail == "subscription lost: connection refused"


def test_segments_carry_a_retention_class_and_older_indexes_gain_it(tmp_path):
    import sqlite3 as sq

    index = RecordingIndex(tmp_path)
    seg_id = index.add_segment(seg("a", 1, 0, 10))
    assert index.segments("a")[0].retention_class == "continuous"
    index.set_retention_class(seg_id, "rolling")
    assert index.segments("a")[0].retention_class == "rolling"
    with pytest.raises(ValueError):
        index.set_retention_class(seg_id, "forever")
    index.close()
    # an index from before the column: the migration adds it with the default
    (tmp_path / "old").mkdir()
    db = sq.connect(tmp_path / "old" / "index.sqlite3")
    db.execute("CREATE TABLE segments (id INTEGER PRIMARY KEY, camera TEXT NOT NULL, seq INTEGER "
               "NOT NULL, start_us INTEGER NOT NULL, end_us INTEGER NOT NULL, bytes INTEGER NOT "
               "NULL, path TEXT NOT NULL UNIQUE, video_codec TEXT, audio_codec TEXT, width "
               "INTEGER, height INTEGER, fragments INTEGER NOT NULL DEFAULT 0, packets INTEGER "
               "NOT NULL DEFAULT 0, status TEXT NOT NULL DEFAULT 'ok', UNIQUE (camera, seq))")
    db.execute("INSERT INTO segments (camera, seq, start_us, end_us, bytes, path) "
               "VALUES ('a', 1, 0, 10, 1, 'x.mp4')")
    db.commit()
    db.close()
    old = RecordingIndex(tmp_path / "old")
    assert old.segments("a")[0].retention_class == "continuous"
