"""The owner's MQTT broker: `mqtt.json` beside the appliance TOML, and its login.

Read strictly like the other owner files (appliance/config/owner_file.py): a format
number, unknown keys refused, every value checked with its bounds, and a message that
names the setting. The broker's user name and password are not in this file: they are
kept like the cameras' credentials (one file of mode 0600 in a directory of mode 0700,
never logged: appliance/cameras/credentials.py), under the name `broker`.

    {"format": 1, "enabled": true, "host": "mqtt.example.lan", "tls": true,
     "ca_file": "/persist/config/mqtt-ca.pem"}
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.cameras.credentials import CredentialStore, Credentials
from appliance.config.model import load_section, setting
from appliance.config.owner_file import checked, read_owner_file
from appliance.core.errors import InvalidConfig

SETTINGS_NAME = "mqtt.json"
FORMAT = 1
WHAT = "the MQTT settings"
SECTION = "mqtt"
CREDENTIALS_ID = "broker"
TLS_PORT, PLAIN_PORT = 8883, 1883
# \Z, not $: "$" also matches before a final newline ("mqtt.lan\n" is no host name).
HOST_NAME = re.compile(r"^(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z")
# A last label of digits only makes a number, not a name: the C resolver reads "10.1" or
# "2130706433" as an IPv4 address in an old short form.
NUMERIC_LAST_LABEL = re.compile(r"(^|\.)[0-9]+\Z")
# A topic level of our own making: no wildcards, no empty levels, printable ASCII.
TOPIC_LEVEL = re.compile(r"^[A-Za-z0-9._~-]{1,64}\Z")
MAX_TOPIC_LEVELS = 8


@dataclass(frozen=True)
class MqttSettings:
    enabled: bool = setting(False, "publish the box's events to the broker")
    host: str = setting("", "the broker's host name or IP address (required when enabled)")
    port: int = setting(0, "the broker's port; 0: 8883 with TLS, 1883 without",
                        low=0, high=65535)
    tls: bool = setting(True, "TLS to the broker; its certificate and name are verified")
    ca_file: str = setting("", "PEM file of the CA that signed the broker's certificate "
                               "(absolute path); empty: the system's CAs")
    topic_prefix: str = setting("", "every topic starts with this; empty: vigil/<host name>")
    discovery: bool = setting(True, "announce cameras and health to Home Assistant "
                                    "(MQTT discovery)")
    discovery_prefix: str = setting("homeassistant", "Home Assistant's discovery prefix")
    keepalive_s: int = setting(60, "seconds between keep-alive pings to the broker",
                               low=10, high=3600)
    retry_max_s: float = setting(30.0, "longest wait between two connection attempts "
                                       "(doubling from 1 s, with jitter)", low=1.0, high=3600.0)
    queue_max_events: int = setting(10000, "events kept on disk while the broker is away; "
                                           "beyond, the oldest are dropped and counted",
                                    low=100, high=1_000_000)

    def validate(self) -> None:
        if self.host and not valid_host(self.host):
            raise InvalidConfig(f"{SECTION}.host: {self.host[:60]!r} is not a host name or "
                                "IP address")
        if self.enabled and not self.host:
            raise InvalidConfig(f"{SECTION}.host: give the broker's host name or address "
                                "(or set enabled to false)")
        if self.ca_file and not self.tls:
            raise InvalidConfig(f"{SECTION}.ca_file: only used with TLS; set tls to true "
                                "or remove ca_file")
        if self.ca_file and not Path(self.ca_file).is_absolute():
            raise InvalidConfig(f"{SECTION}.ca_file: give an absolute path, not "
                                f"{self.ca_file[:60]!r}")
        if self.topic_prefix:
            check_topic(self.topic_prefix, "topic_prefix")
        check_topic(self.discovery_prefix, "discovery_prefix")

    @property
    def effective_port(self) -> int:
        return self.port or (TLS_PORT if self.tls else PLAIN_PORT)

    def prefix(self, hostname: str) -> str:
        """The topic prefix in force: the owner's, else vigil/<host name>."""
        return self.topic_prefix or f"vigil/{topic_safe(hostname)}"


def valid_host(text: str) -> bool:
    """An IP address, or a DNS name that cannot be read as a number."""
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return bool(HOST_NAME.match(text)) and not NUMERIC_LAST_LABEL.search(text)


def check_topic(text: str, name: str) -> None:
    """A prefix is levels joined by '/': no wildcards (+ #), no empty level, no '$' start
    (reserved for the broker's own topics)."""
    levels = text.split("/")
    if len(levels) > MAX_TOPIC_LEVELS or not all(TOPIC_LEVEL.match(level) for level in levels):
        raise InvalidConfig(f"{SECTION}.{name}: {text[:80]!r} must be 1-{MAX_TOPIC_LEVELS} "
                            "levels joined by '/', each of letters, digits, '.', '_', '~' "
                            "or '-' (no wildcards, no empty level)")


def topic_safe(text: str) -> str:
    """A host name as one topic level (a name from DHCP may hold anything)."""
    cleaned = re.sub(r"[^A-Za-z0-9._~-]", "-", text)[:64].strip("-")
    return cleaned or "box"


def settings_path(config_path: Path) -> Path:
    """Where the owner's MQTT settings live: beside the appliance TOML."""
    return Path(config_path).with_name(SETTINGS_NAME)


def parse_settings(values: Any) -> MqttSettings:
    """Settings from a JSON object (without `format`); InvalidConfig names the bad value."""
    if not isinstance(values, dict):
        raise InvalidConfig(f"{SECTION}: expected an object of settings")
    return load_section(MqttSettings, values, SECTION)


def load_settings(path: Path) -> MqttSettings:
    """The owner's settings; switched off when there is no file; DataLoss (naming the file
    and the bad value) when it is damaged."""
    data = read_owner_file(path, WHAT, FORMAT)
    if data is None:
        return MqttSettings()
    values = {key: value for key, value in data.items() if key != "format"}
    return checked(path, WHAT, lambda: parse_settings(values))


def load_credentials(secrets_dir: Path) -> Credentials | None:
    """The broker's user name and password, if the owner gave them."""
    return CredentialStore(secrets_dir).get(CREDENTIALS_ID)


def save_credentials(secrets_dir: Path, credentials: Credentials) -> None:
    CredentialStore(secrets_dir).put(CREDENTIALS_ID, credentials)


def delete_credentials(secrets_dir: Path) -> None:
    CredentialStore(secrets_dir).delete(CREDENTIALS_ID)


def this_hostname() -> str:
    return socket.gethostname()
