"""Pre-encoded test clips for the simulated cameras.

A clip is a short synthetic video (``testsrc2`` plus a little noise so the bit rate
is camera-like) with an optional sine-tone audio track, encoded once with Debian's
``ffmpeg`` and cached by a file name that encodes every parameter. The RTSP server
(``rtsp_server.py``) serves these files without re-encoding, looping them forever.

Encoding choices mirror a typical IP camera: constant GOP (default 2 s) with
``-sc_threshold 0`` so key frames are exactly every ``gop`` frames, no B-frames,
a bit-rate cap. Containers: MP4 for H.264/H.265 with or without AAC; QuickTime
(``.mov``) when the audio is G.711, because the MP4 muxer has no tag for it and
GStreamer's ``qtdemux`` reads both (one demuxer for every clip).

Runs in the project virtualenv: stdlib only, ffmpeg is called with an argv list.
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass, fields
from pathlib import Path

log = logging.getLogger(__name__)

VIDEO_CODECS = ("h264", "h265")
AUDIO_CODECS = (None, "aac", "pcm_mulaw", "pcm_alaw")
G711_CODECS = ("pcm_mulaw", "pcm_alaw")

# Bump when the recipe changes so stale cached clips are not reused.
RECIPE_VERSION = 1

FFMPEG = os.environ.get("VIGIL_FFMPEG", "ffmpeg")
STDERR_TAIL_LINES = 20


class ClipError(RuntimeError):
    """ffmpeg could not produce a clip; the message carries its stderr tail."""


@dataclass(frozen=True)
class ClipSpec:
    """Everything that defines a clip; checked when built."""

    codec: str = "h264"
    audio: str | None = None
    seconds: int = 20
    width: int = 1920
    height: int = 1080
    fps: int = 25
    bitrate_kbps: int = 4000
    gop: int = 50
    audio_rate: int = 48000

    def __post_init__(self) -> None:
        """Reject parameter combinations ffmpeg or the RTSP server cannot handle."""
        if self.codec not in VIDEO_CODECS:
            raise ValueError(f"codec must be one of {VIDEO_CODECS}, got {self.codec!r}")
        if self.audio not in AUDIO_CODECS:
            raise ValueError(f"audio must be one of {AUDIO_CODECS}, got {self.audio!r}")
        if self.audio in G711_CODECS and self.audio_rate != 8000:
            raise ValueError("G.711 audio must be 8000 Hz")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (int(value) != value or value <= 0):
                raise ValueError(f"{f.name} must be a positive integer, got {value!r}")
        if self.width % 2 or self.height % 2:
            raise ValueError(
                f"width and height must be even for yuv420p, got {self.width}x{self.height}")

    @property
    def suffix(self) -> str:
        """MP4 unless the audio is G.711, which only the QuickTime flavour can carry."""
        return ".mov" if self.audio in G711_CODECS else ".mp4"

    def file_name(self) -> str:
        """A file name that encodes every parameter, so different clips never collide."""
        audio_part = f"{self.audio}{self.audio_rate}" if self.audio else "noaudio"
        return (
            f"camsim-v{RECIPE_VERSION}_{self.codec}_{self.width}x{self.height}_{self.fps}fps"
            f"_{self.bitrate_kbps}k_gop{self.gop}_{self.seconds}s_{audio_part}{self.suffix}"
        )

    def ffmpeg_argv(self, output: Path) -> list[str]:
        """The full ffmpeg command line that encodes this clip into ``output``."""
        video_source = (f"testsrc2=size={self.width}x{self.height}:rate={self.fps},"
                        "noise=alls=12:allf=t")
        argv = [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
        argv += ["-f", "lavfi", "-i", video_source]
        if self.audio:
            argv += ["-f", "lavfi", "-i", f"sine=frequency=1000:sample_rate={self.audio_rate}"]
        argv += ["-t", str(self.seconds), "-map", "0:v"]
        argv += video_encoder_args(self.codec, self.fps, self.bitrate_kbps, self.gop)
        if self.audio:
            argv += ["-map", "1:a"] + audio_encoder_args(self.audio, self.audio_rate)
        container = "mov" if self.suffix == ".mov" else "mp4"
        argv += ["-movflags", "+faststart", "-f", container, str(output)]
        return argv


def ensure_clip(
    cache_dir: Path,
    codec: str = "h264",
    audio: str | None = None,
    seconds: int = 20,
    width: int = 1920,
    height: int = 1080,
    fps: int = 25,
    bitrate_kbps: int = 4000,
    gop: int | None = None,
    audio_rate: int | None = None,
    timeout_s: float = 900.0,
) -> Path:
    """Return the path of a cached clip with these parameters, encoding it if missing.

    ``gop`` defaults to ``2 * fps`` (a key frame every 2 s). ``audio_rate`` defaults
    to 8000 Hz for G.711 and 48000 Hz for AAC (16000 is the other common AAC rate).
    Generation is atomic: ffmpeg writes a temporary file in ``cache_dir`` that is
    renamed into place only when it succeeded.
    """
    spec = ClipSpec(codec, audio, seconds, width, height, fps, bitrate_kbps,
                    gop if gop is not None else 2 * fps,
                    audio_rate if audio_rate is not None else default_audio_rate(audio))
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / spec.file_name()
    if target.exists():
        return target
    temp = target.with_name(f".{target.stem}.{os.getpid()}.tmp{target.suffix}")
    log.info("encoding clip path=%s", target)
    try:
        run_ffmpeg(spec.ffmpeg_argv(temp), timeout_s)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return target


def default_audio_rate(audio: str | None) -> int:
    return 8000 if audio in G711_CODECS else 48000


def video_encoder_args(codec: str, fps: int, bitrate_kbps: int, gop: int) -> list[str]:
    """Camera-like encoder settings: fixed GOP, no B-frames, capped bit rate."""
    rate_control = [
        "-b:v", f"{bitrate_kbps}k",
        "-maxrate", f"{bitrate_kbps * 11 // 10}k",
        "-bufsize", f"{bitrate_kbps * 2}k",
        "-pix_fmt", "yuv420p",
        "-r", str(fps),
    ]  # fmt: skip
    if codec == "h264":
        return [
            "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "main",
            "-bf", "0", "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
        ] + rate_control  # fmt: skip
    x265_params = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:log-level=error"
    return [
        "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", x265_params,
        "-tag:v", "hvc1",
    ] + rate_control  # fmt: skip


def audio_encoder_args(audio: str, audio_rate: int) -> list[str]:
    """Mono sine tone: AAC-LC at 64 kb/s, or G.711 at 8 kHz."""
    args = ["-c:a", audio, "-ac", "1", "-ar", str(audio_rate)]
    if audio == "aac":
        args += ["-b:a", "64k"]
    return args


def run_ffmpeg(argv: list[str], timeout_s: float) -> None:
    """Run ffmpeg; raise ClipError with the tail of its stderr if it fails."""
    try:
        result = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout_s
        )
    except FileNotFoundError as exc:
        raise ClipError(f"ffmpeg not found ({argv[0]}); install Debian's ffmpeg") from exc
    except subprocess.TimeoutExpired as exc:
        raise ClipError(f"ffmpeg took longer than {timeout_s:.0f}s: {' '.join(argv)}") from exc
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-STDERR_TAIL_LINES:])
        raise ClipError(
            f"ffmpeg exited with {result.returncode}: {' '.join(argv)}\n{tail}"
        )
