"""`nvr run`: the appliance in development mode on the simulated board.

The composition root for development: reads the `sim` board profile, generates the
simulated cameras' clips once into <var>/cache, starts their RTSP server (a real
gst-rtsp-server process), records them into <var>/data with a live console status, and
serves the web API (playback so far) on http://127.0.0.1:8080 (the next free port if
taken). Ctrl-C stops the web server, the recorder (closing segments cleanly), then the
cameras.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

from appliance.cli import run_until_signalled
from appliance.config.recorder import CameraConfig, build_settings
from appliance.config.storage import build_storage_settings
from appliance.core.errors import InvalidConfig
from appliance.poe.runtime import PoeService, build_manager
from appliance.recorder.service import Recorder
from appliance.recorder.status import render
from hw.board import load_profile
from hw.camsim.clips import ensure_clip
from hw.camsim.server import SimCamera, SimCameraServer, free_port

log = logging.getLogger(__name__)


def port_is_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def simulated_cameras(profile: dict, cache: Path, count: int | None) -> list[SimCamera]:
    sim = profile["sim_cameras"]
    count = count if count is not None else sim["count"]
    if not 1 <= count <= 64:
        raise InvalidConfig("--cameras must be between 1 and 64")
    cameras = []
    for i in range(count):
        audio = sim["audio"][i % len(sim["audio"])]
        audio = None if audio == "none" else audio
        print(f"clip for camera {i + 1}: {sim['width']}x{sim['height']} {sim['codec']} "
              f"{sim['fps']} fps {sim['bitrate_kbps']} kb/s{' + ' + audio if audio else ''} "
              "(encoded once, then cached)", flush=True)
        clip = ensure_clip(cache, codec=sim["codec"], audio=audio, seconds=sim["clip_seconds"],
                           width=sim["width"], height=sim["height"], fps=sim["fps"],
                           bitrate_kbps=sim["bitrate_kbps"])
        cameras.append(SimCamera(f"/cam{i + 1}", clip, codec=sim["codec"], audio=audio))
    return cameras


def licence_store(profile: dict, path: Path):
    """The simulated board's licence (var/licence/licence.txt; none: the board default)."""
    from hw.identity import board_serial

    from appliance.licensing.keys import trusted_keys
    from appliance.licensing.store import LicenceStore

    section = profile.get("licence", {})
    return LicenceStore(path, board_serial(profile), trusted_keys(section.get("trusted_keys", [])),
                        int(section.get("default_channels", 4)))


def poe_line(manager) -> str:
    snap = manager.snapshot().to_json()
    ports = ", ".join(f"{p['label']} {p['state']}" + (f" {p['power_w']:.1f} W" if p["power_w"] else "")
                      for p in snap["ports"] if p["state"] != "searching")
    return (f"PoE: {snap['measured_w']:.1f} W of {snap['budget_w']:.0f} W; "
            f"{ports or 'nothing plugged in'}")


class WebServer:
    """The web app on waitress in a background thread (loopback only)."""

    def __init__(self, data_dir: Path, port: int, accounts_path: Path, licence,
                 live_urls: dict[str, str]) -> None:
        from waitress.server import create_server

        from appliance.web.accounts import AccountStore
        from appliance.web.app import create_app

        self.accounts = AccountStore(accounts_path)
        app = create_app(data_dir, self.accounts, licence=lambda: licence,
                         live_url=live_urls.get)
        # A live viewer holds a thread for as long as it watches: room for 4 and the API.
        self._server = create_server(app, host="127.0.0.1", port=port, threads=8, ident="vigil")
        self.url = f"http://127.0.0.1:{self._server.effective_port}"
        self._thread = threading.Thread(target=self._server.run, name="web", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.close()


def run_dev(var: Path, cameras: int | None = None, port: int | None = None,
            web_port: int = 8080) -> int:
    profile = load_profile("sim")
    var = var.resolve()
    sims = simulated_cameras(profile, var / "cache", cameras)
    port = port or profile["sim_cameras"]["rtsp_port"]
    if not port_is_free(port):
        old, port = port, free_port()
        print(f"port {old} is busy; the simulated cameras use {port}", flush=True)
    server = SimCameraServer(port, sims, log_path=var / "camsim.log")
    configs = [CameraConfig(f"cam{i + 1}", server.url(sim.mount)) for i, sim in enumerate(sims)]
    # Development records into ./var/data, a plain directory: allowed here, never on the box.
    storage = build_storage_settings({"allow_boot_media": True})
    licence = licence_store(profile, var / "licence" / "licence.txt")
    recorder = Recorder(var / "data", configs, build_settings({}), storage=storage,
                        channel_limit=licence.channel_limit)
    tty = sys.stdout.isatty()
    web = WebServer(var / "data", web_port if port_is_free(web_port) else 0,
                    var / "accounts.sqlite3", licence, {c.name: c.url for c in configs})
    poe_manager, _ = build_manager(profile)
    poe = PoeService(poe_manager, var / "state")

    def start() -> None:
        server.start()
        recorder.start()
        poe.start()
        web.start()
        print(f"web API: {web.url}/api/v1/cameras/cam1/timeline", flush=True)
        if web.accounts.setup_needed():
            print(f"no admin yet (there is no default password): POST {web.url}/api/v1/setup "
                  '{"username": ..., "password": ...}', flush=True)
        print(f"board: {profile['board']['name']}; cameras: "
              + ", ".join(f"{c.name}={c.url}" for c in configs), flush=True)
        print(f"recording to {var / 'data'}; list with: nvr segments --data {var / 'data'}",
              flush=True)

    def tick() -> None:
        views = recorder.tick()
        prefix = "\x1b[H\x1b[J" if tty else ""
        print(prefix + f"Vigil NVR development mode (Ctrl-C stops), data: {var / 'data'}\n"
              + render(views) + "\n" + poe_line(poe_manager) + "\n", flush=True)

    def stop() -> None:
        try:
            web.stop()
            poe.close()
            recorder.stop()
        finally:
            server.stop()
        print("stopped cleanly", flush=True)

    run_until_signalled(start, tick, stop, interval=2.0)
    return 0
