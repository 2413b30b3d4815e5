"""Stall recovery end to end: the real recorder records a real RTSP camera behind its
simulated PoE port; the camera freezes; the box power-cycles the port (the camera server
stops while the port is off and starts when power returns); recording resumes and the
gap says the port was power-cycled. A second stall within the hour is refused."""

from __future__ import annotations

import threading
import time

import pytest

from appliance.core.clock import RealClock
from appliance.poe.runtime import PoeService, build_manager
from appliance.poe.stall import StallRecovery
from appliance.recorder.index import RecordingIndex
from hw.board import load_profile
from hw.camsim.server import SimCamera
from tests.integration.recorder_process import RecorderProcess
from tests.integration.relay import PausingRelay
from tests.waiting import wait_until


@pytest.mark.timeout(180)
def test_a_frozen_camera_is_power_cycled_once_and_the_gap_says_so(small_clip, camera_server,
                                                                   tmp_path):
    server = camera_server(SimCamera("/cam1", small_clip, shared=False))
    relay = PausingRelay(server.port)   # the camera's network: can freeze with TCP still up
    manager, _ = build_manager(load_profile("sim"), {"cycle_off_seconds": 3,
                                                     "max_cycles_per_hour": 1})
    power_events = []
    armed = threading.Event()  # the first power-up (at start) is not part of the scenario

    def on_power(change) -> None:  # the camera is on Port 1: no power, no camera
        if change.label != "Port 1" or not armed.is_set():
            return
        power_events.append(change.powered)
        if change.powered:
            server.start()
        else:
            server.stop()
            relay.resume()
    manager.add_power_listener(on_power)
    poe = PoeService(manager, None)
    poe.start()
    wait_until(lambda: manager.snapshot().to_json()["ports"][0]["state"] == "powered", 20,
               "Port 1 powered")
    armed.set()
    data = tmp_path / "data"
    url = f"rtsp://127.0.0.1:{relay.port}/cam1"
    try:
        with RecorderProcess(data, {"cam": url}, "--segment-seconds", "2", "--read-timeout",
                             "2", "--connect-timeout", "2", "--backoff-cap", "1",
                             "--probe-interval", "0.2") as rec:
            rec.wait_for(lambda e: e["event"] == "durable", 60, what="recording")
            notes = RecordingIndex(data)
            watch = RecordingIndex(data, readonly=True)
            stall = StallRecovery(manager, watch.statuses, lambda: {"cam": "Port 1"},
                                  notes.add_note, RealClock(), stall_seconds=4)
            relay.pause()  # the camera freezes
            frozen = time.monotonic()
            decisions = wait_until(lambda: stall.check(), 60, "a power-cycle decision")
            assert decisions[0].allowed, decisions[0].reason
            assert time.monotonic() - frozen >= 4
            wait_until(lambda: power_events == [False, True], 30, "Port 1 off, then on")
            back = time.monotonic()
            rec.wait_for(lambda e: e["event"] == "durable" and e["_mono"] > back, 60,
                         what="recording after the power cycle")
            # the same camera freezes again within the hour: refused, with the reason
            relay.pause()
            again = wait_until(lambda: stall.check(), 60, "a second decision")
            assert not again[0].allowed and "hour" in again[0].reason
            relay.resume()
            assert rec.stop() == 0
            watch.close()
            notes.close()
    finally:
        poe.close()
        relay.close()
    index = RecordingIndex(data, readonly=True)
    gaps = [(g.start_us, g.end_us, g.cause, g.detail) for g in index.gaps("cam")]
    notes_seen = [tuple(r) for r in index.query("SELECT time_us, text FROM camera_notes")]
    index.close()
    assert any("PoE Port 1 power-cycled" in g[3] for g in gaps), (gaps, notes_seen)
