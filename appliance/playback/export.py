"""Export of recorded footage: standard MP4 files plus a signed manifest, as a background job.

For each camera, the index's segments overlapping [start, end) are remuxed (stream copy
with PyAV, never decoded) into plain, non-fragmented MP4 files:

- cut at keyframes: a file starts at the keyframe at or before `start` (or at the first
  keyframe recorded after it) and stops with the last frame before `end`;
- timestamps are continuous within a file. A hole in the recording longer than
  GAP_SPLIT_US (or a change of codec parameters, or PART_MAX_US of footage) starts a new
  file, named by its UTC start, so a player never has to cross a discontinuity; every
  hole is listed in the manifest with its causes from the index;
- H.264/H.265 video and MP4-compatible audio (AAC, ...) are copied; G.711 (which MP4
  cannot hold) is dropped, and the manifest says so.

The output is a directory: the MP4 files, manifest.json and manifest.sig (manifest.py).
It is assembled in a hidden sibling directory and renamed into place when complete, so a
cancelled or failed export leaves nothing behind. While the export runs and after it
finishes, each camera's requested range carries a protection row (reason "export <id>"):
retention never deletes it; it stays until the owner removes it (`nvr protect --remove`).
A failed or cancelled export removes its own protection rows.

See docs/design/export.md for the decisions and their numbers.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import shutil
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import av

from appliance.core.clock import Clock, RealClock
from appliance.core.device_key import DeviceKey
from appliance.core.errors import (DataLoss, FailedPrecondition, InvalidConfig,
                                   ResourceExhausted, VigilError)
from appliance.core.files import fsync_dir
from appliance.playback.manifest import (CHECK_CHANGED, CHECK_MISSING, CHECK_NO_HASH, CHECK_OK,
                                         build_manifest, iso, segment_entry, span,
                                         write_manifest)
from appliance.recorder.index import RecordingIndex, Segment
from appliance.recorder.integrity import CHUNK
from appliance.recorder.segmenter import MP4_AUDIO, QUICKTIME_AUDIO

log = logging.getLogger(__name__)

MAX_RANGE_US = 31 * 86_400 * 1_000_000  # a month: the longest range one export may ask for
GAP_SPLIT_US = 100_000      # holes longer than this (clock rounding is ~1 ms) start a new file
PART_MAX_US = 3600 * 1_000_000  # the MP4 muxer keeps ~48 B per packet in memory until close
PROGRESS_STEP = 0.005
SYNC_BYTES = 8 << 20        # flush an output file every 8 MB written (~0.4 s to a USB stick)


class ExportState:
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"
    FINISHED = (DONE, CANCELLED, FAILED)


class _Cancelled(Exception):
    pass


@dataclass
class _CameraPlan:
    camera: str
    segments: list[Segment]                 # every segment overlapping the range
    checks: dict[int, str]                  # seq -> file_check
    runs: list[list[Segment]]               # readable segments, grouped by continuity
    gaps: list[dict[str, Any]]
    audio_dropped: str | None = None
    files: list[dict[str, Any]] = field(default_factory=list)


class _Part:
    """One output MP4: continuous timestamps from `origin_us` (its first keyframe)."""

    def __init__(self, path: Path, params: tuple, video, audio, origin_us: int) -> None:
        self.path = path
        self.params = params
        self.origin_us = origin_us
        self.end_us = origin_us
        self.out = av.open(str(path), "w", format="mp4")
        self.video = self.out.add_stream_from_template(video)
        if video.codec_context.name == "hevc" and video.codec_context.extradata:
            self.video.codec_tag = "hvc1"  # what Apple players require
        self.audio = self.out.add_stream_from_template(audio) if audio is not None else None
        self.video_codec = f"{video.codec_context.name} {video.codec_context.width}x" \
                           f"{video.codec_context.height}"
        self.audio_codec = audio.codec_context.name if audio is not None else None
        self.last_dts: dict[str, int] = {}
        self.packets = {"video": 0, "audio": 0}
        self.repairs = 0
        self._fd: int | None = None  # our own descriptor, to flush the file as it grows
        self._unsynced = 0

    def write(self, packet: av.Packet, kind: str, dts: int, pts: int, end_us: int) -> None:
        last = self.last_dts.get(kind)
        if last is not None and dts <= last:  # rounding at a segment boundary
            shift = last + 1 - dts
            dts, pts = dts + shift, pts + shift
            self.repairs += 1
        self.last_dts[kind] = dts
        packet.dts, packet.pts = dts, pts
        packet.stream = self.video if kind == "video" else self.audio
        self.out.mux(packet)
        self.packets[kind] += 1
        self.end_us = max(self.end_us, end_us)
        self._unsynced += packet.size
        if self._unsynced >= SYNC_BYTES:
            # Bounded dirty data: the final fsync (and so cancel) never waits for a whole
            # hour of footage to reach a slow USB stick.
            if self._fd is None and self.path.exists():  # libav creates it at the first packet
                self._fd = os.open(self.path, os.O_RDONLY)
            if self._fd is not None:
                os.fsync(self._fd)
            self._unsynced = 0

    def close(self) -> None:
        try:
            self.out.close()
        finally:
            self._close_fd()

    def abandon(self) -> None:
        try:
            self.out.close()
        except (av.FFmpegError, OSError, ValueError):
            pass
        self._close_fd()

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _ticks(us: int, tb: Fraction) -> int:
    """Microseconds in `tb` ticks, rounded."""
    return round(Fraction(us, 1_000_000) / tb)


def _us(ticks: int, tb: Fraction) -> int:
    return int(ticks * tb.numerator * 1_000_000 // tb.denominator)


def _stream_params(video, audio) -> tuple:
    """What must stay the same within one output file."""
    v = video.codec_context
    params = (v.name, v.width, v.height, bytes(v.extradata or b""), video.time_base)
    if audio is None:
        return params + (None,)
    a = audio.codec_context
    return params + ((a.name, a.sample_rate, a.channels, bytes(a.extradata or b""),
                      audio.time_base),)


def _file_name(camera: str, origin_us: int) -> str:
    """<camera>_<UTC start to the millisecond>Z.mp4: sortable, unique per camera."""
    t = datetime.fromtimestamp(origin_us / 1e6, timezone.utc)
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", camera)
    return f"{safe}_{t:%Y%m%dT%H%M%S}.{t.microsecond // 1000:03d}Z.mp4"


def _dropped_audio(codec: str) -> str:
    if codec in QUICKTIME_AUDIO:
        return f"{codec}: G.711 audio cannot be stored in MP4; the exported files have video only"
    return f"{codec}: this audio codec cannot be stored in MP4; the exported files have video only"


class _SegmentRemux:
    """The packets of one segment file, mapped onto the wall clock and into output parts.

    In a segment file both tracks count from the segment's first video packet, which is
    the segment's `start_us`; a packet's wall time is start_us + its offset from there.
    In a part, a packet's timestamp is its wall time minus the part's origin, computed as
    a per-segment offset in the stream's own ticks so that the spacing stays exact.
    """

    def __init__(self, seg: Segment, video, audio, cut_from: int | None, end_us: int,
                 part_max_us: int, part: _Part | None,
                 open_part: Callable[[int, tuple], _Part]) -> None:
        self.seg = seg
        self.video, self.audio = video, audio
        self.streams = (video, audio) if audio is not None else (video,)
        self.params = _stream_params(video, audio)
        self.tb = {"video": video.time_base,
                   "audio": audio.time_base if audio is not None else None}
        self.frame_size = audio.codec_context.frame_size if audio is not None else 0
        self.cut_from, self.end_us, self.part_max_us = cut_from, end_us, part_max_us
        self.part = part
        self.open_part = open_part
        self.origin: dict[str, int] = {}   # per kind: the file's ticks at the segment start
        self.offsets: dict[str, int] = {}  # per kind: file ticks -> part ticks
        self.pending: list[av.Packet] = []  # audio read before the first video packet
        self.first_audio = True
        self.done: set[str] = set()

    def feed(self, packet: av.Packet) -> bool:
        """Handle one packet; True when nothing more of this segment is wanted."""
        if not self.origin:
            if packet.stream.index != self.video.index:
                self.pending.append(packet)
                return False
            self.origin["video"] = packet.dts
            if self.audio is not None:
                self.origin["audio"] = round(packet.dts * self.tb["video"] / self.tb["audio"])
            self._handle(packet, "video")
            for held in self.pending:
                self._handle(held, "audio")
            self.pending.clear()
        else:
            self._handle(packet, "video" if packet.stream.index == self.video.index else "audio")
        return len(self.done) == len(self.streams)

    def _set_offsets(self) -> None:
        for kind, tb in self.tb.items():
            if tb is not None:
                self.offsets[kind] = _ticks(self.seg.start_us - self.part.origin_us, tb) - \
                    self.origin[kind]

    def _handle(self, packet: av.Packet, kind: str) -> None:
        tb = self.tb[kind]
        dts = packet.dts
        pts = packet.pts if packet.pts is not None else dts
        duration = packet.duration or 0
        if kind == "audio":
            if self.first_audio and self.frame_size and duration > self.frame_size:
                # the fMP4 muxer stretched the segment's first audio frame back to 0
                shift = duration - self.frame_size
                dts, pts, duration = dts + shift, pts + shift, self.frame_size
            self.first_audio = False
        wall = self.seg.start_us + _us(dts - self.origin[kind], tb)
        if wall >= self.end_us:
            self.done.add(kind)
            return
        if self.cut_from is not None and wall < self.cut_from:
            return
        part = self.part
        if kind == "video" and packet.is_keyframe and (
                part is None or part.params != self.params
                or wall - part.origin_us >= self.part_max_us):
            if part is not None:
                part.close()
            self.part = part = self.open_part(wall, self.params)
            self.offsets.clear()
        if part is None or part.params != self.params or wall < part.origin_us:
            return  # not after a keyframe of the current file (yet)
        if not self.offsets:
            self._set_offsets()
        offset = self.offsets[kind]
        part.write(packet, kind, dts + offset, pts + offset, wall + _us(duration, tb))


def new_export_id(now_s: float) -> str:
    stamp = datetime.fromtimestamp(now_s, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


class ExportJob:
    """Export [start_us, end_us) of `cameras` into the directory `out_dir`, in a thread.

    `start()` runs it; `progress` (0..1, by bytes read, hashed and written), `state`
    (ExportState) and `error` report it; `cancel()` stops it within about a second and
    removes what it wrote; `wait(timeout)` joins it. `on_progress(fraction)` is called from
    the job's thread about every half per cent (for a web UI's progress bar).
    Arguments that cannot work raise InvalidConfig here; what depends on the recordings
    (no footage in the range, a damaged index) makes the job fail with a clear `error`.
    """

    def __init__(self, index: RecordingIndex, data_dir: Path, cameras: list[str],
                 start_us: int, end_us: int, out_dir: Path, *, key: DeviceKey,
                 serial: str = "unknown", clock: Clock | None = None,
                 export_id: str | None = None, max_range_us: int = MAX_RANGE_US,
                 part_max_us: int = PART_MAX_US,
                 on_progress: Callable[[float], None] | None = None) -> None:
        self.index = index
        self.data_dir = Path(data_dir).resolve()
        self.cameras = list(dict.fromkeys(cameras))
        self.start_us, self.end_us = int(start_us), int(end_us)
        self.out_dir = Path(out_dir).absolute()
        self.key = key
        self.serial = serial
        self.clock = clock or RealClock()
        self.export_id = export_id or new_export_id(self.clock.wall())
        self.part_max_us = part_max_us
        self.on_progress = on_progress
        self.state = ExportState.QUEUED
        self.error: str | None = None
        self.progress = 0.0
        self.manifest: dict[str, Any] | None = None
        self.protection_ids: dict[str, int] = {}
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._work_total = 1
        self._work_done = 0
        self._reported = 0.0
        self._tmp = self.out_dir.parent / f".{self.out_dir.name}.partial-{self.export_id}"
        self._validate(max_range_us)

    # --- arguments ----------------------------------------------------------------------
    def _validate(self, max_range_us: int) -> None:
        if not self.cameras:
            raise InvalidConfig("export: name at least one camera")
        if self.end_us <= self.start_us:
            raise InvalidConfig("export: the end of the range must be after its start")
        if self.end_us - self.start_us > max_range_us:
            raise InvalidConfig(f"export: the range is {(self.end_us - self.start_us) / 86_400e6:.1f}"
                                f" days; at most {max_range_us / 86_400e6:g} days per export")
        if not self.data_dir.is_dir():
            raise InvalidConfig(f"export: the data directory {self.data_dir} does not exist")
        if not self.out_dir.parent.is_dir():
            raise InvalidConfig(f"export: {self.out_dir.parent} does not exist (is the disk "
                                "mounted?)")
        out = self.out_dir.resolve()
        if out == self.data_dir or out.is_relative_to(self.data_dir / "recordings"):
            raise InvalidConfig(f"export: {self.out_dir} is inside the recordings; choose "
                                "another place")
        if self.out_dir.exists() and (not self.out_dir.is_dir() or any(self.out_dir.iterdir())):
            raise InvalidConfig(f"export: {self.out_dir} already exists and is not an empty "
                                "directory")

    # --- job control --------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None or self.state != ExportState.QUEUED:
            raise FailedPrecondition(f"export {self.export_id} cannot start: it is {self.state}")
        self._thread = threading.Thread(target=self.run, name=f"export-{self.export_id}",
                                        daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()
        if self._thread is None and self.state == ExportState.QUEUED:
            self.state = ExportState.CANCELLED

    def wait(self, timeout: float | None = None) -> bool:
        """True once the job has finished (done, cancelled or failed)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.state in ExportState.FINISHED

    @property
    def files(self) -> list[Path]:
        if self.manifest is None:
            return []
        return [self.out_dir / f["name"] for cam in self.manifest["cameras"] for f in cam["files"]]

    def describe(self) -> dict[str, Any]:
        return {"id": self.export_id, "state": self.state, "progress": round(self.progress, 4),
                "error": self.error, "out_dir": str(self.out_dir), "cameras": self.cameras,
                "start": iso(self.start_us), "end": iso(self.end_us)}

    # --- the job ------------------------------------------------------------------------
    def run(self) -> None:
        """The whole export, synchronously (what the thread runs)."""
        if self.state != ExportState.QUEUED:
            return
        self.state = ExportState.RUNNING
        log.info("export=%s started: cameras=%s %s .. %s -> %s", self.export_id,
                 ",".join(self.cameras), iso(self.start_us), iso(self.end_us), self.out_dir)
        try:
            created_us = int(self.clock.wall() * 1_000_000)
            self._protect(created_us)
            plans = self._plan()
            self._check_space(plans)
            self._tmp.mkdir()
            for plan in plans:
                self._export_camera(plan)
            self._finish(plans, created_us)
        except _Cancelled:
            self._undo()
            self.state = ExportState.CANCELLED
            log.info("export=%s cancelled; partial output removed", self.export_id)
        except VigilError as exc:
            self._fail(str(exc))
        except (av.FFmpegError, OSError, sqlite3.Error) as exc:
            self._fail(f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug must still end the job with a state
            log.exception("export=%s internal error", self.export_id)
            self._fail(f"internal error ({type(exc).__name__}: {exc})")

    def _fail(self, message: str) -> None:
        self._undo()
        self.error = message
        self.state = ExportState.FAILED
        log.warning("export=%s failed: %s", self.export_id, message)

    def _undo(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)
        for camera, pid in self.protection_ids.items():
            try:
                self.index.unprotect(pid)
            except sqlite3.Error as exc:
                log.error("export=%s could not remove protection %d of camera=%s: %s",
                          self.export_id, pid, camera, exc)
        self.protection_ids = {}

    def _check(self) -> None:
        if self._cancel.is_set():
            raise _Cancelled()

    def _advance(self, units: int) -> None:
        self._work_done += units
        self.progress = min(0.99, self._work_done / self._work_total)
        if self.on_progress and self.progress - self._reported >= PROGRESS_STEP:
            self._reported = self.progress
            self.on_progress(self.progress)
        self._check()

    def _protect(self, created_us: int) -> None:
        """First of all, so retention cannot delete what is about to be read."""
        for camera in self.cameras:
            try:
                self.protection_ids[camera] = self.index.protect(
                    camera, self.start_us, self.end_us, f"export {self.export_id}", created_us)
            except sqlite3.Error as exc:
                raise FailedPrecondition(f"cannot protect the range of camera {camera} in the "
                                         f"index ({exc})") from None

    # --- planning -----------------------------------------------------------------------
    def _plan(self) -> list[_CameraPlan]:
        known = set(self.index.cameras())
        unknown = [c for c in self.cameras if c not in known]
        if unknown:
            raise InvalidConfig(f"camera {', '.join(unknown)} has no recordings on this box "
                                f"(cameras: {', '.join(sorted(known)) or 'none'})")
        plans = [self._plan_camera(camera) for camera in self.cameras]
        if not any(plan.runs for plan in plans):
            lost = sum(len(plan.segments) for plan in plans)
            raise FailedPrecondition(
                f"no footage of {', '.join(self.cameras)} between {iso(self.start_us)} and "
                f"{iso(self.end_us)}" + (f" ({lost} segment(s) in the range were lost)"
                                         if lost else ""))
        total = sum(seg.bytes for plan in plans for run in plan.runs for seg in run)
        self._work_total = max(1, 3 * total)  # hash each source, remux it, hash the output
        return plans

    def _plan_camera(self, camera: str) -> _CameraPlan:
        segments = self.index.segments(camera, self.start_us, self.end_us)
        checks: dict[int, str] = {}
        readable: list[Segment] = []
        for seg in segments:
            if seg.status == "missing" or not self._source(seg).is_file():
                checks[seg.seq] = CHECK_MISSING
            else:
                readable.append(seg)
        runs: list[list[Segment]] = []
        for seg in readable:
            if runs and abs(seg.start_us - runs[-1][-1].end_us) <= GAP_SPLIT_US:
                runs[-1].append(seg)
            else:
                runs.append([seg])
        return _CameraPlan(camera, segments, checks, runs,
                           self._gaps(camera, readable, segments))

    def _gaps(self, camera: str, readable: list[Segment],
              segments: list[Segment]) -> list[dict[str, Any]]:
        """Holes in [start, end) that no readable segment covers, with their causes."""
        holes = []
        cursor = self.start_us
        for seg in readable:
            if seg.start_us - cursor > GAP_SPLIT_US:
                holes.append((cursor, seg.start_us))
            cursor = max(cursor, seg.end_us)
        if self.end_us - cursor > GAP_SPLIT_US:
            holes.append((cursor, self.end_us))
        if not holes:
            return []
        recorded_gaps = self.index.gaps(camera)
        lost = [s for s in segments if s not in readable]
        result = []
        for start, end in holes:
            causes = sorted({g.cause for g in recorded_gaps
                             if g.start_us < end and (g.end_us is None or g.end_us > start)})
            if any(s.start_us < end and s.end_us > start for s in lost):
                causes.append("segment_lost")
            result.append({**span(start, end), "causes": causes or ["not_recorded"]})
        return result

    def _source(self, seg: Segment) -> Path:
        """A segment's file, which must lie inside the data directory."""
        relpath = Path(seg.path)
        path = (self.data_dir / relpath).resolve()
        if relpath.is_absolute() or not path.is_relative_to(self.data_dir):
            raise DataLoss(f"segment {seg.path} of camera {seg.camera} points outside the data "
                           f"directory {self.data_dir}; refusing to read it (the index may "
                           "have been tampered with)")
        return path

    def _check_space(self, plans: list[_CameraPlan]) -> None:
        need = sum(seg.bytes for plan in plans for run in plan.runs for seg in run)
        free = shutil.disk_usage(self.out_dir.parent).free
        if need + (1 << 20) > free:
            raise ResourceExhausted(f"{self.out_dir.parent} has {free / 1e6:.0f} MB free; this "
                                    f"export needs about {need / 1e6:.0f} MB")

    # --- remuxing -----------------------------------------------------------------------
    def _export_camera(self, plan: _CameraPlan) -> None:
        parts: list[_Part] = []
        try:
            for run in plan.runs:
                current: _Part | None = None
                for i, seg in enumerate(run):
                    plan.checks[seg.seq] = self._check_source(seg)
                    cut_from = self.start_us if i == 0 and seg.start_us < self.start_us else None
                    current = self._remux_segment(plan, seg, cut_from, current, parts)
                if current is not None:
                    current.close()
        except BaseException:
            for part in parts:
                part.abandon()
            raise
        for part in parts:
            if part.packets["video"] == 0:
                part.path.unlink(missing_ok=True)
                continue
            digest, size = self._hash(part.path, fsync=True)
            plan.files.append({
                "name": part.path.name, "sha256": digest, "bytes": size,
                **span(part.origin_us, part.end_us), "video": part.video_codec,
                "audio": part.audio_codec, "video_packets": part.packets["video"],
                "audio_packets": part.packets["audio"], "timestamp_repairs": part.repairs})

    def _check_source(self, seg: Segment) -> str:
        digest, _ = self._hash(self._source(seg))
        if not seg.sha256:
            return CHECK_NO_HASH
        if digest != seg.sha256:
            log.warning("export=%s segment %s changed since it was recorded", self.export_id,
                        seg.path)
            return CHECK_CHANGED
        return CHECK_OK

    def _hash(self, path: Path, fsync: bool = False) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        with open(path, "rb") as src:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                self._advance(len(chunk))
            if fsync:
                os.fsync(src.fileno())
        return digest.hexdigest(), size

    def _keyframe_before(self, path: Path, seg: Segment, start_us: int) -> int:
        """Wall time of the last keyframe at or before `start_us` (a video-only demux)."""
        found = seg.start_us
        with av.open(str(path)) as src:
            video = src.streams.video[0]
            origin = None
            for packet in src.demux(video):
                self._check()
                if packet.dts is None or packet.size == 0:
                    continue
                origin = packet.dts if origin is None else origin
                wall = seg.start_us + _us(packet.dts - origin, video.time_base)
                if wall > start_us:
                    break
                if packet.is_keyframe:
                    found = wall
        return found

    def _remux_segment(self, plan: _CameraPlan, seg: Segment, cut_from: int | None,
                       part: _Part | None, parts: list[_Part]) -> _Part | None:
        """Copy one segment's packets in [cut_from or its start, end) into `part` (or into
        new parts); returns the part still open."""
        path = self._source(seg)
        if cut_from is not None:
            cut_from = self._keyframe_before(path, seg, cut_from)
        with av.open(str(path)) as src:
            if not src.streams.video:
                raise DataLoss(f"segment {seg.path} has no video track")
            video = src.streams.video[0]
            audio = src.streams.audio[0] if src.streams.audio else None
            if audio is not None and audio.codec_context.name not in MP4_AUDIO:
                plan.audio_dropped = _dropped_audio(audio.codec_context.name)
                audio = None
            remux = _SegmentRemux(seg, video, audio, cut_from, self.end_us, self.part_max_us,
                                  part, lambda origin_us, p: self._open_part(plan, p, origin_us,
                                                                             video, audio, parts))
            for packet in src.demux(*remux.streams):
                if packet.dts is None or packet.size == 0:
                    continue
                self._advance(packet.size)
                if remux.feed(packet):
                    break
            return remux.part

    def _open_part(self, plan: _CameraPlan, params: tuple, origin_us: int, video, audio,
                   parts: list[_Part]) -> _Part:
        path = self._tmp / _file_name(plan.camera, origin_us)
        if path.exists():
            raise FailedPrecondition(f"two exported files would both be named {path.name}")
        part = _Part(path, params, video, audio, origin_us)
        parts.append(part)
        return part

    # --- finishing ----------------------------------------------------------------------
    def _finish(self, plans: list[_CameraPlan], created_us: int) -> None:
        cameras = []
        for plan in plans:
            files = plan.files
            cameras.append({
                "camera": plan.camera,
                "files": files,
                "covered": span(min(f["start_us"] for f in files),
                                max(f["end_us"] for f in files)) if files else None,
                "segments": [segment_entry(seg, plan.checks.get(seg.seq, CHECK_MISSING))
                             for seg in plan.segments],
                "gaps": plan.gaps,
                "audio_dropped": plan.audio_dropped,
                "protection_id": self.protection_ids.get(plan.camera),
            })
        all_files = [f for cam in cameras for f in cam["files"]]
        if not all_files:
            raise FailedPrecondition(f"no footage of {', '.join(self.cameras)} could be "
                                     f"exported between {iso(self.start_us)} and "
                                     f"{iso(self.end_us)}")
        covered = (min(f["start_us"] for f in all_files), max(f["end_us"] for f in all_files))
        manifest = build_manifest(export_id=self.export_id, created_us=created_us,
                                  serial=self.serial, key=self.key,
                                  requested=(self.start_us, self.end_us), covered=covered,
                                  cameras=cameras, gap_split_us=GAP_SPLIT_US)
        self._check()
        write_manifest(self._tmp, manifest, self.key)
        for name in ("manifest.json", "manifest.sig"):
            fd = os.open(self._tmp / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(self._tmp)
        self._check()
        os.rename(self._tmp, self.out_dir)  # onto a missing or empty directory
        fsync_dir(self.out_dir.parent)
        self.manifest = manifest
        self.progress = 1.0
        self.state = ExportState.DONE
        log.info("export=%s done: %d file(s) in %s", self.export_id, len(all_files),
                 self.out_dir)


