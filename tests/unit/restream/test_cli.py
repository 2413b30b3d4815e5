"""`nvr restream urls`: every camera's URLs with the user, the password only on request."""

from __future__ import annotations

import json

import pytest

from appliance.cameras.credentials import Credentials, CredentialStore
from appliance.cameras.registry import Camera, CameraRegistry, StreamInfo
from appliance.cli import main
from appliance.config.cameras import build_camera_settings
from appliance.restream.login import RestreamLogin


@pytest.fixture
def box(tmp_path):
    registry = CameraRegistry(tmp_path / "cameras.json", CredentialStore(tmp_path / "secrets"),
                              build_camera_settings({}))
    registry.add(Camera("door", "Door", "192.168.1.20",
                        StreamInfo("rtsp://192.168.1.20/main", "h264"),
                        StreamInfo("rtsp://192.168.1.20/sub", "h265")),
                 Credentials("admin", "CameraPassw0rd"))
    login = RestreamLogin(tmp_path / "login.json")
    args = ["restream", "urls", "--registry", str(registry.path), "--secrets",
            str(tmp_path / "secrets"), "--login", str(login.path), "--host", "192.168.1.10"]
    return args, login


def test_urls_show_the_user_not_the_password(box, capsys):
    args, login = box
    password = login.ensure().password
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "door             main rtsp://restream@192.168.1.10:8554/door/main" in out
    assert "door             sub  rtsp://restream@192.168.1.10:8554/door/sub" in out
    assert password not in out and "CameraPassw0rd" not in out


def test_json_urls_and_the_password_for_the_admin_who_asks(box, capsys):
    args, login = box
    password = login.ensure().password
    assert main(args + ["--json"]) == 0
    hidden = json.loads(capsys.readouterr().out)
    assert hidden["user"] == "restream" and "password" not in hidden
    assert hidden["cameras"][0]["sub_codec"] == "h265"
    assert password not in json.dumps(hidden)
    assert main(args + ["--json", "--show-password"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["password"] == password
    assert shown["cameras"][0]["main"] == \
        f"rtsp://restream:{password}@192.168.1.10:8554/door/main"


def test_before_the_first_start_there_is_no_login_to_show(box, capsys):
    args, login = box
    assert main(args) == 2
    assert "no restream login yet" in capsys.readouterr().err
    assert not login.path.exists()
