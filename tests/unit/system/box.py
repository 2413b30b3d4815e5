"""A box's persist partition and data disk in a directory, with vigil-hwd's system
commands served on a real control socket (sandbox OS backend), for the system tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

from appliance.cameras.credentials import CredentialStore, Credentials
from appliance.core.control import ControlClient, ControlServer
from appliance.storage.volume import MARKER
from appliance.system.backends import SandboxSystem
from appliance.system.control import control_handlers
from appliance.system.paths import SystemPaths
from tests.unit.system.backup_files import CAMERA_PASSWORD, config

DEFAULTS = b"[recorder]\nsegment_seconds = 60\n"


class Box:
    """A persist partition, a data disk and vigil-hwd's system commands on a socket."""

    def __init__(self, root: Path) -> None:
        self.root = root
        persist = root / "persist"
        self.paths = SystemPaths(
            config_dir=persist / "config", camera_secrets=persist / "secrets" / "cameras",
            adoption_secrets=persist / "secrets" / "adoption",
            mqtt_secrets=persist / "secrets" / "mqtt", data_dir=root / "srv" / "data",
            tls_dir=persist / "tls", recorder_defaults=root / "etc" / "recorder.toml.example",
            default_hostname="vigil-0042")
        cfg = config()
        self.paths.config_dir.mkdir(parents=True)
        for name in ("recorder.toml", "cameras.json", "data-volumes.json"):
            (self.paths.config_dir / name).write_bytes(cfg[name])
        self.paths.recorder_defaults.parent.mkdir(parents=True)
        self.paths.recorder_defaults.write_bytes(DEFAULTS)
        CredentialStore(self.paths.camera_secrets).put("door", Credentials("admin",
                                                                           CAMERA_PASSWORD))
        CredentialStore(self.paths.adoption_secrets).put("default", Credentials("admin",
                                                                                "Def4ult9"))
        (persist / "licence").mkdir()
        (persist / "licence" / "licence.txt").write_text("LICENCE")
        (persist / "keys").mkdir()
        (persist / "keys" / "device.pem").write_text("DEVICE KEY")
        self.paths.tls_dir.mkdir()
        (self.paths.tls_dir / "key.pem").write_text("TLS KEY")
        (self.paths.tls_dir / "cert.pem").write_text("TLS CERT")
        data = self.paths.data_dir
        (data / "recordings" / "door" / "2026-11-23" / "14").mkdir(parents=True)
        (data / "recordings" / "door" / "2026-11-23" / "14" / "seg.mp4").write_bytes(b"video")
        (data / "index.sqlite3").write_bytes(b"index")
        (data.parent / MARKER).write_text('{"volume_id": "v1", "format": 1}')
        (data / MARKER).write_text('{"volume_id": "v1", "format": 1}')
        self.sandbox = SandboxSystem(root / "sandbox")
        self.handlers = control_handlers(self.sandbox, self.paths)
        self.server = ControlServer(root / "hwd.sock", self.handlers).start()
        self.client = ControlClient(root / "hwd.sock")

    @property
    def service(self):
        return self.handlers["system.get"].__self__

    def call(self, command: str, **args):
        return self.client.call(command, **args)

    def persist_state(self) -> dict[str, str]:
        """Every file on the persist partition and the data disk, by content hash."""
        found = {}
        for top in (self.root / "persist", self.root / "srv", self.root / "sandbox" / "run"):
            for path in sorted(top.rglob("*")):
                if path.is_file() and not path.name.endswith(".lock"):
                    found[str(path.relative_to(self.root))] = hashlib.sha256(
                        path.read_bytes()).hexdigest()
        return found

    def close(self) -> None:
        self.server.close()
