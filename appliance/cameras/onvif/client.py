"""A small ONVIF client: the device and media calls onboarding needs, nothing else.

Hand-written SOAP over the bounded transport (transport.py) with hardened parsing
(soap.py), instead of a WSDL-driven library: docs/design/onvif.md says why (in short:
onvif-zeep and onvif-zeep-async buffer a 100 MB answer, follow redirects to other hosts
with the WS-Security header, and hang on a camera that trickles bytes).

Every call of one client shares one overall deadline, so onboarding a slow or hostile
camera ends in bounded time whatever it does. Camera-supplied service addresses are
pinned to the device's own host (a camera cannot steer the box elsewhere), and stream
and snapshot URIs come back without credentials and checked by the address policy.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import ssl
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit, urlunsplit

from appliance.cameras.credentials import Credentials
from appliance.cameras.onvif import responses
from appliance.cameras.onvif.policy import AddressPolicy, AddressRefused, strip_credentials
from appliance.cameras.onvif.soap import (NS, BadResponse, Fault, envelope, fault_of, parse_xml,
                                          xml_text)
from appliance.cameras.onvif.transport import CameraUnreachable, Timeouts, request
from appliance.cameras.onvif.wsse import security_header
from appliance.core.clock import Clock, RealClock
from appliance.core.errors import FailedPrecondition, Unavailable, VigilError

log = logging.getLogger(__name__)


class AuthFailed(FailedPrecondition):
    """The camera refused the user name or password (WS-Security or HTTP Digest)."""


class OperationFault(FailedPrecondition):
    """The camera answered an operation with a SOAP fault (not supported, bad token...)."""

    def __init__(self, message: str, fault: Fault | None = None) -> None:
        super().__init__(message)
        self.fault = fault


class OnvifClient:
    """One camera's device service, and the services it advertises on the same host."""

    def __init__(self, xaddr: str, credentials: Credentials | None, policy: AddressPolicy, *,
                 timeouts: Timeouts = Timeouts(), deadline_s: float = 30.0,
                 clock: Clock | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        self.clock = clock or RealClock()
        self.policy = policy
        self.timeouts = timeouts
        self.credentials = credentials if credentials and credentials.username else None
        self.ssl_context = ssl_context
        self.device = policy.check_url(xaddr, "onvif", resolve_timeout=timeouts.connect)
        self.xaddr = self.device.url
        self.deadline_s = deadline_s
        self.deadline = self.clock.monotonic() + deadline_s
        self.clock_offset: float | None = None   # camera clock minus ours, seconds
        self.warnings: list[str] = []

    # -- plumbing -------------------------------------------------------------------------

    def call(self, url: str, namespace: str, operation: str, body: str, *,
             auth: bool = True) -> ET.Element:
        """POST one SOAP request; the parsed envelope of a non-fault answer."""
        remaining = self.deadline - self.clock.monotonic()
        if remaining <= 0:
            raise CameraUnreachable(f"the camera at {self.device.host} did not finish "
                                    f"onboarding within {self.deadline_s:g} s")
        header = ""
        if auth and self.credentials is not None:
            header = security_header(self.credentials,
                                     self.clock.wall() + (self.clock_offset or 0.0))
        headers = {"Content-Type": f'application/soap+xml; charset=utf-8; '
                                   f'action="{namespace}/{operation}"'}
        resp = request("POST", url, self.policy, body=envelope(body, header), headers=headers,
                       timeouts=self.timeouts.within(remaining),
                       credentials=self.credentials if auth else None,
                       ssl_context=self.ssl_context)
        return self._soap_answer(operation, resp)

    def _soap_answer(self, operation: str, resp):
        """The SOAP body of an answer, or the error it amounts to (auth, fault, HTTP)."""
        what = f"the {operation} answer of {self.device.host}"
        try:
            root = parse_xml(resp.body, what)
        except BadResponse:
            if resp.status in (401, 403):
                raise self._auth_failed(operation, None) from None
            if resp.status >= 300:
                raise BadResponse(f"{operation}: {self.device.host} answered HTTP "
                                  f"{resp.status} {resp.reason[:60]} without a SOAP fault"
                                  ) from None
            raise
        fault = fault_of(root)
        if fault is not None:
            if fault.is_auth or resp.status in (401, 403):
                raise self._auth_failed(operation, fault)
            raise OperationFault(f"{operation}: the camera at {self.device.host} answered with "
                                 f"a fault: {fault.describe()}", fault)
        if resp.status in (401, 403):
            raise self._auth_failed(operation, None)
        if resp.status >= 300:
            raise BadResponse(f"{operation}: {self.device.host} answered HTTP {resp.status}")
        return root

    def _auth_failed(self, operation: str, fault: Fault | None) -> AuthFailed:
        if self.credentials is None:
            return AuthFailed(f"the camera at {self.device.host} wants a user name and "
                              f"password ({operation})")
        detail = f": {fault.describe()}" if fault else ""
        skew = ""
        if self.clock_offset is not None and abs(self.clock_offset) >= 1:
            skew = f"; its clock is {self.clock_offset:+.0f} s from ours, which was allowed for"
        return AuthFailed(f"the camera at {self.device.host} refused the user name or "
                          f"password ({operation}{detail}{skew})")

    def service_url(self, advertised: str | None) -> str:
        """A service address the camera advertised, pinned to the device's own host: a
        camera cannot point the box at another machine. Its path (and port, when the host
        agrees) is kept."""
        if not advertised:
            return self.xaddr
        parts = urlsplit(strip_credentials(advertised.strip()))
        if parts.scheme.lower() in ("http", "https") and \
                (parts.hostname or "").lower() == self.device.host.lower():
            return urlunsplit(parts)
        fixed = urlunsplit((self.device.scheme, self.device.netloc, parts.path or "/",
                            parts.query, ""))
        if parts.hostname:
            log.info("camera=%s advertised a service at host=%s; using its own host: %s",
                     self.device.host, parts.hostname, fixed)
        return fixed

    def media_url(self, uri: str, kind: str) -> str | None:
        """A stream or snapshot URI from the camera: credentials removed, an unusable host
        (0.0.0.0, loopback, link-local: cameras behind NAT or half-configured) replaced
        by the device's host, then checked by the address policy. None (and a warning)
        when refused."""
        uri = strip_credentials(uri.strip())
        parts = urlsplit(uri)
        try:
            ip = ipaddress.ip_address(parts.hostname or "")
        except ValueError:
            ip = None
        own = self.device.ip
        if ip is not None and ip != own and (ip.is_unspecified or ip.is_link_local or
                                             (ip.is_loopback and not own.is_loopback)):
            host = f"[{self.device.host}]" if ":" in self.device.host else self.device.host
            netloc = f"{host}:{parts.port}" if parts.port else host
            fixed = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
            self.warnings.append(f"the camera gave {kind} address host {ip}; using "
                                 f"{self.device.host} instead")
            uri = fixed
        try:
            self.policy.check_url(uri, kind, resolve_timeout=self.timeouts.connect)
        except (AddressRefused, Unavailable) as exc:
            self.warnings.append(str(exc))
            log.warning("camera=%s %s", self.device.host, exc)
            return None
        return uri

    # -- device service -----------------------------------------------------------------

    def sync_clock(self) -> float | None:
        """Read the camera's clock (without credentials, as ONVIF allows; with them when
        the camera insists) and keep the offset for WS-Security timestamps."""
        before = self.clock.wall()
        body = "<tds:GetSystemDateAndTime/>"
        try:
            try:
                root = self.call(self.xaddr, NS["tds"], "GetSystemDateAndTime", body, auth=False)
            except AuthFailed:
                if self.credentials is None:
                    raise
                before = self.clock.wall()
                root = self.call(self.xaddr, NS["tds"], "GetSystemDateAndTime", body)
            camera = responses.system_date_and_time(root)
        except (OperationFault, BadResponse) as exc:
            log.info("camera=%s no clock: %s", self.device.host, exc)
            camera = None
        after = self.clock.wall()
        if camera is None:
            self.warnings.append("the camera does not report its UTC time; WS-Security "
                                 "timestamps use ours")
            self.clock_offset = 0.0
            return None
        # The camera's answer has whole seconds (truncated): +0.5 s is the unbiased guess.
        self.clock_offset = round(camera + 0.5 - (before + after) / 2, 1)
        if abs(self.clock_offset) >= 5:
            log.info("camera=%s clock offset=%+.0fs (allowed for in WS-Security)",
                     self.device.host, self.clock_offset)
        return self.clock_offset

    def device_information(self) -> responses.DeviceInformation:
        root = self.call(self.xaddr, NS["tds"], "GetDeviceInformation",
                         "<tds:GetDeviceInformation/>")
        return responses.device_information(root)

    def services(self) -> dict[str, str]:
        """Service name -> pinned XAddr, from GetServices, else GetCapabilities."""
        try:
            root = self.call(self.xaddr, NS["tds"], "GetServices",
                             "<tds:GetServices><tds:IncludeCapability>false"
                             "</tds:IncludeCapability></tds:GetServices>")
            found = responses.services(root)
        except (OperationFault, BadResponse):
            found = {}
        if "media" not in found and "media2" not in found:
            root = self.call(self.xaddr, NS["tds"], "GetCapabilities",
                             "<tds:GetCapabilities><tds:Category>All</tds:Category>"
                             "</tds:GetCapabilities>")
            found = {**responses.capabilities(root), **found}
        return {name: self.service_url(url) for name, url in found.items()}

    def macs(self) -> list[str]:
        try:
            root = self.call(self.xaddr, NS["tds"], "GetNetworkInterfaces",
                             "<tds:GetNetworkInterfaces/>")
            return responses.network_macs(root)
        except (OperationFault, BadResponse) as exc:
            log.debug("camera=%s no MAC: %s", self.device.host, exc)
            return []

    def endpoint_reference(self) -> str | None:
        try:
            root = self.call(self.xaddr, NS["tds"], "GetEndpointReference",
                             "<tds:GetEndpointReference/>")
            return responses.endpoint_reference(root)
        except (OperationFault, BadResponse) as exc:
            log.debug("camera=%s no endpoint reference: %s", self.device.host, exc)
            return None

    def users(self) -> list[responses.OnvifUser]:
        """GetUsers (ONVIF lets only administrators read it)."""
        root = self.call(self.xaddr, NS["tds"], "GetUsers", "<tds:GetUsers/>")
        return responses.users(root)

    def set_user(self, username: str, password: str, level: str) -> None:
        """SetUser: give an existing user a new password, at the level given.

        ONVIF carries the password itself in the request body (over HTTPS when the
        device address is https://). Nothing here logs it, and a fault that quotes it
        back is redacted before the error leaves this method."""
        body = ("<tds:SetUser><tds:User>"
                f"<tt:Username>{xml_text(username)}</tt:Username>"
                f"<tt:Password>{xml_text(password)}</tt:Password>"
                f"<tt:UserLevel>{xml_text(level)}</tt:UserLevel>"
                "</tds:User></tds:SetUser>")
        try:
            root = self.call(self.xaddr, NS["tds"], "SetUser", body)
            responses.expect(root, "SetUserResponse", "SetUser")
        except VigilError as exc:
            _redact(exc, password)
            raise

    # -- media service (1 and 2) ----------------------------------------------------------

    def profiles(self, url: str, media2: bool) -> list[responses.MediaProfile]:
        if media2:
            root = self.call(url, NS["tr2"], "GetProfiles",
                             "<tr2:GetProfiles><tr2:Type>VideoSource</tr2:Type>"
                             "<tr2:Type>VideoEncoder</tr2:Type></tr2:GetProfiles>")
        else:
            root = self.call(url, NS["trt"], "GetProfiles", "<trt:GetProfiles/>")
        return responses.profiles(root)

    def stream_uri(self, url: str, token: str, media2: bool) -> str:
        if media2:
            body = ("<tr2:GetStreamUri><tr2:Protocol>RTSP</tr2:Protocol>"
                    f"<tr2:ProfileToken>{xml_text(token)}</tr2:ProfileToken></tr2:GetStreamUri>")
            root = self.call(url, NS["tr2"], "GetStreamUri", body)
        else:
            body = ("<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream>"
                    "<tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport>"
                    f"</trt:StreamSetup><trt:ProfileToken>{xml_text(token)}</trt:ProfileToken>"
                    "</trt:GetStreamUri>")
            root = self.call(url, NS["trt"], "GetStreamUri", body)
        return responses.media_uri(root, "GetStreamUri")

    def snapshot_uri(self, url: str, token: str, media2: bool) -> str:
        prefix, ns = ("tr2", NS["tr2"]) if media2 else ("trt", NS["trt"])
        body = (f"<{prefix}:GetSnapshotUri><{prefix}:ProfileToken>{xml_text(token)}"
                f"</{prefix}:ProfileToken></{prefix}:GetSnapshotUri>")
        return responses.media_uri(self.call(url, ns, "GetSnapshotUri", body), "GetSnapshotUri")


def _redact(exc: VigilError, secret: str) -> None:
    """Take a secret out of an error's message (and its fault), in place."""
    if not secret:
        return
    exc.args = tuple(a.replace(secret, "***") if isinstance(a, str) else a for a in exc.args)
    fault = getattr(exc, "fault", None)
    if isinstance(fault, Fault) and secret in fault.reason:
        exc.fault = dataclasses.replace(fault, reason=fault.reason.replace(secret, "***"))
