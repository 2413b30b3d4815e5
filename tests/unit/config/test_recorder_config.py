import pytest

from appliance.config.recorder import (CameraConfig, build_settings, load_config_file,
                                       parse_camera_arg, redact_url)
from appliance.core.errors import InvalidConfig


@pytest.mark.parametrize("url", [
    "http://cam/stream", "file:///etc/passwd", "exec:id", "ffmpeg:-i x", "-i rtsp://x",
    "rtsp://", "rtsp:///path", "rtsp://cam:0/x", "rtsp://cam/x y", "rtsp://cam/\nx", "",
    "rtsp://cam:99999/x",
])
def test_only_rtsp_urls_with_a_host_are_accepted(url):
    with pytest.raises(InvalidConfig):
        CameraConfig("cam1", url)


@pytest.mark.parametrize("url", ["rtsp://10.0.0.5/Streaming/101", "RTSPS://cam.local:322/x",
                                 "rtsp://admin:p%40ss@cam:554/h264"])
def test_rtsp_and_rtsps_urls_are_accepted(url):
    assert CameraConfig("cam1", url).url == url


@pytest.mark.parametrize("name", ["", "../x", "a/b", "x" * 33, "-lead", "caméra", "a b"])
def test_camera_names_that_could_break_paths_are_refused(name):
    with pytest.raises(InvalidConfig):
        CameraConfig(name, "rtsp://cam/x")


def test_camera_argument_parsing_and_password_redaction():
    cam = parse_camera_arg("door=rtsp://admin:secret@127.0.0.1:8554/cam1")
    assert cam.name == "door"
    assert "secret" not in cam.redacted_url and "admin" in cam.redacted_url
    assert redact_url("rtsp://cam/x") == "rtsp://cam/x"
    with pytest.raises(InvalidConfig):
        parse_camera_arg("rtsp://no-name")


@pytest.mark.parametrize("values, message", [
    ({"segment_seconds": 0}, "below the minimum"),
    ({"segment_seconds": 1e9}, "above the maximum"),
    ({"segment_seconds": "60"}, "expected a number"),
    ({"segment_seconds": float("nan")}, "not a number"),
    ({"fsync_every_fragments": 1.5}, "whole number"),
    ({"fsync_every_fragments": True}, "expected a number"),
    ({"audio": "maybe"}, "not one of"),
    ({"segmnet_seconds": 60}, "unknown setting"),
    ({"backoff_initial": 10, "backoff_cap": 2}, "at least"),
])
def test_bad_settings_are_refused_with_a_clear_message(values, message):
    with pytest.raises(InvalidConfig, match=message):
        build_settings(values)


def test_defaults_are_the_documented_ones():
    settings = build_settings({})
    assert settings.segment_seconds == 60 and settings.fsync_every_fragments == 1


def test_config_file(tmp_path):
    path = tmp_path / "recorder.toml"
    path.write_text('[recorder]\nsegment_seconds = 30\n\n[[camera]]\nname = "door"\n'
                    'url = "rtsp://127.0.0.1/x"\n')
    loaded = load_config_file(path)
    assert build_settings(loaded.recorder).segment_seconds == 30
    assert loaded.cameras == [CameraConfig("door", "rtsp://127.0.0.1/x")]
    path.write_text('[recorder]\nsegment_seconds = 30\n[extra]\n')
    with pytest.raises(InvalidConfig, match="unknown section"):
        load_config_file(path)
    path.write_text('[[camera]]\nname = "door"\nurl = "rtsp://x/y"\npassword = "p"\n')
    with pytest.raises(InvalidConfig, match="takes name, url, enabled, max_age_days, max_gib only"):
        load_config_file(path)
    path.write_bytes(b"\xff\xfe garbage")
    with pytest.raises(InvalidConfig, match="cannot read"):
        load_config_file(path)
