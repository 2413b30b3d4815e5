"""Reading event service answers: canned responses written from the ONVIF event WSDL
(event.wsdl, b-2.xsd, onvif.xsd tt:Message), in the shapes makers send."""

from __future__ import annotations

import pytest

from appliance.cameras.onvif.events import (MAX_ITEMS, MAX_MESSAGES, duration, parse_time,
                                            pull_messages, renewed, subscription)
from appliance.cameras.onvif.soap import BadResponse, parse_xml

ENV = ('<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
       'xmlns:wsa5="http://www.w3.org/2005/08/addressing" '
       'xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" '
       'xmlns:tev="http://www.onvif.org/ver10/events/wsdl" '
       'xmlns:tt="http://www.onvif.org/ver10/schema" '
       'xmlns:tns1="http://www.onvif.org/ver10/topics"><s:Body>{}</s:Body></s:Envelope>')


def message(topic, state, operation="Changed", utc="2027-01-15T08:00:05Z",
            source='<tt:SimpleItem Name="VideoSourceConfigurationToken" Value="vsc1"/>',
            name="State"):
    return ("<wsnt:NotificationMessage><wsnt:Topic Dialect=\"http://www.onvif.org/ver10/tev/"
            f"topicExpression/ConcreteSet\">{topic}</wsnt:Topic><wsnt:Message>"
            f'<tt:Message UtcTime="{utc}" PropertyOperation="{operation}">'
            f"<tt:Source>{source}</tt:Source><tt:Key/>"
            f'<tt:Data><tt:SimpleItem Name="{name}" Value="{state}"/></tt:Data>'
            "</tt:Message></wsnt:Message></wsnt:NotificationMessage>")


def pull_answer(*messages, current="2027-01-15T08:00:06Z", termination="2027-01-15T08:01:06Z"):
    return ENV.format(f"<tev:PullMessagesResponse><tev:CurrentTime>{current}</tev:CurrentTime>"
                      f"<tev:TerminationTime>{termination}</tev:TerminationTime>"
                      f"{''.join(messages)}</tev:PullMessagesResponse>").encode()


def test_pull_messages_motion_start():
    result = pull_messages(parse_xml(pull_answer(
        message("tns1:RuleEngine/CellMotionDetector/Motion", "true", name="IsMotion"))))
    assert result.termination - result.current == 60
    (note,) = result.notifications
    assert note.topic == "tns1:RuleEngine/CellMotionDetector/Motion"
    assert note.operation == "Changed"
    assert note.time == parse_time("2027-01-15T08:00:05Z")
    assert note.source == (("VideoSourceConfigurationToken", "vsc1"),)
    assert note.data == (("IsMotion", "true"),)


def test_empty_pull_and_missing_message_body():
    assert pull_messages(parse_xml(pull_answer())).notifications == []
    bare = ("<wsnt:NotificationMessage><wsnt:Topic>tns1:Device/Trigger/DigitalInput"
            "</wsnt:Topic></wsnt:NotificationMessage>")
    (note,) = pull_messages(parse_xml(pull_answer(bare))).notifications
    assert (note.time, note.operation, note.source, note.data) == (None, "", (), ())


def test_bounds_on_messages_and_items():
    many = message("tns1:VideoSource/MotionAlarm", "true") * (MAX_MESSAGES + 10)
    assert len(pull_messages(parse_xml(pull_answer(many))).notifications) == MAX_MESSAGES
    items = "".join(f'<tt:SimpleItem Name="n{i}" Value="{"x" * 1000}"/>' for i in range(40))
    (note,) = pull_messages(parse_xml(pull_answer(
        message("tns1:VideoSource/MotionAlarm", "true", source=items)))).notifications
    assert len(note.source) == MAX_ITEMS and all(len(v) <= 256 for _, v in note.source)


def test_control_characters_are_cleaned():
    (note,) = pull_messages(parse_xml(pull_answer(
        message("tns1:VideoSource/MotionAlarm&#x9b;31m&#x7f;", "true")))).notifications
    assert note.topic == "tns1:VideoSource/MotionAlarm 31m"   # C1 CSI and DEL removed


def test_wrong_answer_is_refused():
    with pytest.raises(BadResponse, match="expected PullMessagesResponse"):
        pull_messages(parse_xml(ENV.format("<tev:SomethingElse/>").encode()))


def test_subscription_reference_with_parameters():
    answer = ENV.format(
        "<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference>"
        "<wsa5:Address>http://192.168.1.20/onvif/Subscription?Idx=7</wsa5:Address>"
        '<wsa5:ReferenceParameters><dom0:SubscriptionId xmlns:dom0="http://www.axis.com/2009/'
        'event">7</dom0:SubscriptionId></wsa5:ReferenceParameters>'
        "</tev:SubscriptionReference><wsnt:CurrentTime>2027-01-15T08:00:00Z</wsnt:CurrentTime>"
        "<wsnt:TerminationTime>2027-01-15T08:01:00Z</wsnt:TerminationTime>"
        "</tev:CreatePullPointSubscriptionResponse>").encode()
    sub = subscription(parse_xml(answer))
    assert sub.address == "http://192.168.1.20/onvif/Subscription?Idx=7"
    assert sub.lifetime() == 60
    assert "SubscriptionId" in sub.reference_parameters and ">7<" in sub.reference_parameters


def test_subscription_without_address_is_refused():
    answer = ENV.format("<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference/>"
                        "</tev:CreatePullPointSubscriptionResponse>").encode()
    with pytest.raises(BadResponse, match="no subscription address"):
        subscription(parse_xml(answer))


def test_renew_answer():
    answer = ENV.format("<wsnt:RenewResponse><wsnt:TerminationTime>2027-01-15T08:02:00Z"
                        "</wsnt:TerminationTime><wsnt:CurrentTime>2027-01-15T08:01:00Z"
                        "</wsnt:CurrentTime></wsnt:RenewResponse>").encode()
    termination, current = renewed(parse_xml(answer))
    assert termination - current == 60


def test_parse_time_forms():
    base = parse_time("2027-01-15T08:00:00Z")
    assert parse_time("2027-01-15T08:00:05Z") - base == 5
    assert parse_time("2027-01-15T08:00:05.123456789Z") - base == pytest.approx(5.123456)
    assert parse_time("2027-01-15T09:00:05+01:00") - base == 5
    assert parse_time("2027-01-15T08:00:05") - base == 5          # no zone: UTC
    assert parse_time("yesterday") is None and parse_time("") is None


def test_duration():
    assert duration(60) == "PT60S" and duration(0.2) == "PT1S"
