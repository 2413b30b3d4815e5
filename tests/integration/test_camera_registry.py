"""A camera added through `nvr cameras add` (credentials in the private store) is
recorded by `nvr record --registry`, and its password appears nowhere else."""

from __future__ import annotations

import json

import pytest

from appliance.recorder.index import RecordingIndex
from hw.camsim.server import SimCamera
from tests.integration.nvr_cli import nvr
from tests.integration.recorder_process import RecorderProcess

SECRET = "Zq7-registry-only"


@pytest.mark.timeout(120)
def test_registry_camera_with_credentials_is_recorded(small_clip, camera_server, tmp_path):
    server = camera_server(SimCamera("/cam1", small_clip, user="admin", password=SECRET))
    reg = ["--registry", str(tmp_path / "config" / "cameras.json"),
           "--secrets", str(tmp_path / "secrets")]
    added = nvr("cameras", "add", "--name", "gate", "--rtsp", server.url("/cam1"), "--user",
                "admin", "--password-file", "-", *reg, stdin=SECRET + "\n")
    assert added.returncode == 0, added.stderr
    listed = nvr("cameras", "list", "--json", *reg)
    assert SECRET not in listed.stdout and json.loads(listed.stdout)["cameras"][0]["id"] == "gate"
    data = tmp_path / "data"
    with RecorderProcess(data, {}, "--segment-seconds", "2", *reg) as rec:
        rec.wait_for(lambda e: e["event"] == "durable" and e["camera"] == "gate", 60,
                     what="the registry camera recording")
        assert rec.stop() == 0
        assert SECRET not in rec.log_path.read_text()
    for path in (tmp_path / "config").iterdir():
        assert SECRET not in path.read_text()
    segments = nvr("segments", "--data", str(data), "--json")
    assert SECRET not in segments.stdout
    assert json.loads(segments.stdout)["cameras"]["gate"]["segments"]


def test_password_on_the_command_line_is_not_accepted(tmp_path):
    out = nvr("cameras", "add", "--name", "gate", "--rtsp", "rtsp://192.168.1.9/s", "--user",
              "admin", "--registry", str(tmp_path / "c.json"), "--secrets", str(tmp_path / "s"))
    assert out.returncode == 2 and "--password-file" in out.stderr


@pytest.mark.timeout(120)
def test_the_running_recorder_picks_up_added_and_removed_cameras(small_clip, camera_server,
                                                                 tmp_path):
    server = camera_server(SimCamera("/cam1", small_clip))
    reg = ["--registry", str(tmp_path / "config" / "cameras.json"),
           "--secrets", str(tmp_path / "secrets")]
    data = tmp_path / "data"
    with RecorderProcess(data, {}, "--segment-seconds", "2", *reg) as rec:  # nothing yet
        added = nvr("cameras", "add", "--name", "late", "--rtsp", server.url("/cam1"), *reg)
        assert added.returncode == 0, added.stderr
        rec.wait_for(lambda e: e["event"] == "durable" and e["camera"] == "late", 30,
                     what="the camera added while running recording")
        assert nvr("cameras", "remove", "late", *reg).returncode == 0
        rec.wait_state("late", "stopped", 30)
        assert rec.stop() == 0
    index = RecordingIndex(data, readonly=True)
    try:
        assert index.gaps("late")[-1].cause == "reconfigured"
        assert index.segments("late")
    finally:
        index.close()


def test_default_credentials_for_poe_adoption(tmp_path):
    from appliance.cameras.credentials import CredentialStore
    from appliance.poe.adoption import default_credentials

    out = nvr("cameras", "default-credentials", "--user", "admin", "--password-file", "-",
              "--adoption-secrets", str(tmp_path / "adoption"), stdin="Factory-Pass-123\n")
    assert out.returncode == 0, out.stderr
    assert "Factory-Pass-123" not in out.stdout + out.stderr
    creds = default_credentials(CredentialStore(tmp_path / "adoption"))()
    assert (creds.username, creds.password) == ("admin", "Factory-Pass-123")
    assert oct(next((tmp_path / "adoption").iterdir()).stat().st_mode & 0o777) == "0o600"
