"""WS-Discovery: ask the LAN which ONVIF cameras (NetworkVideoTransmitter) are there.

One Probe (SOAP 1.2 over UDP, WS-Discovery 2005/04 as ONVIF uses it) goes to
239.255.255.250:3702 with TTL 1, repeated once after 200 ms because UDP is lossy, and/or
unicast to given addresses (each passes the address policy first). ProbeMatches that
answer our MessageID are collected until the deadline, deduplicated by endpoint
reference. Every datagram is parsed with the hardened parser and a 64 KiB limit, and a
flood stops counting at `max_datagrams`, so a hostile network costs bounded time, memory
and CPU.

Results are suggestions: nothing here connects to an XAddr. Each XAddr carries the
address policy's verdict (`refused`) so the UI can show why a suggestion cannot be
onboarded, and whether it points at the host that answered (`from_sender`).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import uuid
from dataclasses import dataclass, field
from typing import Iterable
from urllib.parse import unquote, urlsplit

from appliance.cameras.onvif.policy import AddressPolicy
from appliance.cameras.onvif.responses import normal_endpoint, normal_mac
from appliance.cameras.onvif.soap import (NS, BadResponse, child, children, clean, local,
                                          parse_xml, text)
from appliance.core.clock import RealClock

log = logging.getLogger(__name__)

MULTICAST_GROUP = "239.255.255.250"
PORT = 3702
MAX_DATAGRAM = 65_535
MAX_DATAGRAM_XML = 64 * 1024
REPEAT_AFTER_S = 0.2
MAX_XADDRS = 8
MAX_SCOPES = 64
ONVIF_SCOPE = "onvif://www.onvif.org/"
PROBE_ACTION = "http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
DISCOVERY_TO = "urn:schemas-xmlsoap-org:ws:2005:04:discovery"


@dataclass(frozen=True)
class XAddr:
    url: str
    refused: str | None      # why the address policy would refuse it; None: acceptable
    from_sender: bool        # its host is the address the answer came from


@dataclass
class DiscoveredDevice:
    """One camera that answered; a suggestion for the owner, never fetched by itself."""

    endpoint: str                        # endpoint reference, urn:uuid:... when a UUID
    sender: str                          # the IP address the ProbeMatch came from
    xaddrs: list[XAddr] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    scopes: list[str] = field(default_factory=list)
    name: str | None = None
    hardware: str | None = None
    location: str | None = None
    mac: str | None = None
    metadata_version: int | None = None

    @property
    def usable_xaddrs(self) -> list[str]:
        """XAddrs the policy accepts, those on the answering host first."""
        ok = [x for x in self.xaddrs if x.refused is None]
        return [x.url for x in sorted(ok, key=lambda x: not x.from_sender)]

    def to_json(self) -> dict:
        return {"endpoint": self.endpoint, "sender": self.sender, "name": self.name,
                "hardware": self.hardware, "location": self.location, "mac": self.mac,
                "types": self.types, "scopes": self.scopes,
                "metadata_version": self.metadata_version,
                "xaddrs": [{"url": x.url, "refused": x.refused, "from_sender": x.from_sender}
                           for x in self.xaddrs]}


@dataclass(frozen=True)
class ProbeMatch:
    endpoint: str
    types: tuple[str, ...]
    scopes: tuple[str, ...]
    xaddrs: tuple[str, ...]
    metadata_version: int | None


def probe_message(message_id: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            f'<s:Envelope xmlns:s="{NS["s"]}" xmlns:a="{NS["wsa"]}" xmlns:d="{NS["wsd"]}" '
            f'xmlns:dn="{NS["dn"]}"><s:Header>'
            f"<a:Action s:mustUnderstand=\"1\">{PROBE_ACTION}</a:Action>"
            f"<a:MessageID>{message_id}</a:MessageID>"
            f"<a:ReplyTo><a:Address>{ANONYMOUS}</a:Address></a:ReplyTo>"
            f"<a:To s:mustUnderstand=\"1\">{DISCOVERY_TO}</a:To>"
            "</s:Header><s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types>"
            "</d:Probe></s:Body></s:Envelope>").encode("utf-8")


def parse_probe_matches(data: bytes, message_id: str | None = None) -> list[ProbeMatch]:
    """The ProbeMatch entries of one datagram. Empty when it is not a ProbeMatches
    answer, or answers another probe (RelatesTo present and not ours). Raises
    BadResponse for XML that is malformed or hostile."""
    root = parse_xml(data, "a WS-Discovery answer", max_bytes=MAX_DATAGRAM_XML)
    if local(root.tag) != "Envelope":
        return []
    relates = text(root, "Header", "RelatesTo", limit=256)
    if message_id and relates and relates.strip() != message_id:
        return []
    body = child(root, "Body")
    matches = child(body, "ProbeMatches")
    # ipycam (and some cameras) put ProbeMatch straight into the Body.
    entries = list(children(matches, "ProbeMatch")) + list(children(body, "ProbeMatch"))
    found = []
    for match in entries:
        endpoint = normal_endpoint(text(match, "EndpointReference", "Address", limit=256))
        if not endpoint:
            continue
        found.append(ProbeMatch(
            endpoint,
            tuple(_words(text(match, "Types", limit=2048), 16, 128)),
            tuple(_scopes(text(match, "Scopes", limit=16384))),
            tuple(_words(text(match, "XAddrs", limit=8192), MAX_XADDRS, 1024)),
            _int(text(match, "MetadataVersion", limit=16))))
    return found


def _words(value: str | None, count: int, length: int) -> list[str]:
    return [w[:length] for w in (value or "").split()[:count]]


def _scopes(value: str | None) -> list[str]:
    """Scopes are space-separated URIs, but some cameras put a name with spaces in
    unencoded (`onvif://www.onvif.org/name/Lab Cam`): a word that is not a URI continues
    the scope before it."""
    scopes: list[str] = []
    for word in (value or "").split():
        if scopes and ":" not in word:
            scopes[-1] = f"{scopes[-1]} {word}"[:512]
        elif len(scopes) < MAX_SCOPES:
            scopes.append(word[:512])
    return scopes


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def scope_values(scopes: Iterable[str], key: str) -> list[str]:
    """Values of onvif://www.onvif.org/<key>/<value> scopes, percent-decoded and cleaned."""
    values = []
    prefix = f"{ONVIF_SCOPE}{key}/".lower()
    for scope in scopes:
        if scope.lower().startswith(prefix):
            value = clean(unquote(scope[len(prefix):], errors="replace"), 128)
            if value:
                values.append(value)
    return values


def device_from(match: ProbeMatch, sender: str, policy: AddressPolicy | None) -> DiscoveredDevice:
    names = scope_values(match.scopes, "name")
    hardware = scope_values(match.scopes, "hardware")
    location = scope_values(match.scopes, "location")
    macs = [m for m in (normal_mac(v) for v in scope_values(match.scopes, "mac") +
                        scope_values(match.scopes, "MAC")) if m]
    device = DiscoveredDevice(match.endpoint, sender, types=list(match.types),
                              scopes=list(match.scopes), name=names[0] if names else None,
                              hardware=hardware[0] if hardware else None,
                              location="/".join(location) or None,
                              mac=macs[0] if macs else None,
                              metadata_version=match.metadata_version)
    _merge_xaddrs(device, match.xaddrs, policy)
    return device


def _merge_xaddrs(device: DiscoveredDevice, xaddrs: Iterable[str],
                  policy: AddressPolicy | None) -> None:
    known = {x.url for x in device.xaddrs}
    for url in xaddrs:
        if url in known or len(device.xaddrs) >= MAX_XADDRS:
            continue
        known.add(url)
        refused = policy.url_refusal(url, "onvif") if policy else "no address policy given"
        try:
            host = urlsplit(url).hostname or ""
            same = ipaddress.ip_address(host) == ipaddress.ip_address(device.sender)
        except ValueError:
            same = False
        device.xaddrs.append(XAddr(url, refused, same))


def probe(policy: AddressPolicy, *, timeout: float = 3.0, addresses: Iterable[str] = (),
          multicast: bool = True, interface: str | None = None, max_devices: int = 256,
          max_datagrams: int = 4096, port: int = PORT,
          sock: socket.socket | None = None) -> list[DiscoveredDevice]:
    """Probe for ONVIF cameras for `timeout` seconds; the devices that answered, sorted by
    sender address. `addresses`: unicast targets (host names or IPs, checked by
    `policy`). `interface`: the IPv4 address of the interface to multicast from.
    `port`: the unicast targets' port (3702; tests use their own). Raises AddressRefused
    for a refused unicast target (nothing is sent then)."""
    clock = RealClock()  # socket timeouts are real time
    targets = [(str(policy.check_host(a, port)), port) for a in addresses]
    if not targets and not multicast:
        return []
    message_id = f"urn:uuid:{uuid.uuid4()}"
    message = probe_message(message_id)
    own_sock = sock is None
    if sock is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        if interface:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface))
        sock.bind((interface or "", 0))
    if multicast:
        targets.append((MULTICAST_GROUP, PORT))
    devices: dict[str, DiscoveredDevice] = {}
    start = clock.monotonic()
    deadline = start + timeout
    sends = [start, start + REPEAT_AFTER_S]
    datagrams = bad = 0
    try:
        while True:
            now = clock.monotonic()
            while sends and sends[0] <= now:
                sends.pop(0)
                for target in targets:
                    try:
                        sock.sendto(message, target)
                    except OSError as exc:
                        log.warning("discovery send to=%s:%d failed: %s", *target, exc)
            wait = min([deadline] + sends[:1]) - now
            if now >= deadline:
                break
            if wait <= 0:
                continue
            sock.settimeout(wait)
            try:
                data, (sender, _port) = sock.recvfrom(MAX_DATAGRAM)[:2]
            except (socket.timeout, TimeoutError):
                continue
            except OSError as exc:  # e.g. ICMP port unreachable on a unicast probe
                log.debug("discovery recv: %s", exc)
                continue
            datagrams += 1
            if datagrams > max_datagrams:
                log.warning("discovery stopped listening after %d datagrams (flood?)",
                            max_datagrams)
                break
            try:
                matches = parse_probe_matches(data, message_id)
            except BadResponse as exc:
                bad += 1
                if bad <= 3:
                    log.info("discovery ignored an answer from=%s: %s", sender, exc)
                continue
            for match in matches:
                if match.endpoint in devices:
                    _merge_xaddrs(devices[match.endpoint], match.xaddrs, policy)
                elif len(devices) < max_devices:
                    devices[match.endpoint] = device_from(match, sender, policy)
    finally:
        if own_sock:
            sock.close()
    log.info("discovery found=%d datagrams=%d ignored=%d seconds=%.1f", len(devices),
             datagrams, bad, clock.monotonic() - start)
    return sorted(devices.values(), key=lambda d: (_ip_key(d.sender), d.endpoint))


def _ip_key(text_ip: str) -> tuple[int, int]:
    try:
        ip = ipaddress.ip_address(text_ip)
        return ip.version, int(ip)
    except ValueError:
        return 9, 0
