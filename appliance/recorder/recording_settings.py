"""The owner's recording mode per camera: a mode or a weekly schedule, the pre/post-event
seconds kept around camera events, and how long event footage is kept.

Kept in `recording.json` beside the appliance TOML (like retention.json), written
atomically, validated all-or-nothing (one bad value refuses the whole change and
nothing is written). The recorder re-reads it when its size or time changes (one
`stat` per tick), so a change applies within a second without a restart. A camera not
named records continuously, as before this file existed.

docs/design/recording-modes.md has the reasoning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

from appliance.config.model import as_finite
from appliance.config.owner_file import WatchedFile, checked, read_owner_file, write_owner_file
from appliance.config.recorder import CAMERA_NAME
from appliance.core.errors import InvalidConfig
from appliance.recorder.schedule import Schedule, constant, parse_schedule

RECORDING_NAME = "recording.json"
FORMAT = 1
WHAT = "the recording settings"
MAX_CAMERAS = 256
KEYS = ("mode", "schedule", "pre_event_s", "post_event_s", "event_max_age_days")
BOUNDS = {"pre_event_s": (0.0, 300.0), "post_event_s": (0.0, 3600.0),
          "event_max_age_days": (0.0, 3650.0)}
DEFAULT_PRE_S = 5.0
DEFAULT_POST_S = 10.0


def recording_settings_path(config_path: Path) -> Path:
    """Where the owner's recording modes live: beside the appliance TOML."""
    return Path(config_path).with_name(RECORDING_NAME)


@dataclass(frozen=True)
class CameraRecording:
    """One camera's recording mode. `mode` is set for a fixed mode, else `schedule`
    decides; event_max_age_days 0 keeps event footage as long as continuous footage."""

    schedule: Schedule = field(default_factory=lambda: constant("continuous"))
    mode: str | None = "continuous"
    pre_event_s: float = DEFAULT_PRE_S
    post_event_s: float = DEFAULT_POST_S
    event_max_age_days: float = 0.0

    def mode_at(self, instant: datetime) -> str:
        return self.schedule.mode_at(instant)

    def next_change(self, instant: datetime) -> datetime | None:
        return self.schedule.next_change(instant)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode} if self.mode is not None else \
            {"schedule": self.schedule.to_json()}
        return {**out, "pre_event_s": self.pre_event_s, "post_event_s": self.post_event_s,
                "event_max_age_days": self.event_max_age_days}


DEFAULT = CameraRecording()


@dataclass(frozen=True)
class RecordingSettings:
    cameras: dict[str, CameraRecording] = field(default_factory=dict)

    def camera(self, name: str) -> CameraRecording:
        return self.cameras.get(name, DEFAULT)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "cameras": {name: cam.to_json()
                                              for name, cam in sorted(self.cameras.items())}}


def check_camera(name: Any, values: Any, before: CameraRecording | None = None
                 ) -> CameraRecording:
    """One camera's settings with `values` laid over `before` (keys not named keep their
    value), or InvalidConfig naming the camera and the setting."""
    if not isinstance(name, str) or not CAMERA_NAME.match(name):
        raise InvalidConfig(f"camera {str(name)[:40]!r}: use 1-32 letters, digits, '-' or '_'")
    if not isinstance(values, Mapping):
        raise InvalidConfig(f"camera {name}: give an object with {', '.join(KEYS)}")
    unknown = sorted(str(k)[:40] for k in values if k not in KEYS)
    if unknown:
        raise InvalidConfig(f"camera {name}: unknown setting(s) {', '.join(unknown)}; known: "
                            f"{', '.join(KEYS)}")
    if "mode" in values and "schedule" in values:
        raise InvalidConfig(f"camera {name}: give either a mode or a schedule, not both")
    base = before or DEFAULT
    numbers = {key: getattr(base, key) for key in BOUNDS}
    for key, (low, high) in BOUNDS.items():
        if key not in values:
            continue
        value = values[key]
        if as_finite(value) is None or not low <= value <= high:
            raise InvalidConfig(f"camera {name} {key}: expected a number from {low:g} to "
                                f"{high:g}, got {str(value)[:40]!r}")
        numbers[key] = float(value)
    mode, schedule = base.mode, base.schedule
    try:
        if "mode" in values:
            mode = values["mode"]
            schedule = constant(mode if isinstance(mode, str) else str(mode)[:40])
        elif "schedule" in values:
            mode, schedule = None, parse_schedule(values["schedule"])
    except InvalidConfig as exc:
        raise InvalidConfig(f"camera {name}: {exc}") from None
    return CameraRecording(schedule, mode, **numbers)


def check_changes(current: RecordingSettings, cameras: Any) -> RecordingSettings:
    """`current` with the cameras' changes (None as a camera's value: back to the default),
    or InvalidConfig for the first bad value; nothing is written here."""
    if not isinstance(cameras, Mapping):
        raise InvalidConfig("`cameras` must be an object: camera name -> {mode or schedule, "
                            "pre_event_s, post_event_s, event_max_age_days}")
    new = dict(current.cameras)
    for name, values in cameras.items():
        if values is None:
            new.pop(name, None)
            continue
        new[name] = check_camera(name, values, current.cameras.get(name))
    if len(new) > MAX_CAMERAS:
        raise InvalidConfig(f"at most {MAX_CAMERAS} cameras can have their own recording mode")
    return RecordingSettings(new)


def load_recording_settings(path: Path) -> RecordingSettings:
    """The saved settings; none when the file does not exist; DataLoss when damaged."""
    data = read_owner_file(path, WHAT, FORMAT)
    if data is None:
        return RecordingSettings()
    return checked(path, WHAT, lambda: check_changes(RecordingSettings(),
                                                     data.get("cameras", {})))


def save_recording_settings(path: Path, settings: RecordingSettings) -> None:
    write_owner_file(path, settings.to_json())


def update_recording_settings(path: Path, cameras: Any) -> dict[str, Any]:
    """What the web API calls (PUT /api/recording): check the changes against the saved
    file, save them all or nothing, and return the settings now in force (JSON form).
    InvalidConfig (-> 400) changes nothing."""
    updated = check_changes(load_recording_settings(path), cameras)
    save_recording_settings(path, updated)
    return updated.to_json()


class RecordingSettingsFile(WatchedFile[RecordingSettings]):
    """recording.json, re-read when it changes (the defaults when it was removed)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, load_recording_settings)
