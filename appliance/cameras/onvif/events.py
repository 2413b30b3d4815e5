"""ONVIF events over a PullPoint subscription: the camera keeps the notifications, we
fetch them with a long poll. No server on the box, nothing the camera can push at us
(cameras without PullPoint: basenotify.py, where the camera pushes Notify to the box).

    client = PullPointClient(xaddr, creds, policy)
    client.sync_clock()
    sub = client.create_pull_point(termination_s=60)       # address checked by the policy
    batch = client.pull(sub, timeout_s=10, limit=32)       # Notification values
    sub = client.renew(sub, termination_s=60)
    client.unsubscribe(sub)

Built on the hardened client (client.py): bounded transport, defusedxml parsing, WS-Security
in the camera's clock. Unlike onboarding, a subscription lives for days, so each request
has its own deadline instead of one for the whole client. The subscription reference the
camera returns is an address like any other from a camera: it passes the address policy
and must be on the camera's own host, or nothing is sent to it. Everything read from a
notification is bounded (items per message, text lengths, messages per pull).
See docs/design/events.md.
"""

from __future__ import annotations

import logging
import ssl
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timezone

from appliance.cameras.credentials import Credentials
from appliance.cameras.onvif.client import OnvifClient, OperationFault
from appliance.cameras.onvif.policy import AddressPolicy, AddressRefused, strip_credentials
from appliance.cameras.onvif.responses import expect
from appliance.cameras.onvif.soap import (BadResponse, child, children, clean, envelope,
                                          local, text, xml_text)
from appliance.cameras.onvif.transport import Timeouts, request
from appliance.cameras.onvif.wsse import security_header
from appliance.core.clock import Clock

log = logging.getLogger(__name__)

TEV = "http://www.onvif.org/ver10/events/wsdl"
WSNT = "http://docs.oasis-open.org/wsn/b-2"
WSA = "http://www.w3.org/2005/08/addressing"
ACTIONS = {
    "GetEventProperties": f"{TEV}/EventPortType/GetEventPropertiesRequest",
    "CreatePullPointSubscription": f"{TEV}/EventPortType/CreatePullPointSubscriptionRequest",
    "PullMessages": f"{TEV}/PullPointSubscription/PullMessagesRequest",
    "Renew": "http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/RenewRequest",
    "Unsubscribe": "http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/UnsubscribeRequest",
    "Subscribe": "http://docs.oasis-open.org/wsn/bw-2/NotificationProducer/SubscribeRequest",
}
MAX_MESSAGES = 64          # per PullMessages: MessageLimit never asks for more, nor is more read
MAX_ITEMS = 16             # SimpleItems per Source / Data
MAX_TOPIC = 256
MAX_REFERENCE_PARAMETERS = 4096   # bytes of wsa:ReferenceParameters echoed back


class NoPullPoint(OperationFault):
    """The camera has no event service or refuses PullPoint subscriptions."""


class NoEventService(NoPullPoint):
    """The camera has no event service at all (so no basic notification either)."""


@dataclass(frozen=True)
class Subscription:
    address: str                  # the subscription manager's URL (checked, same host)
    reference_parameters: str     # wsa:ReferenceParameters children, echoed in the header
    termination: float | None     # camera clock, Unix seconds
    current: float | None         # camera clock when it answered

    def lifetime(self) -> float | None:
        """Seconds until the camera ends the subscription, by the camera's own clock."""
        if self.termination is None or self.current is None:
            return None
        return self.termination - self.current


@dataclass(frozen=True)
class Notification:
    topic: str                              # as the camera wrote it (tns1:VideoSource/...)
    time: float | None                      # tt:Message/@UtcTime, camera clock, Unix seconds
    operation: str                          # Initialized, Changed, Deleted ("" when absent)
    source: tuple[tuple[str, str], ...]     # tt:Source SimpleItems (which channel, rule, input)
    data: tuple[tuple[str, str], ...]       # tt:Data SimpleItems (State, IsMotion, ...)


@dataclass(frozen=True)
class PullResult:
    notifications: list[Notification]
    current: float | None
    termination: float | None


# -- parsing (pure, tested on canned answers) -----------------------------------------------

def parse_time(value: str | None) -> float | None:
    """xs:dateTime -> Unix seconds; a value without a zone is UTC; None when unusable."""
    if not value:
        return None
    value = value.strip()[:64]
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    date, sep, rest = value.partition(".")
    if sep:  # at most microseconds: some cameras send nanoseconds
        digits = len(rest) - len(rest.lstrip("0123456789"))
        value = f"{date}.{rest[:min(digits, 6)]}{rest[digits:]}" if digits else date + rest
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    try:
        return stamp.timestamp()
    except (OverflowError, OSError):
        return None


def duration(seconds: float) -> str:
    """xs:duration in whole seconds (PT60S), what every camera parses."""
    return f"PT{max(1, int(round(seconds)))}S"


def _items(elem: ET.Element | None) -> tuple[tuple[str, str], ...]:
    found = []
    for item in children(elem, "SimpleItem"):
        if len(found) >= MAX_ITEMS:
            break
        name = clean(item.get("Name") or "", 64)
        if name:
            found.append((name, clean(item.get("Value") or "", 256)))
    return tuple(found)


def notification(msg: ET.Element) -> Notification | None:
    """One wsnt:NotificationMessage; None when it has no topic."""
    topic = text(msg, "Topic", limit=MAX_TOPIC)
    if not topic:
        return None
    inner = child(msg, "Message", "Message")     # wsnt:Message/tt:Message
    if inner is None:
        holder = child(msg, "Message")
        inner = next(iter(holder), None) if holder is not None else None
    if inner is None:
        return Notification(topic, None, "", (), ())
    return Notification(topic, parse_time(inner.get("UtcTime")),
                        clean(inner.get("PropertyOperation") or "", 32),
                        _items(child(inner, "Source")), _items(child(inner, "Data")))


def notification_messages(parent: ET.Element, what: str) -> list[Notification]:
    """The wsnt:NotificationMessage children of a PullMessagesResponse or a Notify (the
    same schema type in both), at most MAX_MESSAGES."""
    found = []
    for msg in children(parent, "NotificationMessage"):
        if len(found) >= MAX_MESSAGES:
            log.info("%s has more than %d messages; the rest was dropped", what, MAX_MESSAGES)
            break
        note = notification(msg)
        if note is not None:
            found.append(note)
    return found


def pull_messages(root: ET.Element) -> PullResult:
    resp = expect(root, "PullMessagesResponse", "PullMessages")
    return PullResult(notification_messages(resp, "PullMessages answer"),
                      parse_time(text(resp, "CurrentTime", limit=64)),
                      parse_time(text(resp, "TerminationTime", limit=64)))


def subscription(root: ET.Element, operation: str = "CreatePullPointSubscription"
                 ) -> Subscription:
    """The subscription in a CreatePullPointSubscriptionResponse or (operation
    "Subscribe") a WS-BaseNotification SubscribeResponse: both carry a
    SubscriptionReference, CurrentTime and TerminationTime."""
    resp = expect(root, f"{operation}Response", operation)
    ref = child(resp, "SubscriptionReference")
    address = text(ref, "Address", limit=2048)
    if not address:
        raise BadResponse(f"{operation}: the answer has no subscription address")
    params = child(ref, "ReferenceParameters")
    echoed = ""
    if params is not None:
        echoed = "".join(ET.tostring(p, encoding="unicode") for p in params)
        if len(echoed) > MAX_REFERENCE_PARAMETERS:
            raise BadResponse(f"{operation}: the reference parameters are "
                              f"larger than {MAX_REFERENCE_PARAMETERS} bytes")
    return Subscription(address, echoed, parse_time(text(resp, "TerminationTime", limit=64)),
                        parse_time(text(resp, "CurrentTime", limit=64)))


def renew_request(termination_s: float) -> str:
    """The wsnt:Renew body: the same for a PullPoint and a basic subscription."""
    return (f'<wsnt:Renew xmlns:wsnt="{WSNT}"><wsnt:TerminationTime>'
            f"{duration(termination_s)}</wsnt:TerminationTime></wsnt:Renew>")


def addressing_header(url: str, operation: str, reference_parameters: str = "") -> str:
    """WS-Addressing To, Action and MessageID, and the subscription's reference
    parameters, which subscription managers route by."""
    return (f'<wsa:Action xmlns:wsa="{WSA}">{ACTIONS[operation]}</wsa:Action>'
            f'<wsa:To xmlns:wsa="{WSA}">{xml_text(url)}</wsa:To>'
            f'<wsa:MessageID xmlns:wsa="{WSA}">urn:uuid:{uuid.uuid4()}</wsa:MessageID>'
            f"{reference_parameters}")


def renewed(root: ET.Element) -> tuple[float | None, float | None]:
    """RenewResponse: (termination, current), camera clock."""
    resp = expect(root, "RenewResponse", "Renew")
    return (parse_time(text(resp, "TerminationTime", limit=64)),
            parse_time(text(resp, "CurrentTime", limit=64)))


# -- the client ------------------------------------------------------------------------------

class PullPointClient(OnvifClient):
    """The event service of one camera. Each request gets `request_s` (plus the pull's own
    timeout for PullMessages), not one deadline for the client's life."""

    def __init__(self, xaddr: str, credentials: Credentials | None, policy: AddressPolicy, *,
                 timeouts: Timeouts = Timeouts(), request_s: float = 15.0,
                 clock: Clock | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(xaddr, credentials, policy, timeouts=timeouts, deadline_s=request_s,
                         clock=clock, ssl_context=ssl_context)
        self.request_s = request_s
        self.events_url: str | None = None

    def call(self, url: str, namespace: str, operation: str, body: str, *,
             auth: bool = True) -> ET.Element:
        self.deadline = self.clock.monotonic() + self.request_s   # a deadline per request
        return super().call(url, namespace, operation, body, auth=auth)

    def find_events_url(self) -> str:
        """The event service address (GetServices / GetCapabilities), pinned to the host."""
        found = self.services()
        if "events" not in found:
            raise NoEventService(f"the camera at {self.device.host} has no ONVIF event "
                                 "service")
        self.events_url = found["events"]
        return self.events_url

    def subscription_url(self, address: str) -> str:
        """The camera's subscription reference, refused unless the policy allows it and it
        is on the camera's own host (nothing is sent to it otherwise)."""
        address = strip_credentials(address.strip())
        target = self.policy.check_url(address, "onvif", resolve_timeout=self.timeouts.connect)
        if target.ip != self.device.ip:
            raise AddressRefused(f"refused subscription address {target.url}: it is not on "
                                 f"the camera's own host ({self.device.host})")
        return address

    def _send(self, url: str, operation: str, body: str, sub: Subscription | None = None,
              extra_s: float = 0.0) -> ET.Element:
        """One event request with WS-Addressing headers (To, Action, MessageID and the
        subscription's reference parameters), which subscription managers route by."""
        action = ACTIONS[operation]
        params = sub.reference_parameters if sub is not None else ""
        header = addressing_header(url, operation, params)
        if self.credentials is not None:
            header += security_header(self.credentials,
                                      self.clock.wall() + (self.clock_offset or 0.0))
        allowed = self.request_s + extra_s
        timeouts = Timeouts(self.timeouts.connect, self.timeouts.read + extra_s,
                            self.timeouts.total + extra_s).within(allowed)
        resp = request("POST", url, self.policy, body=envelope(body, header),
                       headers={"Content-Type": f'application/soap+xml; charset=utf-8; '
                                                f'action="{action}"'},
                       timeouts=timeouts, credentials=self.credentials,
                       ssl_context=self.ssl_context)
        return self._soap_answer(operation, resp)

    def event_properties(self) -> list[str]:
        """GetEventProperties (optional, for logs and the design of rules): the topic
        paths the camera offers, at most 200, prefixes stripped."""
        url = self.events_url or self.find_events_url()
        root = self._send(url, "GetEventProperties",
                          f'<tev:GetEventProperties xmlns:tev="{TEV}"/>')
        resp = expect(root, "GetEventPropertiesResponse", "GetEventProperties")
        topics: list[str] = []
        tree = child(resp, "TopicSet")

        def walk(elem: ET.Element, path: list[str]) -> None:
            for sub in elem:
                if len(topics) >= 200 or len(path) > 8:
                    return
                name = local(sub.tag)
                if name == "MessageDescription":
                    continue
                if child(sub, "MessageDescription") is not None:
                    topics.append("/".join(path + [name]))
                walk(sub, path + [name])

        if tree is not None:
            walk(tree, [])
        return topics

    def create_pull_point(self, termination_s: float) -> Subscription:
        url = self.events_url or self.find_events_url()
        body = (f'<tev:CreatePullPointSubscription xmlns:tev="{TEV}">'
                f"<tev:InitialTerminationTime>{duration(termination_s)}"
                "</tev:InitialTerminationTime></tev:CreatePullPointSubscription>")
        try:
            root = self._send(url, "CreatePullPointSubscription", body)
        except OperationFault as exc:
            raise NoPullPoint(f"the camera at {self.device.host} refused a PullPoint "
                              f"subscription: {exc.fault.describe() if exc.fault else exc}",
                              exc.fault) from None
        found = subscription(root)
        address = self.subscription_url(found.address)
        return Subscription(address, found.reference_parameters, found.termination,
                            found.current)

    def pull(self, sub: Subscription, timeout_s: float, limit: int = 32) -> PullResult:
        limit = max(1, min(limit, MAX_MESSAGES))
        body = (f'<tev:PullMessages xmlns:tev="{TEV}"><tev:Timeout>{duration(timeout_s)}'
                f"</tev:Timeout><tev:MessageLimit>{limit}</tev:MessageLimit>"
                "</tev:PullMessages>")
        return pull_messages(self._send(sub.address, "PullMessages", body, sub,
                                        extra_s=timeout_s))

    def renew(self, sub: Subscription, termination_s: float) -> Subscription:
        termination, current = renewed(self._send(sub.address, "Renew",
                                                  renew_request(termination_s), sub))
        return Subscription(sub.address, sub.reference_parameters, termination, current)

    def unsubscribe(self, sub: Subscription) -> None:
        root = self._send(sub.address, "Unsubscribe", f'<wsnt:Unsubscribe xmlns:wsnt="{WSNT}"/>',
                          sub)
        expect(root, "UnsubscribeResponse", "Unsubscribe")
