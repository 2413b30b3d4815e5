"""A fake ONVIF camera with an event service (PullPoint) for tests, on top of FakeCamera
(strict WS-Security, `down` for a reboot). Its answers are written from the ONVIF event
WSDL and schema: CreatePullPointSubscriptionResponse with a wsa:EndpointReference,
PullMessagesResponse with wsnt:NotificationMessage / tt:Message (UtcTime,
PropertyOperation Initialized/Changed/Deleted, Source and Data SimpleItems), Renew,
Unsubscribe, and the wsrf ResourceUnknown fault for a subscription it does not know.

Like a camera: PullMessages waits (up to its Timeout, capped at 1 s here) for a message;
a subscription past its termination time is gone; `reboot()` forgets all subscriptions.
Every event request is recorded with the time it arrived and, for Renew, the time the
subscription would have ended.

Basic notification (WS-BaseNotification, b-2.xsd): Subscribe with a ConsumerReference
answers a SubscribeResponse like CreatePullPointSubscription's; the camera then pushes
its Initialized messages, and whatever `deliver()` is given, as a wsnt:Notify POSTed to
the consumer address (loopback only). `pullpoint=False` is a camera without PullPoint:
CreatePullPointSubscription gets the ActionNotSupported fault.
"""

from __future__ import annotations

import html
import http.client
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable
from urllib.parse import urlsplit

from tests.integration.cameras.fakecam import FakeCamera, fixture

TEV = "http://www.onvif.org/ver10/events/wsdl"
WSN = "http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager"
WSN_PRODUCER = "http://docs.oasis-open.org/wsn/bw-2/NotificationProducer"
WSN_NOTIFY = "http://docs.oasis-open.org/wsn/bw-2/NotificationConsumer/Notify"
ENVELOPE = ('<?xml version="1.0" encoding="UTF-8"?><s:Envelope '
            'xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
            'xmlns:wsa5="http://www.w3.org/2005/08/addressing" '
            'xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" '
            f'xmlns:tev="{TEV}" xmlns:tt="http://www.onvif.org/ver10/schema" '
            'xmlns:tns1="http://www.onvif.org/ver10/topics" '
            'xmlns:wsrf-r="http://docs.oasis-open.org/wsrf/r-2" '
            'xmlns:ter="http://www.onvif.org/ver10/error"><s:Body>{}</s:Body></s:Envelope>')
MOTION = "tns1:VideoSource/MotionAlarm"


def stamp(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def notification(topic: str, state: str | None, operation: str = "Changed",
                 source: str = "VideoSourceToken=vs1", t: float | None = None,
                 name: str = "State") -> str:
    items = "".join(f'<tt:SimpleItem Name="{k}" Value="{v}"/>'
                    for k, v in (pair.split("=", 1) for pair in source.split(",") if pair))
    data = f'<tt:SimpleItem Name="{name}" Value="{state}"/>' if state is not None else ""
    return ("<wsnt:NotificationMessage><wsnt:Topic Dialect=\"http://www.onvif.org/ver10/tev/"
            f"topicExpression/ConcreteSet\">{topic}</wsnt:Topic><wsnt:Message>"
            f'<tt:Message UtcTime="{stamp(time.time() if t is None else t)}" '
            f'PropertyOperation="{operation}"><tt:Source>{items}</tt:Source>'
            f"<tt:Data>{data}</tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>")


def notify_envelope(*messages: str) -> bytes:
    """A wsnt:Notify carrying NotificationMessage elements (from `notification`)."""
    return ENVELOPE.format(f"<wsnt:Notify>{''.join(messages)}</wsnt:Notify>").encode()


def post(url: str, body: bytes, timeout: float = 5.0) -> int:
    """POST a Notify like a camera does; the HTTP status. Loopback only."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.hostname.startswith("127."), url
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("POST", parts.path, body, {
            "Content-Type": f'application/soap+xml; charset=utf-8; action="{WSN_NOTIFY}"'})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@dataclass
class EventRequest:
    operation: str
    at: float                  # when it arrived (our clock; the fake has no skew here)
    subscription: int | None
    ends: float | None = None  # Renew: when the subscription would have ended


def _seconds(body: str, tag: str, default: float) -> float:
    match = re.search(rf"<(?:\w+:)?{tag}>PT(\d+(?:\.\d+)?)S</", body)
    return float(match.group(1)) if match else default


class EventCamera(FakeCamera):
    def __init__(self, *, initial: list[str] | None = None,
                 reference: Callable[[int], str] | None = None, pullpoint: bool = True,
                 **kwargs) -> None:
        self.subscriptions: dict[int, float] = {}      # id -> termination time
        self.consumers: dict[int, str] = {}            # id -> ConsumerReference (Subscribe)
        self.notify_statuses: list[int] = []           # the receiver's answers to our Notify
        self.pullpoint = pullpoint
        self.events: list[EventRequest] = []
        self.queue: list[str] = []
        self.initial = initial if initial is not None else [
            notification(MOTION, "false", "Initialized")]
        self.reference = reference
        self.faults_served = 0
        self._next = 0
        self._cond = threading.Condition()
        super().__init__(**kwargs)

    def _defaults(self):  # noqa: ANN202
        answers = super()._defaults()
        answers[f"{TEV}/EventPortType/CreatePullPointSubscriptionRequest"] = self._create
        answers[f"{TEV}/PullPointSubscription/PullMessagesRequest"] = self._pull
        answers[f"{WSN}/RenewRequest"] = self._renew
        answers[f"{WSN}/UnsubscribeRequest"] = self._unsubscribe
        answers[f"{WSN_PRODUCER}/SubscribeRequest"] = self._subscribe
        if not self.pullpoint:
            del answers[f"{TEV}/EventPortType/CreatePullPointSubscriptionRequest"]
        return answers

    # -- what tests do ------------------------------------------------------------------

    def push(self, *messages: str) -> None:
        with self._cond:
            self.queue.extend(messages)
            self._cond.notify_all()

    def reboot(self) -> None:
        with self._cond:
            self.subscriptions.clear()
            self.consumers.clear()
            self.queue.clear()

    def deliver(self, *messages: str) -> list[int]:
        """Push a Notify with `messages` to every live basic subscription's consumer;
        the receiver's HTTP statuses."""
        now = time.time()
        with self._cond:
            targets = [url for sub, url in self.consumers.items() if self._live(sub, now)]
        statuses = [post(url, notify_envelope(*messages)) for url in targets]
        self.notify_statuses.extend(statuses)
        return statuses

    def count(self, operation: str) -> int:
        return sum(1 for e in self.events if e.operation == operation)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    # -- answers ------------------------------------------------------------------------

    def _id(self, body: str) -> int | None:
        match = re.search(r"<(?:\w+:)?To\b[^>]*>[^<]*Idx=(\d+)<", body)
        return int(match.group(1)) if match else None

    def _unknown(self, sub: int | None) -> tuple[int, bytes]:
        self.faults_served += 1
        fault = ("<s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>"
                 "wsrf-r:ResourceUnknownFault</s:Value></s:Subcode></s:Code><s:Reason>"
                 f'<s:Text xml:lang="en">no subscription {sub}</s:Text></s:Reason></s:Fault>')
        return 400, ENVELOPE.format(fault).encode()

    def _create(self, body: str) -> tuple[int, bytes]:
        now = time.time()
        with self._cond:
            self._next += 1
            sub = self._next
            self.subscriptions[sub] = now + _seconds(body, "InitialTerminationTime", 60)
            self.queue[:0] = list(self.initial)
            ends = self.subscriptions[sub]
        self.events.append(EventRequest("CreatePullPointSubscription", now, sub))
        address = self.reference(sub) if self.reference else \
            self.url(f"/onvif/Subscription?Idx={sub}")
        return 200, ENVELOPE.format(
            "<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference>"
            f"<wsa5:Address>{address}</wsa5:Address></tev:SubscriptionReference>"
            f"<wsnt:CurrentTime>{stamp(now)}</wsnt:CurrentTime>"
            f"<wsnt:TerminationTime>{stamp(ends)}</wsnt:TerminationTime>"
            "</tev:CreatePullPointSubscriptionResponse>").encode()

    def _live(self, sub: int | None, now: float) -> bool:
        ends = self.subscriptions.get(sub) if sub is not None else None
        if ends is not None and ends < now:
            del self.subscriptions[sub]
            self.consumers.pop(sub, None)
            return False
        return ends is not None

    def _subscribe(self, body: str) -> tuple[int, bytes]:
        """wsnt:Subscribe: remember the consumer, push the Initialized messages to it
        (before answering, as some cameras do), answer a SubscribeResponse."""
        consumer = re.search(r"ConsumerReference>\s*<(?:\w+:)?Address>([^<]+)</", body)
        if consumer is None:
            return 400, fixture("fault.action-not-supported.xml")
        now = time.time()
        with self._cond:
            self._next += 1
            sub = self._next
            self.subscriptions[sub] = now + _seconds(body, "InitialTerminationTime", 60)
            self.consumers[sub] = html.unescape(consumer.group(1))
            ends = self.subscriptions[sub]
        self.events.append(EventRequest("Subscribe", now, sub))
        if self.initial:
            try:
                self.notify_statuses.append(post(self.consumers[sub],
                                                 notify_envelope(*self.initial)))
            except OSError:          # nothing listens there: a camera shrugs too
                self.notify_statuses.append(0)
        address = self.reference(sub) if self.reference else \
            self.url(f"/onvif/Subscription?Idx={sub}")
        return 200, ENVELOPE.format(
            "<wsnt:SubscribeResponse><wsnt:SubscriptionReference>"
            f"<wsa5:Address>{address}</wsa5:Address></wsnt:SubscriptionReference>"
            f"<wsnt:CurrentTime>{stamp(now)}</wsnt:CurrentTime>"
            f"<wsnt:TerminationTime>{stamp(ends)}</wsnt:TerminationTime>"
            "</wsnt:SubscribeResponse>").encode()

    def _pull(self, body: str) -> tuple[int, bytes]:
        sub, now = self._id(body), time.time()
        self.events.append(EventRequest("PullMessages", now, sub))
        wait = min(1.0, _seconds(body, "Timeout", 1))
        with self._cond:
            if not self._live(sub, now):
                return self._unknown(sub)
            self._cond.wait_for(lambda: self.queue, timeout=wait)
            limit = int((re.search(r"MessageLimit>(\d+)<", body) or [0, "10"])[1])
            taken, self.queue[:limit] = self.queue[:limit], []
            ends = self.subscriptions.get(sub, now)
        return 200, ENVELOPE.format(
            f"<tev:PullMessagesResponse><tev:CurrentTime>{stamp(time.time())}</tev:CurrentTime>"
            f"<tev:TerminationTime>{stamp(ends)}</tev:TerminationTime>{''.join(taken)}"
            "</tev:PullMessagesResponse>").encode()

    def _renew(self, body: str) -> tuple[int, bytes]:
        sub, now = self._id(body), time.time()
        with self._cond:
            ends = self.subscriptions.get(sub)
            self.events.append(EventRequest("Renew", now, sub, ends))
            if not self._live(sub, now):
                return self._unknown(sub)
            self.subscriptions[sub] = now + _seconds(body, "TerminationTime", 60)
            ends = self.subscriptions[sub]
        return 200, ENVELOPE.format(
            f"<wsnt:RenewResponse><wsnt:TerminationTime>{stamp(ends)}</wsnt:TerminationTime>"
            f"<wsnt:CurrentTime>{stamp(now)}</wsnt:CurrentTime></wsnt:RenewResponse>").encode()

    def _unsubscribe(self, body: str) -> tuple[int, bytes]:
        sub = self._id(body)
        self.events.append(EventRequest("Unsubscribe", time.time(), sub))
        with self._cond:
            self.consumers.pop(sub, None)
            if self.subscriptions.pop(sub, None) is None:
                return self._unknown(sub)
        return 200, ENVELOPE.format("<wsnt:UnsubscribeResponse/>").encode()
