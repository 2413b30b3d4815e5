"""The real app with what the cameras and PoE pages need (camera registry, settings file,
licence, vigil-hwd's state directory and control socket), on waitress, for the tests of
the cameras and PoE APIs and pages."""

from __future__ import annotations

import threading
from pathlib import Path

from waitress.server import create_server

from appliance.licensing.keys import trusted_keys
from appliance.licensing.store import LicenceStore
from appliance.web.accounts import AccountStore
from appliance.web.app import create_app
from appliance.web.services import WebPaths
from tests.integration.web_session import ApiClient

USER_PASSWORD = "a long user password"


class ManageSite:
    """create_app(paths=WebPaths(...)) on a free loopback port, logged in as the admin.

    `networks`: `[cameras] allowed_networks` (None: the default, which has no loopback);
    `channels`: what the licence allows (the board default, no licence file);
    `hwd_state`, `hwd_socket`: vigil-hwd's snapshot directory and control socket."""

    def __init__(self, root: Path, *, networks: str | None = "127.0.0.0/8,192.168.0.0/16",
                 budget_mbps: float | None = None, channels: int = 8,
                 hwd_state: Path | None = None, hwd_socket: Path | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.registry = root / "config" / "cameras.json"
        self.secrets = root / "secrets"
        self.config = root / "config" / "vigil.toml"
        self.data = root / "data"
        self.config.parent.mkdir(parents=True, exist_ok=True)
        settings = []
        if networks is not None:
            settings.append(f'allowed_networks = "{networks}"')
        if budget_mbps is not None:
            settings.append(f"incoming_budget_mbps = {budget_mbps}")
        self.config.write_text("[cameras]\n" + "".join(s + "\n" for s in settings))
        self.licence = LicenceStore(root / "licence.txt", "SIM00000001", trusted_keys(["dev"]),
                                    channels)
        self.accounts = AccountStore(root / "accounts.sqlite3")
        self.app = create_app(self.data, self.accounts, licence=lambda: self.licence,
                              paths=WebPaths(registry=self.registry, secrets=self.secrets,
                                             config=self.config, hwd_state=hwd_state,
                                             hwd_socket=hwd_socket))
        self.server = create_server(self.app, host="127.0.0.1", port=0, threads=8)
        self.port = int(self.server.effective_port)
        self.base = f"http://127.0.0.1:{self.port}"
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="waitress", daemon=True)
        self._thread.start()
        self.admin = ApiClient(self.base).login()

    def _serve(self) -> None:
        try:
            self.server.run()
        except OSError:   # close() from this thread's outside races its poll(): EBADF
            if not self._closing.is_set():
                raise

    def user(self, name: str, role: str, cameras: tuple[str, ...] = ()) -> ApiClient:
        """A new user of `role` (a viewer sees `cameras`), logged in."""
        status, answer = self.admin.json("POST", "/api/v1/users", {
            "username": name, "password": USER_PASSWORD, "role": role, "cameras": list(cameras)})
        assert status == 201, answer
        return ApiClient(self.base).login(name, USER_PASSWORD)

    def audit(self) -> list[dict]:
        return self.accounts.audit_log()

    def registry_bytes(self) -> bytes:
        return self.registry.read_bytes() if self.registry.exists() else b""

    def close(self) -> None:
        self._closing.set()
        self.server.close()
        self._thread.join(5)
        self.accounts.close()
