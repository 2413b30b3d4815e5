"""Who is on the camera network: the kernel's neighbour table and dnsmasq's lease file.

PoE auto-adoption (adoption.py) watches the network behind the PoE switch for devices
that appear after a port powers up. Two cheap, passive views serve it:

* the kernel neighbour table of the camera interface: `ip -j neigh show dev IFACE`
  (iproute2's JSON: netlink, no extra privileges), or `/proc/net/arp` where `ip` is
  missing. A complete view: every device the box exchanged traffic with, with a state
  (REACHABLE, STALE... or FAILED/INCOMPLETE when it stopped answering);
* the dnsmasq lease file (one line per lease: `<expiry> <mac> <ip> <hostname|*>
  <client-id|*>`), when the box serves DHCP on the camera network: a line that is new or
  whose expiry changed means the device just did DHCP (it booted, or renewed).

Everything read here is untrusted text: input is capped (bytes and entries), lines that
do not parse are skipped, and MAC addresses are normalised (lower case, colons) with
all-zero, broadcast and multicast addresses dropped.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from appliance.core.errors import Unavailable

log = logging.getLogger(__name__)

MAX_BYTES = 1 << 20          # 1 MiB of `ip` output or file text
MAX_ENTRIES = 4096
IP_TIMEOUT_S = 2.0
PROC_ARP = Path("/proc/net/arp")
DNSMASQ_LEASES = Path("/var/lib/misc/dnsmasq.leases")   # Debian's default

# Neighbour states in which the entry names a device that is (or recently was) there.
USABLE_STATES = frozenset({"REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT"})
ATF_COM = 0x2                # /proc/net/arp flags: entry complete
ATF_PERM = 0x4
MAC_RE = re.compile(r"^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$")

Runner = Callable[..., subprocess.CompletedProcess]


@dataclass(frozen=True)
class Neighbour:
    """One neighbour table entry (IPv4 or IPv6)."""

    ip: str
    mac: str                 # normalised aa:bb:cc:dd:ee:ff; "" when the entry has none
    state: str               # REACHABLE, STALE, DELAY, PROBE, PERMANENT, FAILED, INCOMPLETE...

    @property
    def usable(self) -> bool:
        return bool(self.mac) and self.state in USABLE_STATES


@dataclass(frozen=True)
class Lease:
    """One dnsmasq DHCP lease."""

    mac: str
    ip: str
    expiry: int              # Unix time; 0 = infinite
    hostname: str = ""


def normal_mac(text: str) -> str:
    """aa:bb:cc:dd:ee:ff, or "" for anything that is not a unicast Ethernet address."""
    raw = re.sub(r"[^0-9a-f]", "", str(text).lower())
    if len(raw) != 12:
        return ""
    mac = ":".join(raw[i:i + 2] for i in range(0, 12, 2))
    if not MAC_RE.match(mac) or raw == "0" * 12 or int(raw[:2], 16) & 0x01:
        return ""   # all-zero (incomplete), broadcast or multicast
    return mac


def _ip(text: object) -> str:
    try:
        return str(ipaddress.ip_address(str(text).split("%")[0]))
    except ValueError:
        return ""


def parse_ip_neigh_json(text: str | bytes) -> list[Neighbour]:
    """`ip -j neigh show dev IFACE` output. Raises ValueError when it is not JSON."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if len(text) > MAX_BYTES:
        raise ValueError(f"more than {MAX_BYTES} bytes of neighbour entries")
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError("expected a JSON list of neighbour entries")
    found = []
    for entry in data[:MAX_ENTRIES]:
        if not isinstance(entry, dict):
            continue
        ip = _ip(entry.get("dst", ""))
        if not ip:
            continue
        states = entry.get("state") or []
        if isinstance(states, str):
            states = [states]
        state = str(states[0]).upper() if states else "NONE"
        mac = normal_mac(entry.get("lladdr", "")) if entry.get("lladdr") else ""
        found.append(Neighbour(ip, mac, state))
    return found


def parse_proc_net_arp(text: str, interface: str) -> list[Neighbour]:
    """`/proc/net/arp` (IPv4 only), the entries of `interface`. Flags: 0x2 complete,
    0x4 permanent; anything else is reported as INCOMPLETE."""
    found = []
    for line in text[:MAX_BYTES].splitlines()[1:MAX_ENTRIES + 1]:
        parts = line.split()
        if len(parts) < 6 or parts[5] != interface:
            continue
        ip = _ip(parts[0])
        try:
            flags = int(parts[2], 16)
        except ValueError:
            continue
        if not ip:
            continue
        mac = normal_mac(parts[3])
        if flags & ATF_PERM:
            state = "PERMANENT"
        elif flags & ATF_COM and mac:
            state = "REACHABLE"   # /proc does not say REACHABLE from STALE
        else:
            state = "INCOMPLETE"
        found.append(Neighbour(ip, mac, state))
    return found


def parse_dnsmasq_leases(text: str) -> list[Lease]:
    """dnsmasq's lease file; IPv6 (`duid` line, DUID instead of a MAC) lines are skipped."""
    found = []
    for line in text[:MAX_BYTES].splitlines()[:MAX_ENTRIES]:
        parts = line.split()
        if len(parts) < 3 or parts[0] == "duid":
            continue
        try:
            expiry = int(parts[0])
        except ValueError:
            continue
        mac, ip = normal_mac(parts[1]), _ip(parts[2])
        if not mac or not ip:
            continue
        hostname = parts[3] if len(parts) > 3 and parts[3] != "*" else ""
        found.append(Lease(mac, ip, expiry, hostname[:64]))
    return found


class NeighbourTable:
    """The kernel neighbour table of one interface: `read()` -> list[Neighbour].

    Uses `ip -j neigh show dev IFACE` (2 s deadline); falls back to /proc/net/arp when
    `ip` is not installed. Raises Unavailable when neither can be read (e.g. the
    interface does not exist)."""

    def __init__(self, interface: str, *, run: Runner = subprocess.run,
                 ip_command: Sequence[str] = ("ip",), arp_path: Path = PROC_ARP,
                 timeout: float = IP_TIMEOUT_S) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.:@-]{1,15}", interface or ""):
            raise ValueError(f"not an interface name: {interface!r}")
        self.interface = interface
        self._run = run
        self._ip = tuple(ip_command)
        self._arp = Path(arp_path)
        self._timeout = timeout
        self._use_proc = False

    def __call__(self) -> list[Neighbour]:
        return self.read()

    def read(self) -> list[Neighbour]:
        if not self._use_proc:
            try:
                out = self._run([*self._ip, "-j", "neigh", "show", "dev", self.interface],
                                capture_output=True, timeout=self._timeout, check=False)
            except FileNotFoundError:
                log.info("neighbours: no `ip` command; reading %s instead", self._arp)
                self._use_proc = True
            except subprocess.TimeoutExpired:
                raise Unavailable(f"`ip neigh` did not answer within {self._timeout:g} s") \
                    from None
            else:
                if out.returncode != 0:
                    err = (out.stderr or b"").decode("utf-8", "replace").strip()[:200]
                    raise Unavailable(f"the neighbour table of {self.interface} cannot be "
                                      f"read: {err or 'ip exited with ' + str(out.returncode)}")
                try:
                    return parse_ip_neigh_json(out.stdout or b"[]")
                except ValueError as exc:
                    raise Unavailable(f"`ip -j neigh` gave output that is not JSON ({exc})") \
                        from None
        try:
            with open(self._arp, encoding="ascii", errors="replace") as f:
                text = f.read(MAX_BYTES)
        except OSError as exc:
            raise Unavailable(f"{self._arp} cannot be read ({exc.strerror or exc})") from None
        return parse_proc_net_arp(text, self.interface)


class LeaseFile:
    """dnsmasq's lease file: `read()` -> list[Lease]; a missing file is no leases yet."""

    def __init__(self, path: Path = DNSMASQ_LEASES) -> None:
        self.path = Path(path)

    def __call__(self) -> list[Lease]:
        return self.read()

    def read(self) -> list[Lease]:
        try:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                return parse_dnsmasq_leases(f.read(MAX_BYTES))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise Unavailable(f"{self.path} cannot be read ({exc.strerror or exc})") from None


class MemoryNeighbours:
    """A neighbour table held in memory, for tests and the simulated board: `add`, `remove`,
    `fail` (the kernel's FAILED state), and calling it returns the entries."""

    def __init__(self) -> None:
        self.entries: dict[str, Neighbour] = {}
        self._lock = threading.Lock()

    def add(self, ip: str, mac: str, state: str = "REACHABLE") -> None:
        with self._lock:
            self.entries[ip] = Neighbour(_ip(ip) or ip, normal_mac(mac), state)

    def fail(self, ip: str) -> None:
        with self._lock:
            old = self.entries[ip]
            self.entries[ip] = Neighbour(old.ip, "", "FAILED")

    def remove(self, ip: str) -> None:
        with self._lock:
            self.entries.pop(ip, None)

    def __call__(self) -> list[Neighbour]:
        with self._lock:
            return list(self.entries.values())
