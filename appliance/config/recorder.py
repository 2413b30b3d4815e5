"""Recorder settings and camera entries, from CLI flags or a TOML file."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from appliance.config.model import load_section, setting
from appliance.config.storage import CameraRetention
from appliance.core.errors import InvalidConfig

CAMERA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}\Z")  # \Z: no trailing newline
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
    max_age_days: float = 0.0   # 0: the storage default
    max_gib: float = 0.0        # 0: no size limit for this camera

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not CAMERA_NAME.match(self.name):
            raise InvalidConfig(
                f"camera name {self.name!r}: use 1-32 letters, digits, '-' or '_', "
                "starting with a letter or digit")
        if not isinstance(self.url, str):
            raise InvalidConfig(f"camera {self.name}: the URL must be text")
        check_stream_url(self.name, self.url)
        try:
            self.retention
        except InvalidConfig as exc:
            raise InvalidConfig(f"camera {self.name}: {exc}") from None

    @property
    def retention(self) -> CameraRetention:
        return CameraRetention(self.max_age_days, self.max_gib)

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


CAMERA_KEYS = tuple(f.name for f in dataclasses.fields(CameraConfig))
SECTIONS = ("recorder", "storage", "cameras", "poe", "camera")


@dataclasses.dataclass
class ConfigFile:
    """The raw sections of a configuration file, checked for shape but not yet built."""

    recorder: dict[str, Any]
    storage: dict[str, Any]
    cameras: list[CameraConfig]
    camera_settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    poe: dict[str, Any] = dataclasses.field(default_factory=dict)


def load_config_file(path: Path) -> ConfigFile:
    """Read `[recorder]`, `[storage]` and `[cameras]` settings and `[[camera]]` entries
    (cameras given by hand; adopted cameras live in the camera registry)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidConfig(f"{path}: cannot read the configuration ({exc})") from None
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise InvalidConfig(f"{path}: unknown section(s) {', '.join(unknown)}")
    for section in ("recorder", "storage", "cameras", "poe"):
        if not isinstance(data.get(section, {}), dict):
            raise InvalidConfig(f"{path}: [{section}] must be a table of settings")
    cameras = []
    entries = data.get("camera", [])
    if not isinstance(entries, list):
        raise InvalidConfig(f"{path}: cameras are given as [[camera]] entries")
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) - set(CAMERA_KEYS):
            raise InvalidConfig(f"{path}: each [[camera]] takes {', '.join(CAMERA_KEYS)} only")
        try:
            cameras.append(CameraConfig(**entry))
        except TypeError:
            raise InvalidConfig(f"{path}: each [[camera]] needs a name and a url") from None
    return ConfigFile(dict(data.get("recorder", {})), dict(data.get("storage", {})), cameras,
                      dict(data.get("cameras", {})), dict(data.get("poe", {})))


def build_settings(values: dict[str, Any]) -> RecorderSettings:
    return load_section(RecorderSettings, values, "recorder")


def check_unique(cameras: list[CameraConfig]) -> None:
    seen = set()
    for cam in cameras:
        if cam.name in seen:
            raise InvalidConfig(f"camera {cam.name} is listed twice")
        seen.add(cam.name)
