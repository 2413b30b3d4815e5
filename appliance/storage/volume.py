"""The data volume marker: recordings go only onto a disk initialised for them.

An unplugged USB disk leaves its mount point behind as an empty directory on the root
filesystem; a recorder that simply writes there fills the SD card until the box no
longer boots (market.md §3). So `initialise` writes a marker file, `.vigil-volume`, at
the root of every data filesystem, and the recorder writes only below a directory that
carries the marker on the same filesystem. The check is a couple of `stat` calls, cheap
enough to repeat every few seconds and before every new segment.

Development mode and tests record into plain directories: `storage.allow_boot_media`
turns the check off, and is off on the appliance.
"""

from __future__ import annotations

import json
import os
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path

from appliance.core.errors import DataLoss
from appliance.core.files import atomic_write

MARKER = ".vigil-volume"


@dataclass(frozen=True)
class VolumeCheck:
    ok: bool
    detail: str
    volume_id: str = ""
    root: str = ""


def write_marker(mount_root: Path, volume_id: str | None = None) -> str:
    """Mark a freshly initialised filesystem as a Vigil data volume (atomically)."""
    volume_id = volume_id or str(uuidlib.uuid4())
    atomic_write(Path(mount_root) / MARKER,
                 json.dumps({"volume_id": volume_id, "format": 1}).encode())
    return volume_id


def find_marker(data_dir: Path) -> VolumeCheck:
    """Look for the marker in `data_dir` and its parents on the same filesystem."""
    data_dir = Path(os.path.abspath(data_dir))
    try:
        device = os.stat(data_dir).st_dev
    except OSError:
        return VolumeCheck(False, f"{data_dir} does not exist: no data disk is mounted there")
    current = data_dir
    while True:
        marker = current / MARKER
        try:
            text = marker.read_text(encoding="utf-8")
        except FileNotFoundError:
            pass
        except OSError as exc:
            return VolumeCheck(False, f"the data disk marker {marker} cannot be read ({exc})")
        else:
            try:
                volume_id = str(json.loads(text)["volume_id"])
            except (ValueError, KeyError, TypeError):
                return VolumeCheck(False, f"the data disk marker {marker} is damaged")
            return VolumeCheck(True, f"data disk {volume_id} at {current}", volume_id, str(current))
        parent = current.parent
        if parent == current:
            break
        try:
            if os.stat(parent).st_dev != device:
                break  # the mount point of this filesystem: no marker on it
        except OSError:
            break
        current = parent
    return VolumeCheck(False, f"{data_dir} is not on an initialised Vigil data disk "
                              f"(no {MARKER}); is the disk mounted?")


def load_volumes(path: Path) -> list[dict[str, str]]:
    """The data volumes this box owns ({"uuid", "mountpoint"}), as `initialise` saved them."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise DataLoss(f"{path}: the data volume list cannot be read ({exc})") from None
    volumes = data.get("volumes") if isinstance(data, dict) else None
    if not isinstance(volumes, list) or not all(
            isinstance(v, dict) and isinstance(v.get("uuid"), str) and
            isinstance(v.get("mountpoint"), str) for v in volumes):
        raise DataLoss(f"{path}: the data volume list is damaged")
    return [{"uuid": v["uuid"], "mountpoint": v["mountpoint"]} for v in volumes]


def save_volumes(path: Path, volumes: list[dict[str, str]]) -> None:
    """Atomically replace the list (temp file, fsync, rename, fsync the directory)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps({"volumes": volumes}, indent=1).encode())


def remember_volume(path: Path, fs_uuid: str, mountpoint: str) -> None:
    """Add a freshly initialised volume to the list (replacing whatever was mounted at
    the same place), so vigil-hwd tracks it and mounts it at boot."""
    volumes = [v for v in load_volumes(path) if v["mountpoint"] != mountpoint]
    save_volumes(path, volumes + [{"uuid": fs_uuid, "mountpoint": mountpoint}])


def check_data_dir(data_dir: Path, allow_boot_media: bool) -> VolumeCheck:
    """May recordings be written below `data_dir` now?"""
    if allow_boot_media:
        return VolumeCheck(True, "any directory allowed (storage.allow_boot_media)")
    return find_marker(data_dir)
