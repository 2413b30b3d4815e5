"""[storage] settings and per-camera retention limits: defaults, bad input, the CLI flags."""

from __future__ import annotations

import pytest

from appliance.cli import build_parser, collect_settings
from appliance.config.recorder import CameraConfig, load_config_file
from appliance.config.storage import GIB, build_storage_settings
from appliance.core.errors import InvalidConfig


def test_defaults_keep_recordings_off_the_boot_media():
    s = build_storage_settings({})
    assert s.allow_boot_media is False and s.full_disk_action == "overwrite"
    assert s.min_free_percent == 5 and s.keep_newest_minutes == 10


@pytest.mark.parametrize("values, message", [
    ({"min_free_percent": -1}, "below the minimum"),
    ({"min_free_percent": float("nan")}, "not a number"),
    ({"max_age_days": 1e309}, "above the maximum"),
    ({"max_age_days": "8 "}, "expected a number"),
    ({"allow_boot_media": "yes"}, "expected true or false"),
    ({"full_disk_action": "panic"}, "not one of overwrite, stop"),
    ({"min_free_percent": 50, "free_headroom_percent": 15}, "must stay below 60"),
    ({"retention": 3}, "unknown setting"),
])
def test_bad_storage_values_are_refused_clearly(values, message):
    with pytest.raises(InvalidConfig, match=message):
        build_storage_settings(values)


def test_camera_limits_from_the_config_file(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[storage]\nmin_free_percent = 10\n[[camera]]\nname = "door"\n'
                    'url = "rtsp://10.0.0.2/s"\nmax_age_days = 30\nmax_gib = 1.5\n')
    loaded = load_config_file(path)
    assert build_storage_settings(loaded.storage).min_free_percent == 10
    assert loaded.cameras[0].retention.max_age_days == 30
    assert loaded.cameras[0].retention.max_bytes == int(1.5 * GIB)


@pytest.mark.parametrize("field, value", [("max_age_days", -3), ("max_gib", "big"),
                                          ("max_gib", float("inf")), ("max_age_days", True)])
def test_bad_camera_limits_are_refused(field, value):
    with pytest.raises(InvalidConfig, match="camera door"):
        CameraConfig("door", "rtsp://10.0.0.2/s", **{field: value})


def test_storage_flags_override_the_file(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[storage]\nfull_disk_action = "stop"\n[recorder]\nsegment_seconds = 30\n')
    args = build_parser().parse_args(["record", "--data", "/x", "--config", str(path),
                                      "--allow-boot-media", "true", "--min-free-percent", "7"])
    recorder, storage = collect_settings(args)
    assert recorder.segment_seconds == 30
    assert storage.full_disk_action == "stop" and storage.allow_boot_media is True
    assert storage.min_free_percent == 7


def test_a_bad_boolean_flag_is_refused(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["record", "--data", "/x", "--allow-boot-media", "maybe"])
    assert "expected true or false" in capsys.readouterr().err
