"""What each file of a configuration backup may contain, checked before anything is
replaced: every file is read by its owner package's own loader, exactly as the daemon
that uses it would read it at start, so a restored box cannot fail to start because of
a file the restore let through.

The users' records are checked for shape here (the web layer's account store checks
them again when it imports them: nothing outside appliance.web may import it).
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

from appliance.config.recorder import CAMERA_NAME
from appliance.core.errors import DataLoss, InvalidConfig
from appliance.system.settings import SystemSettings
from appliance.system.timezones import SYSTEM_ZONEINFO

# The owner's settings files beside them, each read by the daemon that uses it: retention
# and recording modes (the recorder), who may scrape the metrics (the web), the restream's
# switch, the PoE ports' choices (vigil-hwd). Not here: the MQTT broker's settings (their
# login and CA file live elsewhere, so they would restore half) and the scrape token
# (a secret, as the camera passwords; a new one is one click).
OWNER_FILES = ("retention.json", "recording.json", "metrics.json", "restream.json",
               "poe-ports.json")
CONFIG_FILES = ("system.json", "recorder.toml", "cameras.json", "data-volumes.json",
                *OWNER_FILES)
ROLES = ("admin", "operator", "viewer")
USERNAME = re.compile(r"[a-z][a-z0-9._-]{1,31}")
USER_KEYS = frozenset({"username", "role", "cameras", "hash"})
MAX_USERS = 100
MAX_CAMERAS = 128
MAX_SECRET = 256


def _json(data: bytes, name: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise InvalidConfig(f"{name} in the backup is not valid JSON ({exc})") from None


def _through_file(name: str, data: bytes, loader):
    """Run a loader that takes a path on `data` (written to a private temporary file)."""
    with tempfile.TemporaryDirectory(prefix="vigil-restore-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            return loader(path)
        except (InvalidConfig, DataLoss) as exc:
            raise InvalidConfig(f"{name} in the backup: {str(exc).replace(str(path) + ': ', '')}"
                                ) from None


def check_recorder_toml(data: bytes) -> None:
    from appliance.config.cameras import build_camera_settings
    from appliance.config.recorder import build_settings, check_unique, load_config_file
    from appliance.config.storage import build_storage_settings
    from appliance.poe.adoption import split_adoption_settings
    from appliance.poe.settings import build_poe_settings

    def load(path: Path) -> None:
        config = load_config_file(path)
        build_settings(config.recorder)
        build_storage_settings(config.storage)
        build_camera_settings(config.camera_settings)
        poe, _ = split_adoption_settings(config.poe)
        build_poe_settings(poe)
        check_unique(config.cameras)
    _through_file("recorder.toml", data, load)


def check_cameras_json(data: bytes) -> None:
    from appliance.cameras.registry import REGISTRY_VERSION, Camera

    doc = _json(data, "cameras.json")
    if not isinstance(doc, dict) or not isinstance(doc.get("cameras"), list):
        raise InvalidConfig("cameras.json in the backup is not a camera list")
    if doc.get("version", REGISTRY_VERSION) != REGISTRY_VERSION:
        raise InvalidConfig(f"cameras.json in the backup has format {doc.get('version')!r}, "
                            f"this box reads {REGISTRY_VERSION}")
    if len(doc["cameras"]) > MAX_CAMERAS:
        raise InvalidConfig(f"cameras.json in the backup lists more than {MAX_CAMERAS} cameras")
    seen = set()
    for entry in doc["cameras"]:
        try:
            camera = Camera.from_json(entry)
        except (InvalidConfig, KeyError, TypeError, AttributeError) as exc:
            raise InvalidConfig(f"cameras.json in the backup: a camera is damaged ({exc})") \
                from None
        if not CAMERA_NAME.fullmatch(camera.id) or camera.id in seen:
            raise InvalidConfig(f"cameras.json in the backup: camera id {camera.id!r} is "
                                "invalid or listed twice")
        seen.add(camera.id)


def check_volumes_json(data: bytes) -> None:
    from appliance.storage.volume import load_volumes

    _through_file("data-volumes.json", data, load_volumes)


def owner_file_loader(name: str):
    """The function the daemon that uses an owner's settings file reads it with."""
    if name == "retention.json":
        from appliance.storage.retention.overrides import load_overrides
        return load_overrides
    if name == "recording.json":
        from appliance.recorder.recording_settings import load_recording_settings
        return load_recording_settings
    if name == "metrics.json":
        from appliance.metrics.access import load_networks
        return load_networks
    if name == "restream.json":
        from appliance.restream.settings import load_enabled
        return load_enabled
    if name == "poe-ports.json":
        from appliance.poe.port_choices import load_choices
        return load_choices
    raise InvalidConfig(f"{name!r} is not an owner's settings file")


def check_config_file(name: str, data: bytes, zoneinfo: Path = SYSTEM_ZONEINFO) -> None:
    if name == "system.json":
        try:
            SystemSettings.from_json(_json(data, name), zoneinfo)
        except InvalidConfig as exc:
            raise InvalidConfig(f"system.json in the backup: {exc}") from None
    elif name == "recorder.toml":
        check_recorder_toml(data)
    elif name == "cameras.json":
        check_cameras_json(data)
    elif name == "data-volumes.json":
        check_volumes_json(data)
    elif name in OWNER_FILES:
        _through_file(name, data, owner_file_loader(name))
    else:
        raise InvalidConfig(f"{name!r} is not a configuration file a backup can hold")


def check_users(users: Any, need_hash: bool = True) -> list[dict]:
    """The accounts of a backup: unique user names, known roles, at least one admin."""
    if not isinstance(users, list) or not users:
        raise InvalidConfig("the backup's user list is empty or damaged")
    if len(users) > MAX_USERS:
        raise InvalidConfig(f"the backup holds more than {MAX_USERS} users")
    names = set()
    checked = []
    for user in users:
        if not isinstance(user, dict) or not set(user) <= USER_KEYS:
            raise InvalidConfig("the backup's user list is damaged")
        name, role, cameras = user.get("username"), user.get("role"), user.get("cameras", [])
        if not isinstance(name, str) or not USERNAME.fullmatch(name) or name in names:
            raise InvalidConfig(f"the backup's user {str(name)[:40]!r} is invalid or listed twice")
        if role not in ROLES:
            raise InvalidConfig(f"the backup's user {name} has an unknown role")
        if not isinstance(cameras, list) or len(cameras) > MAX_CAMERAS or not all(
                isinstance(c, str) and (c == "*" or CAMERA_NAME.fullmatch(c)) for c in cameras):
            raise InvalidConfig(f"the backup's user {name} has a damaged camera list")
        record = {"username": name, "role": role, "cameras": list(cameras)}
        digest = user.get("hash")
        if digest is not None or need_hash:
            if not isinstance(digest, str) or not digest.startswith("$scrypt$") or \
                    len(digest) > 300 or any(ch.isspace() for ch in digest):
                raise InvalidConfig(f"the backup's password of user {name} is damaged")
            record["hash"] = digest
        names.add(name)
        checked.append(record)
    if not any(u["role"] == "admin" for u in checked):
        raise InvalidConfig("the backup has no admin account: nobody could manage the box "
                            "after restoring it")
    return checked


def check_credentials(value: Any, what: str) -> dict[str, dict[str, str]]:
    """{id: {"username": ..., "password": ...}} with camera-name ids."""
    if not isinstance(value, dict) or len(value) > MAX_CAMERAS:
        raise InvalidConfig(f"the backup's {what} are damaged")
    checked = {}
    for ident, creds in value.items():
        if not isinstance(ident, str) or not CAMERA_NAME.fullmatch(ident) or \
                not isinstance(creds, dict) or set(creds) != {"username", "password"} or \
                not all(isinstance(v, str) and len(v) <= MAX_SECRET for v in creds.values()):
            raise InvalidConfig(f"the backup's {what} are damaged")
        checked[ident] = {"username": creds["username"], "password": creds["password"]}
    return checked
