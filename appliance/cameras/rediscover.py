"""Rediscovery: find the registered cameras again after an address change (DHCP).

One WS-Discovery probe (onvif.probe, with the registry's address policy). Each device
that answered is matched against the registry by its endpoint reference or MAC (the
identity `Camera.same_device` uses); a registered camera found at a new address gets
that address in place (`CameraRegistry.observe`: host, device address, stream and
snapshot URIs), never a second entry. Devices that match no camera are returned as
suggestions and never added. vigil-hwd runs `rediscover` periodically; `nvr cameras
rediscover` runs it once.

A WS-Discovery answer is an unauthenticated UDP datagram: anyone on the camera network
can claim a camera's endpoint reference (it is not secret; the camera announces it).
Moving a camera points the recorder, with the camera's credentials, at the new address,
so a move is taken only when:

* the new device address (an XAddr) is on the host that answered and passes the
  address policy;
* exactly one host claims the camera in this probe (two claims: cloned firmware
  UUIDs exist, or a spoofer; the camera stays where it is and the report says why);
* the device at the new address confirms it over ONVIF with the camera's stored
  credentials: GetDeviceInformation succeeds and reports the registered serial
  number (else GetEndpointReference or the MAC agree). The default `confirm`.

A camera answering at its registered address is `unchanged`, whatever else it
announces. Registered cameras with an endpoint reference or MAC that did not answer
are `not_seen` (one probe is no proof that a camera is gone).
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Callable, Iterable
from urllib.parse import urlsplit

from appliance.cameras.onvif.client import AuthFailed, OnvifClient
from appliance.cameras.onvif.discovery import PORT, DiscoveredDevice, probe
from appliance.cameras.onvif.policy import AddressPolicy
from appliance.cameras.onvif.transport import Timeouts
from appliance.cameras.registry import Camera, CameraRegistry, StreamInfo, normal_mac, with_host
from appliance.core.errors import VigilError

log = logging.getLogger(__name__)

CONFIRM_DEADLINE_S = 10.0

# (registered camera, its device address at the new host) -> None when the device there
# is that camera, else why not.
Confirm = Callable[[Camera, str], str | None]


@dataclass(frozen=True)
class Move:
    camera_id: str
    label: str
    old_host: str
    new_host: str
    xaddr: str


@dataclass(frozen=True)
class Held:
    """A registered camera seemingly found elsewhere, left where it is."""

    camera_id: str
    host: str           # where it was claimed to be
    reason: str


@dataclass
class RediscoveryReport:
    moved: list[Move] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)      # camera ids
    held: list[Held] = field(default_factory=list)
    not_seen: list[str] = field(default_factory=list)       # camera ids
    unknown: list[DiscoveredDevice] = field(default_factory=list)   # suggestions only

    def to_json(self) -> dict:
        return {"moved": [m.__dict__ for m in self.moved], "unchanged": self.unchanged,
                "held": [h.__dict__ for h in self.held], "not_seen": self.not_seen,
                "unknown": [d.to_json() for d in self.unknown]}


def rediscover(registry: CameraRegistry, policy: AddressPolicy, timeout: float = 3.0, *,
               addresses: Iterable[str] = (), multicast: bool = True,
               interface: str | None = None, port: int = PORT,
               confirm: Confirm | None = None) -> RediscoveryReport:
    """Probe for `timeout` seconds and update the addresses of registered cameras that
    moved. `addresses`, `multicast`, `interface`, `port`: as for onvif.probe. `confirm`:
    the identity check before a move (default: `OnvifConfirm`, over ONVIF)."""
    found = probe(policy, timeout=timeout, addresses=addresses, multicast=multicast,
                  interface=interface, port=port)
    return reconcile(registry, found, policy, confirm or OnvifConfirm(registry, policy))


def reconcile(registry: CameraRegistry, found: list[DiscoveredDevice], policy: AddressPolicy,
              confirm: Confirm) -> RediscoveryReport:
    """Match discovered devices to registered cameras and move those that moved (the
    rules in the module docstring)."""
    report = RediscoveryReport()
    cams = registry.cameras()
    claims: dict[str, list[DiscoveredDevice]] = {}
    for dev in found:
        ours = [cam for cam in cams if cam.same_device(_as_camera(dev, dev.sender))]
        if not ours:
            report.unknown.append(dev)
        elif len(ours) > 1:
            names = ", ".join(cam.id for cam in ours)
            for cam in ours:
                report.held.append(Held(cam.id, dev.sender, f"the device at {dev.sender} "
                                        f"matches several registered cameras ({names})"))
        else:
            claims.setdefault(ours[0].id, []).append(dev)

    for cam in cams:
        devices = claims.get(cam.id)
        if not devices:
            if (cam.endpoint or cam.mac) and cam.id not in {h.camera_id for h in report.held}:
                report.not_seen.append(cam.id)
            continue
        if any(_answers_at(dev, cam.host) for dev in devices):
            report.unchanged.append(cam.id)
            continue
        targets: dict[str, str] = {}
        for dev in devices:
            xaddr, why = _new_xaddr(dev, policy)
            if xaddr is None:
                report.held.append(Held(cam.id, dev.sender, why))
            else:
                targets.setdefault(dev.sender, xaddr)
        if len(targets) > 1:
            hosts = ", ".join(sorted(targets))
            report.held.append(Held(cam.id, hosts, f"several hosts ({hosts}) answered as this "
                                    "camera: cloned identities or a spoofer; not moved"))
            continue
        if not targets:
            continue
        [(host, xaddr)] = targets.items()
        why = confirm(cam, xaddr)
        if why:
            log.warning("camera=%s claimed at host=%s, not moved: %s", cam.id, host, why)
            report.held.append(Held(cam.id, host, why))
            continue
        updated = registry.observe(_as_camera(devices[0], host, xaddr))
        if updated is None or updated.id != cam.id or updated.host != host:
            report.held.append(Held(cam.id, host, "the registry changed meanwhile; not moved"))
            continue
        log.info("camera=%s moved from=%s to=%s", cam.id, cam.host, host)
        report.moved.append(Move(cam.id, cam.label, cam.host, host, updated.xaddr))
    return report


class OnvifConfirm:
    """The default identity check before a move: the device at the new address, asked
    over ONVIF with the camera's stored credentials, is the registered camera."""

    def __init__(self, registry: CameraRegistry, policy: AddressPolicy, *,
                 timeouts: Timeouts = Timeouts(), deadline_s: float = CONFIRM_DEADLINE_S
                 ) -> None:
        self.registry = registry
        self.policy = policy
        self.timeouts = timeouts
        self.deadline_s = deadline_s

    def __call__(self, cam: Camera, xaddr: str) -> str | None:
        host = urlsplit(xaddr).hostname or xaddr
        try:
            client = OnvifClient(xaddr, self.registry.credentials.get(cam.id), self.policy,
                                 timeouts=self.timeouts, deadline_s=self.deadline_s)
            client.sync_clock()
            info = client.device_information()
            if cam.serial:
                if info.serial != cam.serial or (cam.manufacturer and info.manufacturer and
                                                 cam.manufacturer.lower() !=
                                                 info.manufacturer.lower()):
                    return (f"the device at {host} is {info.manufacturer or '?'} serial "
                            f"{info.serial or '?'}, not {cam.manufacturer or '?'} serial "
                            f"{cam.serial}")
                return None
            if cam.endpoint:
                endpoint = client.endpoint_reference()
                if endpoint is not None:
                    return None if endpoint == cam.endpoint else \
                        f"the device at {host} has endpoint reference {endpoint}"
            if cam.mac:
                macs = client.macs()
                if macs:
                    return None if normal_mac(cam.mac) in {normal_mac(m) for m in macs} else \
                        f"the device at {host} has MAC {', '.join(macs)}"
            return None  # nothing to compare; it took the camera's credentials
        except AuthFailed:
            return f"the device at {host} refused this camera's stored credentials"
        except VigilError as exc:
            return f"the device at {host} did not confirm its identity: {exc}"


def _as_camera(dev: DiscoveredDevice, host: str, xaddr: str = "") -> Camera:
    """A discovered device in the registry's terms, for matching and `observe`."""
    return Camera("discovered", dev.name or "discovered", host,
                  StreamInfo(with_host("rtsp://discovered/", host)), xaddr=xaddr,
                  endpoint=dev.endpoint, mac=dev.mac or "")


def _same_host(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a.lower() == b.lower()


def _answers_at(dev: DiscoveredDevice, host: str) -> bool:
    return _same_host(dev.sender, host) or any(
        _same_host(urlsplit(x.url).hostname or "", host) for x in dev.xaddrs)


def _new_xaddr(dev: DiscoveredDevice, policy: AddressPolicy) -> tuple[str | None, str]:
    """The device address to move to: acceptable and on the host that answered."""
    on_sender = [x for x in dev.xaddrs if x.from_sender]
    refusals = [policy.url_refusal(x.url, "onvif") for x in on_sender]
    for x, refused in zip(on_sender, refusals):
        if refused is None:
            return x.url, ""
    if on_sender:
        return None, f"its new address {on_sender[0].url} is refused: {refusals[0]}"
    if not dev.xaddrs:
        return None, f"the device at {dev.sender} announced no device address"
    return None, (f"the device at {dev.sender} announced its service on another host "
                  f"({dev.xaddrs[0].url}); a new address is taken only from the host "
                  "that answered")
