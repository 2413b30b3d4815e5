"""ONVIF events by WS-BaseNotification, for cameras without PullPoint: the box subscribes
with a ConsumerReference (an HTTP address on the box) and the camera pushes each event to
it as a wsnt:Notify. The subscription is kept alive and ended exactly like a PullPoint
one (the same wsnt:Renew and wsnt:Unsubscribe on the same kind of subscription manager),
so only Subscribe and reading Notify are new here.

    client = BaseNotificationClient(xaddr, creds, policy)
    client.sync_clock()
    sub = client.subscribe(consumer_url, termination_s=60)  # address checked by the policy
    sub = client.renew(sub, termination_s=60)
    client.unsubscribe(sub)
    notes = notify_messages(parse_xml(body))                # in the receiver (events/receiver.py)

The Notify body is read with the same hardened parser and the same message reader as a
PullMessages answer: wsnt:NotificationMessage is one schema type in both.
See docs/design/events.md.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from appliance.cameras.onvif.client import OperationFault
from appliance.cameras.onvif.events import (WSA, WSNT, Notification, PullPointClient,
                                            Subscription, duration, notification_messages,
                                            subscription)
from appliance.cameras.onvif.responses import expect
from appliance.cameras.onvif.soap import xml_text


class NoBaseNotification(OperationFault):
    """The camera refused a basic-notification subscription (and had refused PullPoint)."""


def subscribe_request(consumer: str, termination_s: float) -> str:
    """The wsnt:Subscribe body (WS-BaseNotification b-2.xsd): where the camera should
    push (ConsumerReference, a wsa:EndpointReference) and for how long. No Filter: every
    topic is taken and normalised, as with PullPoint."""
    return (f'<wsnt:Subscribe xmlns:wsnt="{WSNT}" xmlns:wsa="{WSA}">'
            f"<wsnt:ConsumerReference><wsa:Address>{xml_text(consumer)}</wsa:Address>"
            "</wsnt:ConsumerReference>"
            f"<wsnt:InitialTerminationTime>{duration(termination_s)}"
            "</wsnt:InitialTerminationTime></wsnt:Subscribe>")


def subscribe_response(root: ET.Element) -> Subscription:
    """wsnt:SubscribeResponse: the subscription manager's address (and reference
    parameters), CurrentTime and TerminationTime."""
    return subscription(root, "Subscribe")


def notify_messages(root: ET.Element) -> list[Notification]:
    """The notifications in a wsnt:Notify envelope, bounded like a pull."""
    return notification_messages(expect(root, "Notify", "Notify"), "Notify")


class BaseNotificationClient(PullPointClient):
    """A camera's event service, both ways: PullPoint (inherited) and Subscribe."""

    def subscribe(self, consumer: str, termination_s: float) -> Subscription:
        """Ask the camera to push its events to `consumer`. The subscription manager it
        names passes the same checks as a PullPoint one (policy, the camera's own host)."""
        url = self.events_url or self.find_events_url()
        try:
            root = self._send(url, "Subscribe", subscribe_request(consumer, termination_s))
        except OperationFault as exc:
            raise NoBaseNotification(
                f"the camera at {self.device.host} refused a basic-notification "
                f"subscription: {exc.fault.describe() if exc.fault else exc}",
                exc.fault) from None
        found = subscribe_response(root)
        return Subscription(self.subscription_url(found.address), found.reference_parameters,
                            found.termination, found.current)
