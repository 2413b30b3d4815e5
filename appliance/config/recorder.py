"""Recorder settings and camera entries, from CLI flags or a TOML file."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from appliance.config.model import load_section, setting
from appliance.core.errors import InvalidConfig

CAMERA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
ALLOWED_SCHEMES = ("rtsp", "rtsps")


@dataclasses.dataclass(frozen=True)
class RecorderSettings:
    segment_seconds: float = setting(
        60.0, "target length of one segment file; a new file starts at the first keyframe after it",
        low=2, high=3600)
    fsync_every_fragments: int = setting(
        1, "fdatasync after this many fragments (1 = every fragment, about one GOP)", low=1, high=60)
    connect_timeout: float = setting(
        10.0, "seconds to wait for a camera to accept and answer the RTSP handshake", low=1, high=120)
    read_timeout: float = setting(
        10.0, "seconds without a packet before the stream is declared stalled", low=1, high=120)
    keyframe_timeout: float = setting(
        15.0, "seconds to wait for the first keyframe after connecting", low=2, high=300)
    backoff_initial: float = setting(
        1.0, "first retry delay after a stream error, doubled per failure (with jitter)",
        low=0.1, high=60)
    backoff_cap: float = setting(
        30.0, "longest retry delay after stream errors", low=1, high=3600)
    auth_retry: float = setting(
        60.0, "retry delay after the camera refused the credentials (no storms)", low=5, high=3600)
    probe_interval: float = setting(
        1.0, "while a camera is unreachable, how often to check (a TCP connect) that it is back",
        low=0.2, high=60)
    audio: str = setting("copy", "audio tracks: copy them when the container takes the codec, or drop",
                         choices=("copy", "drop"))
    stable_after: float = setting(
        10.0, "seconds of good recording after which the retry delay resets", low=1, high=3600)

    def validate(self) -> None:
        if self.backoff_cap < self.backoff_initial:
            raise InvalidConfig("recorder.backoff_cap must be at least recorder.backoff_initial")

    @property
    def progress_deadline(self) -> float:
        """Longest a healthy camera worker can go without showing progress (watchdog)."""
        return self.connect_timeout + self.read_timeout + self.keyframe_timeout + 15.0


@dataclasses.dataclass(frozen=True)
class CameraConfig:
    name: str
    url: str
    enabled: bool = True

    def __post_init__(self) -> None:
        if not CAMERA_NAME.match(self.name):
            raise InvalidConfig(
                f"camera name {self.name!r}: use 1-32 letters, digits, '-' or '_', "
                "starting with a letter or digit")
        check_stream_url(self.name, self.url)

    @property
    def redacted_url(self) -> str:
        return redact_url(self.url)


def check_stream_url(name: str, url: str) -> None:
    """Only rtsp:// and rtsps:// with a host; anything else is refused with a clear error."""
    if any(ch in url for ch in "\0\r\n \t"):
        raise InvalidConfig(f"camera {name}: the URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidConfig(f"camera {name}: malformed URL ({exc})") from None
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise InvalidConfig(
            f"camera {name}: only rtsp:// and rtsps:// URLs are accepted, not {parts.scheme or 'no scheme'}://")
    if not parts.hostname:
        raise InvalidConfig(f"camera {name}: the URL has no host")
    if port == 0:
        raise InvalidConfig(f"camera {name}: port 0 is not a valid camera port")


def redact_url(url: str) -> str:
    """The URL without its password, safe for logs and status output."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def parse_camera_arg(text: str) -> CameraConfig:
    """`NAME=rtsp://...` from the command line."""
    name, sep, url = text.partition("=")
    if not sep:
        raise InvalidConfig(f"--camera {text!r}: expected NAME=rtsp://host/path")
    return CameraConfig(name=name.strip(), url=url.strip())


def load_config_file(path: Path) -> tuple[dict[str, Any], list[CameraConfig]]:
    """Read `[recorder]` settings and `[[camera]]` entries from a TOML file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidConfig(f"{path}: cannot read the configuration ({exc})") from None
    unknown = sorted(set(data) - {"recorder", "camera"})
    if unknown:
        raise InvalidConfig(f"{path}: unknown section(s) {', '.join(unknown)}")
    cameras = []
    for entry in data.get("camera", []):
        if not isinstance(entry, dict) or set(entry) - {"name", "url", "enabled"}:
            raise InvalidConfig(f"{path}: each [[camera]] takes name, url and enabled only")
        try:
            cameras.append(CameraConfig(**entry))
        except TypeError:
            raise InvalidConfig(f"{path}: each [[camera]] needs a name and a url") from None
    return dict(data.get("recorder", {})), cameras


def build_settings(values: dict[str, Any]) -> RecorderSettings:
    return load_section(RecorderSettings, values, "recorder")


def check_unique(cameras: list[CameraConfig]) -> None:
    seen = set()
    for cam in cameras:
        if cam.name in seen:
            raise InvalidConfig(f"camera {cam.name} is listed twice")
        seen.add(cam.name)
