"""HLS playback over HTTP of footage recorded by the real recorder: ffmpeg reads the
playlist across segment files and across a gap, a seek lands within one GOP, and
recorded files are reachable only through their index id."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from waitress.server import create_server

from appliance.recorder.index import RecordingIndex
from appliance.web.accounts import AccountStore
from appliance.web.app import create_app
from hw.camsim.server import SimCamera
from tests.integration.recorder_process import RecorderProcess
from tests.integration.web_session import ApiClient


@pytest.fixture(scope="module")
def recording(tmp_path_factory, small_clip):
    """~10 s of one camera, a 3 s outage, then ~6 s more (2 s segments)."""
    from hw.camsim.server import SimCameraServer, free_port

    tmp = tmp_path_factory.mktemp("hls")
    server = SimCameraServer(free_port(), [SimCamera("/cam1", small_clip)],
                             log_path=tmp / "camsim.log")
    server.start()
    data = tmp / "data"
    try:
        with RecorderProcess(data, {"cam": server.url("/cam1")}, "--segment-seconds", "2",
                             "--probe-interval", "0.2") as rec:
            rec.wait_for(lambda e: e["event"] == "segment", 60, count=4, what="segments")
            server.stop()
            rec.wait_for(lambda e: e["event"] == "gap_open", 30, what="the outage")
            time.sleep(3)  # the outage itself: what the gap must cover
            server.start()
            back = time.monotonic()
            rec.wait_for(lambda e: e["event"] == "segment" and e["_mono"] > back, 60, count=3,
                         what="segments after the outage")
            assert rec.stop() == 0
    finally:
        server.stop()
    return data


@pytest.fixture(scope="module")
def api(recording, tmp_path_factory):
    accounts = AccountStore(tmp_path_factory.mktemp("accounts") / "accounts.sqlite3")
    srv = create_server(create_app(recording, accounts), host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    client = ApiClient(f"http://127.0.0.1:{srv.effective_port}").login()
    SESSION["client"] = client
    yield f"http://127.0.0.1:{srv.effective_port}/api/v1"
    srv.close()


SESSION: dict = {}


def get(url: str, headers: dict | None = None) -> bytes:
    """GET with the logged-in session (HTTPError on 4xx/5xx, like urlopen)."""
    client = SESSION["client"]
    req = urllib.request.Request(url, headers=headers or {})
    with client.opener.open(req, timeout=10) as resp:
        return resp.read()


def ffprobe(url: str, *args: str) -> dict:
    cookie = ["-headers", f"Cookie: {SESSION['client'].cookie}\r\n"] if url.startswith("http") else []
    out = subprocess.run(["ffprobe", "-v", "error", *cookie, *args, "-of", "json", url],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr
    return json.loads(out.stdout)


def test_timeline_shows_two_spans_and_the_gap_between(api, recording):
    index = RecordingIndex(recording, readonly=True)
    segs = index.segments("cam")
    index.close()
    start, end = segs[0].start_us - 1_000_000, segs[-1].end_us + 1_000_000
    data = json.loads(get(f"{api}/cameras/cam/timeline?from={start}&to={end}"))
    assert len(data["spans"]) == 2
    first, second = data["spans"]
    between = [g["cause"] for g in data["gaps"]
               if first["end_us"] - 1_000_000 <= g["start_us"] < second["start_us"]]
    assert between and set(between) <= {"camera_unreachable", "stream_ended", "stream_stalled"}
    assert second["start_us"] - first["end_us"] >= 2_500_000


def test_ffmpeg_plays_the_whole_range_across_the_gap(api, recording):
    index = RecordingIndex(recording, readonly=True)
    segs = index.segments("cam")
    index.close()
    url = f"{api}/cameras/cam/playback.m3u8?from={segs[0].start_us}&to={segs[-1].end_us}"
    text = get(url).decode()
    assert text.count("#EXT-X-MAP") == len(segs) and "#EXT-X-ENDLIST" in text
    recorded = sum(s.end_us - s.start_us for s in segs) / 1e6
    # Decode, as a player does (each file starts its own timeline after a discontinuity).
    out = subprocess.run(["ffmpeg", "-v", "error", "-headers",
                          f"Cookie: {SESSION['client'].cookie}\r\n", "-i", url, "-f", "null", "-"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr
    frames = ffprobe(url, "-select_streams", "v:0", "-count_frames",
                     "-show_entries", "stream=nb_read_frames")
    packets = int(frames["streams"][0]["nb_read_frames"])
    # Fragments are served with wall-clock decode times, so each file continues the
    # last one: every recorded frame plays (within one GOP of the recorded duration).
    assert abs(packets - recorded * 25) <= 25, (packets, recorded)


def test_a_seek_lands_within_one_gop(api, recording):
    index = RecordingIndex(recording, readonly=True)
    segs = index.segments("cam")
    index.close()
    target = segs[1].start_us + 1_400_000  # mid-segment, mid-GOP
    text = get(f"{api}/cameras/cam/playback.m3u8?from={target}&to={target + 3_000_000}").decode()
    first_pdt = text.split("#EXT-X-PROGRAM-DATE-TIME:")[1].split("\n")[0]
    from datetime import datetime
    first_us = int(datetime.fromisoformat(first_pdt).timestamp() * 1e6)
    assert target - 1_000_000 - 1000 <= first_us <= target  # the keyframe at or before it


def test_files_only_by_id_and_byte_ranges_work(api):
    req = urllib.request.Request(f"{api}/recordings/1.mp4", headers={"Range": "bytes=0-7"})
    with SESSION["client"].opener.open(req, timeout=10) as resp:
        assert resp.status == 206 and resp.read()[4:8] == b"ftyp"
    with pytest.raises(urllib.error.HTTPError) as err:  # no session: nothing
        urllib.request.urlopen(f"{api}/recordings/1.mp4", timeout=10)
    assert err.value.code == 401
    for bad in ("/recordings/999999.mp4", "/recordings/..%2Findex.sqlite3",
                "/recordings/-1.mp4", "/cameras/..%2F..%2Fetc/timeline"):
        with pytest.raises(urllib.error.HTTPError) as err:
            get(api + bad)
        assert err.value.code in (400, 404)


def test_snapshot_is_a_jpeg_of_the_requested_instant(api, recording, tmp_path):
    index = RecordingIndex(recording, readonly=True)
    segs = index.segments("cam")
    index.close()
    for query in ("", f"?at={segs[1].start_us + 1_500_000}"):
        path = tmp_path / "snap.jpg"
        path.write_bytes(get(f"{api}/cameras/cam/snapshot.jpg{query}"))
        info = ffprobe(str(path), "-show_entries", "stream=codec_name,width,height")
        assert info["streams"][0] == {"codec_name": "mjpeg", "width": 640, "height": 360}
    with pytest.raises(urllib.error.HTTPError) as err:
        get(f"{api}/cameras/cam/snapshot.jpg?at={segs[0].start_us - 3_600_000_000}")
    assert err.value.code == 503


def test_playback_continues_across_midnight(recording, tmp_path):
    """The recorded files placed (as the recorder would) on both sides of 00:00 UTC: one
    playlist spans the day change and ffmpeg plays all of it."""
    import shutil
    from dataclasses import replace
    from datetime import datetime, timezone

    from appliance.recorder.segmenter import segment_relpath

    index = RecordingIndex(recording, readonly=True)
    segs = [s for s in index.segments("cam") if s.status == "ok"][:4]
    index.close()
    midnight = int(datetime(2026, 11, 24, tzinfo=timezone.utc).timestamp() * 1_000_000)
    data = tmp_path / "data"
    moved = RecordingIndex(data)
    t = midnight - (segs[0].end_us - segs[0].start_us) - (segs[1].end_us - segs[1].start_us)
    for seg in segs:
        length = seg.end_us - seg.start_us
        relpath = segment_relpath("cam", t, seg.seq)
        (data / relpath).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(recording / seg.path, data / relpath)
        moved.add_segment(replace(seg, start_us=t, end_us=t + length, path=relpath, id=None))
        t += length
    days = {Path(s.path).parts[2] for s in moved.segments("cam")}
    moved.close()
    assert days == {"2026-11-23", "2026-11-24"}
    accounts = AccountStore(tmp_path / "accounts.sqlite3")
    srv = create_server(create_app(data, accounts), host="127.0.0.1", port=0, threads=2)
    threading.Thread(target=srv.run, daemon=True).start()
    try:
        client = ApiClient(f"http://127.0.0.1:{srv.effective_port}").login()
        start = midnight - 3_000_000
        url = (f"http://127.0.0.1:{srv.effective_port}/api/v1/cameras/cam/playback.m3u8"
               f"?from={start}&to={midnight + 3_000_000}")
        status, text = client.request("GET", url.split(str(srv.effective_port))[1])
        assert status == 200 and "2026-11-23T23:59:5" in text.decode() \
            and "2026-11-24T00:00:0" in text.decode()
        out = subprocess.run(["ffprobe", "-v", "error", "-headers", f"Cookie: {client.cookie}\r\n",
                              "-select_streams", "v:0", "-count_frames", "-show_entries",
                              "stream=nb_read_frames", "-of", "json", url],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and not out.stderr.strip(), out.stderr
        frames = int(json.loads(out.stdout)["streams"][0]["nb_read_frames"])
        assert frames >= 5 * 25 - 2 * 25  # ~6 s requested, at most a GOP per file boundary
    finally:
        srv.close()
        accounts.close()


def test_fragments_are_served_with_wall_clock_decode_times(api, recording):
    from appliance.playback.fragments import U64, fragment_index
    from appliance.web.playback_api import EPOCH_US

    index = RecordingIndex(recording, readonly=True)
    seg = index.segments("cam")[1]
    index.close()
    frags = fragment_index(recording / seg.path)
    frag = frags.fragments[1]
    body = get(f"{api}/recordings/{seg.id}.mp4",
               headers={"Range": f"bytes={frag.offset}-{frag.offset + frag.size - 1}"})
    assert len(body) == frag.size
    [video] = [d for d in frag.decode_times if d.value == frag.start]
    served = U64.unpack_from(body, video.offset - frag.offset)[0]
    expected_us = seg.start_us + (frag.start - frags.fragments[0].start) * 1_000_000 // 90_000
    assert abs(served * 1_000_000 // 90_000 - (expected_us - EPOCH_US)) <= 12  # one tick
    whole = (recording / seg.path).read_bytes()[frag.offset:frag.offset + frag.size]
    assert body != whole and len(body) == len(whole)  # only the decode times differ
