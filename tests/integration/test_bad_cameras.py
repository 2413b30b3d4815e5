"""Bad input from cameras: each gets a clear state, no crash, no storm, others unaffected."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

import pytest

from appliance.recorder.index import RecordingIndex
from hw.camsim.server import SimCamera, free_port
from tests.integration.conftest import ROOT
from tests.integration.recorder_process import RecorderProcess


class HostileServer:
    """A loopback TCP server that either sends garbage or accepts and never answers."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.accepts = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepts += 1
            if self.mode == "garbage":
                try:
                    conn.sendall(b"\x00\xff\x13RTSP/9.9 ???\r\n\r\n" + bytes(range(256)) * 64)
                except OSError:
                    pass
                conn.close()
            else:
                self.held.append(conn)  # silent: keep it open, say nothing

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.mark.timeout(120)
def test_broken_cameras_get_clear_states_and_never_disturb_a_good_one(
        small_clip, camera_server, tmp_path):
    good = camera_server(SimCamera("/cam1", small_clip, audio="aac", shared=False))
    locked = camera_server(SimCamera("/cam1", small_clip, audio="aac", shared=False,
                                     user="admin", password="right-one"))
    garbage, silent = HostileServer("garbage"), HostileServer("silent")
    cameras = {
        "good": good.url("/cam1"),
        "unreachable": f"rtsp://127.0.0.1:{free_port()}/stream",
        "wrongpass": locked.url("/cam1", user="admin", password="s3cr3t-guess"),
        "garbage": f"rtsp://127.0.0.1:{garbage.port}/stream",
        "silent": f"rtsp://127.0.0.1:{silent.port}/stream",
    }
    data = tmp_path / "data"
    try:
        with RecorderProcess(data, cameras, "--segment-seconds", "3", "--connect-timeout", "2",
                             "--read-timeout", "2", "--backoff-initial", "0.5",
                             "--backoff-cap", "4") as rec:
            rec.wait_for(lambda e: e["event"] == "segment" and e["camera"] == "good", 60,
                         count=3, what="3 good segments")
            rec.wait_state("silent", "unreachable", 30)
            assert rec.stop() == 0
            states = {cam: [e for e in rec.matching(event="state", camera=cam)] for cam in cameras}
    finally:
        garbage.close()
        silent.close()
    assert [e["state"] for e in states["good"]][:3] == ["connecting", "waiting_keyframe", "recording"]
    assert "recording" == states["good"][-2]["state"]  # never left recording until the stop

    def last_detail(cam):
        return [e for e in states[cam] if e["state"] not in ("stopped", "connecting")][-1]

    assert last_detail("unreachable")["state"] == "unreachable"
    assert "nothing answers" in last_detail("unreachable")["detail"]
    auth = last_detail("wrongpass")
    assert auth["state"] == "auth_failed" and "401" in auth["detail"]
    assert len([e for e in states["wrongpass"] if e["state"] == "connecting"]) == 1, "no storm"
    assert "not a valid RTSP stream" in last_detail("garbage")["detail"]
    assert 2 <= garbage.accepts <= 8, garbage.accepts  # retried, with backoff
    assert "did not answer within 2 s" in last_detail("silent")["detail"]
    assert silent.accepts in range(1, 6), silent.accepts  # one try per backoff step

    index = RecordingIndex(data, readonly=True)
    causes = {cam: {g.cause for g in index.gaps(cam)} for cam in cameras}
    assert causes["unreachable"] >= {"camera_unreachable"}
    assert causes["wrongpass"] >= {"auth_failed"}
    assert causes["garbage"] >= {"stream_error"}
    assert causes["silent"] >= {"camera_unreachable"}
    assert causes["good"] == {"recorder_stopped"}
    for cam in cameras:
        if cam != "good":
            assert index.segments(cam) == []
    statuses = index.statuses()
    assert statuses["wrongpass"]["state"] == "stopped"
    assert "s3cr3t-guess" not in (data.parent / "data.log").read_text(), "no password in the log"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("url", ["http://127.0.0.1/x", "file:///etc/passwd", "rtsp:///nohost",
                                 "-i rtsp://x"])
def test_a_non_rtsp_url_is_refused_with_a_clear_error(tmp_path, url):
    out = subprocess.run([sys.executable, "-m", "appliance.cli", "record", "--data",
                          str(tmp_path), "--camera", f"cam={url}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 2
    assert out.stderr.startswith("nvr: camera cam:") and "Traceback" not in out.stderr
    assert not (tmp_path / "recordings").exists()
