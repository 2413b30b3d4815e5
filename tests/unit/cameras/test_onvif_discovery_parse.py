"""WS-Discovery ProbeMatch parsing: makers' shapes, ipycam's capture, hostile answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.cameras.onvif.discovery import (device_from, parse_probe_matches, probe_message,
                                               scope_values)
from appliance.cameras.onvif.policy import AddressPolicy
from appliance.cameras.onvif.soap import BadResponse, child, parse_xml, text

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "cameras"
OURS = "urn:uuid:6c1f3a7e-95e1-4c6b-9d55-3f1b3f1b3f1b"
LAN = AddressPolicy(["192.168.1.0/24", "10.0.0.0/8", "fd00::/64"])


def read(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_probe_message_is_a_network_video_transmitter_probe():
    root = parse_xml(probe_message(OURS))
    assert text(root, "Header", "MessageID") == OURS
    assert text(root, "Header", "Action").endswith("/discovery/Probe")
    assert text(child(root, "Body", "Probe"), "Types") == "dn:NetworkVideoTransmitter"


def test_prefixed_probe_match():
    [match] = parse_probe_matches(read("onvif/probe_match.prefixed.xml"), OURS)
    assert match.endpoint == "urn:uuid:1a2b3c4d-0000-1111-2222-001122334455"
    assert match.xaddrs == ("http://192.168.1.20/onvif/device_service",
                            "http://[fd00::20]/onvif/device_service")
    assert match.types == ("dn:NetworkVideoTransmitter", "tds:Device")
    assert match.metadata_version == 10
    device = device_from(match, "192.168.1.20", LAN)
    assert (device.name, device.hardware, device.location, device.mac) == \
        ("Front Door", "DS-2CD2143G2-I", "country/nl/city/utrecht", "00:11:22:33:44:55")
    assert [(x.refused, x.from_sender) for x in device.xaddrs] == [(None, True), (None, False)]
    assert device.usable_xaddrs[0] == "http://192.168.1.20/onvif/device_service"
    as_json = device.to_json()
    assert as_json["endpoint"] == match.endpoint and as_json["xaddrs"][0]["from_sender"]


def test_wsd11_default_namespaces():
    [match] = parse_probe_matches(read("onvif/probe_match.wsd11-default-ns.xml"), OURS)
    assert match.endpoint == "urn:uuid:5f0e4a7c-8b9d-4e21-a3f6-0d9c8b7a6e5f"
    assert match.metadata_version is None
    device = device_from(match, "10.0.5.31", LAN)
    assert device.name is None and device.hardware == "IPC-HDW2431T"


def test_answer_to_another_probe_is_ignored():
    assert parse_probe_matches(read("onvif/probe_match.other-probe.xml"), OURS) == []
    assert len(parse_probe_matches(read("onvif/probe_match.other-probe.xml"), None)) == 1


def test_ipycam_probe_match():
    capture = read("ipycam/ProbeMatch.xml")
    [match] = parse_probe_matches(capture, "urn:uuid:0b3e8a52-41b6-4c8e-9a51-2f0f5d1c7e90")
    assert match.xaddrs == ("http://127.0.0.1:8080/onvif/device_service",)
    # ipycam puts ProbeMatch straight into the Body and the name unencoded ("Lab Cam")
    device = device_from(match, "127.0.0.1", AddressPolicy(["127.0.0.0/8"]))
    assert device.name == "Lab Cam"
    assert device.xaddrs[0].refused is None
    assert "loopback" in device_from(match, "127.0.0.1", LAN).xaddrs[0].refused


def test_spoofed_xaddrs_are_marked_refused():
    data = read("onvif/probe_match.spoofed.xml.in").decode().format(relates_to=OURS, canary=8080)
    [match] = parse_probe_matches(data.encode(), OURS)
    device = device_from(match, "192.168.1.66", LAN)
    reasons = {x.url: x.refused for x in device.xaddrs}
    assert "loopback" in reasons["http://127.0.0.1:8080/onvif/device_service"]
    assert "link-local" in reasons["http://169.254.169.254/latest/meta-data/"]
    assert "only http://" in reasons["file:///etc/passwd"]
    assert "only http://" in reasons["gopher://127.0.0.1:8080/_GET"]
    assert "loopback" in reasons["http://[::ffff:127.0.0.1]:8080/"]
    assert "loopback" in reasons["http://2130706433:8080/"]
    assert device.usable_xaddrs == []
    # the name is decoded, its NUL and escape characters are gone
    assert device.name == "\u6444\u50cf\u673a  [31m"


def test_scope_values_are_bounded_and_decoded():
    scopes = ["onvif://www.onvif.org/name/" + "%41" * 500, "ONVIF://www.onvif.org/Name/x",
              "onvif://www.onvif.org/name/%ZZ"]
    values = scope_values(scopes, "name")
    assert values[0] == "A" * 128
    assert values[1:] == ["x", "%ZZ"]


@pytest.mark.parametrize("data", [
    b"not xml at all", b"<a>" * 100 + b"</a>" * 99,
    (FIXTURES / "onvif" / "billion_laughs.xml").read_bytes(),
    b"<a>" + b"x" * (70 * 1024) + b"</a>",
])
def test_hostile_datagrams(data):
    with pytest.raises(BadResponse):
        parse_probe_matches(data, OURS)


def test_not_an_envelope_or_no_matches():
    assert parse_probe_matches(b"<hello/>", OURS) == []
    assert parse_probe_matches(probe_message(OURS), OURS) == []   # our own probe echoed


def test_too_many_xaddrs_and_scopes_are_cut():
    xaddrs = " ".join(f"http://192.168.1.{i}/onvif" for i in range(1, 50))
    scopes = " ".join(f"onvif://www.onvif.org/x/{i}" for i in range(500))
    data = (f'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
            f'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" '
            f'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"><s:Body>'
            f"<d:ProbeMatches><d:ProbeMatch><a:EndpointReference><a:Address>urn:x"
            f"</a:Address></a:EndpointReference><d:Scopes>{scopes}</d:Scopes>"
            f"<d:XAddrs>{xaddrs}</d:XAddrs></d:ProbeMatch></d:ProbeMatches></s:Body>"
            f"</s:Envelope>").encode()
    [match] = parse_probe_matches(data, OURS)
    assert len(match.xaddrs) == 8 and len(match.scopes) == 64
