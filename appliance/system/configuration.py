"""The files a backup holds and a restore replaces, on the persist partition.

Backup reads /persist/config/{system.json, recorder.toml, cameras.json, data-volumes.json}
and the owner's settings files (contents.OWNER_FILES), those that exist, and, for a sealed backup, the credentials of the registry's cameras
and the default camera credentials through the cameras' own CredentialStore.

Restore replaces, in one transaction (transaction.py), those files (a file the backup
does not hold is removed, so its defaults return, recorder.toml falls back to the first-boot copy)
and, when the backup is sealed, the credential files (the same JSON the CredentialStore
reads; the tests check that it reads them). An unsealed backup has no camera passwords:
the box keeps the ones it has. The registry's lock is held while cameras.json is
replaced, so a camera being added at that moment cannot be lost half-way. Nothing is
restarted here: the answer says what to restart.
"""

from __future__ import annotations

import fcntl
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from appliance.cameras.credentials import CredentialStore
from appliance.core.errors import DataLoss, FailedPrecondition
from appliance.poe.adoption import DEFAULT_CREDENTIALS_ID
from appliance.system.backup import Bundle
from appliance.system.contents import CONFIG_FILES
from appliance.system.paths import SystemPaths
from appliance.system.transaction import Transaction

def read_config(paths: SystemPaths) -> dict[str, bytes]:
    found = {}
    for name in CONFIG_FILES:
        try:
            found[name] = (paths.config_dir / name).read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise DataLoss(f"{paths.config_dir / name} cannot be read ({exc.strerror})") from None
    return found


def _camera_ids(cameras_json: bytes | None) -> list[str]:
    if not cameras_json:
        return []
    try:
        return [str(c["id"]) for c in json.loads(cameras_json)["cameras"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataLoss(f"the camera list cannot be read for the backup ({exc})") from None


def read_secrets(paths: SystemPaths, config: dict[str, bytes]) -> dict[str, dict]:
    """The camera credentials (by camera id) and the default camera credentials."""
    store = CredentialStore(paths.camera_secrets)
    cameras = {}
    for camera_id in _camera_ids(config.get("cameras.json")):
        creds = store.get(camera_id)
        if creds is not None:
            cameras[camera_id] = {"username": creds.username, "password": creds.password}
    adoption = {}
    default = CredentialStore(paths.adoption_secrets).get(DEFAULT_CREDENTIALS_ID)
    if default is not None:
        adoption[DEFAULT_CREDENTIALS_ID] = {"username": default.username,
                                            "password": default.password}
    return {"cameras": cameras, "adoption": adoption}


@contextmanager
def registry_lock(config_dir: Path) -> Iterator[None]:
    """The camera registry's own lock file (registry.py `_locked`)."""
    config_dir.mkdir(parents=True, exist_ok=True)
    with open(config_dir / ".cameras.json.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def credential_files(directory: Path) -> list[str]:
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if p.is_file() and p.suffix == ".json")


def _stage_credentials(tx: Transaction, directory: Path, wanted: dict[str, dict]) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    keep = {f"{ident}.json" for ident in wanted}
    for name in credential_files(directory):
        if name not in keep:  # other cameras, and pending rotations the backup supersedes
            tx.remove(directory, name)
    for ident, creds in wanted.items():
        tx.put(directory, f"{ident}.json", json.dumps(creds).encode(), mode=0o600)


def restore_bundle(paths: SystemPaths, bundle: Bundle) -> dict:
    """Replace the configuration (and, sealed, the credentials) with the bundle's."""
    tx = Transaction(paths.journal)
    try:
        for name in CONFIG_FILES:
            if name in bundle.config:
                tx.put(paths.config_dir, name, bundle.config[name])
            elif name == "recorder.toml" and paths.recorder_defaults and \
                    paths.recorder_defaults.is_file():
                tx.put(paths.config_dir, name, paths.recorder_defaults.read_bytes())
            else:
                tx.remove(paths.config_dir, name)
        if bundle.sealed:
            _stage_credentials(tx, paths.camera_secrets, bundle.cameras or {})
            _stage_credentials(tx, paths.adoption_secrets, bundle.adoption or {})
    except OSError as exc:
        tx.abandon()
        raise FailedPrecondition(f"the backup could not be staged ({exc.strerror or exc}); "
                                 "nothing was changed") from None
    except BaseException:
        tx.abandon()
        raise
    try:
        with registry_lock(paths.config_dir):
            tx.commit()
    except OSError as exc:
        raise FailedPrecondition(f"the configuration could not be replaced "
                                 f"({exc.strerror or exc}); what was written is finished or "
                                 "dropped at the next start") from None
    return {"files": sorted(bundle.config),
            "camera_credentials": "restored" if bundle.sealed else "kept (not in the backup)"}
