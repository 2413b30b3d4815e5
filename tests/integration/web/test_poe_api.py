"""The PoE API end to end: a real PoeService (the manager's loop on the simulated board,
writing poe.json every poll), a real ControlServer serving appliance.poe.control's
handlers on a Unix socket (as vigil-hwd does), and the real app on waitress reading the
one and calling the other."""

from __future__ import annotations

import json
import time

import pytest

from appliance.core.control import ControlServer
from appliance.poe.control import control_handlers
from appliance.poe.port_choices import PortChoices, choices_path, load_choices
from appliance.poe.runtime import PoeService, build_manager
from hw.board import load_profile
from tests.integration.web.manage_site import ManageSite
from tests.integration.web_session import ApiClient
from tests.waiting import wait_until


class Hwd:
    """vigil-hwd's PoE part: the service thread and the control socket."""

    def __init__(self, tmp_path) -> None:
        self.state = tmp_path / "state"
        self.socket = tmp_path / "h.sock"
        self.manager, _ = build_manager(load_profile("sim"), {
            "max_cycles_per_hour": 1, "cycle_off_seconds": 3, "poll_interval": 0.2})
        self.service = PoeService(self.manager, self.state)
        self.service.start()
        self.choices = choices_path(tmp_path / "config")
        self.server = ControlServer(self.socket, control_handlers(
            self.manager, PortChoices(self.choices))).start()

    def close(self) -> None:
        self.server.close()
        self.service.close()


@pytest.fixture
def hwd(tmp_path):
    rig = Hwd(tmp_path)
    yield rig
    rig.close()


@pytest.fixture
def site(tmp_path, hwd):
    s = ManageSite(tmp_path / "site", hwd_state=hwd.state, hwd_socket=hwd.socket)
    yield s
    s.close()


def ports(client) -> dict[str, dict]:
    status, body = client.json("GET", "/api/v1/poe")
    assert status == 200, body
    return {p["label"]: p for p in body["ports"]}


@pytest.mark.timeout(60)
def test_power_cycle_a_port_see_it_off_and_on_again_then_the_hourly_limit(site):
    operator = site.user("guard", "operator")
    assert site.admin.json("POST", "/api/v1/cameras", {
        "name": "door", "label": "Front door", "rtsp": "rtsp://192.168.1.30/s"})[0] == 201
    assert site.admin.json("PATCH", "/api/v1/cameras/door", {"poe_port": "Port 1"})[0] == 200
    wait_until(lambda: ports(operator)["Port 1"]["state"] == "powered", 15, "Port 1 powered")
    snap = ports(operator)
    assert snap["Port 1"]["camera"] == {"id": "door", "label": "Front door", "enabled": True}
    assert snap["Port 2"]["state"] == "powered" and snap["Port 2"]["camera"] is None
    assert snap["Port 1"]["class"] == 3 and snap["Port 1"]["power_w"] > 5

    status, done = operator.json("POST", "/api/v1/poe/ports/1/power-cycle",
                                 {"reason": "the picture froze"})
    assert status == 202, done
    assert done["allowed"] is True and done["off_seconds"] == 3
    seen = []

    def back_on() -> bool:
        seen.append(ports(operator)["Port 1"]["state"])
        return "disabled" in seen and seen[-1] == "powered"
    wait_until(back_on, 20, "Port 1 off, then powered again", step=0.1)
    off = seen.index("disabled")
    assert set(seen[:off]) <= {"powered"}           # (the snapshot of the poll before)
    assert ports(operator)["Port 2"]["state"] == "powered"       # only that port
    assert ports(operator)["Port 1"]["cycles_last_hour"] == 1

    status, refused = operator.json("POST", "/api/v1/poe/ports/Port%201/power-cycle", {})
    assert status == 409
    assert "Port 1 was power-cycled 1 times in the last hour (limit 1" in refused["error"]
    assert ports(operator)["Port 1"]["state"] == "powered"
    audit = {e["what"]: e for e in site.audit()}
    assert audit["poe_power_cycle"]["who"] == "guard"
    assert audit["poe_power_cycle"]["detail"] == "Port 1 (camera door)"
    assert "in the last hour" in audit["poe_power_cycle_refused"]["detail"]


def test_roles(site):
    viewer = site.user("watcher", "viewer", ("door",))
    operator = site.user("guard", "operator")
    assert viewer.json("GET", "/api/v1/poe")[0] == 403
    assert viewer.json("POST", "/api/v1/poe/ports/1/power-cycle", {})[0] == 403
    assert operator.json("POST", "/api/v1/poe/ports/1/enabled", {"enabled": False})[0] == 403
    assert ApiClient(site.base).json("GET", "/api/v1/poe")[0] == 401
    wait_until(lambda: ports(operator)["Port 1"]["state"] == "powered", 15, "Port 1 powered")
    assert ports(operator)["Port 1"]["enabled"] is True
    assert ports(operator)["Port 1"]["cycles_last_hour"] == 0


def test_a_camera_is_linked_only_to_a_port_the_board_has(site):
    assert site.admin.json("POST", "/api/v1/cameras", {
        "name": "door", "rtsp": "rtsp://192.168.1.30/s"})[0] == 201
    wait_until(lambda: ports(site.admin)["Port 8"], 15, "the PoE snapshot")
    status, body = site.admin.json("PATCH", "/api/v1/cameras/door", {"poe_port": "Port 9"})
    assert status == 400 and "this box has no port 'Port 9'" in body["error"]
    assert site.admin.json("PATCH", "/api/v1/cameras/door", {"poe_port": "Port 8"})[0] == 200
    assert ports(site.admin)["Port 8"]["camera"]["id"] == "door"


@pytest.mark.timeout(60)
def test_an_admin_switches_a_port_off_and_on_by_its_label(site, hwd):
    wait_until(lambda: ports(site.admin)["Port 2"]["state"] == "powered", 15, "Port 2 powered")
    status, body = site.admin.json("POST", "/api/v1/poe/ports/Port%202/enabled",
                                   {"enabled": False})
    assert status == 200 and body["port"]["state"] == "disabled", body
    assert "kept across restarts" in body["lasts"]
    assert load_choices(hwd.choices) == {"Port 2": {"enabled": False}}
    wait_until(lambda: ports(site.admin)["Port 2"]["power_w"] == 0, 10, "Port 2 without power")
    assert site.admin.json("POST", "/api/v1/poe/ports/2/enabled", {"enabled": True})[0] == 200
    wait_until(lambda: ports(site.admin)["Port 2"]["state"] == "powered", 15, "Port 2 back")
    whats = [e["what"] for e in site.audit()]
    assert "poe_port_disabled" in whats and "poe_port_enabled" in whats


@pytest.mark.parametrize("method_path, body, words", [
    ("/poe/ports/99/power-cycle", {}, "no PoE port 99"),
    ("/poe/ports/0/power-cycle", {}, "no PoE port 0"),
    ("/poe/ports/Port%201%3B%20reboot/power-cycle", {}, "no PoE port labelled"),
    ("/poe/ports/%24(touch%20canary)/power-cycle", {}, "no PoE port labelled"),
    ("/poe/ports/" + "x" * 100 + "/power-cycle", {}, "not a PoE port"),
    ("/poe/ports/1/power-cycle", {"reason": 5}, "reason"),
    ("/poe/ports/1/power-cycle", {"reason": "a\nb"}, "reason"),
    ("/poe/ports/1/power-cycle", {"reason": "x" * 121}, "reason"),
    ("/poe/ports/1/power-cycle", {"port": 2}, "unknown field"),
    ("/poe/ports/1/power-cycle", [], "JSON object"),
    ("/poe/ports/1/enabled", {}, "true or false"),
    ("/poe/ports/1/enabled", {"enabled": "false"}, "true or false"),
    ("/poe/ports/1/enabled", {"enabled": 0}, "true or false"),
    ("/poe/ports/1/enabled", {"enabled": False, "x": 1}, "unknown field"),
])
def test_bad_requests_are_refused_and_change_nothing(site, method_path, body, words):
    wait_until(lambda: ports(site.admin)["Port 1"]["state"] == "powered", 15, "Port 1 powered")
    status, answer = site.admin.json("POST", "/api/v1" + method_path, body)
    assert status == 400 and words in answer["error"], answer
    after = ports(site.admin)
    assert all(p["enabled"] and p["cycles_last_hour"] == 0 for p in after.values())
    assert after["Port 1"]["state"] == "powered"


def test_without_vigil_hwd_the_answer_says_why(tmp_path):
    state = tmp_path / "state"
    site = ManageSite(tmp_path / "site", hwd_state=state, hwd_socket=tmp_path / "none.sock")
    try:
        status, body = site.admin.json("GET", "/api/v1/poe")
        assert status == 503 and "no PoE status yet" in body["error"]
        state.mkdir()
        (state / "poe.json").write_text(json.dumps({"time": time.time() - 120, "ports": []}))
        status, body = site.admin.json("GET", "/api/v1/poe")
        assert status == 503 and "older than 30 s" in body["error"]
        status, body = site.admin.json("POST", "/api/v1/poe/ports/1/power-cycle", {})
        assert status == 503 and "vigil-hwd is not running" in body["error"]
        assert [e["what"] for e in site.audit()][0] == "poe_power_cycle_refused"
    finally:
        site.close()
    bare = ManageSite(tmp_path / "bare")
    try:
        status, body = bare.admin.json("GET", "/api/v1/poe")
        assert status == 503 and "without hwd state" in body["error"]
    finally:
        bare.close()
