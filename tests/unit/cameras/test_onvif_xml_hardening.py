"""Hostile XML from a camera: refused with a clear message, never expanded or fetched."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from appliance.cameras.onvif import responses
from appliance.cameras.onvif.soap import MAX_XML_BYTES, BadResponse, body_of, envelope, parse_xml
from appliance.core.errors import FailedPrecondition

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "cameras" / "onvif"


def test_billion_laughs_is_refused_without_expansion():
    data = (FIXTURES / "billion_laughs.xml").read_bytes()
    tracemalloc.start()
    try:
        with pytest.raises(BadResponse, match="DTD or entity declarations.*nothing in it was "
                                              "expanded"):
            parse_xml(data, "the GetDeviceInformation answer")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 << 20   # expanded, it would be about 3 GB


def test_external_entity_is_refused(tmp_path):
    with pytest.raises(BadResponse, match="DTD"):
        parse_xml((FIXTURES / "external_entity.xml").read_bytes())


def test_external_dtd_is_refused():
    with pytest.raises(BadResponse, match="DTD"):
        parse_xml((FIXTURES / "external_dtd.xml").read_bytes())


def test_quadratic_blowup_is_refused():
    data = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "' + b"A" * 50_000 + b'">]><x>'
            + b"&a;" * 10_000 + b"</x>")
    with pytest.raises(BadResponse, match="DTD"):
        parse_xml(data)


def test_deep_nesting_is_refused():
    data = b"<a>" * 10_000 + b"</a>" * 10_000
    with pytest.raises(BadResponse, match="deeper than 64 levels"):
        parse_xml(data)


def test_element_flood_is_refused():
    data = b"<a>" + b"<b/>" * 30_000 + b"</a>"
    with pytest.raises(BadResponse, match="more than 20000 elements"):
        parse_xml(data)


def test_oversize_is_refused_before_parsing():
    with pytest.raises(BadResponse, match=f"larger than {MAX_XML_BYTES} bytes"):
        parse_xml(b"<a>" + b"x" * MAX_XML_BYTES + b"</a>")


@pytest.mark.parametrize("data,message", [
    (b"", "not well-formed"),
    (b"<a><b></a>", "not well-formed"),
    (b"\xff\xfe<\x00a\x00", "not well-formed"),
    (b"HTTP/1.1 200 OK", "not well-formed"),
    (b"<a>text</a><b/>", "not well-formed"),
])
def test_malformed(data, message):
    with pytest.raises(BadResponse, match=message):
        parse_xml(data)


def test_bad_response_is_a_failed_precondition():
    assert issubclass(BadResponse, FailedPrecondition)


def test_not_an_envelope_and_empty_body():
    with pytest.raises(BadResponse, match="not a SOAP envelope"):
        body_of(parse_xml(b"<html><body>login</body></html>"), "the answer")
    with pytest.raises(BadResponse, match="empty SOAP body"):
        body_of(parse_xml(b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">'
                          b"<s:Body/></s:Envelope>"), "the answer")


def test_control_characters_and_long_values_are_cleaned():
    data = ('<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
            'xmlns:tds="http://www.onvif.org/ver10/device/wsdl"><s:Body>'
            "<tds:GetDeviceInformationResponse><tds:Manufacturer>Evil&#x9b;31m\n\tCorp"
            "</tds:Manufacturer><tds:Model>" + "M" * 5000 + "</tds:Model>"
            "</tds:GetDeviceInformationResponse></s:Body></s:Envelope>").encode()
    info = responses.device_information(parse_xml(data))
    assert info.manufacturer == "Evil 31m  Corp"
    assert len(info.model) == 128


def test_request_envelope_escapes_and_parses_back():
    data = envelope("<tds:GetDeviceInformation/>")
    assert body_of(parse_xml(data), "ours").tag == \
        "{http://www.onvif.org/ver10/device/wsdl}GetDeviceInformation"
