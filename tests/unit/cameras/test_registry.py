"""The camera registry: identity across address changes, credentials kept apart and
private, the incoming bandwidth budget, and limits that hold under concurrent adds."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat

import pytest

from appliance.cameras.credentials import Credentials, CredentialStore, generate_password
from appliance.cameras.registry import Camera, CameraRegistry, StreamInfo
from appliance.config.cameras import build_camera_settings
from appliance.core.errors import FailedPrecondition, InvalidConfig, ResourceExhausted


def camera(cid="door", host="192.168.1.20", serial="SN1", mac="", endpoint="", kbps=4000,
           sub_kbps=500):
    return Camera(cid, cid.title(), host, StreamInfo(f"rtsp://{host}:554/main", "h264", 1920,
                                                     1080, 25, kbps),
                  StreamInfo(f"rtsp://{host}:554/sub", "h264", 640, 360, 10, sub_kbps),
                  xaddr=f"http://{host}/onvif/device_service", endpoint=endpoint,
                  manufacturer="Acme", model="C1", serial=serial, mac=mac,
                  snapshot_uri=f"http://{host}/snap.jpg")


def registry(tmp_path, limit=None, **settings):
    return CameraRegistry(tmp_path / "config" / "cameras.json",
                          CredentialStore(tmp_path / "secrets" / "cameras"),
                          build_camera_settings(settings),
                          channel_limit=(lambda: limit) if limit is not None else None)


def test_add_and_find_again_after_a_dhcp_change(tmp_path):
    reg = registry(tmp_path)
    reg.add(camera(endpoint="urn:uuid:1234"))
    moved = reg.observe(camera("whatever", host="192.168.1.77", serial="", endpoint="urn:uuid:1234"))
    assert moved.id == "door" and moved.host == "192.168.1.77"
    [cam] = reg.cameras()
    assert cam.main.uri == "rtsp://192.168.1.77:554/main"
    assert cam.sub.uri == "rtsp://192.168.1.77:554/sub"
    assert cam.xaddr == "http://192.168.1.77/onvif/device_service"
    assert cam.snapshot_uri == "http://192.168.1.77/snap.jpg"
    assert reg.observe(camera("other", host="192.168.1.9", serial="SN9")) is None


def test_the_same_device_cannot_be_added_twice(tmp_path):
    reg = registry(tmp_path)
    reg.add(camera(mac="AA:BB:CC:00:11:22", serial=""))
    with pytest.raises(FailedPrecondition, match="already added as door"):
        reg.add(camera("door2", host="192.168.1.30", serial="", mac="aa-bb-cc-00-11-22"))
    with pytest.raises(FailedPrecondition, match="named door already exists"):
        reg.add(camera(serial="OTHER"))


def test_credentials_are_private_and_never_in_the_registry(tmp_path):
    reg = registry(tmp_path)
    secret = generate_password()
    reg.add(camera(), Credentials("admin", secret))
    text = (tmp_path / "config" / "cameras.json").read_text()
    assert secret not in text and "admin" not in text
    path = tmp_path / "secrets" / "cameras" / "door.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert secret not in repr(reg.credentials.get("door"))
    [config] = reg.recorder_configs()
    assert config.url == f"rtsp://admin:{secret}@192.168.1.20:554/main"
    assert secret not in config.redacted_url
    reg.remove("door")
    assert not path.exists() and reg.cameras() == []


def test_special_characters_in_passwords_survive_the_url(tmp_path):
    reg = registry(tmp_path)
    reg.add(camera(), Credentials("ad:min", "p@ss/w:rd#1"))
    [config] = reg.recorder_configs()
    assert config.url == "rtsp://ad%3Amin:p%40ss%2Fw%3Ard%231@192.168.1.20:554/main"


def test_stream_uris_with_passwords_are_refused(tmp_path):
    with pytest.raises(InvalidConfig, match="without passwords"):
        Camera("x", "X", "h", StreamInfo("rtsp://u:p@h/s"))
    with pytest.raises(InvalidConfig, match="only rtsp"):
        Camera("x", "X", "h", StreamInfo("http://h/s"))


def test_the_incoming_bandwidth_budget_refuses_what_does_not_fit(tmp_path):
    reg = registry(tmp_path, incoming_budget_mbps=10)
    reg.add(camera("a", serial="1", kbps=4000, sub_kbps=500))
    reg.add(camera("b", serial="2", kbps=4000, sub_kbps=500))
    with pytest.raises(ResourceExhausted, match=r"needs 4\.5 Mb/s .* 9\.0 of the box's 10 Mb/s"):
        reg.add(camera("c", serial="3", kbps=4000, sub_kbps=500))
    unknown = camera("d", serial="4", kbps=0, sub_kbps=0)  # counts 4096 + 512 kb/s
    with pytest.raises(ResourceExhausted, match="needs 4.6 Mb/s"):
        reg.add(unknown)
    reg.add(camera("c", serial="3", kbps=800, sub_kbps=200))  # a lower bitrate fits
    assert reg.bandwidth_kbps() == 10_000


def test_a_disabled_camera_costs_nothing_until_enabled(tmp_path):
    reg = registry(tmp_path, incoming_budget_mbps=5)
    reg.add(camera("a", serial="1"))
    reg.add(Camera(**{**camera("b", serial="2").__dict__, "enabled": False}))
    with pytest.raises(ResourceExhausted):
        reg.set_enabled("b", True)
    reg.set_enabled("a", False)
    assert reg.set_enabled("b", True).enabled


def test_a_damaged_registry_is_a_clear_error_not_an_empty_list(tmp_path):
    reg = registry(tmp_path)
    reg.add(camera())
    (tmp_path / "config" / "cameras.json").write_text('{"cameras": [{"id": 5}]}')
    from appliance.core.errors import DataLoss
    with pytest.raises(DataLoss, match="damaged"):
        reg.cameras()


def _add_one(args):
    tmp, i = args
    reg = registry(tmp, limit=4, incoming_budget_mbps=1000)
    try:
        reg.add(camera(f"cam{i}", host=f"192.168.1.{10 + i}", serial=f"S{i}"))
        return "ok"
    except ResourceExhausted as exc:
        return str(exc)


def test_concurrent_adds_never_exceed_the_channel_limit(tmp_path):
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(8) as pool:
        results = pool.map(_add_one, [(tmp_path, i) for i in range(12)], chunksize=1)
    assert results.count("ok") == 4
    assert all("licence allows 4 cameras" in r for r in results if r != "ok")
    saved = json.loads((tmp_path / "config" / "cameras.json").read_text())
    assert len(saved["cameras"]) == 4
    assert not [p for p in os.listdir(tmp_path / "config") if p.endswith(".tmp")]


def test_a_port_powers_one_camera(tmp_path):
    reg = registry(tmp_path)
    reg.add(camera("a", serial="1"))
    reg.add(camera("b", serial="2", host="192.168.1.21"))
    reg.set_poe_port("a", "Port 3")
    reg.set_poe_port("b", "Port 3")  # b is on port 3 now: a is not any more
    assert {c.id: c.poe_port for c in reg.cameras()} == {"a": "", "b": "Port 3"}
