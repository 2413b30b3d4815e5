"""Events collected from a real recording index and a real vigil-hwd alert log, with
cursors that survive a restart of the daemon (no event twice, none missed)."""

from __future__ import annotations

import json
import os

import pytest

from appliance.core.clock import SimulatedClock
from appliance.mqtt.collector import Collector
from appliance.mqtt.queue import EventQueue
from appliance.mqtt.sources import HwdAlertSource, IndexSource
from appliance.recorder.index import Event, GapCause, RecordingIndex, Segment
from appliance.storage import monitor
from appliance.storage.alerts import Alert
from appliance.storage.monitor import AlertLog

S = 1_000_000
MIN = 60 * S


class Rig:
    """A data directory with the recorder's index, hwd's state directory, and the
    daemon's collector on its queue (restartable)."""

    def __init__(self, root) -> None:
        self.root = root
        self.clock = SimulatedClock()
        self.index = RecordingIndex(root / "data")
        self.alert_log = AlertLog(root / "state" / "alerts.jsonl", self.clock)
        self.queue = self.collector = None
        self.start_daemon()

    @property
    def now_us(self) -> int:
        return int(self.clock.wall() * S)

    def start_daemon(self) -> None:
        self.queue = EventQueue(self.root / "data" / "mqtt-queue.sqlite3")
        self.collector = Collector(self.queue, [IndexSource(self.root / "data"),
                                                HwdAlertSource(self.root / "state")], self.clock)

    def restart_daemon(self) -> None:
        self.stop_daemon()
        self.start_daemon()

    def stop_daemon(self) -> None:
        for source in self.collector.sources:
            getattr(source, "close", lambda: None)()
        self.queue.close()

    def collect(self) -> list[tuple[str, str, str]]:
        """(kind, camera, cause) of the events queued by one pass."""
        self.clock.advance(1)
        return [(e.kind, e.camera, e.cause) for e in self.collector.collect()]

    def collect_events(self):
        self.clock.advance(1)
        return self.collector.collect()


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    r.collect()   # first sight: an empty index, no log yet
    yield r
    r.stop_daemon()
    r.index.close()


def test_gaps_are_reported_when_they_open_and_when_they_close(rig):
    start = rig.now_us
    gap = rig.index.open_gap("cam1", start, GapCause.UNREACHABLE, "connection refused")
    rig.index.add_gap("cam2", rig.now_us - 2 * S, rig.now_us - S, GapCause.STREAM_STALLED)
    rig.index.add_gap("cam2", rig.now_us, rig.now_us + S, GapCause.NO_EVENT)   # not a failure
    assert rig.collect() == [("gap_opened", "cam2", "stream_stalled"),
                             ("gap_closed", "cam2", "stream_stalled"),
                             ("gap_opened", "cam1", "camera_unreachable")]
    assert rig.collect() == []
    rig.index.close_gap(gap, start + 31 * S)
    [closed] = rig.collect_events()
    payload = closed.payload()
    assert payload["kind"] == "gap_closed" and payload["id"] == f"gap:{gap}:closed"
    assert payload["duration_s"] == pytest.approx(31.0) and payload["detail"] == \
        "connection refused"
    assert payload["time"].endswith("+00:00")


def test_a_restarted_daemon_reports_neither_twice_nor_misses_what_happened_meanwhile(rig):
    gap = rig.index.open_gap("cam1", rig.now_us, GapCause.AUTH_FAILED)
    rig.alert_log.add([Alert("warning", "raid:md0", "md0: degraded")])
    assert [kind for kind, _, _ in rig.collect()] == ["gap_opened", "raid_alert"]
    rig.stop_daemon()
    rig.index.close_gap(gap, rig.now_us - 5 * S)           # while the daemon is down
    rig.alert_log.add([Alert("info", "raid:md0", "md0: healthy again")])
    rig.start_daemon()
    assert rig.collect() == [("gap_closed", "cam1", "auth_failed"),   # in time order
                             ("raid_alert", None, "raid:md0")]
    rig.restart_daemon()
    assert rig.collect() == []
    assert len(rig.queue) == 4   # nothing acknowledged yet: all four still queued


def test_first_sight_of_an_index_reports_only_its_last_ten_minutes(tmp_path):
    r = Rig(tmp_path)
    r.index.add_gap("cam1", r.now_us - 20 * MIN, r.now_us - 19 * MIN, GapCause.STREAM_ENDED)
    r.index.add_gap("cam1", r.now_us - 5 * MIN, r.now_us - 4 * MIN, GapCause.STREAM_STALLED)
    assert r.collect() == [("gap_opened", "cam1", "stream_stalled"),
                           ("gap_closed", "cam1", "stream_stalled")]
    r.stop_daemon()
    r.index.close()


def test_camera_events_start_and_end(rig):
    motion = rig.index.open_event("door", "motion", rig.now_us, "tns1:VideoSource/MotionAlarm")
    rig.index.add_event(Event("door", "input", rig.now_us + 1, rig.now_us + 1))
    rig.index.add_event(Event("yard", "tamper", rig.now_us + 2, rig.now_us + 3 * S))
    events = rig.collect_events()
    assert [(e.camera, e.extra["event"], e.extra["state"]) for e in events] == [
        ("door", "motion", "started"), ("door", "input", "instant"),
        ("yard", "tamper", "started"), ("yard", "tamper", "ended")]
    assert events[0].extra["topic"] == "tns1:VideoSource/MotionAlarm"
    rig.index.close_event(motion, rig.now_us + 10 * S)
    [ended] = rig.collect_events()
    assert (ended.kind, ended.cause, ended.extra["state"]) == ("camera_event", "motion", "ended")


def test_recorder_alerts_by_category_with_the_web_api_id(rig):
    rig.index.add_alert(rig.now_us, "warning", "camera:door", "camera door has not recorded "
                        "for 60 s: unreachable")
    rig.index.add_alert(rig.now_us + 1, "critical", "licence", "more cameras than licensed")
    rig.index.add_alert(rig.now_us + 2, "info", "camera:door", "camera door is recording again")
    events = rig.collect_events()
    assert [(e.kind, e.camera, e.extra["active"]) for e in events] == [
        ("camera_alert", "door", True), ("licence_alert", None, True),
        ("camera_alert", "door", False)]
    first = events[0].payload()
    assert first["alert_id"] == "r1" and first["severity"] == "warning"
    assert first["detail"].startswith("camera door has not recorded")


def test_retention_deletions_are_reported_once_done_per_camera_and_rule(rig):
    segments = [Segment("cam1", n, rig.now_us - (10 - n) * MIN, rig.now_us - (9 - n) * MIN,
                        1000 * n, f"recordings/cam1/{n}.mp4") for n in (1, 2, 3)]
    for seg in segments:
        rig.index.add_segment(seg)
    ids = [rig.index.begin_deletion(seg, "max_age", "older than 30 days", rig.now_us)
           for seg in segments]
    assert rig.collect() == []              # intent only: the files are still there
    for deletion, seg in zip(ids, segments):
        rig.index.finish_deletion(deletion, seg.path)
    [event] = rig.collect_events()
    assert (event.kind, event.camera, event.cause) == ("retention_deletion", "cam1", "max_age")
    assert event.extra["segments"] == 3 and event.extra["bytes"] == 6000
    assert (event.extra["from_us"], event.extra["to_us"]) == (segments[0].start_us,
                                                              segments[2].end_us)
    assert rig.collect() == []


def test_camera_online_offline_and_auth_failed_from_the_recorders_status(rig):
    def status(state, detail=""):
        rig.index.write_status("door", state, detail, rig.now_us, {})
        return rig.collect()

    assert status("recording") == [("camera_online", "door", "recording")]
    assert status("recording") == []
    assert status("retrying", "stream ended") == [("camera_offline", "door", "retrying")]
    assert status("unreachable", "connection refused") == []          # still offline
    assert status("auth_failed", "401") == [("camera_auth_failed", "door", "auth_failed")]
    assert status("connecting") == []                                 # passing through
    assert status("waiting_keyframe") == []
    assert status("recording") == [("camera_online", "door", "recording")]
    rig.clock.advance(31)                   # the recorder stopped writing statuses
    [silent] = rig.collect_events()
    assert (silent.kind, silent.cause) == ("camera_offline", "no_status")
    assert "has not reported" in silent.detail


def test_hwd_alerts_are_read_from_where_the_last_pass_stopped(rig):
    log_path = rig.root / "state" / "alerts.jsonl"
    rig.alert_log.add([Alert("critical", "disk:WD-1", "data disk WD-1 removed"),
                       Alert("warning", "poe:Port 3", "Port 3: overload, power cut")])
    events = rig.collect_events()
    assert [(e.kind, e.extra["active"]) for e in events] == [("disk_alert", True),
                                                            ("poe_alert", True)]
    assert events[0].extra["alert_id"].startswith("h") and len(events[0].extra["alert_id"]) == 17
    with open(log_path, "a") as out:           # hwd is writing a line right now
        out.write('{"time": 1800000005.0, "severity": "warning", "sour')
    assert rig.collect() == []
    with open(log_path, "a") as out:
        out.write('ce": "smart:WD-1", "message": "reallocated sectors"}\n')
    assert rig.collect() == [("smart_alert", None, "smart:WD-1")]


def test_the_alert_log_is_followed_through_its_rotation(rig, monkeypatch):
    monkeypatch.setattr(monitor, "ALERT_LOG_MAX_BYTES", 300)
    messages = [f"md0: event {n}" for n in range(12)]
    seen = []
    for n, message in enumerate(messages):
        rig.alert_log.add([Alert("warning", "raid:md0", message)])
        if n % 2:   # the daemon polls more often than the log rotates (1 s, 1 MB)
            seen += [e.detail for e in rig.collect_events()]
    seen += [e.detail for e in rig.collect_events()]
    assert (rig.root / "state" / "alerts.jsonl.1").exists()
    assert seen == messages


def test_after_two_rotations_both_files_are_read_for_alerts_not_reported_yet(rig):
    rig.alert_log.add([Alert("warning", "raid:md0", "first")])
    assert [e.detail for e in rig.collect_events()] == ["first"]
    rig.stop_daemon()
    path = rig.root / "state" / "alerts.jsonl"
    # two rotations while the daemon was down: the file it knew is gone
    os.replace(path, path.with_name("alerts.jsonl.1"))
    rig.alert_log.add([Alert("warning", "raid:md0", "second")])
    os.replace(path, path.with_name("alerts.jsonl.1"))
    rig.clock.advance(1)
    rig.alert_log.add([Alert("warning", "raid:md0", "third")])
    rig.start_daemon()
    assert [e.detail for e in rig.collect_events()] == ["second", "third"]


def test_a_daemon_started_on_an_old_log_reports_only_its_last_ten_minutes(tmp_path):
    r = Rig(tmp_path)
    r.alert_log.add([Alert("warning", "smart:A", "old")])
    r.clock.advance(11 * 60)
    r.alert_log.add([Alert("warning", "smart:A", "recent")])
    r.restart_daemon()   # a first start: no cursor yet
    assert [json.loads(e.payload_text())["detail"] for e in r.collect_events()] == ["recent"]
    r.stop_daemon()
    r.index.close()


def test_switched_off_the_cursors_move_and_nothing_is_queued(rig):
    rig.index.open_gap("cam1", rig.now_us, GapCause.UNREACHABLE)
    rig.clock.advance(1)
    assert rig.collector.collect(keep=False) == []
    assert len(rig.queue) == 0
    rig.restart_daemon()
    assert rig.collect() == []   # switched on later: the past is not replayed


def test_a_log_first_seen_while_its_first_line_was_being_written(rig):
    log_path = rig.root / "state" / "alerts.jsonl"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as out:
        out.write('{"time": 1800000001.0, "severity": "critical", "source": "disk:A", ')
    assert rig.collect() == []
    with open(log_path, "a") as out:
        out.write('"message": "data disk A removed"}\n')
    assert rig.collect() == [("disk_alert", None, "disk:A")]
    rig.alert_log.add([Alert("info", "disk:A", "data disk A is back")])
    assert [e.detail for e in rig.collect_events()] == ["data disk A is back"]   # once
