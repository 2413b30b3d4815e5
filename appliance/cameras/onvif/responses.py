"""Readers for the ONVIF answers onboarding needs: pure functions from a parsed envelope
to plain values, tested on hand-written fixtures in the shapes different makers send and
on captures of ipycam.

Lenient where makers differ (prefixes, ver10 vs ver20 media, missing optional elements,
"H265" in a Media 1 answer), strict where it matters: a missing required element is a
BadResponse, never a silent default.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timezone

from appliance.cameras.onvif.soap import (BadResponse, body_of, child, children, clean,
                                          integer, local, number, text)

CODECS = {"h264": "h264", "avc": "h264", "h265": "h265", "hevc": "h265", "jpeg": "jpeg",
          "mjpeg": "jpeg", "mpeg4": "mpeg4", "mp4v-es": "mpeg4"}
RECORDABLE = ("h264", "h265")
MAC = re.compile(r"^([0-9A-Fa-f]{2})[:-]?([0-9A-Fa-f]{2})[:-]?([0-9A-Fa-f]{2})[:-]?"
                 r"([0-9A-Fa-f]{2})[:-]?([0-9A-Fa-f]{2})[:-]?([0-9A-Fa-f]{2})$")
SERVICE_NAMES = {
    "http://www.onvif.org/ver10/device/wsdl": "device",
    "http://www.onvif.org/ver10/media/wsdl": "media",
    "http://www.onvif.org/ver20/media/wsdl": "media2",
    "http://www.onvif.org/ver10/events/wsdl": "events",
    "http://www.onvif.org/ver20/ptz/wsdl": "ptz",
    "http://www.onvif.org/ver20/imaging/wsdl": "imaging",
    "http://www.onvif.org/ver10/deviceIO/wsdl": "deviceio",
}


@dataclass(frozen=True)
class DeviceInformation:
    manufacturer: str | None
    model: str | None
    firmware: str | None
    serial: str | None
    hardware_id: str | None


@dataclass(frozen=True)
class OnvifUser:
    username: str
    level: str | None     # Administrator, Operator, User, Anonymous or Extended


@dataclass(frozen=True)
class MediaProfile:
    token: str
    name: str
    codec: str | None          # h264, h265, jpeg, mpeg4 (None: no video encoder)
    width: int | None
    height: int | None
    fps: float | None
    bitrate_kbps: int | None

    @property
    def area(self) -> int:
        return (self.width or 0) * (self.height or 0)


def expect(root: ET.Element, name: str, what: str) -> ET.Element:
    """The body element, which must be `name` (a local name)."""
    first = body_of(root, what)
    if local(first.tag) != name:
        raise BadResponse(f"{what}: expected {name}, got {local(first.tag)}")
    return first


def system_date_and_time(root: ET.Element) -> float | None:
    """The camera's UTC clock as a Unix time, or None when it only reports local time."""
    resp = expect(root, "GetSystemDateAndTimeResponse", "GetSystemDateAndTime")
    utc = child(resp, "SystemDateAndTime", "UTCDateTime")
    if utc is None:
        return None
    parts = [integer(utc, "Date", "Year"), integer(utc, "Date", "Month"),
             integer(utc, "Date", "Day"), integer(utc, "Time", "Hour"),
             integer(utc, "Time", "Minute"), integer(utc, "Time", "Second")]
    if any(p is None for p in parts):
        return None
    try:
        return datetime(*parts, tzinfo=timezone.utc).timestamp()  # type: ignore[arg-type]
    except (ValueError, OverflowError):
        return None


def device_information(root: ET.Element) -> DeviceInformation:
    resp = expect(root, "GetDeviceInformationResponse", "GetDeviceInformation")
    return DeviceInformation(text(resp, "Manufacturer", limit=128), text(resp, "Model", limit=128),
                             text(resp, "FirmwareVersion", limit=128),
                             text(resp, "SerialNumber", limit=128),
                             text(resp, "HardwareId", limit=128))


def services(root: ET.Element) -> dict[str, str]:
    """GetServices: short service name (device, media, media2, ...) -> XAddr."""
    resp = expect(root, "GetServicesResponse", "GetServices")
    found: dict[str, str] = {}
    for service in children(resp, "Service"):
        namespace = text(service, "Namespace", limit=256)
        xaddr = text(service, "XAddr", limit=1024)
        name = SERVICE_NAMES.get((namespace or "").rstrip("/"))
        if name and xaddr and name not in found:
            found[name] = xaddr
    return found


def capabilities(root: ET.Element) -> dict[str, str]:
    """GetCapabilities (ONVIF 1.x): short service name -> XAddr."""
    resp = expect(root, "GetCapabilitiesResponse", "GetCapabilities")
    caps = child(resp, "Capabilities")
    found: dict[str, str] = {}
    for name, key in (("Device", "device"), ("Media", "media"), ("Events", "events"),
                      ("PTZ", "ptz"), ("Imaging", "imaging")):
        xaddr = text(caps, name, "XAddr", limit=1024)
        if xaddr:
            found[key] = xaddr
    # Media 2 in the 1.x answer: Capabilities/Extension/.../Media2/XAddr (some makers).
    for elem in caps.iter() if caps is not None else ():
        if local(elem.tag) == "Media2" and "media2" not in found:
            xaddr = text(elem, "XAddr", limit=1024)
            if xaddr:
                found["media2"] = xaddr
    return found


def endpoint_reference(root: ET.Element) -> str | None:
    resp = expect(root, "GetEndpointReferenceResponse", "GetEndpointReference")
    return normal_endpoint(text(resp, "GUID", limit=256))


def users(root: ET.Element) -> list[OnvifUser]:
    """GetUsers: user names and levels. A password element, which a camera should never
    send, is not read."""
    resp = expect(root, "GetUsersResponse", "GetUsers")
    found = []
    for user in children(resp, "User"):
        name = text(user, "Username", limit=64)
        if name:
            found.append(OnvifUser(name, text(user, "UserLevel", limit=32)))
    return found


UUID = re.compile(r"^(?:urn:)?(?:uuid:)?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                  r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$")


def normal_endpoint(value: str | None) -> str | None:
    """`urn:uuid:<lower-case uuid>` for the forms cameras send (`uuid:...`, a bare UUID);
    other URNs unchanged (bounded, printable)."""
    if not value:
        return None
    value = clean(value, 256)
    match = UUID.match(value)
    return f"urn:uuid:{match.group(1).lower()}" if match else (value or None)


def network_macs(root: ET.Element) -> list[str]:
    """GetNetworkInterfaces: the MAC of each enabled interface (aa:bb:cc:dd:ee:ff)."""
    resp = expect(root, "GetNetworkInterfacesResponse", "GetNetworkInterfaces")
    macs = []
    for iface in children(resp, "NetworkInterfaces"):
        if (text(iface, "Enabled") or "true").lower() == "false":
            continue
        mac = normal_mac(text(iface, "Info", "HwAddress", limit=64))
        if mac and mac not in macs:
            macs.append(mac)
    return macs


def normal_mac(value: str | None) -> str | None:
    match = MAC.match((value or "").strip())
    if not match:
        return None
    mac = ":".join(match.groups()).lower()
    return None if mac in ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff") else mac


def codec_name(value: str | None) -> str | None:
    if not value:
        return None
    return CODECS.get(value.strip().lower(), clean(value, 16).lower() or None)


def profiles(root: ET.Element) -> list[MediaProfile]:
    """GetProfiles from Media 1 (trt) or Media 2 (tr2): every profile, in camera order."""
    resp = expect(root, "GetProfilesResponse", "GetProfiles")
    found = []
    for prof in children(resp, "Profiles"):
        token = clean(prof.get("token") or "", 64)
        if not token:
            continue
        name = text(prof, "Name", limit=64) or token
        # Media 1: VideoEncoderConfiguration. Media 2: Configurations/VideoEncoder.
        enc = child(prof, "VideoEncoderConfiguration")
        if enc is None:
            enc = child(prof, "Configurations", "VideoEncoder")
        if enc is None:
            found.append(MediaProfile(token, name, None, None, None, None, None))
            continue
        rate = child(enc, "RateControl")
        fps = number(rate, "FrameRateLimit")  # the output rate; EncodingInterval is not
        # applied on top (makers disagree on it, and FrameRateLimit is what they show)
        found.append(MediaProfile(
            token, name, codec_name(text(enc, "Encoding", limit=32)),
            _positive(integer(enc, "Resolution", "Width")),
            _positive(integer(enc, "Resolution", "Height")),
            fps if fps and fps > 0 else None,
            _positive(integer(rate, "BitrateLimit"))))
    if not found:
        raise BadResponse("GetProfiles: the camera reported no media profiles")
    return found


def _positive(value: int | None) -> int | None:
    return value if value is not None and 0 < value < 1_000_000 else None


def media_uri(root: ET.Element, operation: str) -> str:
    """GetStreamUri / GetSnapshotUri, Media 1 (MediaUri/Uri) or Media 2 (Uri)."""
    resp = expect(root, f"{operation}Response", operation)
    uri = text(resp, "MediaUri", "Uri", limit=2048) or text(resp, "Uri", limit=2048)
    if not uri:
        raise BadResponse(f"{operation}: the answer has no URI")
    return uri


def pick_streams(found: list[MediaProfile]) -> tuple[MediaProfile | None, MediaProfile | None]:
    """Main stream: the recordable (H.264/H.265) profile with the largest picture (the
    first in camera order on a tie). Sub stream: the first recordable profile after that,
    in camera order, with a smaller picture: makers list main, sub, third stream."""
    recordable = [p for p in found if p.codec in RECORDABLE]
    if not recordable:
        return None, None
    main = max(recordable, key=lambda p: (p.area, -recordable.index(p)))
    sub = next((p for p in recordable if p is not main and p.area < main.area), None)
    return main, sub
