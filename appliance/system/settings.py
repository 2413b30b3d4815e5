"""The box's settings model: host name, time (zone, NTP, servers) and the LAN address.

Stored whole and atomically as /persist/config/system.json; vigil-hwd is the only
writer. Every value is checked before it is stored or reaches a configuration file or
an argument list, because these are exactly the fields through which other recorders
were taken over (Hikvision CVE-2021-36260, PTZOptics CVE-2024-8957: a host name or an
NTP server passed to a shell; security.md A1):

* the host name is one RFC 1123 label (letters, digits, inner '-'; 1-63; not only
  digits), kept in lower case;
* the time zone is a name from the box's zoneinfo database (timezones.py);
* NTP servers are IP literals (no IPv6 zone index) or DNS names of RFC 1123 labels,
  at most four;
* the LAN is DHCP or one static IPv4 address with its prefix, an optional gateway in
  that subnet and up to three DNS servers, parsed with `ipaddress`. A static setting
  that would cut the owner off is refused with the reason: a gateway outside the
  subnet, a DNS server out of reach without a gateway, or (when the caller says where
  the request came from) an owner whose computer is not in the new subnet, unless they
  confirm that a router connects the two.

Unknown keys and wrong types are refused, never ignored: a typo must not silently keep
the old value.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from appliance.core.errors import DataLoss, FailedPrecondition, InvalidConfig
from appliance.core.files import atomic_write
from appliance.system.timezones import SYSTEM_ZONEINFO, check_zone

FORMAT_VERSION = 1
LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
MAX_NTP_SERVERS = 4
MAX_DNS_SERVERS = 3
PREFIX_RANGE = (8, 30)
MODES = ("dhcp", "static")
DEFAULT_HOSTNAME = "vigil"


def _text(value: Any, what: str, limit: int = 253) -> str:
    if not isinstance(value, str):
        raise InvalidConfig(f"{what}: expected text, got {type(value).__name__}")
    if len(value) > limit:
        raise InvalidConfig(f"{what}: longer than {limit} characters")
    return value


def _shown(value: str) -> str:
    return repr(value[:60])


def check_hostname(value: Any) -> str:
    """One RFC 1123 label in lower case ('Garage-NVR' -> 'garage-nvr')."""
    name = _text(value, "host name", 63).lower()
    if not name:
        raise InvalidConfig("host name: give a name of 1-63 letters, digits or '-'")
    if not LABEL.fullmatch(name):
        raise InvalidConfig(f"host name {_shown(value)}: use 1-63 letters a-z, digits and '-' "
                            "(not at the start or the end); no dots, spaces or other signs")
    if name.isdigit():
        raise InvalidConfig(f"host name {_shown(value)}: a name of digits only looks like an "
                            "address; add a letter")
    if name == "localhost":
        raise InvalidConfig("host name: 'localhost' is reserved for the machine itself")
    return name


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if "%" in value:  # an IPv6 zone index: ipaddress accepts any text after it
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def check_server_name(value: Any, what: str) -> str:
    """An IP literal or a DNS name (RFC 1123 labels, at most 253 characters)."""
    text = _text(value, what, 253)
    address = _ip(text)
    if address is not None:
        if address.is_unspecified or address.is_multicast or address.is_loopback:
            raise InvalidConfig(f"{what} {_shown(text)}: not an address a server can have")
        return address.compressed
    name = text.lower()
    labels = name.split(".")
    if not name or not all(LABEL.fullmatch(label) for label in labels):
        raise InvalidConfig(f"{what} {_shown(text)}: give a host name (such as pool.ntp.org) "
                            "or an IP address")
    if labels[-1].isdigit():
        raise InvalidConfig(f"{what} {_shown(text)}: not a valid IP address")
    return name


def _list(value: Any, what: str, limit: int) -> list:
    if not isinstance(value, list):
        raise InvalidConfig(f"{what}: expected a list, got {type(value).__name__}")
    if len(value) > limit:
        raise InvalidConfig(f"{what}: at most {limit}")
    return value


def _unique(items: list[str], what: str) -> tuple[str, ...]:
    if len(set(items)) != len(items):
        raise InvalidConfig(f"{what}: a server is listed twice")
    return tuple(items)


def _check_keys(values: Mapping[str, Any], known: tuple[str, ...], section: str) -> None:
    if not isinstance(values, Mapping):
        raise InvalidConfig(f"{section}: expected an object of settings, got "
                            f"{type(values).__name__}")
    unknown = sorted(str(k)[:40] for k in set(values) - set(known))
    if unknown:
        raise InvalidConfig(f"{section}: unknown setting(s) {', '.join(unknown)}; known: "
                            f"{', '.join(known)}")


@dataclass(frozen=True)
class TimeSettings:
    timezone: str = "UTC"                # a zone of the box's zoneinfo database
    ntp: bool = True                     # keep the clock right with NTP (systemd-timesyncd)
    ntp_servers: tuple[str, ...] = ()    # empty: the servers DHCP gives, else the image's

    KEYS = ("timezone", "ntp", "ntp_servers")

    def to_json(self) -> dict[str, Any]:
        return {"timezone": self.timezone, "ntp": self.ntp, "ntp_servers": list(self.ntp_servers)}

    @classmethod
    def build(cls, values: Mapping[str, Any], zoneinfo: Path = SYSTEM_ZONEINFO) -> TimeSettings:
        _check_keys(values, cls.KEYS, "time")
        zone = check_zone(values.get("timezone", "UTC"), zoneinfo)
        ntp = values.get("ntp", True)
        if not isinstance(ntp, bool):
            raise InvalidConfig("time.ntp: expected true or false")
        servers = [check_server_name(s, "NTP server")
                   for s in _list(values.get("ntp_servers", []), "NTP servers", MAX_NTP_SERVERS)]
        return cls(zone, ntp, _unique(servers, "NTP servers"))


@dataclass(frozen=True)
class NetworkSettings:
    mode: str = "dhcp"               # "dhcp" or "static"
    address: str = ""                # static: "192.168.1.20/24"
    gateway: str = ""                # static, optional: the router, inside the subnet
    dns: tuple[str, ...] = ()        # static: DNS servers

    KEYS = ("mode", "address", "gateway", "dns")

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "address": self.address, "gateway": self.gateway,
                "dns": list(self.dns)}

    def summary(self) -> str:
        if self.mode == "dhcp":
            return "DHCP"
        parts = [f"static {self.address}"]
        if self.gateway:
            parts.append(f"gateway {self.gateway}")
        if self.dns:
            parts.append("DNS " + " ".join(self.dns))
        return ", ".join(parts)

    @classmethod
    def build(cls, values: Mapping[str, Any], client: str | None = None,
              confirm_other_subnet: bool = False) -> NetworkSettings:
        """Checked settings; `client`: the address the change request came from."""
        _check_keys(values, cls.KEYS, "network")
        mode = values.get("mode", "dhcp")
        if mode not in MODES:
            raise InvalidConfig(f"network.mode: {_shown(str(mode))} is not one of dhcp, static")
        if mode == "dhcp":  # nothing else applies (an old static address is dropped)
            given = [k for k in ("address", "gateway", "dns") if values.get(k) not in
                     (None, "", [], ())]
            if given:
                raise InvalidConfig(f"network: with DHCP the router gives the "
                                    f"{', '.join(given)}; leave {'them' if len(given) > 1 else 'it'}"
                                    " out or choose a fixed address")
            return cls()
        interface = _static_interface(values.get("address", ""))
        subnet = interface.network
        gateway = _gateway(values.get("gateway", ""), interface)
        dns = []
        for item in _list(values.get("dns", []), "DNS servers", MAX_DNS_SERVERS):
            server = _ip(_text(item, "DNS server", 45))
            if server is None:
                raise InvalidConfig(f"DNS server {_shown(item)}: give an IP address")
            if server.is_unspecified or server.is_multicast or server.is_loopback:
                raise InvalidConfig(f"DNS server {server}: not an address a server can have")
            if gateway is None and server.version == 4 and server not in subnet:
                raise InvalidConfig(f"DNS server {server} is outside {subnet} and there is no "
                                    "gateway to reach it: add the gateway or use a DNS server "
                                    "in the subnet")
            dns.append(server.compressed)
        _check_owner_reach(client, interface, confirm_other_subnet)
        return cls("static", interface.with_prefixlen, gateway.compressed if gateway else "",
                   _unique(dns, "DNS servers"))


def _static_interface(value: Any) -> ipaddress.IPv4Interface:
    text = _text(value, "network.address", 40)
    if not text:
        raise InvalidConfig("network.address: a static setting needs the box's address with "
                            "its prefix, such as 192.168.1.20/24")
    if "/" not in text:
        raise InvalidConfig(f"network.address {_shown(text)}: add the prefix length, such as "
                            "/24 (subnet mask 255.255.255.0)")
    if ":" in text:
        raise InvalidConfig("network.address: static addresses are IPv4; IPv6 configures "
                            "itself from the router's advertisements")
    try:
        interface = ipaddress.IPv4Interface(text)
    except ValueError:
        raise InvalidConfig(f"network.address {_shown(text)}: not an IPv4 address with a "
                            "prefix, such as 192.168.1.20/24") from None
    low, high = PREFIX_RANGE
    if not low <= interface.network.prefixlen <= high:
        raise InvalidConfig(f"network.address {text}: the prefix must be /{low} to /{high}")
    ip = interface.ip
    if ip.is_loopback or ip.is_multicast or ip.is_unspecified or ip.is_reserved \
            or ip.is_link_local or ip in ipaddress.IPv4Network("0.0.0.0/8"):
        raise InvalidConfig(f"network.address {ip}: this address cannot be a device's address "
                            "on a LAN")
    if ip in (interface.network.network_address, interface.network.broadcast_address):
        raise InvalidConfig(f"network.address {ip}: the first and the last address of "
                            f"{interface.network} are not usable by a device")
    return interface


def _gateway(value: Any, interface: ipaddress.IPv4Interface) -> ipaddress.IPv4Address | None:
    text = _text(value, "network.gateway", 40)
    if not text:
        return None
    gateway = _ip(text)
    if gateway is None or gateway.version != 4:
        raise InvalidConfig(f"network.gateway {_shown(text)}: give the router's IPv4 address")
    subnet = interface.network
    if gateway not in subnet:
        raise InvalidConfig(f"network.gateway {gateway} is outside the box's subnet {subnet}: "
                            "the box could not reach it, and nobody outside the subnet could "
                            "reach the box")
    if gateway == interface.ip:
        raise InvalidConfig(f"network.gateway {gateway} is the box's own address")
    if gateway in (subnet.network_address, subnet.broadcast_address):
        raise InvalidConfig(f"network.gateway {gateway}: the first and the last address of "
                            f"{subnet} are not usable by a router")
    return gateway


def _check_owner_reach(client: str | None, interface: ipaddress.IPv4Interface,
                       confirmed: bool) -> None:
    """Refuse a subnet the owner's own computer is not in (unless they say a router
    connects the two); a loopback or IPv6 client says nothing about the LAN."""
    address = _ip(client or "")
    if address is None or address.is_loopback:
        return
    if isinstance(address, ipaddress.IPv6Address):
        address = address.ipv4_mapped
        if address is None:
            return
    if address in interface.network or confirmed:
        return
    raise InvalidConfig(f"your computer ({address}) is not in {interface.network}: after this "
                        f"change it could no longer reach the box at {interface.ip}. Use an "
                        "address in your own subnet, or confirm that a router connects the two "
                        "networks")


@dataclass(frozen=True)
class SystemSettings:
    hostname: str = DEFAULT_HOSTNAME
    time: TimeSettings = field(default_factory=TimeSettings)
    network: NetworkSettings = field(default_factory=NetworkSettings)

    KEYS = ("version", "hostname", "time", "network")

    def to_json(self) -> dict[str, Any]:
        return {"version": FORMAT_VERSION, "hostname": self.hostname,
                "time": self.time.to_json(), "network": self.network.to_json()}

    def dumps(self) -> bytes:
        return (json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: Any, zoneinfo: Path = SYSTEM_ZONEINFO) -> SystemSettings:
        """The settings in a stored file (or a backup): everything checked again."""
        _check_keys(data, cls.KEYS, "system settings")
        version = data.get("version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise InvalidConfig(f"system settings: format version {version!r} is not "
                                f"{FORMAT_VERSION} (made by another Vigil version)")
        return cls(check_hostname(data.get("hostname", DEFAULT_HOSTNAME)),
                   TimeSettings.build(data.get("time", {}), zoneinfo),
                   NetworkSettings.build(data.get("network", {})))

    def updated(self, changes: Mapping[str, Any], *, client: str | None = None,
                confirm_other_subnet: bool = False,
                zoneinfo: Path = SYSTEM_ZONEINFO) -> SystemSettings:
        """A partial update: {"hostname": ...}, {"time": {some fields}}, {"network": {...}};
        the fields not given keep their values; the result is checked as a whole."""
        _check_keys(changes, ("hostname", "time", "network"), "changes")
        result = self
        if "hostname" in changes:
            result = replace(result, hostname=check_hostname(changes["hostname"]))
        if "time" in changes:
            part = changes["time"]
            _check_keys(part, TimeSettings.KEYS, "time")
            result = replace(result, time=TimeSettings.build(
                {**self.time.to_json(), **part}, zoneinfo))
        if "network" in changes:
            part = changes["network"]
            _check_keys(part, NetworkSettings.KEYS, "network")
            merged = {**self.network.to_json(), **part}
            if part.get("mode") == "dhcp":  # the old static values go; new ones are refused
                merged = dict(part)
            result = replace(result, network=NetworkSettings.build(
                merged, client, confirm_other_subnet))
        return result


def load_settings(path: Path, zoneinfo: Path = SYSTEM_ZONEINFO,
                  default: SystemSettings | None = None) -> SystemSettings:
    """The stored settings; `default` (or the defaults) when there is no file yet."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return default or SystemSettings()
    except OSError as exc:
        raise DataLoss(f"{path}: the system settings cannot be read ({exc.strerror})") from None
    try:
        return SystemSettings.from_json(json.loads(raw), zoneinfo)
    except (ValueError, InvalidConfig) as exc:
        raise DataLoss(f"{path}: the system settings are damaged ({exc})") from None


def save_settings(path: Path, settings: SystemSettings) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, settings.dumps(), mode=0o644)
    except OSError as exc:
        raise FailedPrecondition(f"the settings could not be saved ({exc.strerror or exc}); "
                                 "the persist partition may be full or read-only") from None
