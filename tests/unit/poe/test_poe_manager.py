"""PoE manager scenarios on the simulated board (two TPS23861, ports 1-8, 120 W)."""

import errno
import json
import threading

import pytest

from appliance.core.errors import FailedPrecondition, InvalidConfig
from appliance.poe import PoeManager, PortState, build_poe_settings
from hw.pse.board import build_controllers, load_layout
from hw.pse.tps23861_sim import SimulatedBus
from poe_rig import keys, make_rig

S, D, C, P, F, X = (PortState.SEARCHING, PortState.DETECTED, PortState.CLASSIFIED,
                    PortState.POWERED, PortState.FAULT, PortState.DISABLED)


def powered_ports(rig):
    return [p for p in range(1, 9) if rig.state(p) is P]


# --- plug and play -----------------------------------------------------------------------

def test_a_camera_goes_searching_detected_classified_powered():
    rig = make_rig()
    rig.poll(times=2)
    assert rig.states() == ["searching"] * 8
    # Detection cycles of 0.3 s run since 1000.0; the one ending at 1002.1 sees the camera,
    # its classification ends at 1002.15, power good 60 ms after the manager's PWON.
    rig.bus.plug(3, pd_class=3, load_w=6.5)
    rig.poll(0.12)
    assert rig.state(3) is D
    rig.poll(0.1)
    assert rig.state(3) is C and rig.port_json(3)["detail"] == "powering on"
    rig.poll(0.1)
    assert rig.state(3) is P
    assert rig.manager.history(3) == [S, D, C, P]
    assert [(c.port, c.label, c.powered, c.pd_class) for c in rig.changes] == \
        [(3, "Port 3", True, 3)]
    assert rig.changes[0].wall_time == rig.clock.wall()
    snap = rig.port_json(3)
    assert snap["state"] == "powered" and snap["class"] == 3
    assert snap["power_w"] == pytest.approx(6.5, abs=0.02)
    assert snap["voltage_v"] == pytest.approx(53.45, abs=0.01)
    assert snap["current_ma"] == pytest.approx(6.5 / 53.45 * 1000, abs=0.1)
    assert snap["allocated_w"] == 15.4
    assert snap["budget_share"] == pytest.approx(15.4 / 120, abs=1e-3)
    assert rig.alerts == []


def test_one_slow_poll_still_records_every_step():
    rig = make_rig()
    rig.bus.plug(1, pd_class=4, load_w=20)
    rig.poll(times=2)
    assert rig.manager.history(1) == [S, D, C, P]


def test_unplug_goes_back_to_searching_and_says_unpowered():
    rig = make_rig()
    rig.bus.plug(5, pd_class=1, load_w=3)
    rig.settle(3)
    rig.bus.unplug(5)
    rig.settle(2)
    assert rig.state(5) is S and rig.port_json(5)["detail"] in ("unplugged", "")
    assert [(c.port, c.powered) for c in rig.changes] == [(5, True), (5, False)]
    assert rig.alerts == [], "an unplug is not an alarm"


def test_scripted_sim_cameras_come_up_at_start():
    rig = make_rig(devices=True)
    rig.settle(3)
    assert powered_ports(rig) == [1, 2]


def test_ports_powered_before_the_daemon_stay_powered():
    """The part comes up in Auto (AUTO bit): cameras get power before vigil-hwd starts."""
    rig = make_rig(start=False)
    rig.bus.plug(2, 2, 4.0)
    rig.clock.advance(1)
    rig.bus.tick()
    assert rig.bus.read_byte_data(0x20, 0x10) == 0b0010_0010
    rig.manager.start()
    rig.poll()
    assert rig.state(2) is P and rig.bus.read_byte_data(0x20, 0x12) == 0b10101010


# --- budget ------------------------------------------------------------------------------

def test_a_fourth_class_4_camera_is_denied_with_an_alert():
    rig = make_rig({"budget_w": 90})
    for port in (1, 2, 3, 4):
        rig.bus.plug(port, pd_class=4, load_w=20)
    alerts = rig.settle(4)
    assert powered_ports(rig) == [1, 2, 3], "ties: the lower port numbers win"
    assert rig.state(4) is C
    snap = rig.port_json(4)
    assert snap["denied"] and snap["detail"].startswith("denied: needs 30.0 W, 90.0 of 90.0 W")
    assert keys(alerts) == ["poe:Port 4:budget"]
    assert "Port 4 is not powered: its class 4 device needs 30.0 W" in alerts[0].message
    assert rig.settle(5) == [], "alerted once"
    assert rig.manager.snapshot().allocated_w == 90.0
    rig.bus.unplug(2)
    alerts = rig.settle(3)
    assert powered_ports(rig) == [1, 3, 4]
    assert keys(alerts) == ["poe:Port 4:budget:cleared"]


def test_an_equal_priority_newcomer_does_not_switch_another_camera_off():
    rig = make_rig({"budget_w": 90})
    for port in (2, 3, 4):
        rig.bus.plug(port, pd_class=4, load_w=20)
    rig.settle(3)
    rig.bus.plug(1, pd_class=4, load_w=20)
    rig.settle(3)
    assert powered_ports(rig) == [2, 3, 4] and rig.port_json(1)["denied"]


def test_a_higher_priority_port_sheds_the_lowest_priority_highest_number():
    rig = make_rig({"budget_w": 90, "ports": {"Port 1": {"priority": "high"},
                                              "Port 6": {"priority": "critical"}}})
    for port in (1, 2, 3):
        rig.bus.plug(port, pd_class=4, load_w=20)
    rig.settle(3)
    rig.bus.plug(6, pd_class=4, load_w=20)
    alerts = rig.settle(3)
    assert powered_ports(rig) == [1, 2, 6], "Port 3 (low, highest number) went first"
    assert rig.state(3) is C and rig.port_json(3)["denied"]
    assert "shed for Port 6 (critical)" in rig.port_json(3)["detail"]
    assert keys(alerts) == ["poe:Port 3:budget"]
    assert "Port 3 (low priority) was switched off" in alerts[0].message
    assert (3, False) in [(c.port, c.powered) for c in rig.changes]


def test_shedding_stops_as_soon_as_the_newcomer_fits():
    rig = make_rig({"budget_w": 60, "ports": {"5": {"priority": "high"}}})
    rig.bus.plug(1, pd_class=2, load_w=5)    # 7 W
    rig.bus.plug(2, pd_class=3, load_w=9)    # 15.4 W
    rig.bus.plug(3, pd_class=3, load_w=9)    # 15.4 W
    rig.bus.plug(4, pd_class=3, load_w=9)    # 15.4 W: 53.2 W in use
    rig.settle(3)
    rig.bus.plug(5, pd_class=2, load_w=5)    # needs 7 W: shed Port 4 only
    rig.settle(3)
    assert powered_ports(rig) == [1, 2, 3, 5]


def test_a_newcomer_that_cannot_fit_even_after_shedding_sheds_nobody():
    rig = make_rig({"budget_w": 30, "ports": {"Port 2": {"priority": "high"}}})
    rig.bus.plug(1, pd_class=2, load_w=5)
    rig.settle(3)
    rig.bus.plug(2, pd_class=4, load_w=25)   # 30 W > 30 - 7 + 7? needs all 30: shed Port 1
    rig.settle(3)
    assert powered_ports(rig) == [2]
    rig2 = make_rig({"budget_w": 20, "ports": {"Port 2": {"priority": "high"}}})
    rig2.bus.plug(1, pd_class=2, load_w=5)
    rig2.settle(3)
    rig2.bus.plug(2, pd_class=4, load_w=25)  # 30 W never fits in 20 W
    rig2.settle(3)
    assert powered_ports(rig2) == [1] and rig2.port_json(2)["denied"]


def test_measured_policy_fits_more_and_sheds_when_the_draw_grows():
    rig = make_rig({"budget_w": 70, "budget_policy": "measured", "measured_margin_w": 2})
    for port in (1, 2, 3, 4, 5):
        rig.bus.plug(port, pd_class=4, load_w=8)   # class says 30 W each, they draw 8 W
    rig.settle(6)
    # A newcomer is charged its class (30 W) until it draws; a powered port 8 + 2 W.
    assert powered_ports(rig) == [1, 2, 3, 4, 5], "4 x 10 W + 30 W fits in 70 W"
    assert rig.manager.snapshot().allocated_w == pytest.approx(50.0, abs=0.05)
    class_rig = make_rig({"budget_w": 70})
    for port in (1, 2, 3, 4, 5):
        class_rig.bus.plug(port, pd_class=4, load_w=8)
    class_rig.settle(6)
    assert powered_ports(class_rig) == [1, 2], "by class: 30 W each"
    for port in (1, 2, 3, 4, 5):
        rig.bus.set_load(port, 15)                  # IR on at night: 75 W
    alerts = rig.settle(2)
    assert powered_ports(rig) == [1, 2, 3, 4], "Port 5 shed"
    assert "poe:budget:overrun" in keys(alerts)
    assert "PoE draw 75.0 W is over the 70.0 W budget: switched off Port 5" in \
        [a.message for a in alerts if a.key == "poe:budget:overrun"][0]


def test_class_budget_below_the_board_rating_is_used_and_above_is_refused():
    rig = make_rig({"budget_w": 40})
    assert rig.manager.budget_w == 40
    with pytest.raises(InvalidConfig, match="above what the board's supply gives"):
        make_rig({"budget_w": 200})
    assert make_rig().manager.budget_w == 120


# --- faults ------------------------------------------------------------------------------

def test_overload_on_one_port_leaves_the_others_alone_and_clears():
    rig = make_rig({"fault_retry": 5})
    for port in (1, 2, 5):
        rig.bus.plug(port, pd_class=3, load_w=7)
    rig.settle(3)
    rig.changes.clear()
    rig.bus.overload(2)
    alerts = rig.poll()
    assert rig.state(2) is F and rig.port_json(2)["faults"] == ["overload"]
    assert [(a.severity, a.key) for a in alerts] == [("warning", "poe:Port 2:overload")]
    assert powered_ports(rig) == [1, 5]
    assert [(c.port, c.powered) for c in rig.changes] == [(2, False)]
    assert rig.settle(3) == [] and rig.state(2) is F, "held off for fault_retry"
    alerts = rig.settle(4)
    assert powered_ports(rig) == [1, 2, 5]
    assert [(a.severity, a.key) for a in alerts] == [("info", "poe:Port 2:fault_cleared")]
    assert rig.port_json(2)["faults"] == []


def test_a_short_stays_a_fault_until_it_is_gone():
    rig = make_rig({"fault_retry": 2})
    rig.bus.plug(4, pd_class=2, load_w=4)
    rig.bus.plug(7, pd_class=2, load_w=4)
    rig.settle(3)
    rig.bus.short(4)
    alerts = rig.poll()
    assert rig.state(4) is F and [(a.severity, a.key) for a in alerts] == \
        [("critical", "poe:Port 4:current_limit")]
    alerts = rig.settle(10)
    assert rig.state(4) is F and "short" in rig.port_json(4)["faults"]
    assert keys(alerts) == ["poe:Port 4:short"], "the short is named once detection sees it"
    assert rig.state(7) is P
    rig.bus.clear_short(4)
    alerts = rig.settle(5)
    assert rig.state(4) is P and keys(alerts) == ["poe:Port 4:fault_cleared"]


def test_start_fault_and_classification_overcurrent():
    rig = make_rig()
    rig.bus.plug(1, pd_class=2, load_w=4, class_code=7)   # too much current in class
    alerts = rig.settle(3)
    assert rig.state(1) is F and keys(alerts) == ["poe:Port 1:class_overcurrent"]
    assert rig.bus.read_byte_data(0x20, 0x10) & 0x01 == 0, "never powered"


def test_thermal_shutdown_of_one_chip():
    rig = make_rig({"fault_retry": 3})
    for port in (1, 4, 5, 8):
        rig.bus.plug(port, pd_class=2, load_w=4)
    rig.settle(3)
    rig.changes.clear()
    rig.bus.thermal_shutdown(0x20)
    alerts = rig.poll()
    assert [rig.state(p) for p in (1, 2, 3, 4)] == [F] * 4
    assert rig.port_json(1)["faults"] == ["thermal"]
    assert powered_ports(rig) == [5, 8]
    assert [(a.severity, a.key) for a in alerts] == [("critical", "poe:0x20:thermal")]
    assert "overheated (146 C)" in alerts[0].message
    assert sorted((c.port, c.powered) for c in rig.changes) == [(1, False), (4, False)]
    assert rig.settle(10) == [] and rig.state(1) is F, "held while hot"
    rig.bus.thermal_recover(0x20, 55.0)
    alerts = rig.settle(6)
    assert powered_ports(rig) == [1, 4, 5, 8]
    assert sorted(keys(alerts)) == ["poe:0x20:thermal:cleared", "poe:Port 1:fault_cleared",
                                    "poe:Port 4:fault_cleared"]
    assert rig.manager.snapshot().chips[0]["hold"] is None


def test_high_temperature_warns_before_shutdown():
    rig = make_rig({"temperature_alert_c": 100})
    rig.bus.set_temperature(0x28, 105)
    assert keys(rig.poll()) == ["poe:0x28:hot"]
    rig.bus.set_temperature(0x28, 80)
    assert keys(rig.poll()) == ["poe:0x28:hot:cleared"]


def test_supply_under_voltage_warning_then_lockout_then_recovery():
    rig = make_rig({"fault_retry": 2})
    rig.bus.plug(1, pd_class=2, load_w=4)
    rig.bus.plug(6, pd_class=2, load_w=4)
    rig.settle(3)
    rig.bus.set_input_voltage(42.0)
    alerts = rig.poll()
    assert [(a.severity, a.key) for a in alerts] == [("critical", "poe:supply:low")]
    assert "reads 42.0 V, below 44 V" in alerts[0].message
    assert powered_ports(rig) == [1, 6], "the chip still powers at 42 V"
    assert rig.manager.snapshot().input_voltage_v == pytest.approx(42.0, abs=0.01)
    rig.bus.set_input_voltage(20.0)
    alerts = rig.poll()
    assert powered_ports(rig) == []
    assert rig.port_json(1)["faults"] == ["supply_undervoltage"]
    assert keys(alerts) == ["poe:supply:undervoltage"]
    assert rig.settle(5) == [], "no repeats while it lasts"
    rig.bus.set_input_voltage(53.5)
    alerts = rig.settle(5)
    assert powered_ports(rig) == [1, 6]
    assert "poe:supply:low:cleared" in keys(alerts)
    assert "poe:Port 1:fault_cleared" in keys(alerts)


# --- power cycles ------------------------------------------------------------------------

def test_power_cycle_switches_off_then_the_camera_comes_back():
    rig = make_rig()
    rig.bus.plug(2, pd_class=3, load_w=6)
    rig.settle(3)
    rig.changes.clear()
    back = rig.manager.power_cycle(2, off_seconds=15, reason="owner")
    assert back == rig.clock.monotonic() + 15
    assert rig.state(2) is X and "power cycle (owner)" in rig.port_json(2)["detail"]
    assert rig.bus.read_byte_data(0x20, 0x10) & 0x22 == 0, "really off"
    assert rig.bus.read_byte_data(0x20, 0x12) >> 2 & 3 == 0, "Off mode, so nothing re-detects"
    rig.settle(14)
    assert rig.state(2) is X and rig.bus.read_byte_data(0x20, 0x10) == 0
    rig.settle(4)
    assert rig.state(2) is P
    assert [(c.port, c.powered) for c in rig.changes] == [(2, False), (2, True)]
    assert rig.changes[1].monotonic - rig.changes[0].monotonic >= 15
    assert rig.port_json(2)["cycles_last_hour"] == 1


def test_hourly_power_cycle_limit():
    rig = make_rig({"max_cycles_per_hour": 3, "cycle_off_seconds": 5})
    rig.bus.plug(1, pd_class=2, load_w=4)
    rig.settle(3)
    for n in range(3):
        decision = rig.manager.request_power_cycle(1, "recorder stall")
        assert decision.allowed, decision.reason
        assert decision.reason == "Port 1 switched off for 5 s: recorder stall"
        rig.settle(9)
        assert rig.state(1) is P
        rig.poll(60.0, 10)  # 10 minutes between stalls
    decision = rig.manager.request_power_cycle(1, "recorder stall")
    assert not decision.allowed and rig.state(1) is P
    assert "power-cycled 3 times in the last hour (limit 3" in decision.reason
    assert decision.retry_after_s == pytest.approx(3600 - 3 * 609, abs=1)
    assert "poe:Port 1:cycle_limit" in keys(rig.alerts)
    rig.poll(decision.retry_after_s + 1)
    decision = rig.manager.request_power_cycle(1, "recorder stall")
    assert decision.allowed, "an hour after the first one"
    assert "poe:Port 1:cycle_limit" not in [a.key for a in rig.manager.active_alerts()]


def test_power_cycle_requests_that_make_no_sense_are_refused():
    rig = make_rig({"ports": {"Port 8": {"enabled": False}}})
    rig.bus.plug(1, pd_class=2, load_w=4)
    rig.settle(3)
    assert "not powering a device (state searching)" in \
        rig.manager.request_power_cycle(3, "stall").reason
    assert "disabled by the owner" in rig.manager.request_power_cycle(8, "stall").reason
    assert rig.manager.request_power_cycle(1, "stall").allowed
    assert "already being power-cycled" in rig.manager.request_power_cycle(1, "stall").reason
    with pytest.raises(FailedPrecondition):
        rig.manager.power_cycle(8, 5)
    with pytest.raises(InvalidConfig):
        rig.manager.power_cycle(1, 0.1)
    with pytest.raises(ValueError):
        rig.manager.request_power_cycle(9, "stall")
    off = make_rig({"max_cycles_per_hour": 0})
    off.bus.plug(1, pd_class=2, load_w=4)
    off.settle(3)
    assert "automatic power cycling is off" in off.manager.request_power_cycle(1, "x").reason


def test_owner_disables_and_enables_a_port():
    rig = make_rig()
    rig.bus.plug(3, pd_class=2, load_w=4)
    rig.settle(3)
    rig.manager.set_enabled(3, False)
    assert rig.state(3) is X and rig.bus.read_byte_data(0x20, 0x10) & 0x44 == 0
    rig.settle(5)
    assert rig.state(3) is X
    rig.manager.set_enabled(3, True)
    rig.settle(3)
    assert rig.state(3) is P
    assert [(c.port, c.powered) for c in rig.changes] == [(3, True), (3, False), (3, True)]


def test_a_disabled_port_in_settings_is_never_powered():
    rig = make_rig({"ports": {"Port 2": {"enabled": False}}})
    rig.bus.plug(2, pd_class=2, load_w=4)
    rig.settle(5)
    assert rig.state(2) is X and rig.bus.read_byte_data(0x20, 0x10) == 0


# --- controllers that misbehave ----------------------------------------------------------

def test_a_chip_that_stops_answering_alerts_and_the_other_keeps_working():
    rig = make_rig()
    rig.bus.plug(1, pd_class=2, load_w=4)
    rig.bus.plug(5, pd_class=2, load_w=4)
    rig.settle(3)
    rig.bus.inject_error(errno.EREMOTEIO, address=0x20, count=None)
    alerts = rig.poll()
    assert [(a.severity, a.key) for a in alerts] == [("critical", "poe:0x20:bus")]
    assert "Remote I/O error" in alerts[0].message
    assert rig.port_json(1)["stale"] and rig.state(1) is P, "last known state kept"
    rig.bus.unplug(5)
    rig.bus.plug(6, pd_class=1, load_w=2)
    assert rig.settle(3) == []
    assert rig.state(5) is S and rig.state(6) is P
    rig.bus.clear_errors()
    alerts = rig.poll()
    assert keys(alerts) == ["poe:0x20:bus:cleared"] and not rig.port_json(1)["stale"]
    assert rig.bus.writes_to(0x20, 0x1A) == [0x80], "not re-opened: no CLRAIN lost events"


def test_events_are_not_lost_when_the_bus_fails_mid_read():
    rig = make_rig({"fault_retry": 3})
    rig.bus.plug(1, pd_class=2, load_w=4)
    rig.settle(3)
    rig.bus.overload(1)
    rig.clock.advance(0.1)
    rig.bus.inject_error(errno.EIO, address=0x20, register=0x09, count=2)   # after 0x07
    rig.poll()
    assert rig.state(1) is not F
    alerts = rig.poll(0.1)
    assert rig.state(1) is F
    assert sorted(keys(alerts)) == ["poe:0x20:bus:cleared", "poe:Port 1:overload"]


def test_a_wrong_part_at_one_address():
    def setup(bus):
        bus.devices.pop(0x28)
        bus.add_foreign_device(0x28, {0x1B: 0x10, 0x43: 0x00})
    rig = make_rig(setup=setup)
    assert rig.alerts[0].key == "poe:0x28:identity" and rig.alerts[0].severity == "critical"
    assert "i2c-1 address 0x28 is not a TPS23861" in rig.alerts[0].message
    rig.bus.plug(1, pd_class=2, load_w=4)
    rig.settle(3)
    assert rig.state(1) is P
    assert [rig.state(p) for p in (5, 6, 7, 8)] == [F] * 4
    assert rig.port_json(5)["faults"] == ["controller"]
    snap = rig.manager.snapshot().to_json()
    assert not snap["chips"][1]["ok"] and "not a TPS23861" in snap["chips"][1]["error"]
    assert len(rig.alerts) == 1


def test_a_chip_power_on_reset_is_set_up_again():
    rig = make_rig()
    rig.bus.plug(2, pd_class=2, load_w=4)
    rig.settle(3)
    rig.bus.power_on_reset(0x20)     # registers back to Auto defaults, ports off
    alerts = rig.poll()
    assert keys(alerts) == ["poe:0x20:reset"]
    assert rig.bus.read_byte_data(0x20, 0x12) == 0b10101010, "semi-auto again"
    rig.settle(3)
    assert rig.state(2) is P


# --- views and the loop ------------------------------------------------------------------

def test_snapshot_for_nvr_health():
    rig = make_rig({"ports": {"Port 1": {"priority": "critical"}}})
    rig.bus.plug(1, pd_class=4, load_w=12.5)
    rig.settle(3)
    doc = json.loads(rig.manager.to_json())
    assert set(doc) == {"time", "budget_w", "budget_policy", "allocated_w", "measured_w",
                        "input_voltage_v", "chips", "ports"}
    port = doc["ports"][0]
    assert set(port) == {"port", "label", "state", "detail", "enabled", "priority", "class",
                         "detection", "power_w", "voltage_v", "current_ma", "allocated_w",
                         "budget_share", "max_w", "denied", "faults", "cycles_last_hour",
                         "stale"}
    assert (port["label"], port["priority"], port["class"], port["allocated_w"]) == \
        ("Port 1", "critical", 4, 30.0)
    assert port["budget_share"] == 0.25 and doc["allocated_w"] == 30.0
    assert doc["measured_w"] == pytest.approx(12.5, abs=0.05)
    assert doc["chips"][0] == {"name": "TPS23861 at i2c-1:0x20", "address": "0x20", "ok": True,
                               "error": None, "temperature_c": 45.2,
                               "input_voltage_v": 53.5, "hold": None}
    assert doc["ports"][1]["state"] == "searching" and doc["ports"][1]["allocated_w"] == 0


def test_run_polls_on_the_injected_clock_until_stopped():
    rig = make_rig()
    rig.bus.plug(4, pd_class=2, load_w=4)
    stop = threading.Event()
    rig.manager.add_power_listener(lambda change: stop.set())
    rig.manager.run(stop)
    assert rig.state(4) is P
    assert rig.clock.sleeps and set(rig.clock.sleeps) == {1.0}


def test_a_listener_that_raises_does_not_break_polling():
    rig = make_rig()
    rig.manager.add_power_listener(lambda change: 1 / 0)
    rig.bus.plug(1, pd_class=2, load_w=4)
    rig.settle(3)
    assert rig.state(1) is P and len(rig.changes) == 1


def test_settings_must_name_ports_of_the_board():
    layout = load_layout("sim")
    controllers = build_controllers(layout, SimulatedBus(lambda: 0.0))
    with pytest.raises(InvalidConfig, match="no port 'Port 9'"):
        PoeManager(layout, controllers, config=build_poe_settings({"ports": {"Port 9": {}}}))
    with pytest.raises(InvalidConfig, match="2 PSE chips in the profile but 1"):
        PoeManager(layout, controllers[:1])
    assert PoeManager(layout, controllers, config=build_poe_settings(
        {"ports": {"8": {"priority": "high"}}})).snapshot().ports[7]["priority"] == "high"


def test_impossible_status_values_do_not_crash_or_spread():
    rig = make_rig()
    for port in (1, 2, 3):
        rig.bus.plug(port, pd_class=2, load_w=4)
    chip = rig.bus.chip(0x20)
    chip.forced[0x0D] = 0x94        # Port 2: valid detection, undefined class code 9
    chip.forced[0x0E] = 0x54        # Port 3: class code 5, reserved
    chip.forced.update({0x3A: 0xFF, 0x3B: 0xFF})   # Port 3 voltage word with b15:14 set
    rig.settle(3)
    assert rig.state(1) is P
    assert rig.state(2) is D and "class unreadable (invalid, code 9)" in rig.port_json(2)["detail"]
    assert rig.state(3) is P, "reserved class: powered, budgeted as class 0"
    snap = rig.port_json(3)
    assert snap["allocated_w"] == 15.4 and snap["voltage_v"] is None and snap["power_w"] == 0
    del chip.forced[0x0D]
    rig.settle(2)
    assert rig.state(2) is P
