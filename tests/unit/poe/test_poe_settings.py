"""PoE settings: bounds, unknown keys, per-port tables; and the hourly cycle policy."""

import pytest

from appliance.config.model import describe
from appliance.core.clock import SimulatedClock
from appliance.core.errors import InvalidConfig
from appliance.poe.cycles import CyclePolicy
from appliance.poe.settings import PoeSettings, PortSettings, build_poe_settings


def test_defaults():
    cfg = build_poe_settings({})
    s = cfg.settings
    assert (s.poll_interval, s.budget_w, s.budget_policy, s.max_cycles_per_hour) == \
        (1.0, 0.0, "class", 3)
    assert cfg.port(1, "Port 1") == PortSettings()


def test_ports_by_label_or_number():
    cfg = build_poe_settings({"ports": {"Port 1": {"priority": "critical"},
                                        "2": {"enabled": False}}})
    assert cfg.port(1, "Port 1").priority == "critical"
    assert cfg.port(2, "Port 2").enabled is False
    cfg.check_ports({1: "Port 1", 2: "Port 2"})
    with pytest.raises(InvalidConfig, match="no port '3'"):
        build_poe_settings({"ports": {"3": {}}}).check_ports({1: "Port 1"})


@pytest.mark.parametrize("values, message", [
    ({"poll_interval": 0.01}, "poe.poll_interval: 0.01 is below the minimum 0.2"),
    ({"max_cycles_per_hour": 1.5}, "expected a whole number"),
    ({"budget_policy": "dynamic"}, "'dynamic' is not one of class, measured"),
    ({"budget": 10}, "poe: unknown setting(s) budget"),
    ({"ports": {"Port 1": {"priority": "urgent"}}}, "poe.ports.Port 1.priority"),
    ({"ports": {"Port 1": {"power": 3}}}, "unknown setting(s) power"),
    ({"ports": {"Port 1": "on"}}, "expected a table"),
    ({"ports": ["Port 1"]}, "expected a table of ports"),
])
def test_bad_settings_are_refused_with_the_key(values, message):
    with pytest.raises(InvalidConfig) as err:
        build_poe_settings(values)
    assert message in str(err.value)


def test_every_setting_is_described_with_its_bounds():
    for name, default, text in describe(PoeSettings) + describe(PortSettings):
        assert text and len(text) > 15, name


def test_cycle_policy_window():
    clock = SimulatedClock()
    policy = CyclePolicy(clock, max_per_hour=2)
    assert policy.check(1, "Port 1").allowed
    policy.record(1)
    clock.advance(100)
    policy.record(1)
    refused = policy.check(1, "Port 1")
    assert not refused.allowed and refused.retry_after_s == pytest.approx(3500)
    assert refused.to_json()["allowed"] is False
    assert policy.check(2, "Port 2").allowed, "per port"
    clock.advance(3500)
    assert policy.check(1, "Port 1").allowed and policy.count(1) == 1
