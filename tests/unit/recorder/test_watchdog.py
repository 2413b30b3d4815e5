"""The watchdog is fed only while every camera thread shows progress."""

from __future__ import annotations

import socket
import threading

from appliance.config.recorder import CameraConfig, build_settings
from appliance.core.clock import SimulatedClock
from appliance.core.sdnotify import SystemdNotifier
from appliance.recorder.camera import CameraRecorder
from appliance.recorder.index import RecordingIndex
from appliance.recorder.service import Recorder


class FakeSystemd:
    """A real AF_UNIX datagram socket, like systemd's notify socket."""

    def __init__(self, path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "4000000"}

    def messages(self) -> list[str]:
        out = []
        while True:
            try:
                out.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return out


def recorder_with_idle_workers(tmp_path, systemd):
    clock = SimulatedClock()
    settings = build_settings({})
    cams = [CameraConfig("a", "rtsp://127.0.0.1/a"), CameraConfig("b", "rtsp://127.0.0.1/b")]
    recorder = Recorder(tmp_path, cams, settings, clock=clock,
                        notifier=SystemdNotifier(systemd.env))
    recorder.index = RecordingIndex(tmp_path)
    for cam in cams:  # built like start() does, but the threads are not started
        recorder.workers[cam.name] = CameraRecorder(cam, settings, tmp_path, recorder.index,
                                                    clock, threading.Event())
    return recorder, clock


def test_pings_while_all_cameras_progress_and_stops_when_one_stalls(tmp_path):
    systemd = FakeSystemd(tmp_path / "notify")
    recorder, clock = recorder_with_idle_workers(tmp_path, systemd)
    deadline = recorder.settings.progress_deadline
    clock.advance(2.5)
    for worker in recorder.workers.values():
        worker.stats.last_progress = clock.monotonic()
    recorder.tick()
    assert systemd.messages() == ["WATCHDOG=1"]
    # Camera b's thread is stuck (e.g. in a read that never returns); a keeps working.
    sent = []
    for _ in range(int(deadline) + 5):
        clock.advance(1.0)
        recorder.workers["a"].stats.last_progress = clock.monotonic()
        recorder.tick()
        sent += systemd.messages()
    assert recorder.stalled_cameras() == ["b"]
    assert "WATCHDOG=1" in sent  # fed while b was still within its deadline
    clock.advance(2.5)
    recorder.workers["a"].stats.last_progress = clock.monotonic()
    recorder.tick()
    assert systemd.messages() == []  # b stalled: no more pings, systemd will restart us
    recorder.workers["b"].stats.last_progress = clock.monotonic()
    recorder.tick()
    assert systemd.messages() == ["WATCHDOG=1"]


def test_status_rows_are_written_for_every_camera(tmp_path):
    systemd = FakeSystemd(tmp_path / "notify")
    recorder, clock = recorder_with_idle_workers(tmp_path, systemd)
    clock.advance(3)
    recorder.tick()
    statuses = recorder.index.statuses()
    assert set(statuses) == {"a", "b"} and statuses["a"]["state"] == "starting"


def test_a_full_notify_socket_never_blocks_the_recorder(tmp_path):
    systemd = FakeSystemd(tmp_path / "notify")  # nobody reads it
    notifier = SystemdNotifier(systemd.env)
    for _ in range(200):
        notifier.watchdog()  # returns at once even when the queue is full


def test_without_systemd_nothing_is_sent(tmp_path):
    notifier = SystemdNotifier({})
    assert not notifier.enabled and notifier.watchdog_interval is None
    notifier.ready()  # a no-op, never an error
