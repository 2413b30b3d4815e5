"""Restream planning: which streams are served where, by which pipeline, and URLs that
show the user but never a password unless asked."""

from __future__ import annotations

import json

import pytest

from appliance.cameras.credentials import Credentials, CredentialStore
from appliance.cameras.registry import Camera, CameraRegistry, StreamInfo
from appliance.config.cameras import build_camera_settings
from appliance.restream.plan import (Mount, gst_quote, launch_line, plan_from_registry,
                                     plan_mounts, relay_codec, relay_spec, restream_url,
                                     url_table)

CAMERA_PASSWORD = "Cam3raSecret"
LOGIN = Credentials("restream", "RestreamPassw0rd")


def camera(cid="door", main_codec="h264", sub_codec="h264", sub=True, enabled=True):
    host = "192.168.1.20"
    return Camera(cid, cid.title(), host, StreamInfo(f"rtsp://{host}:554/{cid}/main", main_codec),
                  StreamInfo(f"rtsp://{host}:554/{cid}/sub", sub_codec) if sub else None,
                  enabled=enabled)


def test_each_enabled_camera_gets_a_main_and_a_sub_mount():
    mounts, skipped = plan_mounts([camera("door"), camera("yard", sub=False)], {})
    assert [m.path for m in mounts] == ["/door/main", "/door/sub", "/yard/main"]
    assert [m.upstream_uri for m in mounts][:2] == ["rtsp://192.168.1.20:554/door/main",
                                                    "rtsp://192.168.1.20:554/door/sub"]
    assert skipped == []


def test_a_disabled_camera_is_not_served():
    mounts, skipped = plan_mounts([camera("door", enabled=False)], {})
    assert mounts == []
    assert {(s.stream, s.reason) for s in skipped} == {("main", "camera disabled"),
                                                       ("sub", "camera disabled")}


@pytest.mark.parametrize("codec, relayed", [("h264", "h264"), ("H264", "h264"), ("", "h264"),
                                            ("h265", "h265"), ("HEVC", "h265"),
                                            ("H.265", "h265"), ("jpeg", None), ("mpeg4", None)])
def test_the_codec_comes_from_the_registry_and_unknown_means_h264(codec, relayed):
    assert relay_codec(codec) == relayed


def test_a_stream_that_cannot_be_relayed_is_listed_with_the_reason():
    mounts, skipped = plan_mounts([camera("door", main_codec="h265", sub_codec="jpeg")], {})
    assert [(m.path, m.codec) for m in mounts] == [("/door/main", "h265")]
    assert skipped[0].stream == "sub" and "jpeg is not relayed" in skipped[0].reason


@pytest.mark.parametrize("codec, elements", [
    ("h264", ("rtph264depay", "h264parse", "rtph264pay name=pay0")),
    ("h265", ("rtph265depay", "h265parse", "rtph265pay name=pay0"))])
def test_the_pipeline_copies_payloads_without_decoding(codec, elements):
    line = launch_line("rtsp://192.168.1.20:554/main", codec)
    assert line.startswith('( rtspsrc name=src location="rtsp://192.168.1.20:554/main" '
                           "protocols=tcp latency=200")
    # Exactly these elements, in this order: nothing that decodes or encodes.
    names = [part.split()[0] for part in line.strip("( )").split(" ! ")]
    assert names == ["rtspsrc", "application/x-rtp,media=video",
                     *(e.split()[0] for e in elements)]
    assert elements[2] in line and line.endswith(" )")


def test_quotes_in_a_uri_cannot_break_out_of_the_property():
    assert gst_quote('rtsp://h/a"b\\c') == '"rtsp://h/a\\"b\\\\c"'


def test_camera_passwords_go_beside_the_launch_line_never_into_it():
    creds = Credentials("admin", CAMERA_PASSWORD)
    mounts, _ = plan_mounts([camera("door")], {"door": creds})
    spec = relay_spec(mounts, LOGIN)
    assert spec["user"] == "restream" and spec["password"] == LOGIN.password
    assert spec["auth_methods"] == ["digest"]
    for mount in spec["mounts"]:
        assert CAMERA_PASSWORD not in mount["launch"] and "admin" not in mount["launch"]
        assert (mount["upstream_user"], mount["upstream_password"]) == ("admin", CAMERA_PASSWORD)
    assert CAMERA_PASSWORD not in repr(mounts) and CAMERA_PASSWORD not in str(mounts[0])


def test_a_camera_without_credentials_is_relayed_without_a_login():
    spec = relay_spec(plan_mounts([camera("door", sub=False)], {})[0], LOGIN, ["digest", "basic"])
    assert spec["mounts"] == [{"path": "/door/main", "launch": spec["mounts"][0]["launch"],
                               "upstream_user": None, "upstream_password": None}]
    assert spec["auth_methods"] == ["digest", "basic"]
    json.dumps(spec)


def test_the_plan_reads_the_registry_and_its_credential_store(tmp_path):
    reg = CameraRegistry(tmp_path / "cameras.json", CredentialStore(tmp_path / "secrets"),
                         build_camera_settings({}))
    reg.add(camera("door"), Credentials("admin", CAMERA_PASSWORD))
    reg.add(camera("yard", sub=False))
    mounts, _ = plan_from_registry(reg)
    assert [(m.path, m.upstream) for m in mounts] == [
        ("/door/main", Credentials("admin", CAMERA_PASSWORD)),
        ("/door/sub", Credentials("admin", CAMERA_PASSWORD)), ("/yard/main", None)]


def test_urls_show_the_user_and_hide_the_password_unless_asked():
    assert restream_url("192.168.1.10", 8554, "/door/main", "restream") == \
        "rtsp://restream@192.168.1.10:8554/door/main"
    assert restream_url("fd00::2", 8554, "/door/sub") == "rtsp://[fd00::2]:8554/door/sub"
    assert restream_url("box", 8554, "/d/main", "re st", "p@ss:w") == \
        "rtsp://re%20st:p%40ss%3Aw@box:8554/d/main"


def test_the_url_table_holds_no_password_unless_shown():
    mounts, skipped = plan_mounts([camera("door", sub_codec="jpeg")], {})
    hidden = url_table(mounts, skipped, "192.168.1.10", 8554, LOGIN)
    assert hidden == [{"camera": "door", "main": "rtsp://restream@192.168.1.10:8554/door/main",
                       "main_codec": "h264",
                       "skipped": {"sub": "codec jpeg is not relayed (H.264 and H.265 only)"}}]
    assert LOGIN.password not in json.dumps(hidden)
    shown = url_table(mounts, skipped, "192.168.1.10", 8554, LOGIN, show_password=True)
    assert shown[0]["main"] == f"rtsp://restream:{LOGIN.password}@192.168.1.10:8554/door/main"


def test_mounts_compare_by_everything_the_relay_is_given():
    a = Mount("door", "main", "rtsp://h/main", "h264", Credentials("admin", "one"))
    assert a == Mount("door", "main", "rtsp://h/main", "h264", Credentials("admin", "one"))
    assert a != Mount("door", "main", "rtsp://h/main", "h264", Credentials("admin", "two"))
