"""Fixtures for the web tests: the real app on waitress with live view and the pages."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Mapping

import pytest

from tests.integration.web.webserver import WebServer


@pytest.fixture
def web_server(tmp_path) -> Iterator:
    """Factory: web_server(cameras, live_settings) -> a running WebServer (closed after)."""
    servers: list[WebServer] = []

    def start(cameras: Mapping[str, str], live_settings: Mapping | None = None,
              data_dir: Path | None = None, threads: int = 8) -> WebServer:
        n = len(servers)
        server = WebServer(data_dir or tmp_path / f"data{n}", tmp_path / f"accounts{n}.sqlite3",
                           cameras, live_settings, threads)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
