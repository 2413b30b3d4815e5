"""Onboarding: from a device XAddr and credentials to what the registry stores.

Order of calls (each bounded by the client's shared deadline):
1. GetSystemDateAndTime, unauthenticated: the camera's clock offset, so WS-Security
   timestamps are in the camera's time (as NVRs do; cameras refuse a stale `created`).
2. GetDeviceInformation (authenticated): maker, model, firmware, serial, hardware id.
   A refusal here is AuthFailed, with the clock offset in the message.
3. GetServices, or GetCapabilities on ONVIF 1.x cameras: the media service address
   (pinned to the device's host).
4. GetNetworkInterfaces: the MAC (optional), GetEndpointReference (optional; else a
   unicast WS-Discovery probe of the device's host, 1 s).
5. Media 2 when advertised (H.265 shows up reliably there), else Media 1; Media 1 again
   if Media 2 faults: GetProfiles, then GetStreamUri (RTP-Unicast over RTSP) for the main
   and the sub profile, and GetSnapshotUri (optional).
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import asdict, dataclass, field

from appliance.cameras.credentials import Credentials
from appliance.cameras.onvif.client import OnvifClient, OperationFault
from appliance.cameras.onvif.policy import AddressPolicy
from appliance.cameras.onvif.responses import MediaProfile, pick_streams
from appliance.cameras.onvif.soap import BadResponse
from appliance.cameras.onvif.transport import Timeouts
from appliance.core.clock import Clock
from appliance.core.errors import FailedPrecondition, VigilError

log = logging.getLogger(__name__)

ENDPOINT_PROBE_S = 1.0


@dataclass(frozen=True)
class OnvifStream:
    uri: str                    # rtsp:// or rtsps://, never with credentials
    codec: str | None           # h264, h265
    width: int | None
    height: int | None
    fps: float | None
    bitrate_kbps: int | None
    profile_token: str
    profile_name: str


@dataclass(frozen=True)
class OnboardedCamera:
    """What onboarding learned. Holds no credentials, so to_json() cannot leak any."""

    xaddr: str
    endpoint_reference: str | None
    manufacturer: str | None
    model: str | None
    firmware: str | None
    serial: str | None
    hardware_id: str | None
    mac: str | None
    main: OnvifStream | None
    sub: OnvifStream | None
    snapshot_uri: str | None
    media_service: str                  # "media" (ONVIF Media 1) or "media2"
    clock_offset_s: float | None        # camera clock minus ours
    warnings: tuple[str, ...] = field(default=())

    def to_json(self) -> dict:
        return asdict(self) | {"warnings": list(self.warnings)}


def onboard(xaddr: str, credentials: Credentials | None, policy: AddressPolicy, *,
            timeouts: Timeouts = Timeouts(), deadline_s: float = 30.0,
            endpoint_reference: str | None = None, clock: Clock | None = None,
            ssl_context: ssl.SSLContext | None = None,
            probe_for_endpoint: bool = True) -> OnboardedCamera:
    """Read a camera's identity and streams over ONVIF, within `deadline_s` overall.

    Raises AddressRefused (xaddr not allowed; nothing sent), AuthFailed, CameraUnreachable
    (retry later), BadResponse (hostile or broken answers), or FailedPrecondition when the
    camera has no H.264/H.265 stream."""
    client = OnvifClient(xaddr, credentials, policy, timeouts=timeouts, deadline_s=deadline_s,
                         clock=clock, ssl_context=ssl_context)
    log.info("onboarding camera=%s", client.device.host)
    client.sync_clock()
    info = client.device_information()
    services = client.services()
    macs = client.macs()
    endpoint = endpoint_reference or client.endpoint_reference()
    if endpoint is None and probe_for_endpoint:
        endpoint = _probe_endpoint(client)

    media_service, found = _profiles(client, services)
    main, sub = pick_streams(found)
    if main is None:
        codecs = ", ".join(sorted({p.codec or "none" for p in found}))
        raise FailedPrecondition(f"the camera at {client.device.host} has no H.264 or H.265 "
                                 f"stream (its profiles: {codecs})")
    url = services[media_service]
    media2 = media_service == "media2"
    main_stream = _stream(client, url, main, media2)
    sub_stream = _stream(client, url, sub, media2) if sub else None
    if main_stream is None:
        raise FailedPrecondition(f"the camera at {client.device.host} gave no usable stream "
                                 f"address for {main.name}: " + "; ".join(client.warnings[-1:]))
    snapshot = None
    try:
        raw = client.snapshot_uri(url, main.token, media2)
        snapshot = client.media_url(raw, "snapshot")
    except (OperationFault, BadResponse) as exc:
        log.debug("camera=%s no snapshot: %s", client.device.host, exc)
    camera = OnboardedCamera(
        client.xaddr, endpoint, info.manufacturer, info.model, info.firmware, info.serial,
        info.hardware_id, macs[0] if macs else None, main_stream, sub_stream, snapshot,
        media_service, client.clock_offset, tuple(client.warnings))
    log.info("onboarded camera=%s model=%s main=%s sub=%s", client.device.host, info.model,
             main_stream.uri, sub_stream.uri if sub_stream else None)
    return camera


def _profiles(client: OnvifClient, services: dict[str, str]) -> tuple[str, list[MediaProfile]]:
    if "media2" in services:
        try:
            return "media2", client.profiles(services["media2"], media2=True)
        except (OperationFault, BadResponse) as exc:
            if "media" not in services:
                raise
            log.info("camera=%s Media 2 failed (%s); using Media 1", client.device.host, exc)
    if "media" not in services:
        raise FailedPrecondition(f"the camera at {client.device.host} advertises no media "
                                 "service")
    return "media", client.profiles(services["media"], media2=False)


def _stream(client: OnvifClient, url: str, prof: MediaProfile, media2: bool) -> OnvifStream | None:
    uri = client.media_url(client.stream_uri(url, prof.token, media2), "stream")
    if uri is None:
        return None
    return OnvifStream(uri, prof.codec, prof.width, prof.height, prof.fps, prof.bitrate_kbps,
                       prof.token, prof.name)


def _probe_endpoint(client: OnvifClient) -> str | None:
    """The endpoint reference by a unicast WS-Discovery probe of the device's host (for
    cameras without GetEndpointReference), when there is time left."""
    from appliance.cameras.onvif.discovery import probe

    remaining = client.deadline - client.clock.monotonic()
    if remaining < 2 * ENDPOINT_PROBE_S:
        return None
    try:
        found = probe(client.policy, timeout=ENDPOINT_PROBE_S, addresses=[str(client.device.ip)],
                      multicast=False)
    except (VigilError, OSError) as exc:
        log.debug("camera=%s endpoint probe: %s", client.device.host, exc)
        return None
    for device in found:
        if str(client.device.ip) == device.sender or any(
                client.xaddr.rstrip("/") == x.url.rstrip("/") for x in device.xaddrs):
            return device.endpoint
    return found[0].endpoint if len(found) == 1 else None

