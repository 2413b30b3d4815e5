"""Retention settings changed by the owner at run time (web UI, first-boot wizard).

The appliance TOML's `[storage]` section and its `[[camera]]` entries are the base; the
owner's changes are kept in a small JSON file beside it (`retention.json` on the persist
partition), written atomically, and laid over the base. The recorder's retention worker
re-reads the file when it changes (one `stat` per pass), so a change applies at the next
pass, within `retention_interval` seconds, without restarting the recorder.

Validated with the same models as the config file (StorageSettings, CameraRetention):
unknown keys, wrong types, NaN and out-of-range numbers are refused with the setting's
name and bounds. `allow_boot_media` is not among the keys that can be changed here: it
is a development switch that lets recordings fill the SD card.

docs/design/storage.md, "Changing retention while recording", has the reasoning.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from appliance.config.model import as_finite, check_field, load_section
from appliance.config.owner_file import WatchedFile, checked, read_owner_file, write_owner_file
from appliance.config.recorder import CAMERA_NAME
from appliance.config.storage import CameraRetention, StorageSettings
from appliance.core.errors import InvalidConfig

RETENTION_NAME = "retention.json"
FORMAT = 1
WHAT = "the retention settings"
MAX_CAMERAS = 256
EDITABLE = tuple(f.name for f in dataclasses.fields(StorageSettings)
                 if f.name != "allow_boot_media")
CAMERA_KEYS = ("max_age_days", "max_gib")


def overrides_path(config_path: Path) -> Path:
    """Where the owner's retention changes live: beside the appliance TOML."""
    return Path(config_path).with_name(RETENTION_NAME)


@dataclass(frozen=True)
class RetentionOverrides:
    storage: dict[str, Any] = field(default_factory=dict)        # key -> value (EDITABLE)
    cameras: dict[str, CameraRetention] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "storage": dict(sorted(self.storage.items())),
                "cameras": {name: dataclasses.asdict(ret)
                            for name, ret in sorted(self.cameras.items())}}


def _camera_retention(name: str, values: Any, base: CameraRetention | None) -> CameraRetention:
    if not isinstance(name, str) or not CAMERA_NAME.match(name):
        raise InvalidConfig(f"camera {str(name)[:40]!r}: use 1-32 letters, digits, '-' or '_'")
    if not isinstance(values, Mapping):
        raise InvalidConfig(f"camera {name}: give an object with {' and '.join(CAMERA_KEYS)}")
    unknown = sorted(str(k)[:40] for k in values if k not in CAMERA_KEYS)
    if unknown:
        raise InvalidConfig(f"camera {name}: unknown setting(s) {', '.join(unknown)}; known: "
                            f"{', '.join(CAMERA_KEYS)}")
    merged = dataclasses.asdict(base or CameraRetention())
    for key, value in values.items():
        if as_finite(value) is None:
            raise InvalidConfig(f"camera {name} {key}: expected a number from 0 to 1000000, "
                                f"got {str(value)[:40]!r}")
        merged[key] = float(value)
    try:
        return CameraRetention(**merged)
    except InvalidConfig as exc:
        raise InvalidConfig(f"camera {name}: {exc}") from None


def check_changes(current: RetentionOverrides, storage: Any = None, cameras: Any = None,
                  base_cameras: Mapping[str, CameraRetention] | None = None
                  ) -> RetentionOverrides:
    """`current` with the changes applied (settings not named keep their values; a camera
    limit not named keeps its value from `current`, else from `base_cameras`, the TOML),
    or InvalidConfig naming the first bad value. Nothing is written here."""
    new_storage = dict(current.storage)
    if storage is not None:
        if not isinstance(storage, Mapping):
            raise InvalidConfig("`storage` must be an object of settings")
        fields = {f.name: f for f in dataclasses.fields(StorageSettings)}
        for key, value in storage.items():
            if key == "allow_boot_media":
                raise InvalidConfig("storage.allow_boot_media cannot be changed here: it "
                                    "lets recordings fill the system card (development only)")
            if key not in EDITABLE:
                raise InvalidConfig(f"storage: unknown setting {str(key)[:40]!r}; known: "
                                    f"{', '.join(EDITABLE)}")
            if isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and as_finite(value) is None:
                raise InvalidConfig(f"storage.{key}: not a finite number")
            new_storage[key] = check_field(fields[key], value, "storage")
    new_cameras = dict(current.cameras)
    if cameras is not None:
        if not isinstance(cameras, Mapping):
            raise InvalidConfig("`cameras` must be an object: camera name -> "
                                "{max_age_days, max_gib}")
        for name, values in cameras.items():
            before = current.cameras.get(name) or (base_cameras or {}).get(name)
            new_cameras[name] = _camera_retention(name, values, before)
        if len(new_cameras) > MAX_CAMERAS:
            raise InvalidConfig(f"at most {MAX_CAMERAS} cameras can have their own retention")
    return RetentionOverrides(new_storage, new_cameras)


def load_overrides(path: Path) -> RetentionOverrides:
    """The saved changes; none when the file does not exist; DataLoss when damaged."""
    data = read_owner_file(path, WHAT, FORMAT)
    if data is None:
        return RetentionOverrides()
    return checked(path, WHAT, lambda: check_changes(
        RetentionOverrides(), data.get("storage", {}), data.get("cameras", {})))


def save_overrides(path: Path, overrides: RetentionOverrides) -> None:
    write_owner_file(path, overrides.to_json())


def effective_settings(base: StorageSettings, overrides: RetentionOverrides) -> StorageSettings:
    """The base with the owner's changes; InvalidConfig if the combination is refused
    (e.g. low-water mark + headroom of 60 % or more)."""
    return load_section(StorageSettings, {**dataclasses.asdict(base), **overrides.storage},
                        "storage")


def effective_cameras(base: Mapping[str, CameraRetention],
                      overrides: RetentionOverrides) -> dict[str, CameraRetention]:
    return {**base, **overrides.cameras}


class OverridesFile(WatchedFile[RetentionOverrides]):
    """retention.json, re-read when it changes (an empty set of changes when removed)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, load_overrides)


@dataclass(frozen=True)
class RetentionInForce:
    """What the recorder applies: the base from the TOML, the owner's changes, the result."""

    base: StorageSettings
    base_cameras: dict[str, CameraRetention]
    overrides: RetentionOverrides
    settings: StorageSettings
    cameras: dict[str, CameraRetention]


def retention_in_force(config_path: Path | None) -> RetentionInForce:
    """Read the appliance TOML (absent: the defaults) and retention.json beside it."""
    from appliance.config.recorder import load_config_file
    from appliance.config.storage import build_storage_settings

    values: dict[str, Any] = {}
    base_cameras: dict[str, CameraRetention] = {}
    overrides = RetentionOverrides()
    if config_path is not None:
        if Path(config_path).exists():
            loaded = load_config_file(Path(config_path))
            values = loaded.storage
            base_cameras = {cam.name: cam.retention for cam in loaded.cameras}
        overrides = load_overrides(overrides_path(config_path))
    base = build_storage_settings(values)
    return RetentionInForce(base, base_cameras, overrides, effective_settings(base, overrides),
                            effective_cameras(base_cameras, overrides))
