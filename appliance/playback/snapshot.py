"""A JPEG of a camera at an instant (default: its newest footage), from the recording.

The one place where video is decoded (issue 8 allows one keyframe): the keyframe at or
before the instant is decoded and encoded as JPEG with libav's MJPEG encoder, scaled to
at most `max_width` pixels wide. The camera's own snapshot URI is not fetched here.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

from appliance.core.errors import Unavailable
from appliance.recorder.index import RecordingIndex


def snapshot_jpeg(index: RecordingIndex, data_dir: Path, camera: str, at_us: int | None = None,
                  max_width: int = 1280, quality: int = 5) -> bytes:
    rows = index.query(
        "SELECT path, start_us, end_us FROM segments WHERE camera = ? AND status != 'missing' "
        + ("AND start_us <= ? ORDER BY start_us DESC LIMIT 1" if at_us is not None
           else "ORDER BY start_us DESC LIMIT 1"),
        (camera, at_us) if at_us is not None else (camera,))
    if not rows or (at_us is not None and at_us > rows[0]["end_us"]):
        raise Unavailable(f"no footage of {camera} at that time")
    row = rows[0]
    offset = 0.0 if at_us is None else max(0.0, (at_us - row["start_us"]) / 1e6)
    try:
        with av.open(str(Path(data_dir) / row["path"])) as container:
            stream = container.streams.video[0]
            stream.codec_context.skip_frame = "NONKEY"  # decode keyframes only
            if offset:
                container.seek(int(offset / stream.time_base), stream=stream, backward=True)
            frame = next(container.decode(stream))
            return _encode(frame, max_width, quality)
    except (av.FFmpegError, StopIteration, OSError) as exc:
        raise Unavailable(f"no picture of {camera} could be decoded ({exc})") from None


def _encode(frame: av.VideoFrame, max_width: int, quality: int) -> bytes:
    width = min(max_width, frame.width) // 2 * 2
    height = int(frame.height * width / frame.width) // 2 * 2
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height = width, height
    codec.pix_fmt = "yuvj420p"
    codec.time_base = Fraction(1, 25)
    codec.options = {"qmin": str(quality), "qmax": str(quality)}
    scaled = frame.reformat(width=width, height=height, format="yuvj420p")
    packets = codec.encode(scaled) + codec.encode(None)
    return b"".join(bytes(p) for p in packets)
