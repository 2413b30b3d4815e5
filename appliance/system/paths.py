"""Where the system area finds what it manages, given by the composition root (vigil-hwd,
`nvr system apply`, development mode, tests); nothing here opens a fixed path itself."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from appliance.system.timezones import SYSTEM_ZONEINFO


@dataclass(frozen=True)
class SystemPaths:
    config_dir: Path = Path("/persist/config")            # system.json and the other config
    camera_secrets: Path = Path("/persist/secrets/cameras")
    adoption_secrets: Path = Path("/persist/secrets/adoption")
    mqtt_secrets: Path | None = Path("/persist/secrets/mqtt")  # the MQTT broker's login
    data_dir: Path | None = Path("/srv/vigil/data")       # recordings + index (reset: optional)
    tls_dir: Path | None = None                           # the web server's key + certificate
    recorder_defaults: Path | None = Path("/etc/vigil/recorder.toml.example")  # first boot's
    zoneinfo: Path = SYSTEM_ZONEINFO
    lan_interface: str = "eth0"                           # the board's LAN port
    default_hostname: str = "vigil"                       # the name after a factory reset

    @property
    def settings(self) -> Path:
        return self.config_dir / "system.json"

    @property
    def journal(self) -> Path:
        return self.config_dir / ".restore-journal.json"

    def transaction_dirs(self) -> list[Path]:
        return [self.config_dir, self.camera_secrets, self.adoption_secrets,
                *([self.mqtt_secrets] if self.mqtt_secrets else [])]
