"""Storage settings: where recordings may go and what retention may delete.

The owner's rules (per camera: max age, max size; for the disk: a low-water mark on free
space) and the guards that keep retention from surprising anyone (protected footage, the
newest minutes, a cap on how much one pass may delete).
"""

from __future__ import annotations

import dataclasses

from appliance.config.model import load_section, setting
from appliance.core.errors import InvalidConfig

GIB = 1024 ** 3


@dataclasses.dataclass(frozen=True)
class StorageSettings:
    allow_boot_media: bool = setting(
        False, "record into a data directory that is not an initialised Vigil data disk "
        "(e.g. the SD card); off on the appliance, on in development mode")
    min_free_percent: float = setting(
        5.0, "low-water mark: free space (statvfs) below this share of the data disk triggers "
        "the full-disk action", low=0.5, high=50)
    free_headroom_percent: float = setting(
        1.0, "after reaching the low-water mark, free this much more so passes do not run "
        "for every segment", low=0, high=20)
    full_disk_action: str = setting(
        "overwrite", "at the low-water mark: delete the oldest footage, or stop recording and "
        "raise an alert", choices=("overwrite", "stop"))
    max_age_days: float = setting(
        0.0, "delete footage older than this many days (0 = no age limit); a camera's own "
        "max_age_days overrides it", low=0, high=3650)
    keep_newest_minutes: float = setting(
        10.0, "the newest minutes of every camera are never deleted by retention", low=0, high=1440)
    max_delete_percent: float = setting(
        20.0, "a pass that would delete more than this share of the archive stops and alerts "
        "instead (e.g. after a clock jump); `nvr retention approve` lets one pass go ahead",
        low=1, high=100)
    retention_interval: float = setting(
        10.0, "seconds between retention passes (free space is also checked this often)",
        low=0.5, high=3600)
    orphan_scan_minutes: float = setting(
        60.0, "how often files without an index row are looked for, indexed or removed",
        low=1, high=1440)
    alert_below_days: float = setting(
        0.0, "raise an alert when a camera's forecast retention falls below this many days "
        "(0 = off)", low=0, high=3650)

    def validate(self) -> None:
        if self.min_free_percent + self.free_headroom_percent >= 60:
            raise InvalidConfig("storage.min_free_percent + storage.free_headroom_percent "
                                "must stay below 60")


@dataclasses.dataclass(frozen=True)
class CameraRetention:
    """A camera's own limits; 0 means the storage default (age) or no limit (size)."""

    max_age_days: float = 0.0
    max_gib: float = 0.0

    def __post_init__(self) -> None:
        for name in ("max_age_days", "max_gib"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or value != value or not 0 <= value <= 1e6:
                raise InvalidConfig(f"camera {name}: expected a number from 0 to 1000000, "
                                    f"got {value!r}")

    @property
    def max_bytes(self) -> int:
        return int(self.max_gib * GIB)


def build_storage_settings(values: dict) -> StorageSettings:
    return load_section(StorageSettings, values, "storage")
