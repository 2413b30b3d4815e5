"""Board profiles: every shipped one is valid, and bad ones fail with the key named."""

import copy
import tomllib

import pytest

from hw.board import BOARDS, BoardProfileError, load_profile
from hw.pse.board import build_controllers, load_layout, parse_pse
from hw.pse.tps23861_sim import SimulatedBus

SHIPPED = sorted(p.stem for p in BOARDS.glob("*.toml"))

GOOD = tomllib.loads("""
[pse]
controller = "tps23861"
i2c_bus = 1
total_budget_w = 60.0
port_budget_w = 30.0
camera_interface = "eth1"
uplink_interface = "eth0"
[[pse.chips]]
address = 0x20
""")


def test_real_and_simulated_layouts_ship():
    assert {"sim", "pi4-poe4", "pi5-poe8"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_profile_has_a_valid_pse_section(name):
    layout = load_layout(name)
    assert layout.ports and len({p.label for p in layout.ports}) == len(layout.ports)
    assert [p.number for p in layout.ports] == list(range(1, len(layout.ports) + 1))
    assert load_profile(name)["board"]["name"] == name


def test_sim_keeps_what_devmode_reads():
    profile = load_profile("sim")
    assert profile["board"]["name"] == "sim" and profile["sim_cameras"]["count"] >= 1


def test_the_eight_port_layout():
    layout = load_layout("pi5-poe8")
    assert [c.address for c in layout.chips] == [0x20, 0x28]
    five = layout.port(5)
    assert five.label == "Port 5" and (five.chip, five.channel) == (1, 1)
    assert layout.port_by_label("Port 8").number == 8
    assert layout.total_budget_w == 120.0 and layout.port(1).max_w == 30.0
    with pytest.raises(KeyError):
        layout.port(9)
    with pytest.raises(KeyError):
        layout.port_by_label("Port 9")


def test_default_labels_and_per_chip_budget():
    raw = copy.deepcopy(GOOD)
    raw["pse"]["chips"].append({"address": 0x21, "port_budget_w": 15.4})
    layout = parse_pse(raw)
    assert [p.label for p in layout.ports] == [f"Port {n}" for n in range(1, 9)]
    assert [p.max_w for p in layout.ports] == [30.0] * 4 + [15.4] * 4


def mutate(path, value):
    raw = copy.deepcopy(GOOD)
    node = raw
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return raw


@pytest.mark.parametrize("path, value, message", [
    (("pse",), KeyError, "no [pse] section"),
    (("pse", "controller"), "pd69210", "controller: 'pd69210' is not one of tps23861"),
    (("pse", "i2c_bus"), KeyError, "i2c_bus is missing"),
    (("pse", "i2c_bus"), "one", "i2c_bus: expected a number"),
    (("pse", "extra"), 1, "unknown key(s) extra"),
    (("pse", "sense_resistor_mohm"), 260, "sense_resistor_mohm: 260 is not 250 or 255"),
    (("pse", "port_budget_w"), 40.0, "port_budget_w: 40.0 is outside 1.0..30.0"),
    (("pse", "total_budget_w"), 0, "total_budget_w: 0 is outside"),
    (("pse", "camera_interface"), "eth0", "must differ"),
    (("pse", "uplink_interface"), "bad name!", "not a network interface name"),
    (("pse", "chips"), [], "at least one [[pse.chips]]"),
    (("pse", "chips", 0, "address"), 0x80, "address: 128 is outside"),
    (("pse", "chips", 0, "address"), 0x20 + 0.5, "expected a whole number"),
    (("pse", "chips", 0, "ports"), ["A", "B", "C", "D", "E"], "expected 1 to 4 non-empty labels"),
    (("pse", "chips", 0, "ports"), ["A", ""], "non-empty labels"),
    (("pse", "chips", 0, "ports"), ["A", "A"], "label 'A' is used twice"),
    (("pse", "chips", 0, "colour"), "red", "chips[0]: unknown key(s) colour"),
    (("pse", "sim"), {"devices": [{"port": 5, "class": 1, "load_w": 2}]}, "port: 5 is outside"),
    (("pse", "sim"), {"devices": [{"port": 1, "class": 5, "load_w": 2}]}, "class: 5 is outside"),
    (("pse", "sim"), {"devices": [{"port": 1, "class": 1, "load_w": 2},
                                  {"port": 1, "class": 2, "load_w": 2}]}, "two devices"),
    (("pse", "sim"), {"voltage": 48}, "unknown key(s) voltage"),
])
def test_bad_profiles_name_the_problem(path, value, message):
    with pytest.raises(BoardProfileError) as err:
        parse_pse(mutate(path, value), source="hw/boards/x.toml")
    assert message in str(err.value)
    assert "hw/boards/x.toml" in str(err.value)


def test_duplicate_addresses_are_refused():
    raw = copy.deepcopy(GOOD)
    raw["pse"]["chips"].append({"address": 0x20})
    with pytest.raises(BoardProfileError, match=r"chips\[1\].address: 0x20 is used by another"):
        parse_pse(raw)


def test_controllers_are_built_on_the_given_bus_without_opening_it():
    layout = load_layout("pi5-poe8")
    bus = SimulatedBus(lambda: 0.0)
    drivers = build_controllers(layout, bus)
    assert [d.name for d in drivers] == ["TPS23861 at i2c-1:0x20", "TPS23861 at i2c-1:0x28"]
    assert bus.log == []
