"""Rediscovery end to end on loopback: a camera registered at 127.0.0.1 answers a real
WS-Discovery probe from 127.0.0.2 (a WS-Discovery responder there, and the strict fake
camera on the same address to confirm its identity over ONVIF). Its entry moves in
place; an unknown device is only suggested; a device claiming the camera's endpoint
reference with another serial number is not believed. Also `nvr cameras rediscover`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.cameras.credentials import Credentials, CredentialStore
from appliance.cameras.onvif import AddressPolicy, onboard
from appliance.cameras.rediscover import Move, rediscover
from appliance.cameras.registry import CameraRegistry, from_onboarded
from appliance.config.cameras import build_camera_settings
from tests.integration.cameras.fakecam import TDS, FakeCamera, fixture
from tests.integration.cameras.hostile import DiscoveryResponder

ROOT = Path(__file__).resolve().parents[3]
POLICY = AddressPolicy(["127.0.0.0/8"])
PASSWORD = "pa55 word"
ENDPOINT = "urn:uuid:1a2b3c4d-0000-1111-2222-001122334455"    # fixtures/endpoint_reference.xml
STRANGER = "urn:uuid:99999999-8888-7777-6666-555555555555"
LISTEN_S = 0.5


def probe_match(message_id: str, endpoint: str, xaddr: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
            'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
            'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" '
            'xmlns:dn="http://www.onvif.org/ver10/network/wsdl"><s:Header>'
            "<a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</a:Action>"
            f"<a:RelatesTo>{message_id}</a:RelatesTo></s:Header><s:Body><d:ProbeMatches>"
            f"<d:ProbeMatch><a:EndpointReference><a:Address>{endpoint}</a:Address>"
            "</a:EndpointReference><d:Types>dn:NetworkVideoTransmitter</d:Types>"
            "<d:Scopes>onvif://www.onvif.org/name/Lobby</d:Scopes>"
            f"<d:XAddrs>{xaddr}</d:XAddrs><d:MetadataVersion>1</d:MetadataVersion>"
            "</d:ProbeMatch></d:ProbeMatches></s:Body></s:Envelope>").encode()


def registered(tmp_path: Path) -> CameraRegistry:
    """A registry with the fake camera adopted as "lobby" at 127.0.0.1."""
    reg = CameraRegistry(tmp_path / "cameras.json", CredentialStore(tmp_path / "secrets"),
                         build_camera_settings({"incoming_budget_mbps": 100}))
    creds = Credentials("admin", PASSWORD)
    with FakeCamera() as cam:
        reg.add(from_onboarded(onboard(cam.xaddr, creds, POLICY, probe_for_endpoint=False),
                               "lobby", "Lobby"), creds)
    return reg


@pytest.mark.timeout(30)
def test_a_camera_at_a_new_address_is_updated_in_place_and_strangers_are_only_listed(tmp_path):
    reg = registered(tmp_path)
    with FakeCamera(host="127.0.0.2") as cam, DiscoveryResponder(lambda mid: [
            probe_match(mid, ENDPOINT, cam.xaddr),
            probe_match(mid, STRANGER, "http://127.0.0.2:8999/onvif/device_service")],
            host="127.0.0.2") as responder:
        report = rediscover(reg, POLICY, LISTEN_S, addresses=["127.0.0.2"], multicast=False,
                            port=responder.port)
        # the identity was confirmed at the new address, with the stored credentials
        assert "GetDeviceInformation" in cam.actions()
        assert all(seen.authenticated for seen in cam.requests[1:])

        assert report.moved == [Move("lobby", "Lobby", "127.0.0.1", "127.0.0.2", cam.xaddr)]
        [camera] = reg.cameras()
        assert (camera.id, camera.host, camera.xaddr) == ("lobby", "127.0.0.2", cam.xaddr)
        assert camera.main.uri == "rtsp://127.0.0.2:554/stream/Profile_1"
        assert camera.sub.uri == "rtsp://127.0.0.2:554/stream/Profile_2"
        assert [d.endpoint for d in report.unknown] == [STRANGER]

        again = rediscover(reg, POLICY, LISTEN_S, addresses=["127.0.0.2"], multicast=False,
                           port=responder.port)
    assert again.moved == [] and again.unchanged == ["lobby"]
    assert len(reg.cameras()) == 1
    assert reg.credentials.get("lobby").password == PASSWORD


@pytest.mark.timeout(30)
def test_a_device_claiming_the_camera_with_another_serial_is_not_believed(tmp_path):
    reg = registered(tmp_path)
    other = fixture("device_information.prefixed.xml").replace(
        b"DS-2CD2143G2-I20220301AAWRJ12345678", b"DS-2CD2143G2-I20990101XXXXX00000000")
    with FakeCamera(host="127.0.0.3", answers={f"{TDS}/GetDeviceInformation": other}) as cam, \
            DiscoveryResponder(lambda mid: [probe_match(mid, ENDPOINT, cam.xaddr)],
                               host="127.0.0.3") as responder:
        report = rediscover(reg, POLICY, LISTEN_S, addresses=["127.0.0.3"], multicast=False,
                            port=responder.port)
    assert report.moved == []
    [held] = report.held
    assert held.camera_id == "lobby" and held.host == "127.0.0.3"
    assert "serial DS-2CD2143G2-I20990101XXXXX00000000, not HIKVISION serial " in held.reason
    assert reg.cameras()[0].host == "127.0.0.1"


@pytest.mark.timeout(60)
def test_cli_rediscover(tmp_path):
    reg = registered(tmp_path)
    args = ["--registry", str(tmp_path / "cameras.json"), "--secrets", str(tmp_path / "secrets"),
            "--allow-network", "127.0.0.0/8", "--licence", str(tmp_path / "licence.txt"),
            "--board", "sim", "--timeout", str(LISTEN_S), "--address", "127.0.0.2"]
    with FakeCamera(host="127.0.0.2") as cam, DiscoveryResponder(lambda mid: [
            probe_match(mid, ENDPOINT, cam.xaddr),
            probe_match(mid, STRANGER, "http://127.0.0.2:8999/onvif/device_service")],
            host="127.0.0.2") as responder:
        port = ["--port", str(responder.port)]
        out = subprocess.run([sys.executable, "-m", "appliance.cli", "cameras", "rediscover",
                              *args, *port], cwd=ROOT, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        assert "moved     lobby            127.0.0.1 -> 127.0.0.2" in out.stdout
        assert f"new       127.0.0.2        Lobby  endpoint {STRANGER}" in out.stdout
        assert "are not added" in out.stdout
        out = subprocess.run([sys.executable, "-m", "appliance.cli", "cameras", "rediscover",
                              "--json", *args, *port], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["moved"] == [] and data["unchanged"] == ["lobby"]
    assert [d["endpoint"] for d in data["unknown"]] == [STRANGER]
    assert [c.host for c in reg.cameras()] == ["127.0.0.2"]
    assert PASSWORD not in out.stdout
