"""Replacing a camera's factory password (appliance/cameras/rotation.py) against the strict
fake camera: the camera takes only the new password afterwards and the registry has it;
a camera that refuses SetUser, one that acknowledges it without applying it, and one
that stops answering right after it never leave the box without a working password;
the new password is never printed, logged or put in an error. The CLI: `nvr cameras add
--rotate-password` and `nvr cameras rotate-password`."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from appliance.cameras.credentials import Credentials, CredentialStore
from appliance.cameras.onvif import AddressPolicy, AuthFailed, onboard
from appliance.cameras.registry import CameraRegistry, from_onboarded
from appliance.cameras.rotation import PREVIOUS, UNKNOWN, RotationFailed, rotate_password
from appliance.config.cameras import build_camera_settings
from appliance.core.clock import SimulatedClock
from tests.integration.cameras.fakecam import TDS, FakeCamera, fixture
from tests.integration.nvr_cli import nvr

ROOT = Path(__file__).resolve().parents[3]
POLICY = AddressPolicy(["127.0.0.0/8"])
FACTORY = "12345"
SET_USER = f"{TDS}/SetUser"


def registry(tmp_path: Path) -> CameraRegistry:
    return CameraRegistry(tmp_path / "cameras.json", CredentialStore(tmp_path / "secrets"),
                          build_camera_settings({"incoming_budget_mbps": 100}))


def adopt(reg: CameraRegistry, cam: FakeCamera, password: str = FACTORY) -> None:
    creds = Credentials("admin", password)
    onboarded = onboard(cam.xaddr, creds, POLICY, probe_for_endpoint=False)
    reg.add(from_onboarded(onboarded, "lobby", "Lobby"), creds)


def accepted(cam: FakeCamera, password: str) -> bool:
    try:
        onboard(cam.xaddr, Credentials("admin", password), POLICY, probe_for_endpoint=False)
        return True
    except AuthFailed:
        return False


@pytest.mark.parametrize("level", ["Administrator", "Operator"])
def test_rotation_stores_the_new_password_and_the_camera_takes_only_that(tmp_path, caplog,
                                                                         level):
    caplog.set_level(logging.DEBUG)
    reg = registry(tmp_path)
    with FakeCamera(password=FACTORY, user_level=level) as cam:
        adopt(reg, cam)
        cam.requests.clear()
        done = rotate_password(reg, "lobby", POLICY, clock=SimulatedClock())
        stored = reg.credentials.get("lobby")
        assert stored.username == "admin" and stored.password != FACTORY
        assert len(stored.password) == 16
        assert cam.password == stored.password
        # the level was read first and kept
        actions = cam.actions()
        assert actions.index("GetUsers") < actions.index("SetUser")
        assert cam.set_user_calls == [("admin", level)]
        assert (done.camera_id, done.username, done.level) == ("lobby", "admin", level)
        assert not accepted(cam, FACTORY)
        assert accepted(cam, stored.password)
    assert reg.credentials.get_pending("lobby") is None
    assert sorted(p.name for p in (tmp_path / "secrets").glob("*.json")) == ["lobby.json"]
    assert stored.password not in caplog.text and stored.password not in repr(done)


def test_a_camera_that_refuses_set_user_keeps_its_password_and_the_box_too(tmp_path):
    reg = registry(tmp_path)
    clock = SimulatedClock()
    with FakeCamera(password=FACTORY) as cam:
        adopt(reg, cam)
        cam.answers[SET_USER] = lambda body: (400, fixture("fault.fixed-user.xml"))
        with pytest.raises(RotationFailed) as failed:
            rotate_password(reg, "lobby", POLICY, clock=clock)
        assert cam.password == FACTORY
    assert failed.value.valid == PREVIOUS
    assert "refused the new password" in str(failed.value)
    assert "Username may not be updated (Sender/OperationProhibited/FixedUser)" in \
        str(failed.value)
    assert "previous one still works and stays stored" in str(failed.value)
    assert reg.credentials.get("lobby").password == FACTORY
    assert reg.credentials.get_pending("lobby") is None
    assert clock.sleeps == []          # a refusal is not waited on


def test_a_fault_that_quotes_the_new_password_is_redacted(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    quoted: list[str] = []

    def weak(body: str):
        password = body.split("<tt:Password>")[1].split("<")[0]
        quoted.append(password)
        return 400, fixture("fault.fixed-user.xml").replace(
            b"Username may not be updated", f"Password {password} too weak".encode())

    reg = registry(tmp_path)
    with FakeCamera(password=FACTORY) as cam:
        adopt(reg, cam)
        cam.answers[SET_USER] = weak
        with pytest.raises(RotationFailed) as failed:
            rotate_password(reg, "lobby", POLICY, clock=SimulatedClock())
    [password] = quoted
    assert "Password *** too weak" in str(failed.value)
    assert password not in str(failed.value) and password not in caplog.text


def test_set_user_acknowledged_but_not_applied_keeps_the_previous_password(tmp_path):
    reg = registry(tmp_path)
    clock = SimulatedClock()
    with FakeCamera(password=FACTORY) as cam:
        adopt(reg, cam)
        cam.answers[SET_USER] = lambda body: (200, cam._response("<tds:SetUserResponse/>"))
        with pytest.raises(RotationFailed) as failed:
            rotate_password(reg, "lobby", POLICY, clock=clock, settle_s=4)
        assert failed.value.valid == PREVIOUS
        assert "still accepts only the previous password, which stays stored" in \
            str(failed.value)
        assert reg.credentials.get("lobby").password == FACTORY == cam.password
        # the camera was given time to apply it (simulated), and the new password is
        # kept aside in case it does so later
        assert 3 <= sum(clock.sleeps) <= 4
        assert reg.credentials.get_pending("lobby") is not None

        # the camera behaves again: the next run drops the unused password and rotates
        cam.answers[SET_USER] = cam.set_user
        rotate_password(reg, "lobby", POLICY, clock=SimulatedClock())
        assert reg.credentials.get("lobby").password == cam.password != FACTORY
    assert reg.credentials.get_pending("lobby") is None


def test_a_camera_that_stops_answering_after_set_user_never_costs_the_new_password(tmp_path):
    reg = registry(tmp_path)

    def apply_then_reboot(body: str):
        answer = cam.set_user(body)
        cam.down = True
        return answer

    with FakeCamera(password=FACTORY) as cam:
        adopt(reg, cam)
        cam.answers[SET_USER] = apply_then_reboot
        with pytest.raises(RotationFailed) as failed:
            rotate_password(reg, "lobby", POLICY, clock=SimulatedClock(), settle_s=2)
        assert failed.value.valid == UNKNOWN
        message = str(failed.value)
        assert "acknowledged the change" in message and "stopped answering" in message
        assert "Both passwords are kept" in message
        # what is in use stays as it was; the password the camera now has is kept aside
        assert reg.credentials.get("lobby").password == FACTORY
        assert reg.credentials.get_pending("lobby").password == cam.password != FACTORY

        cam.down = False      # back after its reboot: the next run settles it
        done = rotate_password(reg, "lobby", POLICY, clock=SimulatedClock())
        assert "earlier rotation" in done.note
        assert reg.credentials.get("lobby").password == cam.password
        assert cam.set_user_calls == [("admin", "Administrator")]   # no second change
    assert reg.credentials.get_pending("lobby") is None


def test_a_stored_password_the_camera_no_longer_takes_changes_nothing(tmp_path):
    reg = registry(tmp_path)
    with FakeCamera(password=FACTORY) as cam:
        adopt(reg, cam)
        cam.password = "changed on the camera"
        with pytest.raises(AuthFailed, match="stored password no longer works, so nothing"):
            rotate_password(reg, "lobby", POLICY, clock=SimulatedClock())
        assert cam.set_user_calls == []
    assert reg.credentials.get_pending("lobby") is None


@pytest.mark.timeout(120)
def test_cli_add_with_rotation_then_rotate_again_then_a_refusal(tmp_path):
    reg_args = ["--registry", str(tmp_path / "cameras.json"), "--secrets",
                str(tmp_path / "secrets"), "--allow-network", "127.0.0.0/8",
                "--licence", str(tmp_path / "licence.txt"), "--board", "sim"]
    reg = registry(tmp_path)
    with FakeCamera(password=FACTORY) as cam:
        added = nvr("cameras", "add", "--name", "lobby", "--xaddr", cam.xaddr, "--user",
                    "admin", "--password-file", "-", "--rotate-password", *reg_args,
                    stdin=FACTORY + "\n")
        assert added.returncode == 0, added.stderr
        assert "password was replaced by a generated one (stored, not shown)" in added.stdout
        first = reg.credentials.get("lobby").password
        assert first == cam.password != FACTORY

        again = nvr("cameras", "rotate-password", "lobby", "--json", *reg_args)
        assert again.returncode == 0, again.stderr
        second = reg.credentials.get("lobby").password
        assert second == cam.password and second != first
        for out in (added, again):
            for secret in (FACTORY, first, second):
                assert secret not in out.stdout + out.stderr

        cam.answers[SET_USER] = lambda body: (400, fixture("fault.fixed-user.xml"))
        refused = nvr("cameras", "rotate-password", "lobby", *reg_args)
        assert refused.returncode == 2
        assert "refused the new password" in refused.stderr
        assert reg.credentials.get("lobby").password == second == cam.password


@pytest.mark.timeout(60)
def test_cli_add_whose_rotation_is_refused_keeps_the_camera_and_its_password(tmp_path):
    reg_args = ["--registry", str(tmp_path / "cameras.json"), "--secrets",
                str(tmp_path / "secrets"), "--allow-network", "127.0.0.0/8",
                "--licence", str(tmp_path / "licence.txt"), "--board", "sim"]
    answers = {SET_USER: lambda body: (400, fixture("fault.fixed-user.xml"))}
    with FakeCamera(password=FACTORY, answers=answers) as cam:
        out = nvr("cameras", "add", "--name", "lobby", "--xaddr", cam.xaddr, "--user", "admin",
                  "--password-file", "-", "--rotate-password", *reg_args, stdin=FACTORY + "\n")
    assert out.returncode == 2
    assert "camera lobby was added with the password you gave, but its password was not " \
        "replaced" in out.stderr
    reg = registry(tmp_path)
    assert [c.id for c in reg.cameras()] == ["lobby"]
    assert reg.credentials.get("lobby").password == FACTORY
    assert FACTORY not in out.stdout + out.stderr


def test_cli_rotate_needs_an_onvif_camera_and_refuses_password_abbreviations(tmp_path):
    reg_args = ["--registry", str(tmp_path / "cameras.json"), "--secrets",
                str(tmp_path / "secrets")]
    out = nvr("cameras", "add", "--name", "gate", "--rtsp", "rtsp://192.168.1.23/s",
              "--user", "admin", "--password-file", "-", *reg_args, stdin=FACTORY + "\n")
    assert out.returncode == 0, out.stderr
    out = nvr("cameras", "rotate-password", "gate", *reg_args)
    assert out.returncode == 2 and "was not added over ONVIF" in out.stderr
    out = nvr("cameras", "add", "--name", "x", "--rtsp", "rtsp://192.168.1.24/s",
              "--password", "secret", *reg_args)
    assert out.returncode == 2 and "--password" in out.stderr
    out = nvr("cameras", "add", "--name", "x", "--rtsp", "rtsp://192.168.1.24/s",
              "--rotate-password", *reg_args)
    assert out.returncode == 2 and "--rotate-password: give --xaddr" in out.stderr
