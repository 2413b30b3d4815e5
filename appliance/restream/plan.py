"""What the relay serves: one mount per camera stream, its pipeline, and the relay's spec.

Pure Python (no GStreamer): the venv plans, `rtsp_relay.py` (system python) executes.
Launch lines never contain a password: the camera's login travels beside them in the
spec (on the relay's stdin) and is set on the `rtspsrc` element as properties, so a
launch line can be logged or shown in an error without giving a camera away.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any, Iterable
from urllib.parse import quote

from appliance.cameras.credentials import Credentials
from appliance.cameras.registry import Camera, CameraRegistry

DEFAULT_PORT = 8554
DEFAULT_CODEC = "h264"
# RTP depayloader, parser and payloader per codec: the relay copies payloads, it never
# decodes. config-interval=-1 repeats SPS/PPS (and VPS) before every IDR, so a client
# that joins a shared stream mid-GOP can start at the next keyframe.
CODEC_ELEMENTS = {
    "h264": ("rtph264depay", "h264parse", "rtph264pay"),
    "h265": ("rtph265depay", "h265parse", "rtph265pay"),
}
CODEC_ALIASES = {"": DEFAULT_CODEC, "avc": "h264", "hevc": "h265"}
UPSTREAM_LATENCY_MS = 200
AUTH_METHODS = ("digest", "basic")
DEFAULT_AUTH_METHODS = ("digest",)


@dataclass(frozen=True)
class Mount:
    """One relayed stream: /<camera>/<main|sub> on the box, fed from the camera's URI."""

    camera_id: str
    stream: str                  # "main" or "sub"
    upstream_uri: str            # without credentials (the registry never stores them)
    codec: str
    upstream: Credentials | None = None   # the camera's login (repr hides the password)

    @property
    def path(self) -> str:
        return f"/{self.camera_id}/{self.stream}"

    @property
    def launch(self) -> str:
        return launch_line(self.upstream_uri, self.codec)

    def to_spec(self) -> dict[str, Any]:
        return {"path": self.path, "launch": self.launch,
                "upstream_user": self.upstream.username if self.upstream else None,
                "upstream_password": self.upstream.password if self.upstream else None}


@dataclass(frozen=True)
class Skipped:
    """A camera stream the relay cannot serve, and why (shown by `nvr restream urls`)."""

    camera_id: str
    stream: str
    reason: str


def gst_quote(text: str) -> str:
    """Quote a property value for gst_parse_launch."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def relay_codec(codec: str) -> str | None:
    """The codec the relay uses for a registry codec name; None when it cannot relay it
    (MJPEG or MPEG-4 sub streams). Unknown ("") is taken as H.264, what cameras send."""
    name = codec.strip().lower().replace(".", "").replace("-", "")
    name = CODEC_ALIASES.get(name, name)
    return name if name in CODEC_ELEMENTS else None


def launch_line(uri: str, codec: str) -> str:
    """rtspsrc -> depayload -> parse -> payload: RTP in, the same access units out.

    Only the camera's video is relayed: the caps filter leaves an audio stream unlinked
    (rtspsrc carries on with the linked one)."""
    depay, parse, pay = CODEC_ELEMENTS[codec]
    return (f"( rtspsrc name=src location={gst_quote(uri)} protocols=tcp "
            f"latency={UPSTREAM_LATENCY_MS} ! application/x-rtp,media=video ! {depay} "
            f"! {parse} ! {pay} name=pay0 pt=96 config-interval=-1 )")


def camera_streams(camera: Camera) -> list[tuple[str, str, str]]:
    """(stream name, uri, registry codec) of the camera's main and (if any) sub stream."""
    streams = [("main", camera.main.uri, camera.main.codec)]
    if camera.sub is not None and camera.sub.uri:
        streams.append(("sub", camera.sub.uri, camera.sub.codec))
    return streams


def plan_mounts(cameras: Iterable[Camera],
                credentials: dict[str, Credentials | None]) -> tuple[list[Mount], list[Skipped]]:
    """The mounts for the enabled cameras (a disabled camera is not served: the licence
    counts the cameras the box takes in, and a restream is one), and what was left out."""
    mounts, skipped = [], []
    for camera in cameras:
        for stream, uri, codec in camera_streams(camera):
            if not camera.enabled:
                skipped.append(Skipped(camera.id, stream, "camera disabled"))
                continue
            relayed = relay_codec(codec)
            if relayed is None:
                skipped.append(Skipped(camera.id, stream, f"codec {codec} is not relayed "
                                       "(H.264 and H.265 only)"))
                continue
            mounts.append(Mount(camera.id, stream, uri, relayed, credentials.get(camera.id)))
    return mounts, skipped


def plan_from_registry(registry: CameraRegistry) -> tuple[list[Mount], list[Skipped]]:
    cameras = registry.cameras()
    return plan_mounts(cameras, {c.id: registry.credentials.get(c.id) for c in cameras})


def relay_spec(mounts: Iterable[Mount], login: Credentials,
               auth_methods: Iterable[str] = DEFAULT_AUTH_METHODS) -> dict[str, Any]:
    """The JSON the relay reads on stdin (it holds passwords: never on argv, never logged)."""
    return {"user": login.username, "password": login.password,
            "auth_methods": list(auth_methods), "mounts": [m.to_spec() for m in mounts]}


def restream_url(host: str, port: int, path: str, user: str | None = None,
                 password: str | None = None) -> str:
    """rtsp://[user[:password]@]host:port/path; the password only when given (the admin
    asked to see it at the console)."""
    netloc = f"[{host}]" if ":" in host else host
    userinfo = ""
    if user is not None:
        userinfo = quote(user, safe="")
        if password is not None:
            userinfo += ":" + quote(password, safe="")
        userinfo += "@"
    return f"rtsp://{userinfo}{netloc}:{port}{path}"


def url_table(mounts: Iterable[Mount], skipped: Iterable[Skipped], host: str, port: int,
              login: Credentials, show_password: bool = False) -> list[dict[str, Any]]:
    """Per camera: its restream URLs (main, sub) and the streams left out with why."""
    rows: dict[str, dict[str, Any]] = {}
    password = login.password if show_password else None
    for mount in mounts:
        row = rows.setdefault(mount.camera_id, {"camera": mount.camera_id, "skipped": {}})
        row[mount.stream] = restream_url(host, port, mount.path, login.username, password)
        row[f"{mount.stream}_codec"] = mount.codec
    for item in skipped:
        row = rows.setdefault(item.camera_id, {"camera": item.camera_id, "skipped": {}})
        row["skipped"][item.stream] = item.reason
    return list(rows.values())


def box_address() -> str:
    """The address a VMS on the LAN reaches the box at: its first global IPv4 address
    (not loopback, not link-local), else its host name."""
    import psutil

    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            if addr.family != socket.AF_INET:
                continue
            ip = ipaddress.ip_address(addr.address)
            if not (ip.is_loopback or ip.is_link_local):
                return addr.address
    return socket.gethostname()
