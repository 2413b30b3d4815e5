"""The durable queue: order, at-least-once across a reopen, the bound and its `dropped`
report, cursors stored with their events, and the move from RAM to the data disk."""

from __future__ import annotations

import json

import pytest

from appliance.mqtt.events import BoxEvent
from appliance.mqtt.queue import DROPPED_SEQ, EventQueue


def event(n: int) -> BoxEvent:
    return BoxEvent("gap_opened", 1_800_000_000_000_000 + n, f"gap:{n}:opened", "cam1",
                    "camera_unreachable")


def ids(pending) -> list[str]:
    return [json.loads(p.payload)["id"] for p in pending]


@pytest.fixture
def queue(tmp_path):
    q = EventQueue(tmp_path / "q.sqlite3", max_events=100)
    yield q
    q.close()


def test_events_come_out_in_the_order_they_went_in(queue):
    queue.put([event(3), event(1)])
    queue.put([event(2)])
    assert ids(queue.take(10)) == ["gap:3:opened", "gap:1:opened", "gap:2:opened"]
    assert queue.take(10) == []   # all in flight: nothing is handed out twice


def test_only_an_acknowledged_event_leaves_the_queue_even_across_a_reopen(tmp_path):
    path = tmp_path / "q.sqlite3"
    first = EventQueue(path)
    first.put([event(n) for n in range(5)])
    taken = first.take(3)
    first.ack(taken[0].seq)
    first.ack(taken[1].seq)          # the third was sent, its PUBACK never came
    first.close()                    # the process dies
    again = EventQueue(path)
    assert ids(again.take(10)) == [f"gap:{n}:opened" for n in (2, 3, 4)]
    assert len(again) == 3
    again.close()


def test_a_lost_connection_hands_everything_unacknowledged_out_again_from_the_head(queue):
    queue.put([event(n) for n in range(4)])
    first = queue.take(2)
    queue.ack(first[0].seq)
    queue.take(2)
    queue.release()                  # connection lost
    assert ids(queue.take(10)) == ["gap:1:opened", "gap:2:opened", "gap:3:opened"]


def test_the_bound_drops_the_oldest_and_says_so_first(tmp_path):
    queue = EventQueue(tmp_path / "q.sqlite3", max_events=100)
    assert queue.put([event(n) for n in range(100)]) == 0
    assert queue.put([event(n) for n in range(100, 130)]) == 30
    assert len(queue) == 100
    taken = queue.take(200)
    report = json.loads(taken[0].payload)
    assert taken[0].seq == DROPPED_SEQ and report["kind"] == "dropped"
    assert report["count"] == 30 and report["cause"] == "queue_full"
    assert report["first_time_us"] == event(0).time_us
    assert report["last_time_us"] == event(29).time_us
    assert ids(taken[1:]) == [f"gap:{n}:opened" for n in range(30, 130)]
    queue.ack(DROPPED_SEQ)
    queue.release()
    assert json.loads(queue.take(1)[0].payload)["id"] == "gap:30:opened"   # reported once
    queue.close()


def test_drops_while_the_report_is_in_flight_are_reported_next_time(tmp_path):
    queue = EventQueue(tmp_path / "q.sqlite3", max_events=100)
    queue.put([event(n) for n in range(105)])
    report = queue.take(1)[0]
    assert json.loads(report.payload)["count"] == 5
    queue.put([event(n) for n in range(105, 108)])   # 3 more dropped, not in flight ones
    queue.ack(report.seq)
    queue.release()
    again = queue.take(1)[0]
    assert again.seq == DROPPED_SEQ and json.loads(again.payload)["count"] == 3
    queue.close()


def test_events_in_flight_are_not_dropped(tmp_path):
    queue = EventQueue(tmp_path / "q.sqlite3", max_events=100)
    queue.put([event(n) for n in range(100)])
    flying = queue.take(2)
    queue.put([event(100)])
    assert ids(flying) == ["gap:0:opened", "gap:1:opened"]
    queue.ack(flying[0].seq)
    queue.ack(flying[1].seq)
    queue.release()
    taken = queue.take(200)
    assert json.loads(taken[0].payload)["count"] == 1
    assert ids(taken[1:2]) == ["gap:3:opened"]   # gap:2 was the oldest not in flight
    queue.close()


def test_cursors_are_stored_with_their_events(tmp_path):
    path = tmp_path / "q.sqlite3"
    queue = EventQueue(path)
    queue.put([event(1)], {"recorder_index": {"gaps": 1}, "hwd_alerts": {"offset": 10}})
    queue.put([], {"hwd_alerts": {"offset": 20}})
    queue.close()
    again = EventQueue(path)
    assert again.cursors() == {"recorder_index": {"gaps": 1}, "hwd_alerts": {"offset": 20}}
    assert len(again) == 1
    again.close()


def test_a_ram_queue_is_appended_to_the_disk_queue_with_its_cursors(tmp_path):
    ram = EventQueue(tmp_path / "run" / "q.sqlite3", max_events=100)
    ram.put([event(n) for n in range(103, 106)], {"hwd_alerts": {"offset": 99}})
    ram.close()
    disk = EventQueue(tmp_path / "data" / "mqtt-queue.sqlite3")
    disk.put([event(1), event(2)], {"hwd_alerts": {"offset": 5}, "recorder_index": {"gaps": 2}})
    assert disk.absorb(tmp_path / "run" / "q.sqlite3") == 3
    assert not (tmp_path / "run" / "q.sqlite3").exists()
    assert ids(disk.take(10)) == ["gap:1:opened", "gap:2:opened", "gap:103:opened",
                                  "gap:104:opened", "gap:105:opened"]
    assert disk.cursors() == {"hwd_alerts": {"offset": 99}, "recorder_index": {"gaps": 2}}
    disk.close()
