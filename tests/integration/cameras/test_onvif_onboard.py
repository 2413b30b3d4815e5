"""Onboarding against a strict fake camera on loopback (tests/integration/cameras/fakecam.py):
WS-Security with a camera clock an hour off ours, Media 1 and Media 2, HTTP Digest,
credentials in stream URIs, service addresses on other hosts, and the CLI."""

from __future__ import annotations

import argparse
import json
import time

import pytest

from appliance.cameras.cli import register
from appliance.cameras.credentials import Credentials
from appliance.cameras.onvif import (AddressPolicy, AuthFailed, CameraUnreachable, Timeouts,
                                     onboard)
from appliance.core.errors import FailedPrecondition
from tests.integration.cameras.fakecam import TDS, TRT, FakeCamera, fixture

POLICY = AddressPolicy(["127.0.0.0/8"])
PASSWORD = "pa55 word"


def creds(password: str = PASSWORD) -> Credentials:
    return Credentials("admin", password)


@pytest.mark.parametrize("skew", [0.0, 3600.0, -86400.0 * 400])
def test_onboard_media1_with_a_camera_clock_far_off(skew):
    with FakeCamera(skew_s=skew) as cam:
        cam.answers[f"{TRT}/GetSnapshotUri"] = fixture("snapshot_uri.xml").replace(
            b"0.0.0.0/", b"0.0.0.0:8081/")
        camera = onboard(cam.xaddr, creds(), POLICY, probe_for_endpoint=False)
    assert abs(camera.clock_offset_s - skew) < 2
    # every call after the clock read was authenticated in the camera's time
    assert all(seen.authenticated for seen in cam.requests[1:])
    assert cam.actions() == ["GetSystemDateAndTime", "GetDeviceInformation", "GetServices",
                             "GetNetworkInterfaces", "GetEndpointReference", "GetProfiles",
                             "GetStreamUri", "GetStreamUri", "GetSnapshotUri"]
    assert (camera.manufacturer, camera.model, camera.serial, camera.hardware_id) == \
        ("HIKVISION", "DS-2CD2143G2-I", "DS-2CD2143G2-I20220301AAWRJ12345678", "88")
    assert camera.endpoint_reference == "urn:uuid:1a2b3c4d-0000-1111-2222-001122334455"
    assert camera.mac == "bc:ad:28:0a:1b:2c"
    assert camera.media_service == "media"
    main, sub = camera.main, camera.sub
    assert (main.uri, main.codec, main.width, main.height, main.fps, main.bitrate_kbps) == \
        ("rtsp://127.0.0.1:554/stream/Profile_1", "h265", 2688, 1520, 20.0, 6144)
    assert (sub.uri, sub.codec, sub.width, sub.height) == \
        ("rtsp://127.0.0.1:554/stream/Profile_2", "h264", 640, 360)
    # the camera said 0.0.0.0 for its snapshot: the device's host is used instead
    assert camera.snapshot_uri == "http://127.0.0.1:8081/onvif/snapshot?channel=1"
    assert any("0.0.0.0" in w for w in camera.warnings)


def test_a_repaired_address_still_passes_the_policy():
    # 0.0.0.0 -> the device's host, 127.0.0.1:80: one of the box's own services there
    with FakeCamera() as cam:
        camera = onboard(cam.xaddr, creds(), POLICY, probe_for_endpoint=False)
    assert camera.snapshot_uri is None
    assert any("127.0.0.1:80 is one of this appliance's own services" in w
               for w in camera.warnings)


def test_to_json_never_carries_credentials():
    answers = {f"{TRT}/GetStreamUri": fixture("get_stream_uri.credentials.xml")
               .replace(b"192.168.1.20", b"127.0.0.1")}
    with FakeCamera(answers=answers) as cam:
        camera = onboard(cam.xaddr, creds(), POLICY, probe_for_endpoint=False)
    assert camera.main.uri == "rtsp://127.0.0.1:554/h264/ch1/main/av_stream"
    text = json.dumps(camera.to_json())
    for secret in (PASSWORD, "pa%40ss", "pa@ss", "admin:"):
        assert secret not in text


def test_onboard_media2_and_a_service_address_on_another_host():
    with FakeCamera(media2=True) as cam:
        camera = onboard(cam.xaddr, creds(), POLICY, probe_for_endpoint=False)
    assert camera.media_service == "media2"
    assert (camera.main.codec, camera.main.width, camera.main.height) == ("h265", 3840, 2160)
    assert (camera.sub.codec, camera.sub.fps) == ("h264", 12.5)
    # GetServices put Media 2 at 172.16.9.9:8080; the request went to the device instead
    media2 = [s for s in cam.requests if s.action.startswith("http://www.onvif.org/ver20/")]
    assert {s.path for s in media2} == {"/onvif/Media2"}


def test_media2_fault_falls_back_to_media1():
    answers = {"http://www.onvif.org/ver20/media/wsdl/GetProfiles":
               lambda body: (500, fixture("fault.action-not-supported.xml"))}
    with FakeCamera(media2=True, answers=answers) as cam:
        camera = onboard(cam.xaddr, creds(), POLICY, probe_for_endpoint=False)
    assert camera.media_service == "media" and camera.main.codec == "h265"


def test_a_camera_without_a_readable_clock_is_still_onboarded():
    answers = {f"{TDS}/GetSystemDateAndTime":
               lambda body: (200, fixture("system_date_and_time.local-only.xml"))}
    with FakeCamera(answers=answers) as cam:
        camera = onboard(cam.xaddr, creds(), POLICY, probe_for_endpoint=False)
    assert camera.clock_offset_s == 0.0
    assert any("does not report its UTC time" in w for w in camera.warnings)
    answers = {f"{TDS}/GetSystemDateAndTime":
               lambda body: (500, fixture("fault.action-not-supported.xml"))}
    with FakeCamera(answers=answers) as cam:
        assert onboard(cam.xaddr, creds(), POLICY, probe_for_endpoint=False).main is not None


def test_onvif1_camera_without_get_services():
    caps = fixture("get_capabilities.onvif1.xml").replace(b"10.0.5.31", b"192.168.1.20")
    answers = {f"{TDS}/GetServices":
               lambda body: (400, fixture("fault.action-not-supported.xml"))}
    with FakeCamera(answers=answers) as cam:
        cam.answers[f"{TDS}/GetCapabilities"] = cam.localise(caps)
        camera = onboard(cam.xaddr, creds(), POLICY, probe_for_endpoint=False)
    assert camera.main is not None
    assert "GetCapabilities" in cam.actions()


def test_wrong_password():
    with FakeCamera(skew_s=600) as cam:
        with pytest.raises(AuthFailed, match=r"refused the user name or password "
                                             r"\(GetDeviceInformation: Sender not Authorized "
                                             r"\(Sender/NotAuthorized\); its clock is "
                                             r"\+(599|600|601) s"):
            onboard(cam.xaddr, creds("wrong"), POLICY, probe_for_endpoint=False)


def test_no_credentials_for_a_camera_that_wants_them():
    with FakeCamera() as cam:
        with pytest.raises(AuthFailed, match="wants a user name and password"):
            onboard(cam.xaddr, None, POLICY, probe_for_endpoint=False)


def test_http_digest_camera():
    with FakeCamera(http_digest=True) as cam:
        camera = onboard(cam.xaddr, creds(), POLICY, probe_for_endpoint=False)
    assert camera.main is not None
    assert any(seen.http_digest for seen in cam.requests)
    with FakeCamera(http_digest=True) as cam:
        with pytest.raises(AuthFailed):
            onboard(cam.xaddr, creds("wrong"), POLICY, probe_for_endpoint=False)


def test_stream_outside_the_allowed_networks_is_not_offered():
    answers = {f"{TRT}/GetStreamUri": lambda body: (200, fixture("get_stream_uri.media1.xml")
                                                    .replace(b"192.168.1.20", b"8.8.8.8"))}
    with FakeCamera(answers=answers) as cam:
        with pytest.raises(FailedPrecondition, match="no usable stream address.*8.8.8.8 is "
                                                     "outside the allowed camera networks"):
            onboard(cam.xaddr, creds(), POLICY, probe_for_endpoint=False)


def test_a_slow_camera_cannot_stretch_onboarding():
    def slow(body: str):
        time.sleep(0.4)
        return 200, fixture("device_information.prefixed.xml")

    with FakeCamera(answers={f"{TDS}/GetDeviceInformation": slow,
                             f"{TDS}/GetServices": slow}) as cam:
        start = time.monotonic()
        with pytest.raises(CameraUnreachable):
            onboard(cam.xaddr, creds(), POLICY, deadline_s=0.6, timeouts=Timeouts(1, 1, 1),
                    probe_for_endpoint=False)
        assert time.monotonic() - start < 0.6 + 0.5


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="nvr")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except FailedPrecondition as exc:   # appliance.cli turns VigilError into exit code 2
        print(f"nvr: {exc}", file=__import__("sys").stderr)
        code = 2
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_onvif_info(tmp_path, capsys):
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    with FakeCamera() as cam:
        code, out, _ = run_cli(["onvif-info", "--xaddr", cam.xaddr, "--user", "admin",
                                "--password-file", str(secret), "--allow-network",
                                "127.0.0.0/8", "--json"], capsys)
        assert code == 0
        data = json.loads(out)
        assert data["main"]["uri"] == "rtsp://127.0.0.1:554/stream/Profile_1"
        assert PASSWORD not in out
        code, out, _ = run_cli(["onvif-info", "--xaddr", cam.xaddr, "--user", "admin",
                                "--password-file", str(secret), "--allow-network",
                                "127.0.0.0/8"], capsys)
        assert code == 0 and "main      rtsp://127.0.0.1:554/stream/Profile_1  h265" in out
        secret.write_text("wrong\n")
        code, _, err = run_cli(["onvif-info", "--xaddr", cam.xaddr, "--user", "admin",
                                "--password-file", str(secret), "--allow-network",
                                "127.0.0.0/8"], capsys)
        assert code == 2 and "refused the user name or password" in err


def test_cli_takes_no_password_argument(capsys):
    with pytest.raises(SystemExit):
        run_cli(["onvif-info", "--xaddr", "http://192.168.1.20/", "--password", "x"], capsys)
