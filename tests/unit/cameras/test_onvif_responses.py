"""ONVIF answer readers on hand-written fixtures (makers' shapes) and ipycam captures."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from appliance.cameras.onvif import responses
from appliance.cameras.onvif.responses import MediaProfile, pick_streams
from appliance.cameras.onvif.soap import BadResponse, fault_of, parse_xml

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "cameras"


def load(name: str):
    return parse_xml((FIXTURES / name).read_bytes())


def test_device_information_prefixed():
    info = responses.device_information(load("onvif/device_information.prefixed.xml"))
    assert info == responses.DeviceInformation("HIKVISION", "DS-2CD2143G2-I",
                                               "V5.7.3 build 220112",
                                               "DS-2CD2143G2-I20220301AAWRJ12345678", "88")


def test_device_information_default_namespace_and_missing_fields():
    info = responses.device_information(load("onvif/device_information.default-ns.xml"))
    assert info.manufacturer == "Generic"
    assert info.model == "IPC-HDW2431T-AS"
    assert info.serial is None and info.hardware_id is None


def test_wrong_answer_is_refused():
    with pytest.raises(BadResponse, match="expected GetDeviceInformationResponse, got "
                                          "GetProfilesResponse"):
        responses.device_information(load("onvif/get_profiles.media1.xml"))


def test_system_date_and_time_utc():
    when = responses.system_date_and_time(load("onvif/system_date_and_time.xml"))
    assert when == datetime(2026, 3, 8, 7, 5, 9, tzinfo=timezone.utc).timestamp()


def test_system_date_and_time_without_utc():
    assert responses.system_date_and_time(load("onvif/system_date_and_time.local-only.xml")) is None


def test_media1_profiles_in_camera_order():
    found = responses.profiles(load("onvif/get_profiles.media1.xml"))
    assert [p.token for p in found] == ["Profile_1", "Profile_2", "Profile_3", "Metadata_1"]
    main, sub, third, meta = found
    assert (main.codec, main.width, main.height, main.fps, main.bitrate_kbps) == \
        ("h265", 2688, 1520, 20.0, 6144)
    assert (sub.codec, sub.width, sub.height, sub.fps, sub.bitrate_kbps) == \
        ("h264", 640, 360, 15.0, 512)
    assert third.codec == "jpeg"
    assert meta.codec is None and meta.width is None
    assert pick_streams(found) == (main, sub)


def test_media1_sparse_profiles_sub_listed_first():
    found = responses.profiles(load("onvif/get_profiles.media1-sparse.xml"))
    minor, major = found
    assert (minor.name, minor.fps, minor.bitrate_kbps) == ("minor", None, None)
    assert major.name == "major"      # no Name element: the token
    assert pick_streams(found) == (major, minor)


def test_media2_profiles():
    found = responses.profiles(load("onvif/get_profiles.media2.xml"))
    main, sub = found
    assert (main.token, main.codec, main.width, main.height, main.fps, main.bitrate_kbps) == \
        ("MainStream", "h265", 3840, 2160, 25.0, 8192)
    assert (sub.codec, sub.width, sub.height, sub.fps) == ("h264", 704, 480, 12.5)
    assert pick_streams(found) == (main, sub)


def test_pick_streams_cases():
    def prof(token, codec, w, h):
        return MediaProfile(token, token, codec, w, h, None, None)

    a, b = prof("a", "h264", 1920, 1080), prof("b", "h264", 1920, 1080)
    assert pick_streams([a, b]) == (a, None)           # equal pictures: no sub stream
    jpeg = prof("j", "jpeg", 3840, 2160)
    small = prof("s", "h264", 640, 360)
    assert pick_streams([jpeg, small]) == (small, None)
    assert pick_streams([jpeg]) == (None, None)
    third = prof("t", "h264", 320, 180)
    assert pick_streams([a, small, third]) == (a, small)


def test_stream_uris():
    assert responses.media_uri(load("onvif/get_stream_uri.media1.xml"), "GetStreamUri") == \
        "rtsp://192.168.1.20:554/Streaming/Channels/101?transportmode=unicast&profile=Profile_1"
    assert responses.media_uri(load("onvif/get_stream_uri.media2.xml"), "GetStreamUri") == \
        "rtsp://10.0.5.31:554/cam/realmonitor?channel=1&subtype=0&unicast=true&proto=Onvif"
    assert responses.media_uri(load("onvif/snapshot_uri.xml"), "GetSnapshotUri") == \
        "http://0.0.0.0/onvif/snapshot?channel=1"


def test_services_and_capabilities():
    assert responses.services(load("onvif/get_services.xml")) == {
        "device": "http://192.168.1.20/onvif/device_service",
        "media": "http://192.168.1.20/onvif/Media",
        "media2": "http://172.16.9.9:8080/onvif/Media2",
        "events": "http://192.168.1.20/onvif/Events",
        "imaging": "http://192.168.1.20/onvif/Imaging"}
    assert responses.capabilities(load("onvif/get_capabilities.onvif1.xml")) == {
        "device": "http://10.0.5.31/onvif/device_service",
        "media": "http://10.0.5.31/onvif/media_service",
        "media2": "http://10.0.5.31/onvif/media2_service"}


def test_network_interfaces_mac():
    assert responses.network_macs(load("onvif/network_interfaces.xml")) == ["bc:ad:28:0a:1b:2c"]


def test_endpoint_reference_normalised():
    assert responses.endpoint_reference(load("onvif/endpoint_reference.xml")) == \
        "urn:uuid:1a2b3c4d-0000-1111-2222-001122334455"
    assert responses.normal_endpoint("uuid:5F0E4A7C-8B9D-4E21-A3F6-0D9C8B7A6E5F") == \
        "urn:uuid:5f0e4a7c-8b9d-4e21-a3f6-0d9c8b7a6e5f"
    assert responses.normal_endpoint("urn:dev:mac:0011") == "urn:dev:mac:0011"


def test_users_and_their_levels():
    users = responses.users(load("onvif/get_users.xml"))
    # the entry without a name is skipped; a missing level is None, never a guess
    assert [(u.username, u.level) for u in users] == \
        [("admin", "Administrator"), ("installer", "Operator"), ("guest", None)]


@pytest.mark.parametrize("name,code,subcodes,auth", [
    ("onvif/fault.not-authorized.xml", "Sender", ("NotAuthorized",), True),
    ("onvif/fault.wsse-failed-authentication.xml", "Sender", ("FailedAuthentication",), True),
    ("onvif/fault.action-not-supported.xml", "Receiver", ("ActionNotSupported", "NoSuchService"),
     False),
    ("onvif/fault.soap11.xml", "Client", ("NotAuthorized",), True),
    ("onvif/fault.fixed-user.xml", "Sender", ("OperationProhibited", "FixedUser"), False),
    ("ipycam/GetDeviceInformation.wrong-password.xml", "Receiver", (), True),
    ("ipycam/GetNetworkInterfaces.xml", "Receiver", (), False),
])
def test_faults(name, code, subcodes, auth):
    fault = fault_of(load(name))
    assert (fault.code, fault.subcodes, fault.is_auth) == (code, subcodes, auth)


def test_no_fault_in_a_normal_answer():
    assert fault_of(load("onvif/device_information.prefixed.xml")) is None


# -- ipycam 1.3.0, captured (tests/fixtures/cameras/ipycam/capture.py) ---------------------

def test_ipycam_device_information():
    info = responses.device_information(load("ipycam/GetDeviceInformation.xml"))
    assert info == responses.DeviceInformation("PythonCam", "VirtualCam-1", "1.3.0", "PY-000001",
                                               "PY-HW-01")


def test_ipycam_profiles_and_uris():
    found = responses.profiles(load("ipycam/GetProfiles.xml"))
    main, sub = pick_streams(found)
    assert (main.token, main.codec, main.width, main.height, main.fps, main.bitrate_kbps) == \
        ("Profile_Main", "h264", 640, 360, 10.0, 800)
    assert (sub.token, sub.width, sub.height, sub.bitrate_kbps) == ("Profile_Sub", 320, 180, 256)
    assert responses.media_uri(load("ipycam/GetStreamUri.main.xml"), "GetStreamUri") == \
        "rtsp://127.0.0.1:8554/video_main"
    assert responses.media_uri(load("ipycam/GetStreamUri.sub.xml"), "GetStreamUri") == \
        "rtsp://127.0.0.1:8554/video_sub"
    assert responses.media_uri(load("ipycam/GetSnapshotUri.xml"), "GetSnapshotUri") == \
        "http://127.0.0.1:8080/snapshot.jpg"


def test_ipycam_services_clock_and_auth_fault():
    assert responses.services(load("ipycam/GetServices.xml"))["media"] == \
        "http://127.0.0.1:8080/onvif/media_service"
    assert responses.capabilities(load("ipycam/GetCapabilities.xml"))["media"] == \
        "http://127.0.0.1:8080/onvif/media_service"
    assert responses.system_date_and_time(load("ipycam/GetSystemDateAndTime.xml")) > 1.7e9
    # ipycam wants credentials even for GetSystemDateAndTime (ONVIF says it should not)
    assert fault_of(load("ipycam/GetSystemDateAndTime.unauthenticated.xml")).is_auth
