"""The real app on waitress with live view and the pages, as the web tests run it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Mapping

from waitress.server import create_server

from appliance.web.accounts import AccountStore
from appliance.web.app import create_app
from appliance.web.live_api import live_hub
from appliance.web.services import WebPaths
from tests.integration.web_session import ApiClient


class WebServer:
    """create_app + the live and page blueprints, served by waitress on a free port."""

    def __init__(self, data_dir: Path, accounts_path: Path, cameras: Mapping[str, str],
                 live_settings: Mapping | None = None, threads: int = 8,
                 paths: WebPaths | None = None) -> None:
        self.accounts = AccountStore(accounts_path)
        self.cameras = dict(cameras)
        self.app = create_app(data_dir, self.accounts, live_url=self.cameras.get,
                              live_settings=dict(live_settings or {}), paths=paths)
        # poll(), not select(): close() from the test's thread while the loop waits must
        # not end the loop with EBADF (an unhandled thread exception in pytest's report)
        self.server = create_server(self.app, host="127.0.0.1", port=0, threads=threads,
                                    asyncore_use_poll=True)
        self.base = f"http://127.0.0.1:{self.server.effective_port}"
        self.port = int(self.server.effective_port)
        self._thread = threading.Thread(target=self.server.run, name="waitress", daemon=True)
        self._thread.start()
        self.client = ApiClient(self.base).login()

    @property
    def hub(self):
        return live_hub(self.app)

    def close(self) -> None:
        if "vigil_live" in self.app.extensions:
            self.hub.close()
        self.server.close()
        self._thread.join(5)
        self.accounts.close()
