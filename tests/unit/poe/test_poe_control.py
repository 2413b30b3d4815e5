"""vigil-hwd's PoE commands (appliance/poe/control.py) through a real ControlServer on a
Unix socket, against a real PoeManager on the simulated board (two TPS23861 simulators;
the sim profile plugs a class 3 camera into port 1 and a class 2 one into port 2)."""

from __future__ import annotations

import pytest

from appliance.core.clock import SimulatedClock
from appliance.core.control import ControlClient, ControlServer
from appliance.core.errors import FailedPrecondition, InvalidConfig, Unavailable
from appliance.poe.control import control_handlers
from appliance.poe.port_choices import PortChoices, choices_path, load_choices
from appliance.poe.runtime import build_manager
from hw.board import load_profile


class Hwd:
    """The manager, its clock, and a client of the control socket serving the handlers;
    the owner's port choices in <tmp_path>/config/poe-ports.json, as on the box."""

    def __init__(self, tmp_path, **settings) -> None:
        self.clock = SimulatedClock()
        self.choices = choices_path(tmp_path / "config")
        self.manager, _ = build_manager(load_profile("sim"), settings, clock=self.clock,
                                        choices=self.choices)
        self.server = ControlServer(tmp_path / "h.sock", control_handlers(
            self.manager, PortChoices(self.choices))).start()
        self.client = ControlClient(tmp_path / "h.sock", timeout=5)

    def poll(self, seconds: float, step: float = 0.1) -> None:
        for _ in range(round(seconds / step)):
            self.clock.advance(step)
            self.manager.poll()

    def port(self, number: int) -> dict:
        return self.client.call("poe.status")["ports"][number - 1]

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def hwd(tmp_path):
    rig = Hwd(tmp_path, max_cycles_per_hour=1, cycle_off_seconds=5)
    rig.poll(2.0)
    yield rig
    rig.close()


def test_status_is_the_managers_snapshot(hwd):
    snap = hwd.client.call("poe.status")
    assert [p["label"] for p in snap["ports"]] == [f"Port {n}" for n in range(1, 9)]
    assert [p["state"] for p in snap["ports"][:3]] == ["powered", "powered", "searching"]
    assert snap["ports"][0]["class"] == 3
    assert snap["ports"][0]["power_w"] == pytest.approx(6.5, abs=0.05)
    assert snap["budget_w"] == 120.0 and snap["allocated_w"] == pytest.approx(15.4 + 7.0)
    with pytest.raises(InvalidConfig, match="unknown argument"):
        hwd.client.call("poe.status", port=1)


def test_power_cycle_goes_off_and_back_on_then_the_hourly_limit_refuses(hwd):
    done = hwd.client.call("poe.power_cycle", port=1, reason="owner in the web UI")
    assert done["allowed"] is True and done["off_seconds"] == 5 and done["port_label"] == "Port 1"
    assert "owner in the web UI" in done["reason"]
    assert hwd.port(1)["state"] == "disabled" and hwd.port(1)["cycles_last_hour"] == 1
    assert hwd.port(2)["state"] == "powered"                      # the other port is untouched
    hwd.poll(4.0)
    assert hwd.port(1)["state"] == "disabled"                     # still off at 4 s
    hwd.poll(2.0)
    assert hwd.port(1)["state"] == "powered"                      # searched, detected, powered
    with pytest.raises(FailedPrecondition, match=r"Port 1 was power-cycled 1 times in the last "
                                                 r"hour \(limit 1"):
        hwd.client.call("poe.power_cycle", port=1, reason="again")
    assert hwd.port(1)["state"] == "powered"
    hwd.clock.advance(3601)
    hwd.poll(0.2)
    assert hwd.client.call("poe.power_cycle", port="port 1", reason="an hour later")["allowed"]


def test_power_cycle_refusals_carry_the_managers_reason(hwd):
    with pytest.raises(FailedPrecondition, match="Port 5 is not powering a device"):
        hwd.client.call("poe.power_cycle", port=5, reason="x")
    hwd.client.call("poe.power_cycle", port="Port 2", reason="first")
    with pytest.raises(FailedPrecondition, match="Port 2 is already being power-cycled"):
        hwd.client.call("poe.power_cycle", port=2, reason="second")
    hwd.client.call("poe.set_enabled", port=3, enabled=False)
    with pytest.raises(FailedPrecondition, match="Port 3 is disabled by the owner"):
        hwd.client.call("poe.power_cycle", port=3)


def test_set_enabled_switches_the_power_off_and_on(hwd):
    port = hwd.client.call("poe.set_enabled", port="Port 2", enabled=False)
    assert port["enabled"] is False and port["state"] == "disabled"
    hwd.poll(2.0)
    assert hwd.port(2)["state"] == "disabled" and hwd.port(2)["power_w"] == 0
    assert hwd.client.call("poe.set_enabled", port=2, enabled=True)["enabled"] is True
    hwd.poll(2.0)
    assert hwd.port(2)["state"] == "powered"


def test_set_priority(hwd):
    port = hwd.client.call("poe.set_priority", port=4, priority="critical")
    assert port["priority"] == "critical"
    with pytest.raises(InvalidConfig, match="critical, high, low"):
        hwd.client.call("poe.set_priority", port=4, priority="urgent")


def test_the_owners_choices_outlast_a_restart_of_vigil_hwd(tmp_path):
    """A port switched off from the web stays off when vigil-hwd (or the box) restarts;
    a choice overrides only its own field of the settings' [poe.ports]."""
    settings = {"ports": {"2": {"priority": "high"}, "Port 4": {"enabled": False}}}
    first = Hwd(tmp_path, **settings)
    first.poll(2.0)
    assert first.port(2)["state"] == "powered"
    first.client.call("poe.set_enabled", port="Port 2", enabled=False)
    first.client.call("poe.set_priority", port=1, priority="critical")
    first.client.call("poe.set_enabled", port=4, enabled=True)
    first.close()
    assert load_choices(first.choices) == {"Port 2": {"enabled": False},
                                           "Port 1": {"priority": "critical"},
                                           "Port 4": {"enabled": True}}

    again = Hwd(tmp_path, **settings)
    try:
        again.poll(2.0)
        port2 = again.port(2)
        assert (port2["enabled"], port2["state"], port2["power_w"]) == (False, "disabled", 0)
        assert port2["priority"] == "high"                           # from the settings
        assert (again.port(1)["state"], again.port(1)["priority"]) == ("powered", "critical")
        assert again.port(4)["enabled"] is True                      # the choice wins
    finally:
        again.close()


def test_a_choice_that_cannot_be_saved_changes_nothing(tmp_path):
    hwd = Hwd(tmp_path)
    try:
        hwd.poll(2.0)
        (tmp_path / "config").write_text("a file where the directory belongs")
        with pytest.raises(Unavailable, match="Port 2 was not changed: its setting cannot be "
                                              "saved"):
            hwd.client.call("poe.set_enabled", port=2, enabled=False)
        hwd.poll(1.0)
        assert hwd.port(2)["enabled"] is True and hwd.port(2)["state"] == "powered"
    finally:
        hwd.close()


@pytest.mark.parametrize("command, args, words", [
    ("poe.power_cycle", {}, "give port"),
    ("poe.power_cycle", {"port": True}, "port number"),
    ("poe.power_cycle", {"port": 1.0}, "port number"),
    ("poe.power_cycle", {"port": None}, "port number"),
    ("poe.power_cycle", {"port": [1]}, "port number"),
    ("poe.power_cycle", {"port": {"n": 1}}, "port number"),
    ("poe.power_cycle", {"port": 0}, "no PoE port 0"),
    ("poe.power_cycle", {"port": 9}, "no PoE port 9"),
    ("poe.power_cycle", {"port": "1"}, "no PoE port labelled '1'"),
    ("poe.power_cycle", {"port": "Port 1; reboot"}, "no PoE port labelled"),
    ("poe.power_cycle", {"port": "x" * 10_000}, "port number or its label"),
    ("poe.power_cycle", {"port": 1, "reason": 5}, "reason"),
    ("poe.power_cycle", {"port": 1, "reason": ""}, "reason"),
    ("poe.power_cycle", {"port": 1, "reason": "a\nb"}, "reason"),
    ("poe.power_cycle", {"port": 1, "reason": "x" * 201}, "reason"),
    ("poe.power_cycle", {"port": 1, "off_seconds": 600}, "unknown argument"),
    ("poe.set_enabled", {"port": 1}, "give enabled"),
    ("poe.set_enabled", {"port": 1, "enabled": "false"}, "true or false"),
    ("poe.set_enabled", {"port": 1, "enabled": 0}, "true or false"),
    ("poe.set_enabled", {"port": 1, "enabled": None}, "true or false"),
    ("poe.set_priority", {"port": 1, "priority": ["high"]}, "critical, high, low"),
])
def test_bad_arguments_are_refused_and_change_nothing(hwd, command, args, words):
    before = hwd.client.call("poe.status")
    with pytest.raises(InvalidConfig, match=words.replace("(", r"\(")):
        hwd.client.call(command, **args)
    after = hwd.client.call("poe.status")
    assert not hwd.choices.exists()
    assert [(p["state"], p["enabled"], p["priority"], p["cycles_last_hour"])
            for p in after["ports"]] == \
        [(p["state"], p["enabled"], p["priority"], p["cycles_last_hour"]) for p in before["ports"]]
