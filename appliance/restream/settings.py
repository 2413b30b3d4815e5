"""The owner's switch for the restream: `restream.json` beside the appliance TOML.

The restream listens on port 8554 of the LAN, so it is off until the owner switches it
on (the Integrations page; vigil-hwd writes the file and starts or stops the unit). Off
is also what a missing or damaged file means: a box must never open a port because a
file was lost. vigil-restream.service asks `nvr restream enabled` before it starts
(ExecCondition=), so a box switched off stays off across reboots.

    {"format": 1, "enabled": false}
"""

from __future__ import annotations

from pathlib import Path

from appliance.config.owner_file import read_owner_file, write_owner_file
from appliance.core.errors import DataLoss, InvalidConfig

SETTINGS_NAME = "restream.json"
FORMAT = 1
WHAT = "the restream settings"
DEFAULT_SETTINGS = "/persist/config/restream.json"


def settings_path(config_path: Path) -> Path:
    """Where the switch lives: beside the appliance TOML (/persist/config)."""
    return Path(config_path).with_name(SETTINGS_NAME)


def check_enabled(value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidConfig("enabled: true or false")
    return value


def load_enabled(path: Path) -> bool:
    """Whether the owner switched the restream on; False without a file; DataLoss (naming
    the file) when the file is damaged."""
    data = read_owner_file(path, WHAT, FORMAT)
    if data is None:
        return False
    if set(data) != {"format", "enabled"} or not isinstance(data["enabled"], bool):
        raise DataLoss(f"{path}: {WHAT} are damaged (expected {{\"format\": {FORMAT}, "
                       "\"enabled\": true|false}})")
    return data["enabled"]


def save_enabled(path: Path, enabled: bool) -> None:
    write_owner_file(path, {"format": FORMAT, "enabled": check_enabled(enabled)})
