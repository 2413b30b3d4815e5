"""Factory reset of the files vigil-hwd owns: back to what a new box has.

Erased: the system settings (the box goes back to DHCP, NTP and UTC under its default
name), the camera list, every camera credential and the default camera credentials,
the web server's TLS key and certificate (a new pair is made at the next start: the
key the old owner's browsers were told to trust must not stay with the box, nor one
that may have leaked), and recorder.toml goes back to the first-boot copy.

Kept: the licence (bound to the board), the device key (the box's identity, which
verifies exports made before the reset; it holds no owner data), the data disk's
registration (data-volumes.json: the disk stays this box's data disk) and, unless the
owner ticks "also erase recordings", the recordings. The users, sessions and audit log
live in the web process's account store, which erases them itself.

Recordings are erased by moving everything in the data directory except the volume
marker into `.erasing-<n>/` (one rename each, on the same filesystem: instant) and
deleting that in the background; a deletion cut short by a power cut is finished at
the next start (`purge_erased`). This removes the files, it does not overwrite the
disk's blocks (docs/design/system.md, Caveats).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from appliance.core.errors import FailedPrecondition
from appliance.core.files import fsync_dir
from appliance.storage.volume import MARKER
from appliance.system.configuration import credential_files, registry_lock
from appliance.system.contents import CONFIG_FILES
from appliance.system.paths import SystemPaths
from appliance.system.transaction import Transaction

log = logging.getLogger(__name__)

TRASH_PREFIX = ".erasing-"
KEPT_CONFIG = ("data-volumes.json",)
# The owner's settings files a backup does not hold (contents.OWNER_FILES are among
# CONFIG_FILES): the metrics' scrape token and the MQTT broker. Erased, their defaults
# return.
OWNER_SETTINGS = ("metrics-token.json", "mqtt.json")


def reset_files(paths: SystemPaths) -> list[str]:
    """Remove the owner's configuration and credentials in one transaction; what went."""
    tx = Transaction(paths.journal)
    erased = []
    for name in CONFIG_FILES:
        if name in KEPT_CONFIG or not (paths.config_dir / name).exists():
            continue
        if name == "recorder.toml" and paths.recorder_defaults and \
                paths.recorder_defaults.is_file():
            tx.put(paths.config_dir, name, paths.recorder_defaults.read_bytes())
        else:
            tx.remove(paths.config_dir, name)
        erased.append(name)
    for name in OWNER_SETTINGS:
        if (paths.config_dir / name).exists():
            tx.remove(paths.config_dir, name)
            erased.append(name)
    for directory in (paths.camera_secrets, paths.adoption_secrets):
        for name in credential_files(directory):
            tx.remove(directory, name)
    erased.append("camera credentials")
    mqtt_logins = credential_files(paths.mqtt_secrets) if paths.mqtt_secrets else []
    for name in mqtt_logins:
        tx.remove(paths.mqtt_secrets, name)
    if mqtt_logins:
        erased.append("MQTT login")
    try:
        with registry_lock(paths.config_dir):
            tx.commit()
    except OSError as exc:
        raise FailedPrecondition(f"the configuration could not be erased "
                                 f"({exc.strerror or exc}); the erase is finished at the next "
                                 "start") from None
    if paths.tls_dir is not None and paths.tls_dir.is_dir():
        for entry in paths.tls_dir.iterdir():
            if entry.is_file() or entry.is_symlink():
                entry.unlink()
        fsync_dir(paths.tls_dir)
        erased.append("TLS key and certificate")
    return erased


def move_recordings_aside(data_dir: Path) -> Path | None:
    """Everything in `data_dir` but the volume marker into a trash directory (renames)."""
    if not data_dir.is_dir():
        return None
    trash = data_dir / f"{TRASH_PREFIX}{time.time_ns()}"
    trash.mkdir(mode=0o700)
    for entry in data_dir.iterdir():
        if entry.name == MARKER or entry.name.startswith(TRASH_PREFIX):
            continue
        os.replace(entry, trash / entry.name)
    fsync_dir(data_dir)
    return trash


def purge_erased(data_dir: Path | None) -> int:
    """Delete the trash directories (at reset, in the background, and at start)."""
    if data_dir is None or not data_dir.is_dir():
        return 0
    count = 0
    for trash in data_dir.glob(f"{TRASH_PREFIX}*"):
        shutil.rmtree(trash, ignore_errors=True)
        count += 1
        log.info("erased recordings removed: %s", trash)
    return count
