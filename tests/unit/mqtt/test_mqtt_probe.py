"""The connection test's own MQTT bytes (CONNECT, CONNACK) and its refusals before any
connection: an address the guard refuses, a CA file that is not one."""

from __future__ import annotations

import pytest

from appliance.cameras.credentials import Credentials
from appliance.cameras.onvif.policy import AddressPolicy
from appliance.core.errors import InvalidConfig
from appliance.mqtt.probe import connack_result, connect_packet, probe_broker
from appliance.mqtt.settings import MqttSettings


def test_connect_without_a_login_is_a_clean_mqtt_3_1_1_session():
    assert connect_packet("vigil-test-1", None) == (
        b"\x10\x18" + b"\x00\x04MQTT" + b"\x04" + b"\x02" + b"\x00\x1e"
        + b"\x00\x0cvigil-test-1")


def test_connect_carries_the_user_name_and_password_flags_and_fields():
    packet = connect_packet("c", Credentials("vigil", "pässword"))
    assert packet[9] == 0xC2                               # user name, password, clean session
    assert packet.endswith(b"\x00\x05vigil" + b"\x00\x09p\xc3\xa4ssword")
    assert packet[1] == len(packet) - 2


def test_a_long_packet_has_a_two_byte_remaining_length():
    packet = connect_packet("c", Credentials("u" * 64, "p" * 128))
    length = packet[1] & 0x7F | packet[2] << 7
    assert packet[1] & 0x80 and length == len(packet) - 3


@pytest.mark.parametrize("answer, accepted, words", [
    (b"\x20\x02\x00\x00", True, "accepted"),
    (b"\x20\x02\x00\x04", False, "refused the user name or password"),
    (b"\x20\x02\x00\x05", False, "not authorised"),
    (b"\x20\x02\x00\x01", False, "does not accept MQTT 3.1.1"),
    (b"\x20\x02\x00\x09", False, "code 9"),
    (b"HTTP", False, "not as an MQTT broker"),
    (b"", False, "not as an MQTT broker"),
])
def test_the_connack_in_words(answer, accepted, words):
    ok, text = connack_result(answer)
    assert ok is accepted and words in text


def test_an_address_the_guard_refuses_is_never_contacted():
    policy = AddressPolicy(["192.168.1.0/24"], resolver=lambda host, port: ["169.254.169.254"])
    with pytest.raises(InvalidConfig, match="link-local"):
        probe_broker(MqttSettings(host="metadata.lan", tls=False), None, policy)


def test_a_name_that_does_not_resolve_is_a_result(tmp_path):
    def unknown(host, port):
        raise OSError("Name or service not known")
    result = probe_broker(MqttSettings(host="mqtt.lan", tls=False), None,
                          AddressPolicy(["192.168.1.0/24"], resolver=unknown))
    assert (result.ok, result.step, result.address) == (False, "resolve", None)
    assert "mqtt.lan does not resolve" in result.message


@pytest.mark.parametrize("content, words", [(b"not a certificate", "not a PEM file"),
                                            (None, "cannot be read")])
def test_a_ca_file_that_is_not_one_is_refused_before_connecting(tmp_path, content, words):
    ca = tmp_path / "ca.pem"
    if content is not None:
        ca.write_bytes(content)
    settings = MqttSettings(host="192.168.1.5", tls=True, ca_file=str(ca))
    with pytest.raises(InvalidConfig, match=words):
        probe_broker(settings, None, AddressPolicy(["192.168.1.0/24"]))
