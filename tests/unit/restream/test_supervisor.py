"""The supervisor follows the camera registry: a new relay when the planned mounts change
(not when nothing did), a dead relay started again, starts at most once per interval."""

from __future__ import annotations

import pytest

from appliance.cameras.credentials import Credentials, CredentialStore
from appliance.cameras.registry import Camera, CameraRegistry, StreamInfo
from appliance.config.cameras import build_camera_settings
from appliance.restream import supervisor as supervisor_module
from appliance.restream.login import RestreamLogin
from appliance.restream.supervisor import RESTART_INTERVAL_S, RestreamSupervisor


class FakeRelay:
    """Stands in for the relay process: records what it was given."""

    started: list[FakeRelay] = []

    def __init__(self, spec, address, port, log_path=None):
        self.spec, self.address, self.requested = spec, address, port
        self.port = None
        self.running = False

    def start(self) -> int:
        self.port = self.requested or 40001
        self.running = True
        FakeRelay.started.append(self)
        return self.port

    def stop(self):
        self.running = False
        return 0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rig(tmp_path, monkeypatch):
    FakeRelay.started = []
    monkeypatch.setattr(supervisor_module, "RelayProcess", FakeRelay)
    registry = CameraRegistry(tmp_path / "cameras.json", CredentialStore(tmp_path / "secrets"),
                              build_camera_settings({}))
    registry.add(camera("door"))
    clock = Clock()
    sup = RestreamSupervisor(registry, RestreamLogin(tmp_path / "login.json"), "127.0.0.1", 0,
                             clock=clock)
    return registry, sup, clock


def camera(cid: str) -> Camera:
    return Camera(cid, cid, "192.168.1.20", StreamInfo(f"rtsp://192.168.1.20/{cid}"))


def paths(relay: FakeRelay) -> list[str]:
    return [m["path"] for m in relay.spec["mounts"]]


def test_a_new_camera_gets_a_new_relay_on_the_same_port(rig):
    registry, sup, clock = rig
    sup.start()
    assert paths(FakeRelay.started[0]) == ["/door/main"] and sup.port == 40001
    registry.add(camera("yard"))
    clock.now += RESTART_INTERVAL_S
    sup.tick()
    assert len(FakeRelay.started) == 2 and not FakeRelay.started[0].running
    assert paths(FakeRelay.started[1]) == ["/door/main", "/yard/main"]
    assert FakeRelay.started[1].requested == 40001   # the port it picked at first stays


def test_nothing_changed_means_no_restart(rig):
    registry, sup, clock = rig
    sup.start()
    registry.set_poe_port("door", "Port 1")   # the file changes, the mounts do not
    clock.now += RESTART_INTERVAL_S
    sup.tick()
    sup.tick()
    assert len(FakeRelay.started) == 1


def test_a_changed_camera_password_restarts_the_relay(rig):
    registry, sup, clock = rig
    sup.start()
    registry.set_credentials("door", Credentials("admin", "new-one"))
    clock.now += RESTART_INTERVAL_S
    sup.tick()
    assert FakeRelay.started[-1].spec["mounts"][0]["upstream_password"] == "new-one"


def test_restarts_wait_for_the_interval_then_catch_up(rig):
    registry, sup, clock = rig
    sup.start()
    registry.add(camera("yard"))
    sup.tick()
    assert len(FakeRelay.started) == 1          # too soon after the last start
    clock.now += RESTART_INTERVAL_S
    sup.tick()
    assert paths(FakeRelay.started[-1]) == ["/door/main", "/yard/main"]


def test_a_relay_that_died_is_started_again(rig):
    _, sup, clock = rig
    sup.start()
    FakeRelay.started[0].running = False
    clock.now += RESTART_INTERVAL_S
    sup.tick()
    assert len(FakeRelay.started) == 2 and FakeRelay.started[1].running


def test_the_relay_gets_the_restream_login_made_at_first_start(rig, tmp_path):
    _, sup, _ = rig
    sup.start()
    login = RestreamLogin(tmp_path / "login.json").require()
    spec = FakeRelay.started[0].spec
    assert (spec["user"], spec["password"]) == (login.username, login.password)
