"""Rediscovery's matching rules (appliance/cameras/rediscover.py `reconcile`), on a real
registry in a temporary directory, discovered devices built by hand and a stub identity
check: who moves, who stays, who is held and why, and that unknown devices are never
added."""

from __future__ import annotations

from appliance.cameras.credentials import CredentialStore
from appliance.cameras.onvif.discovery import DiscoveredDevice, XAddr
from appliance.cameras.onvif.policy import AddressPolicy
from appliance.cameras.rediscover import Move, reconcile
from appliance.cameras.registry import Camera, CameraRegistry, StreamInfo
from appliance.config.cameras import build_camera_settings

POLICY = AddressPolicy(["192.168.1.0/24"])
DOOR = "urn:uuid:00000000-0000-0000-0000-00000000d00e"
YARD = "urn:uuid:00000000-0000-0000-0000-0000000000ad"


def camera(cid, host, endpoint="", mac="", serial=""):
    return Camera(cid, cid.title(), host, StreamInfo(f"rtsp://{host}:554/main"),
                  StreamInfo(f"rtsp://{host}:554/sub"), xaddr=f"http://{host}/onvif/device_service",
                  endpoint=endpoint, mac=mac, serial=serial, manufacturer="Acme")


def registry(tmp_path, *cams):
    reg = CameraRegistry(tmp_path / "cameras.json", CredentialStore(tmp_path / "secrets"),
                         build_camera_settings({"incoming_budget_mbps": 1000}))
    for cam in cams:
        reg.add(cam)
    return reg


def device(endpoint, sender, *xaddr_hosts, mac=None):
    hosts = xaddr_hosts or (sender,)
    return DiscoveredDevice(endpoint, sender, mac=mac, xaddrs=[
        XAddr(f"http://{h}/onvif/device_service", None, h == sender) for h in hosts])


class Confirm:
    def __init__(self, answer=None):
        self.answer = answer
        self.calls = []

    def __call__(self, cam, xaddr):
        self.calls.append((cam.id, xaddr))
        return self.answer


def test_a_camera_found_at_a_new_address_moves_in_place(tmp_path):
    reg = registry(tmp_path, camera("door", "192.168.1.20", endpoint=DOOR))
    confirm = Confirm()
    report = reconcile(reg, [device(DOOR, "192.168.1.77")], POLICY, confirm)
    new_xaddr = "http://192.168.1.77/onvif/device_service"
    assert report.moved == [Move("door", "Door", "192.168.1.20", "192.168.1.77", new_xaddr)]
    assert confirm.calls == [("door", new_xaddr)]
    [cam] = reg.cameras()
    assert (cam.host, cam.xaddr, cam.main.uri, cam.sub.uri) == (
        "192.168.1.77", new_xaddr, "rtsp://192.168.1.77:554/main", "rtsp://192.168.1.77:554/sub")
    assert report.to_json()["moved"][0]["new_host"] == "192.168.1.77"


def test_matched_by_mac_when_the_endpoint_reference_changed(tmp_path):
    # some cameras make up a new endpoint reference after a firmware update
    reg = registry(tmp_path, camera("door", "192.168.1.20", endpoint=DOOR,
                                    mac="AA:BB:CC:00:11:22"))
    found = device("urn:uuid:11111111-0000-0000-0000-000000000000", "192.168.1.77",
                   mac="aa:bb:cc:00:11:22")
    report = reconcile(reg, [found], POLICY, Confirm())
    assert [m.camera_id for m in report.moved] == ["door"]
    assert reg.cameras()[0].host == "192.168.1.77"


def test_unchanged_unknown_and_not_seen(tmp_path):
    reg = registry(tmp_path, camera("door", "192.168.1.20", endpoint=DOOR),
                   camera("yard", "192.168.1.21", endpoint=YARD),
                   camera("gate", "192.168.1.22"))        # added by RTSP URL: no identity
    stranger = device("urn:uuid:22222222-0000-0000-0000-000000000000", "192.168.1.90")
    confirm = Confirm()
    report = reconcile(reg, [device(DOOR, "192.168.1.20"), stranger], POLICY, confirm)
    assert report.moved == [] and report.held == [] and confirm.calls == []
    assert report.unchanged == ["door"]
    assert report.not_seen == ["yard"]
    assert report.unknown == [stranger]
    assert [c.id for c in reg.cameras()] == ["door", "yard", "gate"]   # nothing added


def test_an_identity_check_that_fails_holds_the_camera(tmp_path):
    reg = registry(tmp_path, camera("door", "192.168.1.20", endpoint=DOOR, serial="SN1"))
    confirm = Confirm("the device at 192.168.1.66 is Acme serial SN9, not Acme serial SN1")
    report = reconcile(reg, [device(DOOR, "192.168.1.66")], POLICY, confirm)
    assert report.moved == []
    [held] = report.held
    assert (held.camera_id, held.host) == ("door", "192.168.1.66") and "SN9" in held.reason
    assert reg.cameras()[0].host == "192.168.1.20"


def test_two_hosts_claiming_one_camera_move_nothing(tmp_path):
    reg = registry(tmp_path, camera("door", "192.168.1.20", endpoint=DOOR))
    confirm = Confirm()
    report = reconcile(reg, [device(DOOR, "192.168.1.77"), device(DOOR, "192.168.1.78")],
                       POLICY, confirm)
    assert report.moved == [] and confirm.calls == []
    assert "several hosts (192.168.1.77, 192.168.1.78)" in report.held[0].reason
    assert reg.cameras()[0].host == "192.168.1.20"


def test_a_device_matching_two_cameras_moves_neither(tmp_path):
    reg = registry(tmp_path, camera("door", "192.168.1.20", endpoint=DOOR),
                   camera("yard", "192.168.1.21", endpoint=YARD, mac="aa:bb:cc:00:11:22"))
    report = reconcile(reg, [device(DOOR, "192.168.1.77", mac="aa:bb:cc:00:11:22")], POLICY,
                       Confirm())
    assert report.moved == [] and report.not_seen == []
    assert {h.camera_id for h in report.held} == {"door", "yard"}
    assert "matches several registered cameras (door, yard)" in report.held[0].reason


def test_the_new_address_must_be_the_answering_host_and_allowed(tmp_path):
    reg = registry(tmp_path, camera("door", "192.168.1.20", endpoint=DOOR),
                   camera("yard", "192.168.1.21", endpoint=YARD))
    elsewhere = device(DOOR, "192.168.1.66", "192.168.1.30")     # points at a third host
    outside = device(YARD, "10.9.9.9")                            # left the allowed networks
    confirm = Confirm()
    report = reconcile(reg, [elsewhere, outside], POLICY, confirm)
    assert report.moved == [] and confirm.calls == []
    reasons = {h.camera_id: h.reason for h in report.held}
    assert "announced its service on another host" in reasons["door"]
    assert "is refused: 10.9.9.9 is outside the allowed camera networks" in reasons["yard"]
    assert [c.host for c in reg.cameras()] == ["192.168.1.20", "192.168.1.21"]
