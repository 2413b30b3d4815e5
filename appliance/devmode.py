"""`nvr run`: the appliance in development mode on the simulated board.

The composition root for development: reads the `sim` board profile, generates the
simulated cameras' clips once into <var>/cache, starts their RTSP server (a real
gst-rtsp-server process), records them into <var>/data with a live console status, and
serves the web API (playback so far) on http://127.0.0.1:8080 (the next free port if
taken). Ctrl-C stops the web server, the recorder (closing segments cleanly), then the
cameras.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from appliance.cli import run_until_signalled
from appliance.config.recorder import CameraConfig, build_settings
from appliance.config.storage import build_storage_settings
from appliance.core.control import ControlServer
from appliance.core.errors import FailedPrecondition, InvalidConfig
from appliance.poe.port_choices import choices_path
from appliance.poe.runtime import PoeService, build_manager
from appliance.recorder.service import Recorder
from appliance.recorder.status import render
from appliance.recorder.recording_settings import recording_settings_path
from appliance.storage.retention.overrides import overrides_path
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


DEV_CONFIG = """\
# Vigil NVR development mode (nvr run / make run): the appliance's settings file.
# The simulated cameras are RTSP servers on this computer; on the box, loopback is never
# a camera address, here it is allowed so cameras can be added from the web UI.
[cameras]
allowed_networks = "127.0.0.0/8"

# Recordings (and exports) go into var/data, a plain directory of this computer; the box
# records only onto an initialised data disk.
[storage]
allow_boot_media = true
"""


@dataclass(frozen=True)
class DevPaths:
    """Where development mode keeps what the box keeps on /persist and /run."""
    var: Path

    @property
    def config(self) -> Path:
        return self.var / "config" / "recorder.toml"

    @property
    def registry(self) -> Path:
        return self.var / "config" / "cameras.json"

    @property
    def secrets(self) -> Path:
        return self.var / "secrets" / "cameras"

    @property
    def state(self) -> Path:
        return self.var / "state"

    @property
    def hwd_socket(self) -> Path:
        return self.var / "run" / "hwd.sock"

    @property
    def volumes(self) -> Path:
        return self.var / "config" / "data-volumes.json"

    def web_paths(self):
        from appliance.web.services import WebPaths

        return WebPaths(registry=self.registry, secrets=self.secrets, hwd_state=self.state,
                        hwd_socket=self.hwd_socket, config=self.config, volumes=None,
                        device_key=self.var / "keys" / "device.pem")


def open_dev_registry(paths: DevPaths, licence):
    from appliance.cameras.manage import open_camera_registry

    if not paths.config.exists():
        paths.config.parent.mkdir(parents=True, exist_ok=True)
        paths.config.write_text(DEV_CONFIG, encoding="utf-8")
    elif "[storage]" not in paths.config.read_text(encoding="utf-8"):  # an older var/
        with open(paths.config, "a", encoding="utf-8") as config:
            config.write("\n[storage]\nallow_boot_media = true\n")
    return open_camera_registry(paths.registry, paths.secrets, paths.config,
                                channel_limit=licence.channel_limit)


def adopt_simulated_cameras(registry, cameras: list[CameraConfig], ports: list[str]) -> None:
    """Register the simulated cameras the way PoE auto-adoption registers cameras found on
    the box's ports ("Port 1", ...), once: a camera the owner removed stays removed."""
    from appliance.cameras.manage import add_camera, rtsp_camera

    known = {cam.id: cam for cam in registry.cameras()}
    adopted = registry.path.with_name("dev-adopted.json")
    done = set(json.loads(adopted.read_text())) if adopted.exists() else set()
    for cam, port in zip(cameras, ports):
        old = known.get(cam.name)
        if old is not None and cam.name in done and old.main.uri != cam.url:
            registry.remove(cam.name)  # the simulated cameras moved to another port
        elif old is not None or cam.name in done:
            continue
        add_camera(registry, rtsp_camera(cam.name, f"{port} (simulated)", cam.url), None)
        registry.set_poe_port(cam.name, port)
        if old is not None and not old.enabled:
            registry.set_enabled(cam.name, False)
        done.add(cam.name)
    adopted.write_text(json.dumps(sorted(done)), encoding="utf-8")


def dev_camera_events(paths: DevPaths, registry):
    """ONVIF event subscriptions for the registry's ONVIF cameras (the simulated cameras
    are RTSP only: they have none; a camera added by ONVIF address gets one)."""
    from appliance.cameras.manage import address_policy, load_camera_settings
    from appliance.events.receiver import receiver_for
    from appliance.events.service import EventService

    def build(index):
        settings = load_camera_settings(paths.config)
        policy = address_policy(settings, this_host=True)
        return EventService(index, lambda: registry, policy, receiver=receiver_for(settings))
    return build


def dev_mqtt(paths: DevPaths):
    """Events to an MQTT broker, when var/config/mqtt.json exists (docs/design/mqtt.md);
    the broker's login in var/secrets/mqtt (`nvr mqtt credentials --secrets ...`)."""
    from appliance.mqtt.service import MqttPaths, MqttService, box_identity
    from appliance.mqtt.settings import settings_path

    settings = settings_path(paths.config)
    if not settings.exists():
        return None
    return MqttService(MqttPaths(settings=settings, secrets=paths.secrets.parent / "mqtt",
                                 data_dir=paths.var / "data", hwd_state=paths.state,
                                 fallback_queue=paths.var / "run" / "mqtt-queue.sqlite3",
                                 allow_boot_media=True), box_identity("sim"))


def dev_restream(paths: DevPaths, registry):
    """The restream of the registry's cameras on loopback, a port the system picks
    (docs/design/restream.md); its login in var/secrets/restream/login.json."""
    from appliance.restream.login import RestreamLogin
    from appliance.restream.supervisor import RestreamSupervisor

    return RestreamSupervisor(registry, RestreamLogin(paths.secrets.parent / "restream" /
                                                      "login.json"),
                              "127.0.0.1", 0, log_path=paths.var / "restream.log")


def restream_line(restream) -> str:
    from appliance.restream.plan import restream_url

    user = restream.login.require().username
    urls = [restream_url("127.0.0.1", restream.port, m.path, user) for m in restream.mounts]
    return (f"restream for a VMS: {', '.join(urls) or 'no cameras'} (the password is in "
            f"{restream.login.path})")


def live_url_from(registry):
    """camera name -> the stream live view opens (sub stream when there is one)."""
    from appliance.cameras.manage import live_stream_url

    return lambda name: live_stream_url(registry, name)


def dev_control_handlers(paths: DevPaths, poe_manager) -> dict:
    """vigil-hwd's commands as development mode serves them (one process, no root)."""
    from appliance.fleet_control import control_handlers as fleet_handlers
    from appliance.poe.control import control_handlers as poe_handlers
    from appliance.poe.port_choices import PortChoices
    from appliance.storage.control import control_handlers as storage_handlers
    from appliance.system.backends import SandboxSystem
    from appliance.system.control import control_handlers as system_handlers
    from appliance.system.paths import SystemPaths

    handlers = {**poe_handlers(poe_manager, PortChoices(choices_path(paths.config.parent))),
                **storage_handlers(paths.volumes, paths.state, inventory=lambda: [])}

    handlers.update(system_handlers(SandboxSystem(paths.var / "system"), SystemPaths(
        config_dir=paths.config.parent, camera_secrets=paths.secrets,
        adoption_secrets=paths.secrets.parent / "adoption", mqtt_secrets=paths.secrets.parent / "mqtt",
        data_dir=None,   # the recorder runs in this process: a reset never moves its files
        tls_dir=None, recorder_defaults=None)))
    handlers.update(fleet_handlers(paths.config.parent, paths.secrets.parent,
                                   SandboxSystem(paths.var / "system").run))

    def no_disks(args: dict) -> dict:
        return {"disks": [], "note": "Development mode records into ./var/data; on the box "
                "this lists its USB and SATA disks to initialise."}
    handlers["disks.list"] = no_disks

    def no_slots():
        raise FailedPrecondition("development mode has no A/B slots: updates install on the "
                                 "appliance image (make image, then make bundle)")

    from appliance.update.control import control_handlers as update_handlers

    handlers.update(update_handlers(no_slots, paths.var / "data" / "update-upload"))
    return handlers


def scrape_token_file(paths: DevPaths) -> Path:
    """The Prometheus scrape token's file, made now so a developer can read it at once."""
    from appliance.metrics.access import ScrapeToken, token_path

    path = token_path(paths.config)
    ScrapeToken(path).ensure()
    return path


class WebServer:
    """The web app on waitress in a background thread (loopback only)."""

    def __init__(self, data_dir: Path, port: int, accounts_path: Path, licence,
                 live_url, paths=None) -> None:
        from waitress.server import create_server

        from appliance.web.accounts import AccountStore
        from appliance.web.app import create_app

        self.accounts = AccountStore(accounts_path)
        app = create_app(data_dir, self.accounts, licence=lambda: licence,
                         live_url=live_url, paths=paths)
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
    sim_configs = [CameraConfig(f"cam{i + 1}", server.url(sim.mount))
                   for i, sim in enumerate(sims)]
    paths = DevPaths(var)
    # Development records into ./var/data, a plain directory: allowed here, never on the box.
    storage = build_storage_settings({"allow_boot_media": True})
    licence = licence_store(profile, var / "licence" / "licence.txt")
    registry = open_dev_registry(paths, licence)
    poe_manager, _ = build_manager(profile, choices=choices_path(paths.config.parent))
    adopt_simulated_cameras(registry, sim_configs,
                            [port.label for port in poe_manager.layout.ports])
    recorder = Recorder(var / "data", registry.recorder_configs(), build_settings({}),
                        storage=storage, channel_limit=licence.channel_limit,
                        camera_source=registry.recorder_configs,
                        retention_overrides=overrides_path(paths.config),
                        recording_settings=recording_settings_path(paths.config),
                        events_factory=dev_camera_events(paths, registry))
    tty = sys.stdout.isatty()
    web = WebServer(var / "data", web_port if port_is_free(web_port) else 0,
                    var / "accounts.sqlite3", licence, live_url_from(registry),
                    paths.web_paths())
    poe = PoeService(poe_manager, paths.state)
    control = ControlServer(paths.hwd_socket, dev_control_handlers(paths, poe_manager))
    mqtt = dev_mqtt(paths)
    restream = dev_restream(paths, registry)
    configs = registry.recorder_configs()

    def start() -> None:
        server.start()
        recorder.start()
        poe.start()
        control.start()
        web.start()
        if mqtt:
            mqtt.start()
        restream.start()
        print(restream_line(restream), flush=True)
        print(f"web API: {web.url}/api/v1/cameras/cam1/timeline", flush=True)
        print(f"Prometheus metrics: {web.url}/metrics with `Authorization: Bearer <token>`; "
              f"the token is in {scrape_token_file(paths)} (or GET /api/v1/metrics/token "
              "as admin)", flush=True)
        if web.accounts.setup_needed():
            print(f"no admin yet (there is no default password): POST {web.url}/api/v1/setup "
                  '{"username": ..., "password": ...}', flush=True)
        print(f"board: {profile['board']['name']}; cameras: "
              + ", ".join(f"{c.name}={c.url}" for c in configs), flush=True)
        print(f"recording to {var / 'data'}; list with: nvr segments --data {var / 'data'}",
              flush=True)

    def tick() -> None:
        views = recorder.tick()
        if mqtt:
            mqtt.tick()
        restream.tick()
        prefix = "\x1b[H\x1b[J" if tty else ""
        print(prefix + f"Vigil NVR development mode (Ctrl-C stops), data: {var / 'data'}\n"
              + render(views) + "\n" + poe_line(poe_manager) + "\n", flush=True)

    def stop() -> None:
        try:
            if mqtt:
                mqtt.stop()
            restream.stop()
            web.stop()
            control.close()
            poe.close()
            recorder.stop()
        finally:
            server.stop()
        print("stopped cleanly", flush=True)

    run_until_signalled(start, tick, stop, interval=2.0)
    return 0
