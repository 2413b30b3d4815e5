"""The files systemd reads, rendered from the settings (pure: no I/O).

The root filesystem is read-only, so everything goes under /run, which systemd's
daemons read next to /etc and /usr/lib (systemd.network(5), timesyncd.conf(5)):

* run/systemd/network/10-vigil-lan.network: the LAN port, DHCP or static. `.network`
  files are taken in lexical order across all directories and the first match wins,
  so `10-` comes before a fallback the image may ship (such as 99-*.network in
  /usr/lib). With DHCP the box keeps its own name (UseHostname=no) and, when the owner
  named NTP servers, does not take the DHCP server's (UseNTP=no).
* run/systemd/timesyncd.conf.d/50-vigil.conf: the owner's NTP servers, when there are
  some; FallbackNTP= gets the same list, because an empty FallbackNTP= does not remove
  the compiled-in pool (systemd/systemd#40621, fixed only in 2026).
* run/vigil/hostname, run/vigil/timezone and the symlink run/vigil/localtime: the image
  links /etc/hostname, /etc/timezone and /etc/localtime to these (docs/design/system.md).

Every value here has passed settings.py; the renderer still refuses a line break in a
value, so no check elsewhere can be bypassed into an extra line of a config file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from appliance.core.errors import InvalidConfig
from appliance.system.settings import SystemSettings
from appliance.system.timezones import SYSTEM_ZONEINFO

NETWORK_FILE = "run/systemd/network/10-vigil-lan.network"
TIMESYNCD_FILE = "run/systemd/timesyncd.conf.d/50-vigil.conf"
HOSTNAME_FILE = "run/vigil/hostname"
TIMEZONE_FILE = "run/vigil/timezone"
LOCALTIME_LINK = "run/vigil/localtime"
INTERFACE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")
HEADER = "# Written by vigil-hwd from /persist/config/system.json at every change and boot;\n" \
         "# edits here are lost. Change the settings on the System page.\n"


@dataclass(frozen=True)
class Rendered:
    files: dict[str, bytes | None]   # path under the root -> content; None: remove the file
    links: dict[str, str]            # path under the root -> symlink target (a path on the box)


def check_interface(name: str) -> str:
    if not isinstance(name, str) or not INTERFACE_NAME.fullmatch(name) or name in (".", ".."):
        raise InvalidConfig(f"LAN interface {str(name)[:20]!r}: not a network interface name")
    return name


def _clean(key: str, value: str) -> str:
    if any(ch in value for ch in "\r\n\0") or value != value.strip():
        raise InvalidConfig(f"{key}: a value with a line break or surrounding spaces cannot be "
                            "written to a configuration file")
    return value


def _line(key: str, value: str) -> str:
    return f"{key}={_clean(key, value)}\n"


def network_file(settings: SystemSettings, interface: str) -> bytes:
    net = settings.network
    lines = [HEADER, "\n[Match]\n", _line("Name", check_interface(interface)), "\n[Network]\n"]
    if net.mode == "dhcp":
        lines.append(_line("DHCP", "ipv4"))
    else:
        lines.append(_line("Address", net.address))
        if net.gateway:
            lines.append(_line("Gateway", net.gateway))
        lines += [_line("DNS", server) for server in net.dns]
    lines.append(_line("IPv6AcceptRA", "yes"))
    if net.mode == "dhcp":
        lines += ["\n[DHCPv4]\n", _line("UseHostname", "no")]
        if settings.time.ntp_servers:
            lines.append(_line("UseNTP", "no"))
    return "".join(lines).encode()


def timesyncd_file(settings: SystemSettings) -> bytes | None:
    """None (no drop-in) when NTP is off or the owner named no servers."""
    time = settings.time
    if not (time.ntp and time.ntp_servers):
        return None
    servers = " ".join(time.ntp_servers)
    return (HEADER + "\n[Time]\n" + _line("NTP", servers) + _line("FallbackNTP", servers)).encode()


def zone_path(zone: str) -> str:
    path = PurePosixPath(SYSTEM_ZONEINFO) / zone
    if ".." in PurePosixPath(zone).parts or PurePosixPath(zone).is_absolute():
        raise InvalidConfig(f"time zone {zone!r} is not a zone name")
    return str(path)


def render(settings: SystemSettings, interface: str) -> Rendered:
    return Rendered(
        files={NETWORK_FILE: network_file(settings, interface),
               TIMESYNCD_FILE: timesyncd_file(settings),
               HOSTNAME_FILE: (_clean("hostname", settings.hostname) + "\n").encode(),
               TIMEZONE_FILE: (_clean("timezone", settings.time.timezone) + "\n").encode()},
        links={LOCALTIME_LINK: zone_path(settings.time.timezone)})
