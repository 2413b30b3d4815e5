"""Cameras that get things wrong or differ: re-based RTP time, mid-GOP joins, H.265, audio."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from appliance.recorder.index import RecordingIndex
from hw.camsim.clips import ensure_clip
from hw.camsim.server import SimCamera
from tests.integration.conftest import CACHE, ffprobe_json, video_packets
from tests.integration.recorder_process import RecorderProcess


def record(server_url: str, tmp_path: Path, segments: int = 2, *settings: str,
           before_start=None) -> tuple[Path, RecordingIndex, dict]:
    """Record one camera until `segments` segments closed; return data dir, index, status."""
    data = tmp_path / "data"
    with RecorderProcess(data, {"cam": server_url}, "--segment-seconds", "3", *settings) as rec:
        rec.wait_for(lambda e: e["event"] == "segment", 60, count=segments,
                     what=f"{segments} segments")
        assert rec.stop() == 0
    index = RecordingIndex(data, readonly=True)
    return data, index, index.statuses()["cam"]


def dts_of(path: Path) -> list[float]:
    data = ffprobe_json(path, "-select_streams", "v:0", "-show_entries", "packet=dts_time")
    return [float(p["dts_time"]) for p in data["packets"]]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("jump", [-10.0, 30.0])
def test_rtp_time_rebase_mid_stream_gives_a_monotonic_gap_free_recording(
        small_clip, camera_server, tmp_path, jump):
    server = camera_server(SimCamera("/cam1", small_clip, audio="aac", shared=False,
                                     rebase_after_s=2.0, rebase_by_s=jump))
    data, index, status = record(server.url("/cam1"), tmp_path, 3)
    assert status["timestamp_repairs"] >= 1  # the jump was seen and repaired
    segments = index.segments("cam")
    for before, after in zip(segments, segments[1:]):
        assert after.start_us == before.end_us
    total = 0.0
    for seg in segments:
        dts = dts_of(data / seg.path)
        assert all(b > a for a, b in zip(dts, dts[1:])), "DTS must increase"
        assert max((b - a for a, b in zip(dts, dts[1:])), default=0) < 0.1, "no hole inside"
        packets, duration = video_packets(data / seg.path)
        assert abs(packets / 25 - duration) < 0.1
        total += duration
    assert abs(total - (segments[-1].end_us - segments[0].start_us) / 1e6) < 0.01


@pytest.mark.timeout(120)
def test_joining_a_shared_stream_mid_gop_starts_the_recording_at_a_keyframe(
        small_clip, camera_server, tmp_path):
    server = camera_server(SimCamera("/cam1", small_clip, audio="aac", shared=True))
    # A first viewer keeps the shared media playing, so the recorder joins mid-GOP.
    viewer = subprocess.Popen(["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i",
                               server.url("/cam1"), "-c", "copy", "-f", "null", "-"],
                              stdin=subprocess.DEVNULL)
    try:
        data, index, status = record(server.url("/cam1"), tmp_path, 2)
    finally:
        viewer.terminate()
        viewer.wait(10)
    assert status["skipped_before_keyframe"] > 0
    first = index.segments("cam")[0]
    packets = ffprobe_json(data / first.path, "-select_streams", "v:0", "-show_entries",
                           "packet=flags", "-read_intervals", "%+#1")["packets"]
    assert packets[0]["flags"].startswith("K")


@pytest.mark.timeout(300)
def test_h265_camera_is_recorded_as_hvc1(camera_server, tmp_path):
    clip = ensure_clip(CACHE, codec="h265", seconds=6, width=640, height=360,
                       bitrate_kbps=600, gop=25)
    server = camera_server(SimCamera("/cam1", clip, codec="h265", shared=False))
    data, index, status = record(server.url("/cam1"), tmp_path, 2)
    assert status["video"] == "hevc 640x360"
    for seg in index.segments("cam"):
        stream = ffprobe_json(data / seg.path, "-show_entries",
                              "stream=codec_name,codec_tag_string")["streams"][0]
        assert stream == {"codec_name": "hevc", "codec_tag_string": "hvc1"}
        assert seg.video_codec == "hevc"
        packets, duration = video_packets(data / seg.path)
        assert packets > 0 and abs(packets / 25 - duration) < 0.1


def audio_of(path: Path) -> list[dict]:
    """Audio streams with their packet counts (ffprobe omits the count when it is 0)."""
    streams = ffprobe_json(path, "-select_streams", "a", "-count_packets", "-show_entries",
                           "stream=codec_name,nb_read_packets")["streams"]
    for stream in streams:
        stream["nb_read_packets"] = int(stream.get("nb_read_packets", 0))
    return streams


@pytest.mark.timeout(120)
def test_aac_audio_is_copied(small_clip, camera_server, tmp_path):
    server = camera_server(SimCamera("/cam1", small_clip, audio="aac", shared=False))
    data, index, status = record(server.url("/cam1"), tmp_path, 2)
    for seg in index.segments("cam"):
        audio = audio_of(data / seg.path)
        seconds = (seg.end_us - seg.start_us) / 1e6
        assert audio[0]["codec_name"] == "aac" and seg.audio_codec == "aac"
        assert audio[0]["nb_read_packets"] >= 20 * seconds - 2


@pytest.mark.timeout(180)
@pytest.mark.parametrize("policy", ["copy", "drop"])
def test_g711_audio_is_copied_or_dropped_by_setting(camera_server, tmp_path, policy):
    clip = ensure_clip(CACHE, codec="h264", audio="pcm_mulaw", seconds=6, width=320, height=240,
                       bitrate_kbps=300, gop=25)
    server = camera_server(SimCamera("/cam1", clip, audio="pcm_mulaw", shared=False))
    data, index, status = record(server.url("/cam1"), tmp_path, 2, "--audio", policy)
    for seg in index.segments("cam"):
        audio = audio_of(data / seg.path)
        if policy == "copy":
            seconds = (seg.end_us - seg.start_us) / 1e6
            assert audio[0]["codec_name"] == "pcm_mulaw"
            assert audio[0]["nb_read_packets"] >= 10 * seconds - 2
        else:
            assert audio == [] and seg.audio_codec is None
    assert (status["audio_dropped"] != "") == (policy == "drop")


@pytest.fixture
def relayed_camera(small_clip, camera_server):
    """A camera reached through a relay that can hold its traffic: (relay, url)."""
    from tests.integration.relay import PausingRelay

    server = camera_server(SimCamera("/cam1", small_clip, shared=True))
    relay = PausingRelay(server.port)
    yield relay, f"rtsp://127.0.0.1:{relay.port}/cam1"
    relay.close()


@pytest.mark.timeout(120)
def test_a_stream_that_stalls_with_the_connection_up_starts_a_new_segment_and_a_gap(
        relayed_camera, tmp_path):
    relay, url = relayed_camera
    data = tmp_path / "data"
    with RecorderProcess(data, {"cam": url}, "--segment-seconds", "60",
                         "--read-timeout", "15") as rec:
        rec.wait_for(lambda e: e["event"] == "durable", 30, count=2, what="2 fragments")
        relay.pause()
        threading_wait(6.5)
        relay.resume()
        rec.wait_for(lambda e: e["event"] == "gap_close", 30, what="gap closed")
        rec.wait_for(lambda e: e["event"] == "segment", 30, count=1, what="first segment")
        assert rec.stop() == 0
        states = [e["state"] for e in rec.matching(event="state")]
    index = RecordingIndex(data, readonly=True)
    segments = index.segments("cam")
    stalls = [g for g in index.gaps("cam") if g.cause == "stream_stalled"]
    assert len(segments) == 2 and len(stalls) == 1, (segments, index.gaps("cam"))
    assert stalls[0].start_us == segments[0].end_us and stalls[0].end_us == segments[1].start_us
    assert stalls[0].end_us - stalls[0].start_us >= 4_000_000
    assert states.count("connecting") == 1, "the connection stayed up"


def threading_wait(seconds: float) -> None:
    """The outage length itself; nothing to poll for while traffic is held."""
    import threading

    threading.Event().wait(seconds)


@pytest.mark.timeout(120)
def test_a_stream_silent_for_longer_than_the_read_timeout_is_reconnected(
        relayed_camera, tmp_path):
    relay, url = relayed_camera
    data = tmp_path / "data"
    with RecorderProcess(data, {"cam": url}, "--read-timeout", "3",
                         "--backoff-initial", "0.5") as rec:
        rec.wait_for(lambda e: e["event"] == "durable", 30, what="a fragment")
        relay.pause()  # and it stays silent until the recorder gives up on it
        gap = rec.wait_for(lambda e: e["event"] == "gap_open", 15, what="a gap")[0]
        rec.wait_for(lambda e: e["event"] == "state" and e["state"] == "connecting", 15,
                     count=2, what="a reconnect while the old stream is silent")
        relay.resume()
        rec.wait_for(lambda e: e["event"] == "gap_close", 30, what="gap closed")
        assert rec.stop() == 0
    assert gap["cause"] == "stream_stalled"
