"""Camera credentials: one file per camera, mode 0600, outside any web root, never logged.

The registry (cameras.json) holds what may be shown; this store holds what must not be:
the user name and password the box uses for the camera's RTSP and ONVIF. Files are
written atomically (temp file created 0600, fsync, rename, fsync of the directory) in a
directory of mode 0700. `Credentials.__repr__` hides the password, so an accidental log
line or traceback cannot print it.

A password rotation (rotation.py) writes the new password aside as *pending* before the
camera hears it (`<id>.pending.json`), so that a crash, a power cut or a camera that
stops answering half-way can never leave the camera with a password the box does not
have. The pending password replaces the current one only once the camera has accepted
it; until then the current one stays in use.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from appliance.config.recorder import CAMERA_NAME
from appliance.core.errors import DataLoss, InvalidConfig

CAMERA_ID = CAMERA_NAME  # the recorder's camera names


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=***)"

    __str__ = __repr__


def generate_password(length: int = 16) -> str:
    """A strong password that cameras accept: letters and digits, each kind present,
    16 characters by default (about 95 bits). 16 is the longest many cameras take
    (Hikvision allows 8-16 characters), and some cut a longer one silently; no symbols,
    which some cameras refuse and some RTSP servers mangle in URLs."""
    alphabet = string.ascii_letters + string.digits
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(length))
        if any(c.islower() for c in candidate) and any(c.isupper() for c in candidate) \
                and any(c.isdigit() for c in candidate):
            return candidate


class CredentialStore:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, camera_id: str) -> Path:
        if not CAMERA_ID.match(camera_id):
            raise InvalidConfig(f"camera id {camera_id!r} is not valid")
        return self.directory / f"{camera_id}.json"

    def _pending_path(self, camera_id: str) -> Path:
        return self._path(camera_id).with_suffix(".pending.json")

    def put(self, camera_id: str, creds: Credentials) -> None:
        self._write(self._path(camera_id), creds)

    def put_pending(self, camera_id: str, creds: Credentials) -> None:
        """Keep a password the camera is about to be given (see the module docstring)."""
        self._write(self._pending_path(camera_id), creds)

    def get_pending(self, camera_id: str) -> Credentials | None:
        return self._read(self._pending_path(camera_id), camera_id)

    def drop_pending(self, camera_id: str) -> None:
        self._unlink(self._pending_path(camera_id))

    def _write(self, path: Path, creds: Credentials) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps({"username": creds.username,
                                     "password": creds.password}).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o600)  # in case the file existed with other bits
        os.replace(tmp, path)
        dfd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def get(self, camera_id: str) -> Credentials | None:
        return self._read(self._path(camera_id), camera_id)

    def _read(self, path: Path, camera_id: str) -> Credentials | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return Credentials(str(data["username"]), str(data["password"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            raise DataLoss(f"the credentials of camera {camera_id} are unreadable; "
                           "enter them again") from None

    def delete(self, camera_id: str) -> None:
        """Forget the camera's credentials, a pending password included."""
        self._unlink(self._path(camera_id))
        self._unlink(self._pending_path(camera_id))

    def _unlink(self, path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            return
        dfd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
