"""`nvr cameras add --xaddr`: an ONVIF camera (the strict fake camera on loopback) is
onboarded into the registry with its identity, streams and credentials; adding the same
device again is refused; the same camera at a new address updates the entry."""

from __future__ import annotations

import json

import pytest

from appliance.cameras.credentials import CredentialStore
from appliance.cameras.registry import CameraRegistry
from appliance.config.cameras import build_camera_settings
from tests.integration.cameras.fakecam import FakeCamera
from tests.integration.nvr_cli import nvr

PASSWORD = "pa55 word"


@pytest.mark.timeout(60)
def test_adopt_by_xaddr_then_refuse_the_same_device(tmp_path):
    reg_args = ["--registry", str(tmp_path / "cameras.json"), "--secrets",
                str(tmp_path / "secrets"), "--allow-network", "127.0.0.0/8",
                "--licence", str(tmp_path / "licence.txt"), "--board", "sim"]
    with FakeCamera() as cam:
        out = nvr("cameras", "add", "--name", "lobby", "--xaddr", cam.xaddr, "--user", "admin",
                  "--password-file", "-", *reg_args, stdin=PASSWORD + "\n")
        assert out.returncode == 0, out.stderr
        again = nvr("cameras", "add", "--name", "lobby2", "--xaddr", cam.xaddr, "--user",
                    "admin", "--password-file", "-", *reg_args, stdin=PASSWORD + "\n")
    assert again.returncode == 2 and "already added as lobby" in again.stderr
    registry = CameraRegistry(tmp_path / "cameras.json", CredentialStore(tmp_path / "secrets"),
                              build_camera_settings({"incoming_budget_mbps": 100}))
    [camera] = registry.cameras()
    assert (camera.manufacturer, camera.model) == ("HIKVISION", "DS-2CD2143G2-I")
    assert camera.endpoint == "urn:uuid:1a2b3c4d-0000-1111-2222-001122334455"
    assert camera.main.codec == "h265" and camera.main.bitrate_kbps == 6144
    assert camera.sub is not None and camera.host == "127.0.0.1"
    assert registry.credentials.get("lobby").password == PASSWORD
    listed = nvr("cameras", "list", "--json", *reg_args[:4])
    assert PASSWORD not in listed.stdout
    assert json.loads(listed.stdout)["cameras"][0]["serial"] == camera.serial
    # the same camera seen again at a new address (DHCP): updated in place
    moved = registry.observe(type(camera)(**{**camera.__dict__, "id": "x", "host": "127.0.0.9",
                                              "xaddr": "", "serial": "", "mac": ""}))
    assert moved.id == "lobby" and moved.host == "127.0.0.9"
    assert registry.cameras()[0].main.uri.startswith("rtsp://127.0.0.9:")


def test_an_xaddr_outside_the_allowed_networks_is_never_contacted(tmp_path):
    with FakeCamera() as cam:
        out = nvr("cameras", "add", "--name", "lobby", "--xaddr", cam.xaddr,
                  "--registry", str(tmp_path / "c.json"), "--secrets", str(tmp_path / "s"))
        assert cam.requests == []
    assert out.returncode == 2 and "127.0.0.1" in out.stderr
