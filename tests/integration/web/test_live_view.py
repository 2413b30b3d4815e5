"""Live view over HTTP from a real RTSP camera (hw/camsim): what arrives is H.264 fMP4 that
ffprobe reads, a fragment starts at every keyframe, frames leave the box within a frame
interval of arriving, viewers share one camera connection that closes after the last
leaves, a slow viewer is dropped without delaying the others, and the limits hold."""

from __future__ import annotations

import http.client
import json
import re
import socket
import statistics
import struct
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest

from appliance.playback.fragments import fragment_index
from appliance.web import live_api
from hw.camsim.clips import ensure_clip
from hw.camsim.server import SimCamera
from tests.integration.conftest import CACHE, ffprobe_json
from tests.waiting import wait_until

U32 = struct.Struct(">I")


class LiveReader:
    """One HTTP viewer in a thread: keeps the bytes and when each fragment was complete."""

    def __init__(self, port: int, cookie: str, camera: str = "cam") -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.conn.request("GET", f"/api/v1/cameras/{camera}/live.mp4",
                          headers={"Cookie": cookie})
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.content_type = self.resp.getheader("Content-Type", "")
        self.data = bytearray()
        self.received: dict[int, float] = {}  # moof sequence number -> monotonic time
        self.ended = False
        self._parsed = 0
        self.complete = 0  # bytes up to the end of the last whole fragment
        self._seq: int | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        if self.status == 200:
            self._thread.start()
        else:
            self.error = json.loads(self.resp.read() or b"{}").get("error")
            self.resp.close()
            self.conn.close()

    def _read(self) -> None:
        try:
            while not self._stop:
                chunk = self.resp.read1(65536)
                if not chunk:
                    break
                self.data += chunk
                self._parse(time.monotonic())
        except (OSError, ValueError, http.client.HTTPException):
            pass
        self.ended = True

    def _parse(self, now: float) -> None:
        while self._parsed + 8 <= len(self.data):
            size, kind = U32.unpack_from(self.data, self._parsed)[0], \
                bytes(self.data[self._parsed + 4:self._parsed + 8])
            if self._parsed + size > len(self.data):
                return
            if kind == b"moof":  # mfhd is the first child: size, type, version+flags, seq
                self._seq = U32.unpack_from(self.data, self._parsed + 20)[0]
            elif kind == b"mdat" and self._seq is not None:
                self.received[self._seq] = now
                self.complete = self._parsed + size
            self._parsed += size

    def wait_fragments(self, count: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        start = len(self.received)
        while len(self.received) - start < count:
            assert time.monotonic() < deadline and not self.ended, \
                f"only {len(self.received) - start} of {count} fragments arrived"
            time.sleep(0.05)

    def close(self) -> None:
        """Leave like a browser tab closing: the connection goes away."""
        self._stop = True
        if self.conn.sock is not None:
            try:
                self.conn.sock.shutdown(socket.SHUT_RDWR)  # wakes the reading thread
            except OSError:
                pass
        if self._thread.is_alive():
            self._thread.join(5)
        self.resp.close()
        self.conn.close()

    def save(self, path: Path) -> Path:
        """What arrived, up to the last whole fragment (the stream was cut mid-flight)."""
        path.write_bytes(bytes(self.data[:self.complete]))
        return path


def camera_connections(port: int) -> int:
    """TCP connections from this process to the camera's RTSP port (the ground truth)."""
    return sum(1 for c in psutil.Process().net_connections(kind="tcp")
               if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED)


def latencies(reader: LiveReader, timings) -> list[float]:
    """RTSP packet read by the box -> fragment complete at the HTTP client, seconds."""
    arrived = {t.seq: t.arrived for t in timings}
    return sorted(reader.received[s] - arrived[s] for s in reader.received if s in arrived)


@pytest.mark.parametrize("mode", ["frame", "gop"])
def test_live_stream_is_h264_fmp4_cut_at_keyframes_and_prompt(mode, camera_server, web_server,
                                                              small_clip, tmp_path):
    cam = camera_server(SimCamera("/cam1", small_clip, audio="aac"))
    web = web_server({"cam": cam.url("/cam1")}, {"fragment": mode})
    reader = LiveReader(web.port, web.client.cookie)
    assert reader.status == 200
    assert reader.content_type.startswith('video/mp4; codecs="avc1.')
    time.sleep(4.0)
    timings = web.hub.timings("cam")
    reader.close()
    path = reader.save(tmp_path / f"live-{mode}.mp4")

    streams = ffprobe_json(path, "-show_entries", "stream=codec_type,codec_name,width,height")
    assert streams["streams"] == [{"codec_name": "h264", "codec_type": "video",
                                   "width": 640, "height": 360}]  # video only (no audio)
    packets = ffprobe_json(path, "-select_streams", "v:0", "-show_entries",
                           "packet=pos,flags,pts_time")["packets"]
    assert len(packets) >= 25 * 2.5, len(packets)  # ~4 s at 25 fps, after the handshake
    assert packets[0]["flags"].startswith("K")     # a viewer starts at a keyframe
    frags = fragment_index(path).fragments
    starts = {f.offset for f in frags}
    # A packet's data follows its fragment's moof: the fragment holding packet p is the
    # last one that starts before p's position.
    offsets = sorted(starts)

    def fragment_of(pos: int) -> int:
        return max(i for i, o in enumerate(offsets) if o < pos)

    first_in_fragment = {}
    for p in packets:
        first_in_fragment.setdefault(fragment_of(int(p["pos"])), p)
    keyframes = [p for p in packets if p["flags"].startswith("K")]
    assert len(keyframes) >= 2
    for key in keyframes:  # a fragment starts at every keyframe (GOP = 1 s here)
        assert first_in_fragment[fragment_of(int(key["pos"]))] is key
    if mode == "frame":
        assert len(frags) == len(packets)
    else:
        assert len(frags) == len(keyframes)

    lat = latencies(reader, timings)
    assert len(lat) >= len(frags) - 2
    p50, p95 = statistics.median(lat), lat[int(0.95 * (len(lat) - 1))]
    print(f"\nlive latency fragment={mode}: n={len(lat)} p50={p50 * 1000:.1f} ms "
          f"p95={p95 * 1000:.1f} ms max={lat[-1] * 1000:.1f} ms "
          "(RTSP packet read -> fragment received over HTTP)")
    if mode == "frame":
        assert p95 < 0.25, lat  # one frame interval (40 ms) in the muxer, plus delivery
    else:
        assert p95 < 1.0 + 0.25, lat  # the GOP is 1 s


def test_viewers_share_one_camera_connection_that_closes_after_the_last(camera_server,
                                                                        web_server, small_clip,
                                                                        tmp_path):
    cam = camera_server(SimCamera("/cam1", small_clip, audio="aac"))
    # max delay below the GOP (1 s): the GOP-so-far a late joiner gets is older than that,
    # which must not count as the viewer being slow.
    web = web_server({"cam": cam.url("/cam1")}, {"linger_seconds": 1.0, "viewer_max_delay": 0.5})
    first = LiveReader(web.port, web.client.cookie)
    first.wait_fragments(10)

    def frames_into_gop() -> int:
        timings = web.hub.timings("cam")
        keys = [i for i, t in enumerate(timings) if t.keyframe]
        return len(timings) - keys[-1] if keys else 0
    wait_until(lambda: frames_into_gop() >= 18, 5, "the GOP to be 0.7 s old")
    second = LiveReader(web.port, web.client.cookie)
    second.wait_fragments(30)
    assert camera_connections(cam.port) == 1
    stats = web.hub.stats()["cam"]
    assert stats["viewers"] == 2 and stats["connects"] == 1
    # The late joiner starts at a keyframe: the current GOP so far, then live.
    head = ffprobe_json(second.save(tmp_path / "second.mp4"), "-select_streams", "v:0",
                        "-show_entries", "packet=flags")["packets"]
    assert head[0]["flags"].startswith("K")

    first.close()
    second.wait_fragments(25)  # the other viewer goes on
    assert camera_connections(cam.port) == 1
    second.close()
    wait_until(lambda: not web.hub.upstream_running("cam"), 10, "the upstream to close")
    wait_until(lambda: camera_connections(cam.port) == 0, 5, "the RTSP connection to close")

    third = LiveReader(web.port, web.client.cookie)  # a new connection for a new viewer
    third.wait_fragments(5)
    assert web.hub.stats()["cam"]["connects"] == 2
    third.close()


def test_a_slow_viewer_is_dropped_and_never_delays_the_others(camera_server, web_server):
    # 6 Mb/s, so a viewer that reads nothing fills the kernel's socket buffers quickly.
    clip = ensure_clip(CACHE, codec="h264", audio=None, seconds=6, width=640, height=360,
                       fps=25, bitrate_kbps=6000, gop=25)
    cam = camera_server(SimCamera("/cam1", clip))
    web = web_server({"cam": cam.url("/cam1")}, {"viewer_max_delay": 1.0})
    fast = LiveReader(web.port, web.client.cookie)
    fast.wait_fragments(10)
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and never read
    slow.connect(("127.0.0.1", web.port))
    slow.sendall(f"GET /api/v1/cameras/cam/live.mp4 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Cookie: {web.client.cookie}\r\n\r\n".encode())
    try:
        wait_until(lambda: web.hub.stats()["cam"]["viewers"] == 2, 10, "the slow viewer")
        began = time.monotonic()
        wait_until(lambda: web.hub.stats()["cam"]["dropped_viewers"] == 1, 30,
                   "the slow viewer to be dropped")
        dropped_after = time.monotonic() - began
        assert web.hub.stats()["cam"]["viewers"] == 1
        fast.wait_fragments(25)
    finally:
        slow.close()
    times = sorted(fast.received.values())
    longest_pause = max(b - a for a, b in zip(times, times[1:]))
    lat = latencies(fast, web.hub.timings("cam"))
    print(f"\nslow viewer dropped after {dropped_after:.1f} s; the other viewer's longest "
          f"pause {longest_pause * 1000:.0f} ms, p95 latency "
          f"{lat[int(0.95 * (len(lat) - 1))] * 1000:.1f} ms")
    assert longest_pause < 0.5
    assert lat[int(0.95 * (len(lat) - 1))] < 0.25
    fast.close()


def test_limits_errors_and_status(camera_server, web_server, small_clip):
    cam = camera_server(SimCamera("/cam1", small_clip, audio="aac"))
    from hw.camsim.server import free_port
    web = web_server({"cam": cam.url("/cam1"), "dead": f"rtsp://127.0.0.1:{free_port()}/x"},
                     {"max_viewers_per_camera": 2, "max_viewers_total": 3,
                      "retry_seconds": 30})
    no_session = LiveReader(web.port, "")
    assert no_session.status == 401
    assert LiveReader(web.port, web.client.cookie, "nosuch").status == 404
    assert LiveReader(web.port, web.client.cookie, "..%2Fx").status in (400, 404)

    viewers = [LiveReader(web.port, web.client.cookie) for _ in range(2)]
    extra = LiveReader(web.port, web.client.cookie)
    assert extra.status == 429 and "max_viewers_per_camera" in extra.error
    status, _ = web.client.request("HEAD", "/api/v1/cameras/cam/live.mp4")
    assert status == 200 and web.hub.stats()["cam"]["viewers"] == 2  # HEAD holds no slot
    status, body = web.client.json("GET", "/api/v1/live")
    assert status == 200 and body["cameras"]["cam"]["viewers"] == 2
    for viewer in viewers:
        viewer.close()

    began = time.monotonic()
    dead = LiveReader(web.port, web.client.cookie, "dead")
    assert dead.status == 503 and "nothing answers" in dead.error
    assert time.monotonic() - began < 5
    again = LiveReader(web.port, web.client.cookie, "dead")  # no new connect attempt yet
    assert again.status == 503 and web.hub.connects["dead"] == 1


def test_logging_out_ends_a_running_live_stream(camera_server, web_server, small_clip,
                                                monkeypatch):
    monkeypatch.setattr(live_api, "SESSION_RECHECK_SECONDS", 0.5)
    cam = camera_server(SimCamera("/cam1", small_clip, audio="aac"))
    web = web_server({"cam": cam.url("/cam1")})
    reader = LiveReader(web.port, web.client.cookie)
    reader.wait_fragments(5)
    status, _ = web.client.json("POST", "/api/v1/logout", {})
    assert status == 200
    wait_until(lambda: reader.ended, 5, "the stream to end after logout")
    reader.close()


def test_ffmpeg_reads_the_live_stream_as_a_client_would(camera_server, web_server, small_clip,
                                                        tmp_path):
    """An independent client (ffmpeg's HTTP + mov demuxer) decodes 2 s of live video."""
    cam = camera_server(SimCamera("/cam1", small_clip, audio="aac"))
    web = web_server({"cam": cam.url("/cam1")})
    out = subprocess.run(["ffmpeg", "-v", "error", "-headers",
                          f"Cookie: {web.client.cookie}\r\n", "-i",
                          f"{web.base}/api/v1/cameras/cam/live.mp4", "-t", "2", "-f", "null",
                          "-"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr


def test_an_h265_camera_is_remuxed_with_its_hvc1_codec_string(camera_server, web_server,
                                                              tmp_path):
    """H.265 is passed through too (no transcoding: browsers without HEVC say so)."""
    clip = ensure_clip(CACHE, codec="h265", audio=None, seconds=4, width=640, height=360,
                       fps=25, bitrate_kbps=600, gop=25)
    cam = camera_server(SimCamera("/cam1", clip, codec="h265"))
    web = web_server({"cam": cam.url("/cam1")})
    reader = LiveReader(web.port, web.client.cookie)
    assert reader.status == 200
    # Main profile (1), compatible with Main and Main 10 (bits 1, 2 reversed: 6), level.
    assert re.fullmatch(r'video/mp4; codecs="hvc1\.1\.6\.L\d+(\.[0-9A-F]{1,2})*"',
                        reader.content_type), reader.content_type
    reader.wait_fragments(25)
    reader.close()
    info = ffprobe_json(reader.save(tmp_path / "hevc.mp4"), "-show_entries",
                        "stream=codec_name,codec_tag_string,width")
    assert info["streams"] == [{"codec_name": "hevc", "codec_tag_string": "hvc1", "width": 640}]


def test_a_camera_that_dies_ends_the_stream_and_live_view_comes_back(camera_server,
                                                                     web_server, small_clip):
    cam = camera_server(SimCamera("/cam1", small_clip, audio="aac"))
    web = web_server({"cam": cam.url("/cam1")}, {"retry_seconds": 1.0, "read_timeout": 2.0})
    reader = LiveReader(web.port, web.client.cookie)
    reader.wait_fragments(10)
    cam.kill()  # like the camera losing power
    wait_until(lambda: reader.ended, 5, "the live response to end")
    reader.close()
    refused = LiveReader(web.port, web.client.cookie)
    assert refused.status == 503, refused.status
    cam.restart()

    def admitted() -> LiveReader | None:
        viewer = LiveReader(web.port, web.client.cookie)  # a refused one closes itself
        return viewer if viewer.status == 200 else None

    back = wait_until(admitted, 10, "the live view to come back (retry_seconds is 1)")
    back.wait_fragments(10)
    back.close()
