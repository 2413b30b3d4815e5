#!/usr/bin/python3
"""Simulated IP cameras: one gst-rtsp-server process serving pre-encoded clips.

Runs under Debian's system interpreter (``/usr/bin/python3``, which has ``gi`` and
GStreamer 1.22), not the project virtualenv; it imports nothing from the project.

Usage::

    /usr/bin/python3 hw/camsim/rtsp_server.py --port 8554 --spec '{"mounts": [...]}'
    /usr/bin/python3 hw/camsim/rtsp_server.py --port 8554 --spec @/path/cameras.json
    /usr/bin/python3 hw/camsim/rtsp_server.py --port 8554 --spec - < cameras.json

``--spec`` is a JSON object (inline, ``@FILE``, or ``-`` to read it from stdin, which
keeps passwords out of ``ps``) with these keys:

* ``mounts`` (required): a list of cameras, each ``{"mount": "/cam1", "clip":
  "/abs/clip.mp4", "codec": "h264", "audio": null, "shared": true, "user": null,
  "password": null, "rebase_after_s": null, "rebase_by_s": -10}``. Unknown keys are
  rejected. ``codec`` is ``h264`` or ``h265``; ``audio`` is ``null``, ``aac``,
  ``pcm_mulaw`` or ``pcm_alaw`` and must match the clip.
* ``auth_methods`` (optional, default ``["basic"]``): any of ``basic``, ``digest``.
* ``transports`` (optional, default ``["tcp"]``): RTP lower transports offered, any of
  ``tcp`` (RTP interleaved in the RTSP connection) and ``udp``. Server-side UDP
  sockets bind to 127.0.0.1; UDP is opt-in because libavformat's UDP client binds
  its own ports on the wildcard address, and with TCP only it falls back to TCP.

How a camera is simulated (no decoding or encoding anywhere):

* At start-up each clip is demuxed and parsed once (``filesrc ! qtdemux ! parse !
  appsink``) and its access units are kept in memory with their timestamps and caps.
* Each mount's media is ``appsrc ! h264parse/h265parse ! rtph26Xpay name=pay0`` (plus
  ``appsrc ! rtpmp4gpay/rtppcmupay/rtppcmapay name=pay1`` for audio). The app sources
  are live; on every ``need-data`` the next access unit is pushed with its clip
  timestamp + loop index * clip duration + the pipeline running time at which the
  media started. The RTP sinks synchronise on the pipeline clock, so packets leave in
  real time and the clip loops forever with monotonic timestamps.
* ``shared: true`` is one pipeline for all clients (late joiners start mid-GOP, as
  with a real camera); ``false`` builds one pipeline per client.
* ``rebase_after_s``/``rebase_by_s``: once a media has played ``rebase_after_s`` of
  media time, its RTP timestamps jump by ``rebase_by_s`` (once per media), as a
  camera that re-bases its RTP clock does. Implemented with pad offsets around each
  payloader: the payloader sees running time shifted by the jump (so its RTP
  timestamps move) while everything downstream sees the original running time (so
  pacing and RTCP are unaffected). Backward jumps use a forward shift of
  ``2**32 - |jump|`` RTP ticks, which is the same jump modulo 32-bit RTP time.

Prints exactly one line ``READY <port>`` on stdout once listening on 127.0.0.1, logs
to stderr, and exits 0 on SIGTERM or SIGINT, 2 on a bad spec or clip, 3 when the port
cannot be bound. With ``--exit-with-parent PID`` it also quits within a second of the
process that started it disappearing.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: find hw/
from hw.camsim.spec import SimCamera as MountSpec, SpecError  # noqa: E402

# Run as a script, __name__ is "__main__"; name the logger after the module instead.
log = logging.getLogger("hw.camsim.rtsp_server")

LISTEN_ADDRESS = "127.0.0.1"
UDP_PORT_RANGE = (40000, 49999)
CLIP_LOAD_TIMEOUT_S = 60
PARENT_CHECK_INTERVAL_S = 1
RTP_TIMESTAMP_MODULUS = 2**32
ANONYMOUS_ROLE = "anonymous"
# Exit statuses (an uncaught Python exception exits with 1).
EXIT_BAD_SPEC = 2
EXIT_CANNOT_LISTEN = 3

VIDEO_ELEMENTS = {
    "h264": ("h264parse", "rtph264pay"),
    "h265": ("h265parse", "rtph265pay"),
}
# audio codec -> (parser used while preloading, payloader and its properties)
AUDIO_ELEMENTS = {
    "aac": ("aacparse", "rtpmp4gpay pt=97"),
    # 20 ms per packet, as cameras send G.711 (the clip stores 128 ms chunks).
    "pcm_mulaw": ("identity", "rtppcmupay pt=0 max-ptime=20000000"),
    "pcm_alaw": ("identity", "rtppcmapay pt=8 max-ptime=20000000"),
}
AUTH_METHODS = {"basic": GstRtsp.RTSPAuthMethod.BASIC, "digest": GstRtsp.RTSPAuthMethod.DIGEST}
TRANSPORTS = {"tcp": GstRtsp.RTSPLowerTrans.TCP, "udp": GstRtsp.RTSPLowerTrans.UDP}


# --------------------------------------------------------------------------- spec

@dataclass(frozen=True)
class ServerSpec:
    """Everything one server process serves."""

    mounts: list[MountSpec]
    auth_methods: tuple[str, ...] = ("basic",)
    transports: tuple[str, ...] = ("tcp",)

    @classmethod
    def from_json(cls, text: str) -> ServerSpec:
        raw = json.loads(text)
        if not isinstance(raw, dict) or not isinstance(raw.get("mounts"), list):
            raise SpecError('spec must be a JSON object with a "mounts" list')
        unknown = set(raw) - {"mounts", "auth_methods", "transports"}
        if unknown:
            raise SpecError(f"unknown spec keys {sorted(unknown)}")
        spec = cls(
            mounts=[MountSpec.from_dict(m) for m in raw["mounts"]],
            auth_methods=tuple(raw.get("auth_methods", cls.auth_methods)),
            transports=tuple(raw.get("transports", cls.transports)),
        )
        spec.validate()
        return spec

    def validate(self) -> None:
        if not self.mounts:
            raise SpecError("spec has no mounts")
        names = [m.mount for m in self.mounts]
        if len(set(names)) != len(names):
            raise SpecError(f"duplicate mounts in {names}")
        if not self.auth_methods or set(self.auth_methods) - set(AUTH_METHODS):
            raise SpecError(f"auth_methods must be a non-empty subset of {sorted(AUTH_METHODS)}")
        if not self.transports or set(self.transports) - set(TRANSPORTS):
            raise SpecError(f"transports must be a non-empty subset of {sorted(TRANSPORTS)}")
        passwords: dict[str, str] = {}
        for m in self.mounts:
            if m.user is not None and passwords.setdefault(m.user, m.password) != m.password:
                raise SpecError(f"user {m.user!r} has different passwords on different mounts")


def read_spec_argument(value: str) -> str:
    """``--spec`` is inline JSON, ``@FILE`` naming a JSON file, or ``-`` for stdin."""
    if value == "-":
        return sys.stdin.read()
    if value.startswith("@"):
        return Path(value[1:]).read_text(encoding="utf-8")
    return value


# --------------------------------------------------------------------------- clips


@dataclass
class Track:
    """One elementary stream of a clip, held in memory as parsed access units."""

    caps: Gst.Caps
    units: list[Gst.Buffer] = field(default_factory=list)
    # Clip-relative presentation time of each unit (ns, first video frame = 0).
    pts: list[int] = field(default_factory=list)
    # pts - dts of each unit (0 without B-frames).
    pts_minus_dts: list[int] = field(default_factory=list)
    durations: list[int] = field(default_factory=list)


@dataclass
class Clip:
    """A preloaded clip; ``period_ns`` is how far timestamps advance per loop."""

    path: str
    video: Track
    audio: Track | None
    period_ns: int

    @property
    def total_bytes(self) -> int:
        tracks = [self.video] + ([self.audio] if self.audio else [])
        return sum(u.get_size() for t in tracks for u in t.units)


def load_clip(path: str, codec: str, audio: str | None) -> Clip:
    """Demux and parse ``path`` once (no decoding) and keep its access units."""
    video_parser, _ = VIDEO_ELEMENTS[codec]
    description = (
        f"filesrc location={gst_quote(path)} ! qtdemux name=demux "
        f"demux.video_0 ! queue ! {video_parser} ! appsink name=video sync=false emit-signals=true"
    )
    if audio:
        audio_parser = AUDIO_ELEMENTS[audio][0]
        description += (
            f" demux.audio_0 ! queue ! {audio_parser} "
            f"! appsink name=audio sync=false emit-signals=true"
        )
    pipeline = Gst.parse_launch(description)
    samples: dict[str, list[Gst.Sample]] = {"video": [], "audio": []}
    for name in samples if audio else ["video"]:
        pipeline.get_by_name(name).connect("new-sample", collect_sample, samples[name])
    try:
        run_to_eos(pipeline, path)
    finally:
        pipeline.set_state(Gst.State.NULL)
    if not samples["video"]:
        raise SpecError(f"{path}: no {codec} video found")
    if audio and not samples["audio"]:
        raise SpecError(f"{path}: no {audio} audio found")
    # Every track is timed relative to the first video frame.
    origin_ns = first_running_time(samples["video"])
    video = track_from_samples(samples["video"], origin_ns)
    period_ns = video.pts[-1] + video.durations[-1]
    audio_track = None
    if audio:
        audio_track = track_from_samples(samples["audio"], origin_ns=origin_ns)
        trim_track(audio_track, period_ns)
    return Clip(path=path, video=video, audio=audio_track, period_ns=period_ns)


def gst_quote(text: str) -> str:
    """Quote a property value for gst_parse_launch."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def collect_sample(appsink: Gst.Element, into: list) -> Gst.FlowReturn:
    into.append(appsink.emit("pull-sample"))
    return Gst.FlowReturn.OK


def run_to_eos(pipeline: Gst.Pipeline, path: str) -> None:
    """Play a non-synchronised pipeline until EOS; raise on error or timeout."""
    pipeline.set_state(Gst.State.PLAYING)
    message = pipeline.get_bus().timed_pop_filtered(
        CLIP_LOAD_TIMEOUT_S * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR
    )
    if message is None:
        raise SpecError(f"{path}: loading did not finish in {CLIP_LOAD_TIMEOUT_S}s")
    if message.type == Gst.MessageType.ERROR:
        error, debug = message.parse_error()
        raise SpecError(f"{path}: {error.message} ({debug})")


def running_time(sample: Gst.Sample, timestamp: int) -> int | None:
    if timestamp == Gst.CLOCK_TIME_NONE:
        return None
    value = sample.get_segment().to_running_time(Gst.Format.TIME, timestamp)
    return None if value == Gst.CLOCK_TIME_NONE else value


def first_running_time(samples: list[Gst.Sample]) -> int:
    return running_time(samples[0], samples[0].get_buffer().pts) or 0


def track_from_samples(samples: list[Gst.Sample], origin_ns: int) -> Track:
    """Convert appsink samples into a Track with timestamps relative to ``origin_ns``.

    Buffers outside the segment or before the origin (e.g. AAC priming cut by an edit
    list) are dropped. Durations missing in the container come from the next unit.
    """
    track = Track(caps=samples[-1].get_caps())
    for sample in samples:
        buffer = sample.get_buffer()
        pts = running_time(sample, buffer.pts)
        if pts is None or pts < origin_ns:
            continue
        dts = running_time(sample, buffer.dts)
        track.units.append(buffer)
        track.pts.append(pts - origin_ns)
        track.pts_minus_dts.append(max(0, pts - dts) if dts is not None else 0)
        track.durations.append(buffer.duration)
    fill_missing_durations(track)
    return track


def fill_missing_durations(track: Track) -> None:
    for i, duration in enumerate(track.durations):
        if duration != Gst.CLOCK_TIME_NONE and duration > 0:
            continue
        if i + 1 < len(track.pts):
            track.durations[i] = track.pts[i + 1] - track.pts[i]
        else:
            track.durations[i] = track.durations[i - 1] if i else 40 * Gst.MSECOND


def trim_track(track: Track, period_ns: int) -> None:
    """Drop audio units that would overlap the next loop (leaves a gap < 1 frame)."""
    keep = sum(1 for p, d in zip(track.pts, track.durations) if p + d <= period_ns)
    del track.units[keep:], track.pts[keep:], track.pts_minus_dts[keep:]
    del track.durations[keep:]


# --------------------------------------------------------------------------- serving


class TrackFeeder:
    """Feeds one appsrc with a track's access units, looping forever."""

    COPY_FLAGS = (
        Gst.BufferCopyFlags.FLAGS
        | Gst.BufferCopyFlags.TIMESTAMPS
        | Gst.BufferCopyFlags.META
        | Gst.BufferCopyFlags.MEMORY
    )

    def __init__(self, track: Track, period_ns: int, session: MediaSession, is_video: bool):
        self.track = track
        self.period_ns = period_ns
        self.session = session
        self.is_video = is_video
        self.index = 0
        self.loop = 0

    def on_need_data(self, appsrc: Gst.Element, _length: int) -> None:
        origin_ns = self.session.origin_ns(appsrc)
        media_time_ns = self.loop * self.period_ns + self.track.pts[self.index]
        if self.is_video:
            self.session.maybe_rebase(media_time_ns)
        appsrc.emit("push-buffer", self.next_buffer(origin_ns + media_time_ns))
        self.advance()

    def next_buffer(self, pts_ns: int) -> Gst.Buffer:
        source = self.track.units[self.index]
        buffer = source.copy_region(self.COPY_FLAGS, 0, source.get_size())
        buffer.pts = pts_ns
        buffer.dts = max(0, pts_ns - self.track.pts_minus_dts[self.index])
        buffer.duration = self.track.durations[self.index]
        buffer.offset = Gst.BUFFER_OFFSET_NONE
        buffer.offset_end = Gst.BUFFER_OFFSET_NONE
        return buffer

    def advance(self) -> None:
        self.index += 1
        if self.index == len(self.track.units):
            self.index = 0
            self.loop += 1


class MediaSession:
    """State of one media pipeline: its time origin and the one-shot RTP rebase."""

    def __init__(self, spec: MountSpec, payloaders: list[Gst.Element]):
        self.spec = spec
        self.payloaders = payloaders
        self._lock = threading.Lock()
        self._origin_ns: int | None = None
        self._rebased = spec.rebase_after_s is None

    def origin_ns(self, element: Gst.Element) -> int:
        """Running time at which this media's first access unit is due."""
        with self._lock:
            if self._origin_ns is None:
                self._origin_ns = current_running_time(element)
                log.info("media started mount=%s origin_ns=%d", self.spec.mount, self._origin_ns)
            return self._origin_ns

    def maybe_rebase(self, media_time_ns: int) -> None:
        if self._rebased or media_time_ns < self.spec.rebase_after_s * Gst.SECOND:
            return
        self._rebased = True
        for payloader in self.payloaders:
            shift_rtp_time(payloader, self.spec.rebase_by_s)
        log.info(
            "rtp rebase mount=%s after_s=%.3f by_s=%.3f",
            self.spec.mount,
            media_time_ns / Gst.SECOND,
            self.spec.rebase_by_s,
        )


def current_running_time(element: Gst.Element) -> int:
    clock = element.get_clock()
    if clock is None:
        return 0
    return max(0, clock.get_time() - element.get_base_time())


def shift_rtp_time(payloader: Gst.Element, by_s: float) -> None:
    """Make ``payloader``'s RTP timestamps jump by ``by_s`` without touching pacing."""
    clock_rate = payloader_clock_rate(payloader)
    ticks = round(by_s * clock_rate) % RTP_TIMESTAMP_MODULUS
    shift_ns = math.ceil(ticks * Gst.SECOND / clock_rate)
    upstream = payloader.get_static_pad("sink").get_peer()
    downstream = payloader.get_static_pad("src")
    upstream.set_offset(upstream.get_offset() + shift_ns)
    downstream.set_offset(downstream.get_offset() - shift_ns)


def payloader_clock_rate(payloader: Gst.Element) -> int:
    caps = payloader.get_static_pad("src").get_current_caps()
    ok, rate = caps.get_structure(0).get_int("clock-rate") if caps else (False, 0)
    return rate if ok and rate > 0 else 90000


def media_launch_line(spec: MountSpec) -> str:
    """The gst-launch description of one camera's media (payloaders named payN)."""
    parser, payloader = VIDEO_ELEMENTS[spec.codec]
    perfect = "false" if spec.rebase_after_s is not None else "true"
    line = (
        "( appsrc name=videosrc is-live=true format=time do-timestamp=false "
        f"! {parser} config-interval=-1 "
        f"! {payloader} name=pay0 pt=96 config-interval=-1 perfect-rtptime={perfect}"
    )
    if spec.audio:
        audio_payloader = AUDIO_ELEMENTS[spec.audio][1]
        line += (
            " appsrc name=audiosrc is-live=true format=time do-timestamp=false "
            f"! {audio_payloader} name=pay1 perfect-rtptime={perfect}"
        )
    return line + " )"


class CameraFactory(GstRtspServer.RTSPMediaFactory):
    """Media factory for one mount: builds the appsrc pipeline and wires its feeders."""

    def __init__(
        self,
        spec: MountSpec,
        clip: Clip,
        transports: GstRtsp.RTSPLowerTrans,
        udp_pool: GstRtspServer.RTSPAddressPool,
    ):
        super().__init__()
        self.spec = spec
        self.clip = clip
        self.set_launch(media_launch_line(spec))
        self.set_shared(spec.shared)
        self.set_protocols(transports)
        self.set_address_pool(udp_pool)
        self.connect("media-configure", self.on_media_configure)

    def on_media_configure(self, _factory, media: GstRtspServer.RTSPMedia) -> None:
        bin_ = media.get_element()
        payloaders = [bin_.get_by_name("pay0")]
        if self.spec.audio:
            payloaders.append(bin_.get_by_name("pay1"))
        session = MediaSession(self.spec, payloaders)
        self.attach_feeder(bin_.get_by_name("videosrc"), self.clip.video, session, True)
        if self.spec.audio:
            self.attach_feeder(bin_.get_by_name("audiosrc"), self.clip.audio, session, False)
        media.connect("unprepared", self.on_media_unprepared)
        log.info("media configured mount=%s shared=%s", self.spec.mount, self.spec.shared)

    def on_media_unprepared(self, _media: GstRtspServer.RTSPMedia) -> None:
        log.info("media stopped mount=%s", self.spec.mount)

    def attach_feeder(
        self, appsrc: Gst.Element, track: Track, session: MediaSession, is_video: bool
    ) -> None:
        appsrc.set_property("caps", track.caps)
        feeder = TrackFeeder(track, self.clip.period_ns, session, is_video)
        appsrc.connect("need-data", feeder.on_need_data)


def loopback_address_pool() -> GstRtspServer.RTSPAddressPool:
    """Server-side UDP ports bind to 127.0.0.1 instead of the wildcard address."""
    pool = GstRtspServer.RTSPAddressPool()
    pool.add_range(LISTEN_ADDRESS, LISTEN_ADDRESS, *UDP_PORT_RANGE, 0)
    return pool


# --------------------------------------------------------------------------- auth


def role_for(user: str) -> str:
    return f"user:{user}"


class CameraAuth(GstRtspServer.RTSPAuth):
    """RTSPAuth that challenges anonymous requests for protected mounts with 401.

    The stock default token lets open mounts work without credentials, but then an
    anonymous request for a protected mount fails the factory check, and
    gst-rtsp-server 1.22 answers 404, not 401, so clients (libavformat) never retry
    with their credentials. Failing authentication here makes the server answer 401
    with a ``WWW-Authenticate`` challenge instead.
    """

    def __init__(self, protected_mounts: set[str]):
        super().__init__()
        self.protected_mounts = protected_mounts

    def do_authenticate(self, ctx: GstRtspServer.RTSPContext) -> bool:
        if not GstRtspServer.RTSPAuth.do_authenticate(self, ctx):
            return False
        role = ctx.token.get_string("media.factory.role") if ctx.token else None
        if role == ANONYMOUS_ROLE and self.is_protected(ctx):
            log.debug("auth challenge path=%s", ctx.uri.abspath if ctx.uri else "?")
            return False
        return True

    def is_protected(self, ctx: GstRtspServer.RTSPContext) -> bool:
        path = ctx.uri.abspath if ctx.uri else ""
        return any(path == m or path.startswith(m + "/") for m in self.protected_mounts)


def build_auth(spec: ServerSpec) -> GstRtspServer.RTSPAuth | None:
    """RTSPAuth for the mounts that have credentials; None when no mount has any."""
    users = {m.user: m.password for m in spec.mounts if m.user is not None}
    if not users:
        return None
    auth = CameraAuth({m.mount for m in spec.mounts if m.user is not None})
    methods = GstRtsp.RTSPAuthMethod(0)
    for name in spec.auth_methods:
        methods |= AUTH_METHODS[name]
    auth.set_supported_methods(methods)
    auth.set_default_token(token_for_role(ANONYMOUS_ROLE))
    for user, password in users.items():
        token = token_for_role(role_for(user))
        if "basic" in spec.auth_methods:
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        if "digest" in spec.auth_methods:
            auth.add_digest(user, password, token)
    return auth


def token_for_role(role: str) -> GstRtspServer.RTSPToken:
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", role)
    return token


def grant_access(factory: CameraFactory, spec: ServerSpec) -> None:
    """Protected mounts admit their user only; open mounts admit everybody."""
    if factory.spec.user is not None:
        roles = [role_for(factory.spec.user)]
    else:
        roles = [ANONYMOUS_ROLE] + [role_for(m.user) for m in spec.mounts if m.user]
    for role in dict.fromkeys(roles):
        permissions = Gst.Structure.new_empty(role)
        permissions.set_value("media.factory.access", True)
        permissions.set_value("media.factory.construct", True)
        factory.add_role_from_structure(permissions)


# --------------------------------------------------------------------------- process


def build_server(spec: ServerSpec, port: int) -> GstRtspServer.RTSPServer:
    """Preload every clip and mount every camera; does not start listening."""
    clips: dict[tuple, Clip] = {}
    server = GstRtspServer.RTSPServer()
    server.set_address(LISTEN_ADDRESS)
    server.set_service(str(port))
    auth = build_auth(spec)
    if auth is not None:
        server.set_auth(auth)
    transports = GstRtsp.RTSPLowerTrans(0)
    for name in spec.transports:
        transports |= TRANSPORTS[name]
    udp_pool = loopback_address_pool()
    mount_points = server.get_mount_points()
    for mount in spec.mounts:
        key = (mount.clip, mount.codec, mount.audio)
        if key not in clips:
            clips[key] = load_clip(*key)
            log.info(
                "clip loaded path=%s frames=%d period_s=%.3f bytes=%d",
                mount.clip,
                len(clips[key].video.units),
                clips[key].period_ns / Gst.SECOND,
                clips[key].total_bytes,
            )
        factory = CameraFactory(mount, clips[key], transports, udp_pool)
        if auth is not None:
            grant_access(factory, spec)
        mount_points.add_factory(mount.mount, factory)
    server.connect("client-connected", on_client_connected)
    return server


def on_client_connected(_server, client: GstRtspServer.RTSPClient) -> None:
    connection = client.get_connection()
    log.debug("client connected ip=%s", connection.get_ip() if connection else "?")


def watch_parent(parent_pid: int, loop: GLib.MainLoop) -> None:
    """Quit when the process that started us is gone (no orphaned cameras)."""

    def check() -> bool:
        if os.getppid() != parent_pid:
            log.warning("parent process %d is gone, exiting", parent_pid)
            loop.quit()
            return False
        return True

    GLib.timeout_add_seconds(PARENT_CHECK_INTERVAL_S, check)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True, help="RTSP port on 127.0.0.1")
    parser.add_argument("--spec", required=True, help="JSON spec, @FILE, or - for stdin")
    parser.add_argument("--exit-with-parent", type=int, metavar="PID", help="quit if PID dies")
    parser.add_argument("--log-level", default="INFO", help="Python logging level")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s camsim %(levelname)s %(message)s",
    )
    Gst.init(None)
    try:
        spec = ServerSpec.from_json(read_spec_argument(args.spec))
        server = build_server(spec, args.port)
    except (SpecError, OSError, json.JSONDecodeError, TypeError, GLib.Error) as exc:
        log.error("invalid spec: %s", exc)
        return EXIT_BAD_SPEC
    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, loop.quit)
    if args.exit_with_parent:
        watch_parent(args.exit_with_parent, loop)
    if server.attach(None) == 0:
        log.error("cannot listen on %s:%d (port in use?)", LISTEN_ADDRESS, args.port)
        return EXIT_CANNOT_LISTEN
    log.info("listening port=%d mounts=%s", args.port, ",".join(m.mount for m in spec.mounts))
    print(f"READY {args.port}", flush=True)
    loop.run()
    log.info("stopping port=%d", args.port)
    return 0


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stderr.flush()
    sys.stdout.flush()
    # Streaming threads of still-playing media can block interpreter shutdown; the
    # kernel closes every socket, so leave without running finalisers.
    os._exit(status)
