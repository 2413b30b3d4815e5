"""Camera credentials: one file per camera, mode 0600, outside any web root, never logged.

The registry (cameras.json) holds what may be shown; this store holds what must not be:
the user name and password the box uses for the camera's RTSP and ONVIF. Files are
written atomically (temp file created 0600, fsync, rename, fsync of the directory) in a
directory of mode 0700. `Credentials.__repr__` hides the password, so an accidental log
line or traceback cannot print it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from appliance.core.errors import DataLoss, InvalidConfig

CAMERA_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=***)"

    __str__ = __repr__


def generate_password(length: int = 20) -> str:
    """A strong password that camera web forms accept (letters and digits, each kind)."""
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

    def put(self, camera_id: str, creds: Credentials) -> None:
        path = self._path(camera_id)
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
        path = self._path(camera_id)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return Credentials(str(data["username"]), str(data["password"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            raise DataLoss(f"the credentials of camera {camera_id} are unreadable; "
                           "enter them again") from None

    def delete(self, camera_id: str) -> None:
        try:
            self._path(camera_id).unlink()
        except FileNotFoundError:
            pass
