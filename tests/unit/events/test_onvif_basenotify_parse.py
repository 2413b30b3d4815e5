"""WS-BaseNotification requests and answers: the Subscribe and Renew envelopes as the
camera receives them, and canned SubscribeResponse and Notify messages written from the
OASIS schema (b-2.xsd: SubscribeResponse with a wsa:EndpointReferenceType
SubscriptionReference, optional CurrentTime and TerminationTime; Notify with one or more
NotificationMessage) and the ONVIF event WSDL."""

from __future__ import annotations

import pytest

from appliance.cameras.onvif.basenotify import (notify_messages, subscribe_request,
                                                subscribe_response)
from appliance.cameras.onvif.events import (ACTIONS, MAX_MESSAGES, addressing_header,
                                            parse_time, renew_request)
from appliance.cameras.onvif.soap import BadResponse, child, envelope, local, parse_xml

WSNT = "http://docs.oasis-open.org/wsn/b-2"
WSA = "http://www.w3.org/2005/08/addressing"
ENV = ('<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
       'xmlns:wsa="http://www.w3.org/2005/08/addressing" '
       'xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" '
       'xmlns:tt="http://www.onvif.org/ver10/schema" '
       'xmlns:tns1="http://www.onvif.org/ver10/topics"><s:Body>{}</s:Body></s:Envelope>')
CONSUMER = "http://192.168.1.2:8086/onvif-events/Zm9v-YmFy_x?a=1&b=2"
EVENTS_URL = "http://192.168.1.20/onvif/Events"


def sent(body: str, header: str = ""):
    """The envelope as the camera parses it."""
    return parse_xml(envelope(body, header))


def test_subscribe_envelope():
    root = sent(subscribe_request(CONSUMER, 60), addressing_header(EVENTS_URL, "Subscribe"))
    body = child(root, "Body", "Subscribe")
    assert body.tag == f"{{{WSNT}}}Subscribe"
    address = body.find(f"{{{WSNT}}}ConsumerReference/{{{WSA}}}Address")
    assert address is not None and address.text == CONSUMER          # & escaped, read back
    assert body.find(f"{{{WSNT}}}InitialTerminationTime").text == "PT60S"
    assert body.find(f"{{{WSNT}}}Filter") is None                     # every topic
    header = child(root, "Header")
    assert header.find(f"{{{WSA}}}Action").text == \
        "http://docs.oasis-open.org/wsn/bw-2/NotificationProducer/SubscribeRequest"
    assert header.find(f"{{{WSA}}}To").text == EVENTS_URL
    assert header.find(f"{{{WSA}}}MessageID").text.startswith("urn:uuid:")


def test_subscribe_envelope_escapes_a_hostile_consumer_address():
    root = sent(subscribe_request('http://x/"><wsnt:Filter/><a x="', 60))
    body = child(root, "Body", "Subscribe")
    assert [local(e.tag) for e in body] == ["ConsumerReference", "InitialTerminationTime"]


def test_renew_envelope_echoes_the_reference_parameters():
    params = ('<dom0:SubscriptionId xmlns:dom0="http://www.axis.com/2009/event">7'
              "</dom0:SubscriptionId>")
    url = "http://192.168.1.20/onvif/Subscription?Idx=7"
    root = sent(renew_request(120), addressing_header(url, "Renew", params))
    renew = child(root, "Body", "Renew")
    assert renew.tag == f"{{{WSNT}}}Renew"
    assert renew.find(f"{{{WSNT}}}TerminationTime").text == "PT120S"
    header = child(root, "Header")
    assert header.find(f"{{{WSA}}}Action").text == ACTIONS["Renew"]
    assert header.find(f"{{{WSA}}}To").text == url
    assert child(header, "SubscriptionId").text == "7"


def test_subscribe_response():
    answer = ENV.format(
        "<wsnt:SubscribeResponse><wsnt:SubscriptionReference>"
        "<wsa:Address>http://192.168.1.20/onvif/Subscription?Idx=3</wsa:Address>"
        '<wsa:ReferenceParameters><dom0:SubscriptionId xmlns:dom0="http://www.axis.com/2009/'
        'event">3</dom0:SubscriptionId></wsa:ReferenceParameters>'
        "</wsnt:SubscriptionReference><wsnt:CurrentTime>2027-01-15T08:00:00Z</wsnt:CurrentTime>"
        "<wsnt:TerminationTime>2027-01-15T08:02:00Z</wsnt:TerminationTime>"
        "</wsnt:SubscribeResponse>").encode()
    sub = subscribe_response(parse_xml(answer))
    assert sub.address == "http://192.168.1.20/onvif/Subscription?Idx=3"
    assert sub.termination == parse_time("2027-01-15T08:02:00Z")
    assert sub.lifetime() == 120
    assert "SubscriptionId" in sub.reference_parameters and ">3<" in sub.reference_parameters


def test_subscribe_response_without_times():
    """CurrentTime and TerminationTime are optional in b-2.xsd: no lifetime, ours is used."""
    answer = ENV.format("<wsnt:SubscribeResponse><wsnt:SubscriptionReference><wsa:Address>"
                        "http://192.168.1.20/sub</wsa:Address></wsnt:SubscriptionReference>"
                        "</wsnt:SubscribeResponse>").encode()
    sub = subscribe_response(parse_xml(answer))
    assert sub.address == "http://192.168.1.20/sub" and sub.lifetime() is None


@pytest.mark.parametrize("body, words", [
    ("<wsnt:SubscribeResponse><wsnt:SubscriptionReference/></wsnt:SubscribeResponse>",
     "Subscribe: the answer has no subscription address"),
    ("<wsnt:RenewResponse/>", "expected SubscribeResponse"),
], ids=["no-address", "wrong-answer"])
def test_unusable_subscribe_responses(body, words):
    with pytest.raises(BadResponse, match=words):
        subscribe_response(parse_xml(ENV.format(body).encode()))


def message(state, utc="2027-01-15T08:00:05Z"):
    return ("<wsnt:NotificationMessage><wsnt:SubscriptionReference><wsa:Address>"
            "http://192.168.1.20/onvif/Subscription?Idx=3</wsa:Address>"
            "</wsnt:SubscriptionReference><wsnt:Topic Dialect=\"http://www.onvif.org/ver10/"
            "tev/topicExpression/ConcreteSet\">tns1:VideoSource/MotionAlarm</wsnt:Topic>"
            "<wsnt:ProducerReference><wsa:Address>http://192.168.1.20/onvif/Events"
            "</wsa:Address></wsnt:ProducerReference><wsnt:Message>"
            f'<tt:Message UtcTime="{utc}" PropertyOperation="Changed"><tt:Source>'
            '<tt:SimpleItem Name="Source" Value="vs1"/></tt:Source><tt:Data>'
            f'<tt:SimpleItem Name="State" Value="{state}"/></tt:Data></tt:Message>'
            "</wsnt:Message></wsnt:NotificationMessage>")


def test_notify_messages():
    root = parse_xml(ENV.format(f"<wsnt:Notify>{message('true')}{message('false')}"
                                "</wsnt:Notify>").encode())
    first, second = notify_messages(root)
    assert first.topic == "tns1:VideoSource/MotionAlarm" and first.operation == "Changed"
    assert first.time == parse_time("2027-01-15T08:00:05Z")
    assert first.source == (("Source", "vs1"),)
    assert (first.data, second.data) == ((("State", "true"),), (("State", "false"),))


def test_notify_is_bounded_like_a_pull():
    root = parse_xml(ENV.format(f"<wsnt:Notify>{message('true') * (MAX_MESSAGES + 5)}"
                                "</wsnt:Notify>").encode())
    assert len(notify_messages(root)) == MAX_MESSAGES


def test_something_else_than_notify_is_refused():
    with pytest.raises(BadResponse, match="expected Notify"):
        notify_messages(parse_xml(ENV.format("<wsnt:Subscribe/>").encode()))
