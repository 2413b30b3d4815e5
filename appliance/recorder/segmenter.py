"""Writes one segment: fragmented MP4 straight to the data disk, durable per fragment.

Order of durability (DESIGN.md §2): a fragment per keyframe interval, `fdatasync` after
every `fsync_every` fragments; on close the file is fsynced, then its directory, and
only then does the caller add the index row.

How a finished fragment is detected: with `flush_packets=1` libav flushes its I/O
buffer after every packet, and in fragmented mode the mov muxer keeps the fragment in
memory until the next keyframe, so the file grows only by whole `moof`+`mdat` pairs.
A size change after `mux()` therefore means "a fragment is now in the file".
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av

from appliance.core.files import fsync_dir

log = logging.getLogger(__name__)

FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}
# Codecs the ISO MP4 muxer takes; others that QuickTime takes (G.711) make a .mov-brand file.
MP4_AUDIO = {"aac", "mp3", "opus", "ac3", "eac3", "alac", "flac"}
QUICKTIME_AUDIO = {"pcm_mulaw", "pcm_alaw"}
VIDEO_CODECS = {"h264", "hevc"}


def segment_relpath(camera: str, start_us: int, seq: int) -> str:
    """recordings/<camera>/<YYYY-MM-DD>/<HH>/<start-utc>-<seq>.mp4 (UTC, sortable)."""
    t = datetime.fromtimestamp(start_us / 1e6, timezone.utc)
    stamp = f"{t:%Y%m%dT%H%M%S}.{t.microsecond // 1000:03d}Z"
    return f"recordings/{camera}/{t:%Y-%m-%d}/{t:%H}/{stamp}-{seq:06d}.mp4"


def parse_segment_name(name: str) -> tuple[int, int] | None:
    """(start_us, seq) from a segment file name, or None if it is not one of ours."""
    if not name.endswith(".mp4") or "-" not in name:
        return None
    stamp, _, rest = name[:-4].rpartition("-")
    try:
        seq = int(rest)
        t = datetime.strptime(stamp, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    return int(round(t.timestamp() * 1e6)), seq


def make_dirs_durable(path: Path, stop_at: Path) -> None:
    """mkdir -p, fsyncing each parent whose entry was created, so the file stays reachable."""
    missing = []
    cur = path
    while not cur.exists() and cur != stop_at and cur != cur.parent:
        missing.append(cur)
        cur = cur.parent
    for directory in reversed(missing):
        directory.mkdir(exist_ok=True)
        fsync_dir(directory.parent)




def container_format(audio_codec: str | None) -> str:
    return "mov" if audio_codec in QUICKTIME_AUDIO else "mp4"


@dataclass
class ClosedSegment:
    relpath: str
    bytes: int
    fragments: int
    packets: int
    first_dts: int  # video, session time base
    end_dts: int    # video, last dts + duration


class SegmentWriter:
    """One open segment file. Not thread-safe: owned by one camera's ingest thread."""

    def __init__(self, data_dir: Path, relpath: str, video: av.video.stream.VideoStream,
                 audio: av.audio.stream.AudioStream | None, fsync_every: int,
                 on_durable: Callable[[str, int, int], None] | None = None) -> None:
        self.data_dir = data_dir
        self.relpath = relpath
        self.path = data_dir / relpath
        self.fsync_every = fsync_every
        self.on_durable = on_durable
        make_dirs_durable(self.path.parent, data_dir)
        # Our own descriptor for fstat/fdatasync. Created here (libav opens the file only
        # at the first packet); O_EXCL makes a name collision an error, not an overwrite.
        self._fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o644)
        audio_codec = audio.codec_context.name if audio is not None else None
        self.video_codec = video.codec_context.name
        self.audio_codec = audio_codec
        self.width = video.codec_context.width
        self.height = video.codec_context.height
        self._out = av.open(str(self.path), "w", format=container_format(audio_codec),
                            options=FRAGMENTED)
        self._video_out = self._out.add_stream_from_template(video)
        if video.codec_context.name == "hevc" and video.codec_context.extradata:
            self._video_out.codec_tag = "hvc1"  # what Apple players require
        self._audio_out = self._out.add_stream_from_template(audio) if audio is not None else None
        self._written = 0        # bytes libav has handed to the kernel
        self._durable = 0        # bytes covered by the last fdatasync
        self._unsynced_fragments = 0
        self._watch_size = True  # the header arrives with the first packet
        self.fragments = 0
        self.packets = 0
        self.first_dts: int | None = None
        self.end_dts: int | None = None
        self.time_base: Fraction = video.time_base

    def write_video(self, packet: av.Packet, dts: int, pts: int, duration: int) -> None:
        if self.first_dts is None:
            self.first_dts = dts
        self.end_dts = dts + duration
        if packet.is_keyframe:
            self._watch_size = True  # this keyframe ends a fragment: the file will grow
        self._mux(packet, self._video_out, dts, pts, duration)

    def write_audio(self, packet: av.Packet, dts: int, pts: int, duration: int) -> None:
        if self._audio_out is not None:
            self._mux(packet, self._audio_out, dts, pts, duration)

    def _mux(self, packet: av.Packet, stream, dts: int, pts: int, duration: int) -> None:
        packet.dts, packet.pts, packet.duration = dts, pts, duration
        packet.stream = stream
        self._out.mux(packet)
        self.packets += 1
        if not self._watch_size:
            return
        # The fragment reaches the file when the muxer's interleaving lets the keyframe
        # through: at this packet or one of the next few (with audio).
        size = os.fstat(self._fd).st_size
        if size != self._written:
            self._watch_size = False
            if self._written:  # the first growth is ftyp+moov, not a fragment
                self.fragments += 1
                self._unsynced_fragments += 1
            self._written = size
            if self._unsynced_fragments >= self.fsync_every:
                self._sync()

    def _sync(self) -> None:
        os.fdatasync(self._fd)
        self._durable = self._written
        self._unsynced_fragments = 0
        if self.on_durable:
            self.on_durable(self.relpath, self._durable, self.fragments)

    def close(self) -> ClosedSegment:
        """Finish the file (last fragment + mfra), fsync it and its directory."""
        try:
            self._out.close()
            os.fsync(self._fd)
            size = os.fstat(self._fd).st_size
        finally:
            os.close(self._fd)
        fsync_dir(self.path.parent)
        if size > self._written:
            self.fragments += 1  # the fragment flushed by close
        self._written = self._durable = size
        if self.on_durable:
            self.on_durable(self.relpath, size, self.fragments)
        return ClosedSegment(self.relpath, size, self.fragments, self.packets,
                             self.first_dts or 0, self.end_dts or 0)

    def abandon(self) -> None:
        """Best-effort close after a disk error; reconcile deals with what is left."""
        try:
            self._out.close()
        except (av.FFmpegError, OSError) as exc:
            log.warning("closing %s after an error failed: %s", self.relpath, exc)
        try:
            os.close(self._fd)
        except OSError:
            pass
