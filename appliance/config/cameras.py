"""Camera settings: where cameras may be looked for and how much video the box takes in."""

from __future__ import annotations

import dataclasses
import ipaddress

from appliance.config.model import load_section, setting
from appliance.core.errors import InvalidConfig


@dataclasses.dataclass(frozen=True)
class CameraSettings:
    incoming_budget_mbps: float = setting(
        64.0, "incoming bandwidth budget: main + sub stream bitrates of all enabled cameras "
        "must fit (the board profile sets the box's figure)", low=1, high=10_000)
    assumed_main_kbps: int = setting(
        4096, "bitrate counted for a main stream whose bitrate the camera does not report",
        low=64, high=100_000)
    assumed_sub_kbps: int = setting(
        512, "bitrate counted for a sub stream whose bitrate the camera does not report",
        low=0, high=20_000)
    allowed_networks: str = setting(
        "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16", "comma-separated networks (CIDR) where "
        "cameras may be; discovery results and addresses outside them are never contacted")
    discovery_seconds: float = setting(
        3.0, "how long a WS-Discovery probe listens for answers", low=0.5, high=30)
    event_notify_port: int = setting(
        8086, "port the box listens on (only while a camera without ONVIF PullPoint needs it) "
        "for the events such cameras push (docs/design/events.md)", low=1024, high=65535)
    event_notify_address: str = setting(
        "", "the box's address on the camera network for pushed events; empty: the address "
        "the box itself uses to reach each camera")

    def validate(self) -> None:
        self.networks()
        if self.event_notify_address:
            try:
                ipaddress.ip_address(self.event_notify_address)
            except ValueError:
                raise InvalidConfig(f"[cameras] event_notify_address = "
                                    f"{self.event_notify_address[:60]!r}: not an IP address") from None

    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        try:
            return [ipaddress.ip_network(part.strip(), strict=False)
                    for part in self.allowed_networks.split(",") if part.strip()]
        except ValueError as exc:
            raise InvalidConfig(f"cameras.allowed_networks: {exc}") from None


def build_camera_settings(values: dict) -> CameraSettings:
    return load_section(CameraSettings, values, "cameras")
