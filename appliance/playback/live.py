"""Live view: a camera's RTSP stream remuxed (never re-encoded) to fragmented MP4 for MSE.

One upstream RTSP connection per camera, shared by every viewer of that camera:

    camera --RTSP--> _Upstream thread: PyAV demux -> timestamp repair -> PyAV mp4 muxer
                     (frag_every_frame) -> _BoxSplitter -> init segment + one
                     moof+mdat per frame -> fan-out -> Viewer queue (bounded) -> HTTP

* A viewer gets the init segment (ftyp+moov), then the fragments of the current GOP so
  far (so the picture appears at once, starting at a keyframe), then every new fragment.
  The page seeks to the live edge; see docs/design/live.md.
* The fan-out never blocks: a viewer whose unsent video waited longer than
  `viewer_max_delay` (or passes `viewer_backlog_bytes`) is dropped: its HTTP response
  ends and the page reconnects. The upstream thread and other viewers never wait.
* The upstream closes `linger_seconds` after its last viewer left; a failed connection
  makes new viewers wait `retry_seconds` (no connect storms against a flaky camera).
* Everything is bounded: viewers per camera and in total, queue bytes, connect, read,
  keyframe and session time.

The recorder holds its own connection to the camera (another process); live view never
touches it, so a slow viewer cannot stall recording.
"""

from __future__ import annotations

import dataclasses
import logging
import struct
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import av

from appliance.config.model import load_section, setting
from appliance.core.clock import Clock, RealClock
from appliance.core.errors import InvalidConfig, ResourceExhausted, Unavailable
from appliance.recorder.camera import nominal_duration
from appliance.recorder.index import GapCause
from appliance.recorder.source import Failure, StreamFailure, classify, open_stream
from appliance.recorder.timestamps import TimestampRepair

log = logging.getLogger(__name__)

# Which fragments the mov muxer cuts. "frame": one moof+mdat per video frame, so a frame
# leaves the box one frame interval after it arrived (the muxer closes a fragment when
# the next packet comes). "gop": one fragment per keyframe interval (what the recorder
# writes), ~1 GOP of extra latency but ~100 bytes less per frame.
MOVFLAGS = {
    "frame": "frag_every_frame+empty_moov+default_base_moof",
    "gop": "frag_keyframe+empty_moov+default_base_moof",
}
LIVE_CODECS = {"h264", "hevc"}
# The recorder's RTSP options (recorder/source.py) with a shorter probe: the picture
# appears ~0.6 s sooner. A camera that sends its parameter sets only in-band may need
# longer; then the stream is opened again the recorder's way.
LIVE_PROBE_US = 500_000
U32 = struct.Struct(">I")
U64 = struct.Struct(">Q")


@dataclasses.dataclass(frozen=True)
class LiveSettings:
    max_viewers_per_camera: int = setting(
        4, "live viewers of one camera at once; more get 429", low=1, high=64)
    max_viewers_total: int = setting(
        4, "live viewers of all cameras at once; each holds a web server thread while it "
        "watches, so keep this well below the server's thread count", low=1, high=256)
    linger_seconds: float = setting(
        5.0, "keep a camera's connection open this long after its last viewer left "
        "(a page reload reuses it)", low=0, high=300)
    retry_seconds: float = setting(
        2.0, "after a camera connection failed, refuse new viewers of it this long",
        low=0, high=300)
    connect_timeout: float = setting(
        10.0, "seconds for the camera to answer the RTSP handshake", low=1, high=120)
    read_timeout: float = setting(
        5.0, "seconds without a packet before the live connection is dropped", low=1, high=120)
    keyframe_timeout: float = setting(
        10.0, "seconds to wait for the first keyframe after connecting", low=1, high=300)
    fragment: str = setting(
        "frame", "fragment per video frame (lowest latency) or per GOP (less overhead)",
        choices=("frame", "gop"))
    viewer_max_delay: float = setting(
        2.0, "seconds a fragment may wait unsent for a viewer (queued here or in the web "
        "server) before the viewer is dropped as too slow", low=0.2, high=30)
    viewer_backlog_bytes: int = setting(
        8 * 1024 * 1024, "most unsent video held for one viewer, whatever its age (memory "
        "bound)", low=64 * 1024, high=64 * 1024 * 1024)
    max_session_seconds: float = setting(
        3600.0, "one live response ends after this long; the page reconnects",
        low=5, high=86400)
    gop_cache_bytes: int = setting(
        4 * 1024 * 1024, "largest current GOP kept to start new viewers at once; beyond "
        "it a new viewer waits for the next keyframe", low=0, high=64 * 1024 * 1024)

    def validate(self) -> None:
        if self.max_viewers_per_camera > self.max_viewers_total:
            raise InvalidConfig("live.max_viewers_per_camera must not exceed "
                                "live.max_viewers_total")


def build_live_settings(values: Mapping[str, Any] | LiveSettings | None = None) -> LiveSettings:
    if isinstance(values, LiveSettings):
        return values
    return load_section(LiveSettings, values or {}, "live")


def open_live(url: str, connect_timeout: float, read_timeout: float):
    """Open a camera's RTSP stream over TCP for live view (deadlines as open_stream)."""
    options = {
        "rtsp_transport": "tcp",
        "rtsp_flags": "prefer_tcp",
        "timeout": str(int(read_timeout * 1_000_000)),
        "allowed_media_types": "video",
        "analyzeduration": str(LIVE_PROBE_US),
    }
    container = av.open(url, options=options, timeout=(connect_timeout, None))
    videos = container.streams.video
    if not videos or (videos[0].codec_context.extradata and videos[0].codec_context.width):
        return container
    container.close()  # no parameter sets yet: probe as long as the recorder does
    return open_stream(url, connect_timeout, read_timeout)


# --- MP4 boxes ---------------------------------------------------------------------------

def _boxes(data: bytes | memoryview, start: int = 0, end: int | None = None):
    """(type, body start, box end) of the complete boxes in data[start:end]."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size = U32.unpack_from(data, pos)[0]
        kind = bytes(data[pos + 4:pos + 8])
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            size, header = U64.unpack_from(data, pos + 8)[0], 16
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for k, body, stop in _boxes(data, start, end):
        if k == kind:
            return body, stop
    return None


def _path(data: bytes, start: int, end: int, *kinds: bytes) -> tuple[int, int] | None:
    span: tuple[int, int] | None = (start, end)
    for kind in kinds:
        span = _child(data, span[0], span[1], kind)
        if span is None:
            return None
    return span


VISUAL_SAMPLE_ENTRY = 78  # bytes of fields before a visual sample entry's child boxes


def codec_string(init: bytes) -> str:
    """RFC 6381 `codecs` value of the video track in an init segment (avcC / hvcC)."""
    moov = _child(init, 0, len(init), b"moov")
    if moov is None:
        raise ValueError("no moov in the init segment")
    for kind, body, stop in _boxes(init, *moov):
        if kind != b"trak":
            continue
        stsd = _path(init, body, stop, b"mdia", b"minf", b"stbl", b"stsd")
        if stsd is None:
            continue
        for entry, ebody, estop in _boxes(init, stsd[0] + 8, stsd[1]):
            config_start = ebody + VISUAL_SAMPLE_ENTRY
            if entry in (b"avc1", b"avc3"):
                avcc = _child(init, config_start, estop, b"avcC")
                if avcc and avcc[1] - avcc[0] >= 4:
                    p = init[avcc[0] + 1:avcc[0] + 4]
                    return f"{entry.decode()}.{p[0]:02X}{p[1]:02X}{p[2]:02X}"
            if entry in (b"hvc1", b"hev1"):
                hvcc = _child(init, config_start, estop, b"hvcC")
                if hvcc and hvcc[1] - hvcc[0] >= 13:
                    return entry.decode() + "." + _hevc_codec(init[hvcc[0]:hvcc[0] + 13])
    raise ValueError("no H.264 or H.265 video track in the init segment")


def _hevc_codec(h: bytes) -> str:
    """ISO/IEC 14496-15 Annex E: profile space+idc, compatibility, tier+level, constraints."""
    space = "" if h[1] >> 6 == 0 else "ABC"[(h[1] >> 6) - 1]
    tier = "H" if h[1] & 0x20 else "L"
    compat = int(f"{U32.unpack_from(h, 2)[0]:032b}"[::-1], 2)  # bits in reverse order
    constraints = list(h[6:12])
    while constraints and constraints[-1] == 0:
        constraints.pop()
    parts = [f"{space}{h[1] & 0x1F}", f"{compat:X}", f"{tier}{h[12]}"]
    parts += [f"{b:X}" for b in constraints]
    return ".".join(parts)


def _fragment_info(moof: bytes) -> tuple[int, int]:
    """(sequence number, sample count) of a moof box body."""
    seq, samples = 0, 0
    for kind, body, stop in _boxes(moof):
        if kind == b"mfhd" and stop - body >= 8:
            seq = U32.unpack_from(moof, body + 4)[0]
        elif kind == b"traf":
            for k, b, s in _boxes(moof, body, stop):
                if k == b"trun" and s - b >= 8:
                    samples += U32.unpack_from(moof, b + 4)[0]
    return seq, samples


class _BoxSplitter:
    """The muxer's output file: cuts the byte stream into the init segment and fragments.

    libav writes through PyAV's I/O callback in pieces of any size; whole top-level boxes
    are handed on: ftyp+moov as one init segment, each moof with its mdat as one fragment.
    """

    def __init__(self, on_init: Callable[[bytes], None],
                 on_fragment: Callable[[bytes, int, int], None]) -> None:
        self._buf = bytearray()
        self._init = bytearray()
        self._moof: bytes | None = None
        self._seq_samples = (0, 0)
        self.on_init = on_init
        self.on_fragment = on_fragment
        self.detached = False

    def write(self, data) -> int:
        if self.detached:  # the trailer (mfra) at close: nobody wants it
            return len(data)
        self._buf += data
        consumed = 0
        for kind, body, stop in _boxes(self._buf):
            box = bytes(self._buf[consumed:stop])
            consumed = stop
            if kind in (b"ftyp", b"moov"):
                self._init += box
                if kind == b"moov":
                    self.on_init(bytes(self._init))
            elif kind == b"moof":
                self._moof = box
                self._seq_samples = _fragment_info(box[body - (stop - len(box)):])
            elif kind == b"mdat" and self._moof is not None:
                seq, samples = self._seq_samples
                self.on_fragment(self._moof + box, seq, samples)
                self._moof = None
        del self._buf[:consumed]
        return len(data)


# --- viewers -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Fragment:
    data: bytes
    seq: int            # mfhd sequence number (per upstream connection)
    keyframe: bool      # starts with a keyframe: a viewer may start here
    arrived: float      # monotonic time its first frame was read from RTSP
    published: float    # monotonic time it was handed to the viewers


class Viewer:
    """One HTTP client's view of a camera: the init segment, then a bounded fragment queue."""

    def __init__(self, hub: "LiveHub", camera: str, max_delay: float, backlog_limit: int,
                 clock: Clock) -> None:
        self.hub = hub
        self.camera = camera
        self.max_delay = max_delay
        self.backlog_limit = backlog_limit
        self.clock = clock
        self.init: bytes | None = None
        self.codec: str | None = None
        self.reason: str | None = None   # why it ended; None while open
        self.too_slow = False
        self.started = False             # has had its first keyframe fragment
        self.latencies: deque[float] = deque(maxlen=2000)  # arrival -> written, seconds
        self._queue: deque[tuple[Fragment, float]] = deque()  # (fragment, queued at)
        self._queued_bytes = 0
        self._cond = threading.Condition()

    @property
    def closed(self) -> bool:
        return self.reason is not None

    # called by the upstream thread (never blocks) ---------------------------------------
    def _set_init(self, init: bytes, codec: str) -> None:
        with self._cond:
            self.init, self.codec = init, codec
            self._cond.notify_all()

    def _push(self, frag: Fragment, now: float | None = None) -> bool:
        """Queue a fragment; False (and the viewer closed) when the viewer is too slow."""
        now = frag.published if now is None else now
        with self._cond:
            if self.reason is not None:
                return False
            if not self.started:
                if not frag.keyframe:
                    return True  # wait for a keyframe to start at
                self.started = True
            if self._queue and now - self._queue[0][1] > self.max_delay:
                self._end(f"too slow: video waited more than {self.max_delay:g} s", slow=True)
                return False
            if self._queued_bytes + len(frag.data) > self.backlog_limit:
                self._end("too slow: more than "
                          f"{self.backlog_limit // 1024} KiB of video not yet sent", slow=True)
                return False
            self._queue.append((frag, now))
            self._queued_bytes += len(frag.data)
            self._cond.notify_all()
            return True

    def _end(self, reason: str, slow: bool = False) -> None:
        if self.reason is None:
            self.reason = reason
            self.too_slow = slow
            self._queue.clear()
            self._queued_bytes = 0
            self._cond.notify_all()

    # called by the HTTP thread ----------------------------------------------------------
    def wait_ready(self, timeout: float) -> tuple[bytes, str]:
        """The init segment and codec string, once the camera has sent its first keyframe."""
        deadline = self.clock.monotonic() + timeout
        with self._cond:
            while self.init is None and self.reason is None:
                remaining = deadline - self.clock.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(min(remaining, 0.5))
            if self.init is None:
                reason = self.reason or f"no picture from the camera within {timeout:g} s"
                raise Unavailable(f"live view of {self.camera}: {reason}")
            return self.init, self.codec or ""

    def take(self, timeout: float) -> list[Fragment]:
        """Every queued fragment (may be empty after `timeout`); [] and `closed` at the end."""
        with self._cond:
            if not self._queue and self.reason is None:
                self._cond.wait(timeout)
            frags = [frag for frag, _ in self._queue]
            self._queue.clear()
            self._queued_bytes = 0
            return frags

    def delivered(self, frags: list[Fragment]) -> None:
        now = self.clock.monotonic()
        with self._cond:
            self.latencies.extend(now - f.arrived for f in frags)

    def recent_latencies(self, count: int) -> list[float]:
        with self._cond:
            return list(self.latencies)[-count:]

    def drop(self, reason: str, slow: bool = False) -> None:
        with self._cond:
            self._end(reason, slow)

    def close(self) -> None:
        """The HTTP response is over (finished, failed or the client left)."""
        self.drop("closed")
        self.hub._leave(self)


# --- upstream: one RTSP connection per camera --------------------------------------------

@dataclass(frozen=True)
class FragmentTiming:
    seq: int
    arrived: float     # monotonic: its first frame was read from RTSP
    published: float   # monotonic: handed to the viewers
    keyframe: bool
    bytes: int
    media_time: float  # its first frame's presentation time in the MP4 (the player's), s


@dataclass
class UpstreamStats:
    connected_at: float | None = None
    fragments: int = 0
    bytes: int = 0
    dropped_viewers: int = 0
    timestamp_repairs: int = 0
    recent: deque = field(default_factory=lambda: deque(maxlen=512))  # FragmentTiming


class _Upstream:
    def __init__(self, hub: "LiveHub", camera: str, url: str) -> None:
        self.hub = hub
        self.camera = camera
        self.url = url
        self.settings = hub.settings
        self.clock = hub.clock
        self.viewers: set[Viewer] = set()
        self.init: bytes | None = None
        self.codec: str | None = None
        self.gop: list[Fragment] = []
        self.gop_bytes = 0
        self.empty_since: float | None = None
        self.stopping = False
        self.failure: str | None = None
        self.stats = UpstreamStats()
        # (arrival, keyframe, pts in s) of packets muxed but not yet out in a fragment
        self._arrivals: deque[tuple[float, bool, float]] = deque()
        self._last_packet = 0.0
        self.thread = threading.Thread(target=self._run, name=f"live-{camera}", daemon=True)

    # --- the thread ---------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._connect_and_pump()
        finally:
            with self.hub._lock:
                self.hub._all.remove(self)

    def _connect_and_pump(self) -> None:
        began = self.clock.monotonic()
        try:
            container = self.hub.opener(self.url, self.settings.connect_timeout,
                                        self.settings.read_timeout)
        except Exception as exc:  # classified, never raised out of the thread
            failure = classify(exc, self.clock.monotonic() - began, self.settings.connect_timeout)
            self._finish(failure.detail)
            return
        self._last_packet = self.clock.monotonic()
        try:
            self._pump(container)
            self._finish(None if self.stopping else "the camera ended the stream")
        except StreamFailure as exc:
            self._finish(exc.failure.detail)
        except Exception as exc:
            silent = self.clock.monotonic() - self._last_packet
            if silent >= 0.95 * self.settings.read_timeout:
                self._finish(f"no data from the camera for {self.settings.read_timeout:g} s")
            else:
                self._finish(classify(exc, silent, self.settings.read_timeout).detail)
        finally:
            container.close()

    def _pump(self, container) -> None:
        if not container.streams.video:
            raise StreamFailure(_failure("the stream has no video track"))
        video = container.streams.video[0]
        codec = video.codec_context.name
        if codec not in LIVE_CODECS:
            raise StreamFailure(_failure(f"video codec {codec} cannot be shown live"))
        sink = _BoxSplitter(self._on_init, self._on_fragment)
        out = av.open(sink, "w", format="mp4",
                      options={"movflags": MOVFLAGS[self.settings.fragment],
                               "flush_packets": "1"})
        try:
            ostream = out.add_stream_from_template(video)
            if codec == "hevc":
                ostream.codec_tag = "hvc1"  # what MSE (and Apple) expect
            repair = TimestampRepair(video.time_base, nominal_duration(video))
            connected = self.clock.monotonic()
            self.stats.connected_at = connected
            started = False
            origin: int | None = None
            for packet in container.demux(video):
                now = self._last_packet = self.clock.monotonic()
                if self._idle_long_enough(now):
                    return
                if packet.size == 0:
                    continue
                if not started:
                    if not packet.is_keyframe:  # joined mid-GOP (performance.md §3.5)
                        if now - connected > self.settings.keyframe_timeout:
                            raise StreamFailure(_failure(
                                f"no keyframe within {self.settings.keyframe_timeout:g} s"))
                        continue
                    started = True
                t = repair.fix(packet.dts, packet.pts, packet.duration)
                self.stats.timestamp_repairs += t.repaired
                packet.dts, packet.pts, packet.duration = t.dts, t.pts, t.duration
                packet.stream = ostream
                if origin is None:
                    origin = t.dts  # the muxer starts the track's decode time at 0 here
                self._arrivals.append((now, packet.is_keyframe,
                                       float((t.pts - origin) * video.time_base)))
                out.mux(packet)
        finally:
            sink.detached = True
            try:
                out.close()
            except (av.FFmpegError, OSError, ValueError):
                pass  # nothing was muxed, or the trailer: nobody reads it

    def _idle_long_enough(self, now: float) -> bool:
        with self.hub._lock:
            if self.stopping:
                return True
            if self.viewers or self.empty_since is None:
                return False
            if now - self.empty_since < self.settings.linger_seconds:
                return False
            self.stopping = True
            self.hub._retire(self)  # from now on a new viewer opens a new upstream
            return True

    # --- muxer output (in the thread, inside out.mux) -------------------------------------
    def _on_init(self, init: bytes) -> None:
        codec = codec_string(init)
        with self.hub._lock:
            self.init, self.codec = init, codec
            for viewer in self.viewers:
                viewer._set_init(init, codec)
        log.info("camera=%s live stream up codec=%s viewers=%d", self.camera, codec,
                 len(self.viewers))

    def _on_fragment(self, data: bytes, seq: int, samples: int) -> None:
        arrivals = [self._arrivals.popleft() for _ in range(min(samples, len(self._arrivals)))]
        arrived, keyframe, media_time = arrivals[0] if arrivals else \
            (self.clock.monotonic(), False, -1.0)
        frag = Fragment(data, seq, keyframe, arrived, self.clock.monotonic())
        with self.hub._lock:
            self.stats.fragments += 1
            self.stats.bytes += len(data)
            self.stats.recent.append(FragmentTiming(seq, arrived, frag.published, keyframe,
                                                    len(data), media_time))
            if keyframe:
                self.gop, self.gop_bytes = [], 0
            if self.gop_bytes + len(data) <= self.settings.gop_cache_bytes and \
                    (self.gop or keyframe):
                self.gop.append(frag)
                self.gop_bytes += len(data)
            else:
                self.gop, self.gop_bytes = [], self.settings.gop_cache_bytes + 1
            for viewer in list(self.viewers):
                if not viewer._push(frag):
                    self._remove(viewer)

    def _remove(self, viewer: Viewer) -> None:
        """Hub lock held: a viewer that ended leaves the fan-out at once."""
        self.viewers.discard(viewer)
        if viewer.too_slow:
            self.stats.dropped_viewers += 1
            log.info("camera=%s live viewer dropped: %s", self.camera, viewer.reason)
        if not self.viewers:
            self.empty_since = self.clock.monotonic()

    def _finish(self, failure: str | None) -> None:
        with self.hub._lock:
            self.failure = failure
            self.stopping = True
            self.hub._retire(self, failed=failure is not None)
            viewers = list(self.viewers)
        for viewer in viewers:
            viewer.drop(failure or "the live stream ended")
        if failure:
            log.warning("camera=%s live stream failed: %s", self.camera, failure)
        else:
            log.info("camera=%s live stream closed (no viewers for %g s)", self.camera,
                     self.settings.linger_seconds)

    # --- joining (hub lock held) --------------------------------------------------------
    def _join(self, viewer: Viewer) -> None:
        self.viewers.add(viewer)
        self.empty_since = None
        if self.init is not None:
            viewer._set_init(self.init, self.codec or "")
            now = self.clock.monotonic()
            for frag in self.gop:  # starts at a keyframe: picture at once
                viewer._push(frag, now)


def _failure(detail: str) -> Failure:
    return Failure(GapCause.STREAM_ERROR, "retrying", detail, "backoff")


# --- the hub -------------------------------------------------------------------------------

class LiveHub:
    """All live upstreams of one web process. Thread-safe."""

    def __init__(self, url_for_camera: Callable[[str], str | None],
                 settings: LiveSettings | Mapping[str, Any] | None = None,
                 clock: Clock | None = None, opener=open_live) -> None:
        self.url_for_camera = url_for_camera
        self.settings = build_live_settings(settings)
        self.clock = clock or RealClock()
        self.opener = opener
        self._lock = threading.RLock()
        self._upstreams: dict[str, _Upstream] = {}
        self._failed_at: dict[str, tuple[float, str]] = {}
        self._all: list[_Upstream] = []  # every running thread, retired ones too
        self.connects: dict[str, int] = {}

    def subscribe(self, camera: str) -> Viewer:
        """A new viewer of `camera`. KeyError: unknown camera; ResourceExhausted: too many
        viewers; Unavailable: the camera's connection failed moments ago."""
        url = self.url_for_camera(camera)
        if not url:
            raise KeyError(camera)
        with self._lock:
            upstream = self._upstreams.get(camera)
            total = sum(len(u.viewers) for u in self._upstreams.values())
            if total >= self.settings.max_viewers_total:
                raise ResourceExhausted(
                    f"live view: {total} viewers already (live.max_viewers_total)")
            per_camera = self.settings.max_viewers_per_camera
            if upstream is not None and len(upstream.viewers) >= per_camera:
                raise ResourceExhausted(
                    f"live view of {camera}: {len(upstream.viewers)} viewers already "
                    "(live.max_viewers_per_camera)")
            if upstream is None:
                failed = self._failed_at.get(camera)
                if failed and self.clock.monotonic() - failed[0] < self.settings.retry_seconds:
                    raise Unavailable(f"live view of {camera}: {failed[1]}; retrying shortly")
                upstream = _Upstream(self, camera, url)
                self._upstreams[camera] = upstream
                self._all.append(upstream)
                self.connects[camera] = self.connects.get(camera, 0) + 1
                upstream.thread.start()
                log.info("camera=%s live stream connecting", camera)
            viewer = Viewer(self, camera, self.settings.viewer_max_delay,
                            self.settings.viewer_backlog_bytes, self.clock)
            upstream._join(viewer)
            return viewer

    def _leave(self, viewer: Viewer) -> None:
        with self._lock:
            for upstream in self._all:
                if viewer in upstream.viewers:
                    upstream._remove(viewer)

    def _retire(self, upstream: _Upstream, failed: bool = False) -> None:
        """Lock held. The camera's next viewer opens a new connection."""
        if self._upstreams.get(upstream.camera) is upstream:
            del self._upstreams[upstream.camera]
        if failed:
            self._failed_at[upstream.camera] = (self.clock.monotonic(), upstream.failure or "")

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per camera with a live connection: viewers, counters and recent latencies."""
        out = {}
        with self._lock:
            for camera, up in self._upstreams.items():
                latencies = sorted(x for v in up.viewers for x in v.recent_latencies(250))
                out[camera] = {
                    "state": "streaming" if up.init is not None else "connecting",
                    "codec": up.codec,
                    "viewers": len(up.viewers),
                    "connects": self.connects.get(camera, 0),
                    "fragments": up.stats.fragments,
                    "bytes": up.stats.bytes,
                    "dropped_viewers": up.stats.dropped_viewers,
                    "timestamp_repairs": up.stats.timestamp_repairs,
                    "latency_ms": _percentiles(latencies),
                }
        return out

    def timings(self, camera: str) -> list[FragmentTiming]:
        """The camera's last 512 fragments: when they arrived and left (for measuring)."""
        with self._lock:
            up = self._upstreams.get(camera)
            return list(up.stats.recent) if up else []

    def upstream_running(self, camera: str) -> bool:
        with self._lock:
            return any(u.camera == camera for u in self._all)

    def close(self, timeout: float = 10.0) -> None:
        """Stop every upstream (process shutdown, tests)."""
        with self._lock:
            ups = list(self._all)
            for up in ups:
                up.stopping = True
                for viewer in list(up.viewers):
                    viewer.drop("the server is stopping")
        for up in ups:
            up.thread.join(timeout)


def _percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None

    def pick(q: float) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 1)

    return {"p50": pick(0.5), "p95": pick(0.95), "max": round(values[-1] * 1000, 1),
            "n": len(values)}
