"""One camera's ingest: connect, wait for a keyframe, copy packets into segments, retry.

Runs as a thread of the recorder process (one per camera). Nothing here decodes or
encodes video: packets are demuxed from RTSP and muxed into fMP4 as they are.

Timeline per connection: the first keyframe is media time 0 and is anchored to the wall
clock at its arrival; every later packet's wall time is anchor + media time. Segments are
cut at the first keyframe after `segment_seconds`, so the next segment starts exactly
where the last one ended. A pause in arrival longer than `stall_break` with the
connection still up is a real discontinuity: the segment is closed, a gap recorded, and
a new timeline starts at the next keyframe.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import av

from appliance.config.recorder import CameraConfig, RecorderSettings
from appliance.core.clock import Clock
from appliance.recorder.backoff import Backoff
from appliance.recorder.index import GapCause, RecordingIndex, Segment
from appliance.recorder.integrity import GENESIS, link_segment
from appliance.recorder.segmenter import (MP4_AUDIO, QUICKTIME_AUDIO, VIDEO_CODECS,
                                          SegmentWriter, segment_relpath)
from appliance.recorder.source import (Failure, StreamFailure, camera_address, classify,
                                       open_stream, port_accepts)
from appliance.recorder.timestamps import TimestampRepair
from appliance.storage.gate import WriteGate

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]


@dataclass
class CameraStats:
    """What the status display, the watchdog and (later) metrics read. Written by one thread."""

    state: str = "starting"
    detail: str = ""
    last_progress: float = 0.0          # monotonic; packets, attempts and waits all count
    bytes_in: int = 0
    packets_in: int = 0
    segments: int = 0
    fragments: int = 0
    reconnects: int = 0
    timestamp_repairs: int = 0
    skipped_before_keyframe: int = 0
    audio_dropped: str = ""
    video: str = ""
    current_segment: str = ""
    last_gap: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data.pop("last_progress")
        return data


class _Timeline:
    """Media-time origin and wall anchor of one continuous run of packets.

    The anchor is first the arrival time of the first keyframe. But the demuxer hands
    over the packets it read while probing the stream (about a second) all at once, so
    the first frames arrive "late". For the first `SETTLE_US` of media the anchor may move
    earlier, to the smallest `arrival - media time` seen, never below `lowest_us` (the end
    of what was recorded before, or the start of the gap this timeline closes).
    """

    SETTLE_US = 5_000_000

    def __init__(self, anchor_us: int, video_origin: int, video_tb: Fraction,
                 lowest_us: int) -> None:
        self.anchor_us = anchor_us
        self.video_origin = video_origin
        self.video_tb = video_tb
        self.origin_seconds = video_origin * video_tb
        self.lowest_us = min(lowest_us, anchor_us)
        self.settling = True

    def media_us(self, rel_video_ticks: int) -> int:
        return int(round(rel_video_ticks * self.video_tb * 1_000_000))

    def wall_us(self, rel_video_ticks: int) -> int:
        return self.anchor_us + self.media_us(rel_video_ticks)

    def settle(self, rel_video_ticks: int, arrival_us: int) -> None:
        media = self.media_us(rel_video_ticks)
        if media > self.SETTLE_US:
            self.settling = False
            return
        self.anchor_us = max(self.lowest_us, min(self.anchor_us, arrival_us - media))

    def audio_origin(self, audio_tb: Fraction) -> int:
        return int(self.origin_seconds / audio_tb)


class CameraRecorder:
    def __init__(self, camera: CameraConfig, settings: RecorderSettings, data_dir: Path,
                 index: RecordingIndex, clock: Clock, stop: threading.Event,
                 emit: Emit | None = None, open_gap: tuple[int, str] | None = None,
                 gate: WriteGate | None = None) -> None:
        self.camera = camera
        self.gate = gate or WriteGate()
        self.settings = settings
        self.data_dir = data_dir
        self.index = index
        self.clock = clock
        self.stop = stop
        self.stop_reason = (GapCause.RECORDER_STOPPED, "the recorder was stopped")
        self._final_state = "stopped"
        # The retention class new segments are indexed with: 'rolling' in events-only mode
        # (the pre-event buffer, see storage/retention/classes.py), else 'continuous'. Set
        # by the recorder when the camera's recording mode changes.
        self.segment_class = "continuous"
        self.emit = emit or (lambda event: None)
        self.stats = CameraStats(last_progress=clock.monotonic())
        self.backoff = Backoff(settings.backoff_initial, settings.backoff_cap)
        self.stall_break = min(5.0, settings.read_timeout)
        self._gap_id, self._gap_cause = open_gap if open_gap else (None, None)
        self._gap_unsaved: tuple[int, str, str, int | None] | None = None  # index refused it
        self._next_seq = index.max_seq(camera.name) + 1
        self._last_chain = index.last_chain(camera.name) or GENESIS
        self._writer: SegmentWriter | None = None
        self._writer_timeline: _Timeline | None = None
        self._writer_seq = 0
        self._gap_start_us: int | None = None  # where the next gap starts (last segment end)
        # Nothing new may start before what is already recorded (no overlap, even when a
        # camera's initial burst put media time ahead of the wall clock).
        self._floor_us = index.last_segment_end(camera.name) or 0
        self._last_packet = 0.0
        self._gap_closed_by_writer: int | None = None
        self._thread = threading.Thread(target=self._run, name=f"camera-{camera.name}", daemon=True)

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop_with(self, cause: str, detail: str, state: str) -> None:
        """Stop this camera alone (the segment is closed cleanly), recording why."""
        self.stop_reason = (cause, detail)
        self._final_state = state
        self.stop.set()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self._cycle()
            except Exception as exc:  # a bug or an index failure must not end this camera
                log.exception("camera=%s unexpected error; retrying", self.camera.name)
                self._set_state("retrying", f"internal error ({type(exc).__name__}: {exc})")
                self._sleep(self.backoff.next_delay())
        try:
            self._finish_segment()
            self._set_gap(*self.stop_reason, self._take_gap_start())
        except Exception:
            log.exception("camera=%s could not record its stop", self.camera.name)
        self._set_state(self._final_state, "")

    def _cycle(self) -> None:
        """One connection and, after it ends, the gap and the wait before the next."""
        started = self.clock.monotonic()
        failure = self._session()
        if self.stop.is_set():
            return
        if self.clock.monotonic() - started >= self.settings.stable_after and \
                self.stats.state == "recording":
            self.backoff.reset()
        self._fail(failure)
        self._wait_before_retry(failure)
        self.stats.reconnects += 1

    # --- one connection -----------------------------------------------------------------
    def _session(self) -> Failure:
        self._set_state("connecting", self.camera.redacted_url)
        began = self.clock.monotonic()
        try:
            container = open_stream(self.camera.url, self.settings.connect_timeout,
                                    self.settings.read_timeout)
        except Exception as exc:  # every failure is classified; none kills the recorder
            return classify(exc, self.clock.monotonic() - began, self.settings.connect_timeout)
        self._last_packet = self.clock.monotonic()
        try:
            self._record(container)
            return Failure(GapCause.STREAM_ENDED, "retrying", "the camera ended the stream", "backoff")
        except StreamFailure as exc:
            return exc.failure
        except Exception as exc:
            silent = self.clock.monotonic() - self._last_packet
            if silent >= 0.95 * self.settings.read_timeout:
                return Failure(GapCause.STREAM_STALLED, "retrying",
                               f"no data from the camera for {self.settings.read_timeout:g} s",
                               "backoff")
            return classify(exc, silent, self.settings.read_timeout)
        finally:
            self._finish_segment()
            container.close()

    def _record(self, container: av.container.InputContainer) -> None:
        video = self._pick_video(container)
        audio = self._pick_audio(container)
        self._set_state("waiting_keyframe", "")
        connected = self.clock.monotonic()
        vrepair, arepair = fresh_repairs(video, audio)
        timeline: _Timeline | None = None
        audio_origin: int | None = None
        video_rel = 0  # latest video time since the timeline origin, in video ticks
        streams = (video, audio) if audio is not None else (video,)
        for packet in container.demux(streams):
            if self.stop.is_set():
                return
            if packet.size == 0:
                continue  # demuxer flush packets carry nothing
            now = self.clock.monotonic()
            self.stats.last_progress = now
            self.stats.bytes_in += packet.size
            self.stats.packets_in += 1
            if packet.stream.index != video.index:
                if timeline is None or arepair is None:
                    continue  # audio before the first keyframe
                t = arepair.fix(packet.dts, packet.pts, packet.duration)
                self.stats.timestamp_repairs += t.repaired
                if audio_origin is None:
                    audio_origin = self._align_audio(timeline, t.dts, audio.time_base,
                                                     video_rel * video.time_base)
                rel = t.dts - audio_origin
                if rel >= 0:
                    self._store(self._writer.write_audio, packet, rel, t.pts - audio_origin,
                                t.duration)
                continue
            if timeline is not None and now - self._last_packet > self.stall_break:
                self._break_timeline(now - self._last_packet)
                timeline, audio_origin = None, None
                connected = now  # the wait for a keyframe starts again
                vrepair, arepair = fresh_repairs(video, audio)
            self._last_packet = now
            if timeline is None and not packet.is_keyframe:
                self.stats.skipped_before_keyframe += 1
                if now - connected > self.settings.keyframe_timeout:
                    raise StreamFailure(Failure(
                        GapCause.NO_KEYFRAME, "retrying",
                        f"no keyframe from the camera within {self.settings.keyframe_timeout:g} s",
                        "backoff"))
                continue
            if packet.is_keyframe and not self.gate.is_open:
                raise StreamFailure(Failure(GapCause.DISK_FULL, "stopped_disk_full",
                                            self.gate.reason, "gate"))
            t = vrepair.fix(packet.dts, packet.pts, packet.duration)
            self.stats.timestamp_repairs += t.repaired
            if timeline is None:
                timeline = _Timeline(self._now_us(), t.dts, video.time_base,
                                     max(self._floor_us, self._open_gap_start()))
            rel = video_rel = t.dts - timeline.video_origin
            if timeline.settling:
                timeline.settle(rel, int(self.clock.wall() * 1_000_000))
            if self._writer is None or (packet.is_keyframe and self._rotation_due(rel)):
                self._rotate(timeline, rel, video, audio)
            self._store(self._writer.write_video, packet, rel, t.pts - timeline.video_origin,
                        t.duration)
            if self.stats.state != "recording":
                self._set_state("recording", self.stats.video)

    def _pick_video(self, container: av.container.InputContainer):
        if not container.streams.video:
            raise StreamFailure(Failure(GapCause.UNSUPPORTED, "unsupported",
                                        "the stream has no video track", "backoff"))
        video = container.streams.video[0]
        codec = video.codec_context.name
        if codec not in VIDEO_CODECS:
            raise StreamFailure(Failure(
                GapCause.UNSUPPORTED, "unsupported",
                f"video codec {codec} cannot be recorded (H.264 and H.265 can)", "backoff"))
        ctx = video.codec_context
        self.stats.video = f"{codec} {ctx.width}x{ctx.height}"
        return video

    def _pick_audio(self, container: av.container.InputContainer):
        if not container.streams.audio:
            return None
        audio = container.streams.audio[0]
        codec = audio.codec_context.name
        if self.settings.audio == "drop":
            self.stats.audio_dropped = f"{codec} (audio = drop)"
            return None
        if codec not in MP4_AUDIO | QUICKTIME_AUDIO:
            self.stats.audio_dropped = f"{codec} (no container for it)"
            log.info("camera=%s audio %s is not recordable; recording video only",
                     self.camera.name, codec)
            return None
        return audio

    @staticmethod
    def _align_audio(timeline: _Timeline, first_dts: int, audio_tb: Fraction,
                     video_rel_seconds: Fraction) -> int:
        """Audio origin in audio ticks; re-aligned when the camera's clocks disagree by > 1 s."""
        origin = timeline.audio_origin(audio_tb)
        if abs((first_dts - origin) * audio_tb - video_rel_seconds) > 1:
            origin = first_dts - int(video_rel_seconds / audio_tb)
        return origin

    def _rotation_due(self, rel: int) -> bool:
        started = self._writer.first_dts if self._writer.first_dts is not None else rel
        return (rel - started) * self._writer.time_base >= self.settings.segment_seconds

    # --- segments -------------------------------------------------------------------------
    def _rotate(self, timeline: _Timeline, rel: int, video, audio) -> None:
        if self._writer is not None:
            timeline.settling = False  # a closed segment's times must stay as indexed
        self._finish_segment()
        start_us = timeline.wall_us(rel)
        relpath = segment_relpath(self.camera.name, start_us, self._next_seq)
        try:
            self._writer = SegmentWriter(self.data_dir, relpath, video, audio,
                                         self.settings.fsync_every_fragments, self._on_durable)
        except (OSError, av.FFmpegError) as exc:
            raise StreamFailure(disk_failure(exc)) from exc
        self._writer_timeline = timeline
        self._writer_seq = self._next_seq
        self._next_seq += 1
        self.stats.current_segment = relpath
        self._save_open_gap()
        self._gap_closed_by_writer = self._gap_id
        self._end_gap(start_us)

    def _store(self, write, packet: av.Packet, dts: int, pts: int, duration: int) -> None:
        try:
            write(packet, dts, pts, duration)
        except OSError as exc:  # includes PyAV's errno errors: ENOSPC, EIO, EROFS
            raise StreamFailure(disk_failure(exc)) from exc
        except av.FFmpegError as exc:
            raise StreamFailure(Failure(GapCause.STREAM_ERROR, "retrying",
                                        f"a packet could not be stored ({exc})", "backoff")) from exc

    def _on_durable(self, relpath: str, size: int, fragments: int) -> None:
        self.stats.fragments += 1
        self.emit({"event": "durable", "camera": self.camera.name, "path": relpath,
                   "bytes": size, "fragments": fragments})

    def _finish_segment(self) -> None:
        """Close the open segment (fsync file and directory), then add its index row."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        self.stats.current_segment = ""
        try:
            closed = writer.close()
        except (OSError, av.FFmpegError) as exc:
            writer.abandon()
            log.error("camera=%s closing %s failed: %s; start-up reconciliation will recover it",
                      self.camera.name, writer.relpath, exc)
            return
        if closed.packets == 0 or closed.end_dts <= closed.first_dts:
            return
        timeline = self._writer_timeline
        segment = Segment(
            camera=self.camera.name, seq=self._writer_seq,
            start_us=timeline.wall_us(closed.first_dts), end_us=timeline.wall_us(closed.end_dts),
            bytes=closed.bytes, path=closed.relpath, video_codec=writer.video_codec,
            audio_codec=writer.audio_codec, width=writer.width, height=writer.height,
            fragments=closed.fragments, packets=closed.packets,
            retention_class=self.segment_class)
        try:
            link_segment(segment, self.data_dir, self._last_chain)
            self._last_chain = segment.chain
        except OSError as exc:
            log.error("camera=%s could not hash %s (%s); indexed without its hash",
                      self.camera.name, segment.path, exc)
        try:
            self.index.add_segment(segment)
        except sqlite3.Error as exc:  # e.g. the disk is full: the file is safe on disk
            log.error("camera=%s could not index %s (%s); start-up reconciliation will",
                      self.camera.name, segment.path, exc)
            return
        if self._gap_closed_by_writer is not None:  # the anchor may have settled earlier
            self.index.close_gap(self._gap_closed_by_writer, segment.start_us)
            self._gap_closed_by_writer = None
        self.stats.segments += 1
        self._gap_start_us = self._floor_us = segment.end_us
        self.emit({"event": "segment", "camera": self.camera.name, "path": segment.path,
                   "start_us": segment.start_us, "end_us": segment.end_us, "bytes": segment.bytes})

    def _break_timeline(self, silence: float) -> None:
        log.warning("camera=%s no packets for %.1f s; starting a new segment", self.camera.name,
                    silence)
        self._finish_segment()
        self._set_gap(GapCause.STREAM_STALLED, f"the camera sent nothing for {silence:.1f} s",
                      self._take_gap_start())
        self._set_state("waiting_keyframe", "")

    # --- gaps and state --------------------------------------------------------------------
    def _fail(self, failure: Failure) -> None:
        log.warning("camera=%s %s: %s", self.camera.name, failure.state, failure.detail)
        self._set_gap(failure.cause, failure.detail, self._take_gap_start())

    def _take_gap_start(self) -> int:
        start, self._gap_start_us = self._gap_start_us, None
        return start if start is not None else self._now_us()

    def _set_gap(self, cause: str, detail: str, start_us: int) -> None:
        replacing = None
        if self._gap_cause is not None:
            if self._gap_cause == cause:
                return
            self._save_open_gap()
            replacing = self._gap_id  # ends where the new gap starts, in one transaction
        self._gap_id, self._gap_cause = None, cause
        self._gap_unsaved = (start_us, cause, detail, replacing)
        self._save_open_gap()
        self.stats.last_gap = {"cause": cause, "detail": detail, "start_us": start_us, "end_us": None}
        self.emit({"event": "gap_open", "camera": self.camera.name, "cause": cause,
                   "start_us": start_us, "detail": detail})

    def _save_open_gap(self) -> None:
        """Write the open gap's row; on a full disk keep it in memory and try again later."""
        if self._gap_unsaved is None:
            return
        start_us, cause, detail, replacing = self._gap_unsaved
        try:
            self._gap_id = self.index.open_gap(self.camera.name, start_us, cause, detail,
                                               replacing)
            self._gap_unsaved = None
        except sqlite3.Error as exc:
            log.error("camera=%s gap %s not stored yet (%s); retrying later",
                      self.camera.name, cause, exc)

    def _close_gap_row(self, end_us: int) -> None:
        self._save_open_gap()
        if self._gap_id is not None:
            try:
                self.index.close_gap(self._gap_id, end_us)
            except sqlite3.Error as exc:  # stays open in the index; the next start closes it
                log.error("camera=%s gap end not stored (%s)", self.camera.name, exc)
        self._gap_id = self._gap_cause = self._gap_unsaved = None

    def _open_gap_start(self) -> int:
        return self.stats.last_gap.get("start_us", 0) if self._gap_cause is not None else 0

    def _end_gap(self, end_us: int) -> None:
        if self._gap_cause is None:
            return
        cause = self._gap_cause
        self._close_gap_row(end_us)
        if self.stats.last_gap:
            self.stats.last_gap["end_us"] = end_us
        self.emit({"event": "gap_close", "camera": self.camera.name, "cause": cause,
                   "end_us": end_us})

    def _set_state(self, state: str, detail: str) -> None:
        if (state, detail) != (self.stats.state, self.stats.detail):
            log.info("camera=%s state=%s %s", self.camera.name, state, detail)
            self.emit({"event": "state", "camera": self.camera.name, "state": state,
                       "detail": detail})
        self.stats.state, self.stats.detail = state, detail
        self.stats.last_progress = self.clock.monotonic()

    def _now_us(self) -> int:
        """Wall time, but never before what this camera already recorded (monotonic timeline)."""
        return max(int(self.clock.wall() * 1_000_000), self._floor_us)

    # --- waiting ---------------------------------------------------------------------------
    def _wait_before_retry(self, failure: Failure) -> None:
        if failure.retry == "auth":
            delay = self.backoff.jitter(self.settings.auth_retry)
            self._set_state(failure.state, f"{failure.detail}; next try in {delay:.0f} s")
            self._sleep(delay)
        elif failure.retry == "gate":
            self._set_state(failure.state, failure.detail)
            self._wait_for_gate()
        elif failure.retry == "probe":
            self._set_state(failure.state, failure.detail)
            self._wait_until_port_accepts()
        else:
            delay = self.backoff.next_delay()
            self._set_state(failure.state, f"{failure.detail}; next try in {delay:.1f} s")
            self._sleep(delay)

    def _wait_for_gate(self) -> None:
        """Storage said stop writing (disk full, action "stop"): wait, not reconnect."""
        while not self.stop.is_set() and not self.gate.wait_open(1.0):
            self.stats.last_progress = self.clock.monotonic()

    def _wait_until_port_accepts(self) -> None:
        host, port = camera_address(self.camera.url)
        probe_timeout = min(2.0, self.settings.connect_timeout)
        while not self.stop.is_set():
            self._sleep(self.backoff.jitter(self.settings.probe_interval))
            if self.stop.is_set() or port_accepts(host, port, probe_timeout):
                return
            self.stats.last_progress = self.clock.monotonic()

    def _sleep(self, seconds: float) -> None:
        """Wait in short steps, showing progress to the watchdog, until stopped."""
        deadline = self.clock.monotonic() + seconds
        while not self.stop.is_set():
            self.stats.last_progress = self.clock.monotonic()
            remaining = deadline - self.stats.last_progress
            if remaining <= 0:
                return
            self.clock.sleep(min(1.0, remaining), self.stop)


def fresh_repairs(video, audio) -> tuple[TimestampRepair, TimestampRepair | None]:
    """Timestamp repair state for a new timeline: video, and audio if recorded."""
    vrepair = TimestampRepair(video.time_base, nominal_duration(video))
    if audio is None:
        return vrepair, None
    return vrepair, TimestampRepair(audio.time_base, nominal_duration(audio))


def nominal_duration(stream) -> int:
    """A stream's usual packet duration in its own time base (a guess until packets say)."""
    tb = stream.time_base
    if stream.type == "video":
        rate = stream.guessed_rate or stream.average_rate or Fraction(25)
        return max(1, int(round(1 / (Fraction(rate) * tb))))
    frame = stream.codec_context.frame_size or 0
    rate = stream.codec_context.sample_rate or 8000
    if frame:
        return max(1, int(round(Fraction(frame, rate) / tb)))
    return max(1, int(round(Fraction(1, 50) / tb)))  # 20 ms, the usual G.711 packet


def disk_failure(exc: BaseException) -> Failure:
    return Failure(GapCause.DISK_ERROR, "disk_error",
                   f"recordings cannot be written ({exc})", "backoff")
