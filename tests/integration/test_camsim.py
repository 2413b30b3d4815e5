"""Integration tests for the simulated cameras (hw/camsim).

Real processes only: clips encoded by Debian's ffmpeg, served by gst-rtsp-server under
the system Python, read with PyAV over RTSP/TCP (demux only, nothing is decoded).
Clips are cached in ``var/cache`` at the repository root, so they are encoded once per
checkout. Each test opens its own mount, so tests do not see each other's clients.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.error
import pytest

from hw.camsim import clips as clips_module
from hw.camsim.clips import ClipError, ensure_clip
from hw.camsim.server import CamSimError, SimCamera, SimCameraServer, free_port, system_python

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIP_CACHE = REPO_ROOT / "var" / "cache"
FPS = 25
GOP = 2 * FPS
CLIP_SECONDS = 6
SMALL = dict(seconds=CLIP_SECONDS, width=640, height=360, fps=FPS, bitrate_kbps=800)
HD = dict(seconds=CLIP_SECONDS, width=1920, height=1080, fps=FPS, bitrate_kbps=4000)
RTP_VIDEO_TICKS_PER_FRAME = 90000 // FPS
USER, PASSWORD = "admin", "s3cret:/@"


def gstreamer_rtsp_available() -> bool:
    probe = "import gi; gi.require_version('GstRtspServer', '1.0')"
    try:
        result = subprocess.run([system_python(), "-c", probe], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


pytestmark = [
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="Debian's ffmpeg is not installed"),
    pytest.mark.skipif(
        not gstreamer_rtsp_available(),
        reason="system python3 lacks gi + gir1.2-gst-rtsp-server-1.0",
    ),
]


# ----------------------------------------------------------------------------- reading


@dataclass
class Packet:
    kind: str
    dts: int | None
    keyframe: bool
    time_base: Fraction
    wall_s: float


@dataclass
class Recording:
    """What a PyAV client saw: stream parameters and every non-empty packet."""

    codecs: dict[str, str] = field(default_factory=dict)
    width: int = 0
    height: int = 0
    frame_rate: Fraction | None = None
    sample_rate: int = 0
    open_s: float = 0.0
    packets: list[Packet] = field(default_factory=list)

    def of(self, kind: str) -> list[Packet]:
        return [p for p in self.packets if p.kind == kind]

    def span_s(self, kind: str) -> float:
        dts = [p.dts * p.time_base for p in self.of(kind) if p.dts is not None]
        return float(dts[-1] - dts[0]) if len(dts) > 1 else 0.0


def open_rtsp(url: str) -> av.container.InputContainer:
    return av.open(url, options={"rtsp_transport": "tcp"}, timeout=(5, 5))


def record(url: str, media_seconds: float) -> Recording:
    """Demux ``url`` until ``media_seconds`` of video frames arrived.

    Counts frames rather than DTS, so a stream whose DTS jumps still ends on time. One
    extra frame because libavformat gives the first one no DTS.
    """
    wanted_frames = math.ceil(media_seconds * FPS) + 2
    started = time.monotonic()
    deadline = started + media_seconds + 15
    recording = Recording()
    with open_rtsp(url) as container:
        recording.open_s = time.monotonic() - started
        describe_streams(container, recording)
        frames = 0
        for packet in container.demux():
            if packet.size == 0:
                continue
            kind = packet.stream.type
            recording.packets.append(
                Packet(kind, packet.dts, packet.is_keyframe, packet.time_base,
                       wall_s=time.monotonic() - started)
            )
            frames += kind == "video"
            if frames >= wanted_frames:
                break
            assert time.monotonic() < deadline, f"{url}: stream too slow or stalled"
    return recording


def describe_streams(container: av.container.InputContainer, recording: Recording) -> None:
    for stream in container.streams:
        recording.codecs[stream.type] = stream.codec_context.name
        if stream.type == "video":
            recording.width = stream.codec_context.width
            recording.height = stream.codec_context.height
            recording.frame_rate = stream.average_rate
        elif stream.type == "audio":
            recording.sample_rate = stream.codec_context.sample_rate


def dts_steps(packets: list[Packet]) -> list[int]:
    """Differences between consecutive known DTS (libavformat leaves the first None)."""
    dts = [p.dts for p in packets if p.dts is not None]
    return [b - a for a, b in zip(dts, dts[1:])]


def keyframe_intervals(packets: list[Packet]) -> list[int]:
    indexes = [i for i, p in enumerate(packets) if p.keyframe]
    return [b - a for a, b in zip(indexes, indexes[1:])]


def count_in_log(log_path: Path, text: str) -> int:
    return log_path.read_text(encoding="utf-8").count(text)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def clip_cache() -> Path:
    CLIP_CACHE.mkdir(parents=True, exist_ok=True)
    ignore = CLIP_CACHE / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# generated test clips\n*\n", encoding="utf-8")
    return CLIP_CACHE


@pytest.fixture(scope="module")
def clips(clip_cache: Path) -> dict[str, Path]:
    return {
        "h264": ensure_clip(clip_cache, codec="h264", **SMALL),
        "hd": ensure_clip(clip_cache, codec="h264", **HD),
        "h265": ensure_clip(clip_cache, codec="h265", **SMALL),
        "aac": ensure_clip(clip_cache, codec="h264", audio="aac", **SMALL),
        "pcm_mulaw": ensure_clip(clip_cache, codec="h264", audio="pcm_mulaw", **SMALL),
        "pcm_alaw": ensure_clip(clip_cache, codec="h265", audio="pcm_alaw", **SMALL),
    }


@pytest.fixture(scope="module")
def camsim_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("camsim") / "camsim.log"


@pytest.fixture(scope="module")
def cameras(clips: dict[str, Path], camsim_log: Path) -> SimCameraServer:
    """One server process, one mount per test."""
    mounts = [
        SimCamera("/hd", clips["hd"], shared=False),
        SimCamera("/loop", clips["h264"], shared=False),
        SimCamera("/h265", clips["h265"], codec="h265", shared=False),
        SimCamera("/aac", clips["aac"], audio="aac"),
        SimCamera("/pcm_mulaw", clips["pcm_mulaw"], audio="pcm_mulaw"),
        SimCamera("/pcm_alaw", clips["pcm_alaw"], codec="h265", audio="pcm_alaw"),
        SimCamera("/auth", clips["h264"], user=USER, password=PASSWORD),
        SimCamera("/open", clips["h264"]),
        SimCamera("/shared", clips["h264"], shared=True),
        SimCamera("/unshared", clips["h264"], shared=False),
        SimCamera("/rebase-back", clips["h264"], shared=False, rebase_after_s=2, rebase_by_s=-10),
        SimCamera("/rebase-fwd", clips["h264"], shared=False, rebase_after_s=2, rebase_by_s=5),
    ]
    with SimCameraServer(free_port(), mounts, log_path=camsim_log) as server:
        yield server


# ----------------------------------------------------------------------------- clips


@pytest.mark.timeout(120)
def test_clip_is_cached_and_named_by_its_parameters(clip_cache: Path) -> None:
    first = ensure_clip(clip_cache, **SMALL)
    mtime = first.stat().st_mtime_ns
    again = ensure_clip(clip_cache, **SMALL)
    other = ensure_clip(clip_cache, **{**SMALL, "bitrate_kbps": 600})
    assert again == first and first.stat().st_mtime_ns == mtime
    assert other != first and other.exists()
    assert "640x360" in first.name and "gop50" in first.name and "h264" in first.name
    assert not list(clip_cache.glob(".*.tmp*")), "temporary files left behind"


@pytest.mark.timeout(60)
def test_clip_failure_reports_ffmpeg_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        clips_module, "video_encoder_args", lambda *_: ["-c:v", "no_such_encoder"]
    )
    with pytest.raises(ClipError, match="no_such_encoder"):
        ensure_clip(tmp_path, **SMALL)
    assert list(tmp_path.iterdir()) == [], "failed clip or temp file left behind"


# ----------------------------------------------------------------------------- streams


@pytest.mark.timeout(120)
def test_h264_1080p25_with_fixed_gop(cameras: SimCameraServer) -> None:
    recording = record(cameras.url("/hd"), media_seconds=2 * GOP / FPS + 0.2)
    video = recording.of("video")
    assert recording.codecs == {"video": "h264"}
    assert (recording.width, recording.height) == (1920, 1080)
    assert recording.frame_rate is not None and abs(float(recording.frame_rate) - FPS) < 0.5
    assert set(dts_steps(video)) == {RTP_VIDEO_TICKS_PER_FRAME}
    assert video[0].keyframe, "an unshared media starts at the clip's first IDR"
    assert keyframe_intervals(video) == [GOP, GOP]


@pytest.mark.timeout(120)
def test_clip_loops_with_monotonic_dts_in_real_time(cameras: SimCameraServer) -> None:
    media_seconds = CLIP_SECONDS + 3
    recording = record(cameras.url("/loop"), media_seconds=media_seconds)
    video = recording.of("video")
    steps = dts_steps(video)
    assert recording.span_s("video") >= media_seconds
    assert set(steps) == {RTP_VIDEO_TICKS_PER_FRAME}, "DTS not continuous across the loop"
    assert all(interval == GOP for interval in keyframe_intervals(video))
    # Paced like a camera: libavformat buffers ~1 s while opening, the rest is real time.
    assert video[-1].wall_s >= media_seconds - 1.5


@pytest.mark.timeout(120)
def test_h265_mount(cameras: SimCameraServer) -> None:
    recording = record(cameras.url("/h265"), media_seconds=2.5)
    video = recording.of("video")
    assert recording.codecs == {"video": "hevc"}
    assert (recording.width, recording.height) == (640, 360)
    assert set(dts_steps(video)) == {RTP_VIDEO_TICKS_PER_FRAME}
    assert keyframe_intervals(video) == [GOP]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("mount", "video_codec", "audio_codec", "sample_rate"),
    [
        ("/aac", "h264", "aac", 48000),
        ("/pcm_mulaw", "h264", "pcm_mulaw", 8000),
        ("/pcm_alaw", "hevc", "pcm_alaw", 8000),
    ],
)
def test_audio_mounts(
    cameras: SimCameraServer, mount: str, video_codec: str, audio_codec: str, sample_rate: int
) -> None:
    recording = record(cameras.url(mount), media_seconds=2.5)
    audio = recording.of("audio")
    assert recording.codecs == {"video": video_codec, "audio": audio_codec}
    assert recording.sample_rate == sample_rate
    assert len(audio) >= 40, f"only {len(audio)} audio packets"
    assert all(step > 0 for step in dts_steps(audio)), "audio DTS not increasing"
    assert recording.span_s("audio") >= 1.5


# ----------------------------------------------------------------------------- auth


@pytest.mark.timeout(60)
def test_wrong_or_missing_password_gets_401(cameras: SimCameraServer) -> None:
    with pytest.raises(av.error.HTTPUnauthorizedError):
        open_rtsp(cameras.url("/auth", USER, "wrong"))
    with pytest.raises(av.error.HTTPUnauthorizedError):
        open_rtsp(cameras.url("/auth"))


@pytest.mark.timeout(60)
def test_right_password_plays_and_open_mounts_need_none(cameras: SimCameraServer) -> None:
    assert len(record(cameras.url("/auth", USER, PASSWORD), media_seconds=1).of("video")) > 0
    assert len(record(cameras.url("/open"), media_seconds=1).of("video")) > 0


@pytest.mark.timeout(60)
def test_digest_authentication(clips: dict[str, Path], tmp_path: Path) -> None:
    camera = SimCamera("/cam1", clips["h264"], user=USER, password=PASSWORD)
    server = SimCameraServer(
        free_port(), [camera], log_path=tmp_path / "camsim.log", auth_methods=["digest"]
    )
    with server:
        with pytest.raises(av.error.HTTPUnauthorizedError):
            open_rtsp(server.url("/cam1", USER, "wrong"))
        assert len(record(server.url("/cam1", USER, PASSWORD), media_seconds=1).packets) > 0


# ----------------------------------------------------------------------------- quirks


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("mount", "jump_s"), [("/rebase-back", -10), ("/rebase-fwd", 5)])
def test_rtp_rebase_is_seen_as_dts_jump(cameras: SimCameraServer, mount: str, jump_s: int) -> None:
    video = record(cameras.url(mount), media_seconds=3).of("video")
    steps = dts_steps(video)
    jumps = [i for i, step in enumerate(steps) if step != RTP_VIDEO_TICKS_PER_FRAME]
    around = [p.dts for p in video[max(0, jumps[0] - 2) : jumps[0] + 4]] if jumps else []
    print(f"{mount}: DTS around the jump: {around}")
    assert len(jumps) == 1, f"expected one jump, got steps {sorted(set(steps))}"
    expected = jump_s * 90000 + RTP_VIDEO_TICKS_PER_FRAME
    assert abs(steps[jumps[0]] - expected) <= 2
    # The jump happens after rebase_after_s=2 s of media (frame 50, give or take one).
    assert abs(jumps[0] - 2 * FPS) <= 2


@pytest.mark.timeout(60)
def test_two_clients_share_one_pipeline(cameras: SimCameraServer, camsim_log: Path) -> None:
    assert_clients_receive("/shared", cameras)
    assert count_in_log(camsim_log, "media configured mount=/shared ") == 1


@pytest.mark.timeout(60)
def test_unshared_mount_builds_a_pipeline_per_client(
    cameras: SimCameraServer, camsim_log: Path
) -> None:
    assert_clients_receive("/unshared", cameras)
    assert count_in_log(camsim_log, "media configured mount=/unshared ") == 2


def assert_clients_receive(mount: str, server: SimCameraServer, wanted: int = 40) -> None:
    """Two clients connected at the same time both get ``wanted`` video packets."""
    deadline = time.monotonic() + 20
    with open_rtsp(server.url(mount)) as first, open_rtsp(server.url(mount)) as second:
        streams = [first.demux(video=0), second.demux(video=0)]
        counts = [0, 0]
        while min(counts) < wanted:
            assert time.monotonic() < deadline, f"clients got only {counts} packets"
            for i, packets in enumerate(streams):
                if counts[i] < wanted and next(packets).size > 0:
                    counts[i] += 1


@pytest.mark.timeout(60)
def test_kill_then_restart_on_the_same_port(clips: dict[str, Path], tmp_path: Path) -> None:
    server = SimCameraServer(free_port(), [SimCamera("/cam1", clips["h264"])], tmp_path / "log")
    with server:
        with open_rtsp(server.url("/cam1")) as client:
            packets = client.demux(video=0)
            next(packets)
            assert server.kill() == -9
            assert not server.running
            # PyAV reports a dead camera as a clean end of stream (buffered packets,
            # then an empty flush packet), not as an error.
            remaining = list(packets)
            assert remaining and remaining[-1].size == 0
        # av.error.ConnectionRefusedError is also the builtin ConnectionRefusedError.
        with pytest.raises(ConnectionRefusedError):
            open_rtsp(server.url("/cam1"))
        server.restart()
        assert server.running
        assert len(record(server.url("/cam1"), media_seconds=1).of("video")) > 0
    assert not server.running


@pytest.mark.timeout(60)
def test_start_failure_reports_server_stderr(tmp_path: Path) -> None:
    server = SimCameraServer(free_port(), [SimCamera("/cam1", tmp_path / "missing.mp4")])
    with pytest.raises(CamSimError, match="missing.mp4 does not exist"):
        server.start(timeout=20)
    assert not server.running
