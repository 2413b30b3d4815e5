"""What the web layer is given by its composition root (nvr serve, nvr run, the tests).

Paths to the state other daemons own (the camera registry, vigil-hwd's snapshots and
control socket, the appliance's TOML file) and small accessors the blueprints share. The
web layer reads snapshots and files through the owning package's public functions and
sends commands to vigil-hwd over its control socket; it never writes another daemon's
tables (DESIGN.md, "Processes").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flask import current_app

from appliance.core.control import ControlClient
from appliance.core.errors import Unavailable


@dataclass(frozen=True)
class WebPaths:
    registry: Path | None = None      # cameras.json (the camera registry)
    secrets: Path | None = None       # per-camera credentials (0600 files)
    hwd_state: Path | None = None     # vigil-hwd's snapshots: poe.json, storage, alerts
    hwd_socket: Path | None = None    # vigil-hwd's control socket (commands)
    config: Path | None = None        # the appliance TOML ([recorder] [storage] [cameras] [poe])
    volumes: Path | None = None       # data-volumes.json (initialised data disks)
    tls_dir: Path | None = None       # the web server's certificate and key
    device_key: Path | None = None    # the device key that signs export manifests


def paths() -> WebPaths:
    return current_app.config.get("VIGIL_PATHS") or WebPaths()


def required(name: str) -> Path:
    """One of the paths, or a clear 503 when this server was started without it."""
    value = getattr(paths(), name)
    if value is None:
        raise Unavailable(f"this server was started without {name.replace('_', ' ')} "
                          "(see `nvr serve --help`)")
    return value


def hwd(timeout: float = 15.0) -> ControlClient:
    """vigil-hwd's control socket (PoE commands, disks, system settings)."""
    return ControlClient(required("hwd_socket"), timeout=timeout)
