"""The restream login: one user name and a generated password that VMSes on the LAN use.

Made at the first start of the restream, then never changed by the box, so a VMS keeps
working across reboots and updates. Kept like the cameras' passwords: a JSON file of mode
0600 in a directory of mode 0700, written atomically. Two processes making it at the same
moment (the daemon and a console command) end with one password: the file is created
with a hard link, which fails when it already exists, and the loser reads the winner's.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from appliance.cameras.credentials import Credentials, generate_password
from appliance.core.errors import DataLoss, FailedPrecondition
from appliance.core.files import atomic_write, fsync_dir

DEFAULT_LOGIN = "/persist/secrets/restream/login.json"
RESTREAM_USER = "restream"
# Letters and digits only (no URL quoting in a VMS form); 24 characters, about 142 bits.
PASSWORD_LENGTH = 24


class RestreamLogin:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self) -> Credentials | None:
        """The login, or None before the first start; DataLoss when the file is damaged."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise DataLoss(f"{self.path}: the restream login cannot be read ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("username"), str) or \
                not isinstance(data.get("password"), str) or not data["password"]:
            raise DataLoss(f"{self.path}: not a restream login file")
        return Credentials(data["username"], data["password"])

    def require(self) -> Credentials:
        """The login for showing it; the console never makes one (the daemon, running as
        its own user, does: a file made by root here would be unreadable to it)."""
        login = self.read()
        if login is None:
            raise FailedPrecondition(f"no restream login yet ({self.path}): it is made when "
                                     "the restream first starts (vigil-restream)")
        return login

    def ensure(self) -> Credentials:
        """The login, made now if there is none yet."""
        return self.read() or self._create()

    def _create(self) -> Credentials:
        data = {"username": RESTREAM_USER, "password": generate_password(PASSWORD_LENGTH),
                "created": time.time()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o700)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.new")
        atomic_write(tmp, json.dumps(data).encode(), mode=0o600)
        try:
            os.link(tmp, self.path)   # fails if another process made it first: keep theirs
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        fsync_dir(self.path.parent)
        return self.require()
