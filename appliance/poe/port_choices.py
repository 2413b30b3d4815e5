"""The owner's choices for each PoE port made while the box runs (the PoE page, the API,
`poe.set_enabled` and `poe.set_priority` on vigil-hwd's socket): power on or off, and the
priority for budget shedding. They are kept in `poe-ports.json` beside the appliance TOML
(/persist/config), so a port switched off stays off across a restart of vigil-hwd, an
update and a power cut; a factory reset erases the file.

    {"format": 1, "ports": {"Port 3": {"enabled": false}, "Port 1": {"priority": "critical"}}}

Ports are named by their board label. A choice overrides `[poe.ports]` of the appliance
TOML for that field only (appliance/poe/settings.py, PoeConfig.port). A label the board
does not have (the file came from another board) is ignored with a warning, and a
damaged file is ignored as a whole with a warning: PoE management must start whatever
this file holds, with the TOML's settings.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Iterable, Mapping

from appliance.config.owner_file import read_owner_file, write_owner_file
from appliance.core.errors import DataLoss
from appliance.poe.budget import PRIORITIES

log = logging.getLogger(__name__)

CHOICES_NAME = "poe-ports.json"
FORMAT = 1
WHAT = "the PoE port choices"
FIELDS = {"enabled": lambda v: isinstance(v, bool),
          "priority": lambda v: isinstance(v, str) and v in PRIORITIES}


def choices_path(config_dir: Path) -> Path:
    """Where the choices live: beside the appliance TOML (/persist/config)."""
    return Path(config_dir) / CHOICES_NAME


def load_choices(path: Path) -> dict[str, dict[str, Any]]:
    """label -> {"enabled"?: bool, "priority"?: str}; {} without a file; DataLoss (naming
    the file and what is wrong) when it is damaged."""
    data = read_owner_file(path, WHAT, FORMAT)
    if data is None:
        return {}
    ports = data.get("ports")
    if set(data) != {"format", "ports"} or not isinstance(ports, dict):
        raise DataLoss(f"{path}: {WHAT} are damaged (expected {{\"format\": {FORMAT}, "
                       "\"ports\": {...}})")
    for label, choice in ports.items():
        if not isinstance(choice, dict) or not choice or \
                any(k not in FIELDS or not FIELDS[k](v) for k, v in choice.items()):
            raise DataLoss(f"{path}: {WHAT} are damaged (port {label[:64]!r}: expected "
                           f"enabled true/false and/or priority {'/'.join(PRIORITIES)})")
    return ports


def choices_for_board(path: Path, labels: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The choices that apply to a board with these port labels; never raises for the
    file's content (a warning says what was ignored and why)."""
    try:
        choices = load_choices(path)
    except DataLoss as exc:
        log.warning("poe: %s; the appliance settings' [poe.ports] apply", exc)
        return {}
    known = set(labels)
    unknown = sorted(set(choices) - known)
    if unknown:
        log.warning("poe: %s names ports this board does not have (%s); ignored",
                    path, ", ".join(repr(label[:64]) for label in unknown))
    return {label: choice for label, choice in choices.items() if label in known}


class PortChoices:
    """Remembers each change as vigil-hwd makes it (one writer; changes serialised)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def remember(self, label: str, changes: Mapping[str, Any]) -> None:
        for key, value in changes.items():
            if key not in FIELDS or not FIELDS[key](value):
                raise ValueError(f"not a port choice: {key}={value!r}")
        with self._lock:
            try:
                ports = load_choices(self.path)
            except DataLoss as exc:
                log.warning("poe: %s; replaced by this change", exc)
                ports = {}
            ports[label] = {**ports.get(label, {}), **changes}
            write_owner_file(self.path, {"format": FORMAT, "ports": ports})
