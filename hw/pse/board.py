"""The `[pse]` section of a board profile: which PSE chips sit where, and the power budget.

```toml
[pse]
controller = "tps23861"
i2c_bus = 1                   # /dev/i2c-1
sense_resistor_mohm = 255     # 255 or 250: what is fitted on the board
total_budget_w = 120.0        # what the 48-57 V supply can give all ports together
port_budget_w = 30.0          # per port (802.3at Type 2 = 30 W at the PSE)
camera_interface = "eth1"     # the NIC behind the PoE switch (cameras' network)
uplink_interface = "eth0"     # the owner's LAN

[[pse.chips]]
address = 0x20
ports = ["Port 1", "Port 2", "Port 3", "Port 4"]   # labels of channels 1..4 in order

[pse.sim]                     # only on simulated boards: what is plugged in at start
input_voltage_v = 53.5
devices = [{ port = 1, class = 3, load_w = 6.5 }]
```

Ports are numbered 1..N across chips in the order listed; the number is what the manager,
the API and the UI use, the label is what is printed on the box. `parse_pse` checks every
key and raises `BoardProfileError` naming the profile and the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from hw.board import BoardProfileError, load_profile
from hw.pse.interface import SMBusLike
from hw.pse.tps23861 import Tps23861

CONTROLLERS = ("tps23861",)
PORTS_PER_CHIP = {"tps23861": 4}
MAX_PORT_W = {"tps23861": 30.0}          # 802.3at Type 2 at the PSE
INTERFACE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")   # Linux IFNAMSIZ less the NUL

PSE_KEYS = {"controller", "i2c_bus", "sense_resistor_mohm", "total_budget_w", "port_budget_w",
            "camera_interface", "uplink_interface", "chips", "sim"}
CHIP_KEYS = {"address", "ports", "port_budget_w"}
SIM_KEYS = {"input_voltage_v", "temperature_c", "devices"}
DEVICE_KEYS = {"port", "class", "load_w"}


@dataclass(frozen=True)
class ChipSpec:
    address: int
    labels: tuple[str, ...]


@dataclass(frozen=True)
class PortSpec:
    number: int        # 1..N across the board
    label: str         # "Port 1"
    chip: int          # index into PseLayout.chips
    channel: int       # 1..4 on that chip
    max_w: float


@dataclass(frozen=True)
class SimDeviceSpec:
    port: int
    pd_class: int
    load_w: float


@dataclass(frozen=True)
class SimSpec:
    input_voltage_v: float = 53.5
    temperature_c: float = 45.0
    devices: tuple[SimDeviceSpec, ...] = ()


@dataclass(frozen=True)
class PseLayout:
    controller: str
    i2c_bus: int
    sense_resistor_mohm: int
    total_budget_w: float
    port_budget_w: float
    camera_interface: str
    uplink_interface: str
    chips: tuple[ChipSpec, ...]
    ports: tuple[PortSpec, ...]
    sim: SimSpec | None = None

    def port(self, number: int) -> PortSpec:
        if not 1 <= number <= len(self.ports):
            raise KeyError(f"no PoE port {number} (ports 1-{len(self.ports)})")
        return self.ports[number - 1]

    def port_by_label(self, label: str) -> PortSpec:
        for spec in self.ports:
            if spec.label == label:
                return spec
        raise KeyError(f"no PoE port labelled {label!r}")


def _number(section: str, key: str, value: Any, low: float, high: float,
            whole: bool = False) -> float:
    name = f"{section}.{key}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BoardProfileError(f"{name}: expected a number, got {value!r}")
    if whole and value != int(value):
        raise BoardProfileError(f"{name}: expected a whole number, got {value!r}")
    if not low <= value <= high:
        raise BoardProfileError(f"{name}: {value} is outside {low}..{high}")
    return value


def _unknown(section: str, values: Mapping[str, Any], known: set[str]) -> None:
    extra = sorted(set(values) - known)
    if extra:
        raise BoardProfileError(f"{section}: unknown key(s) {', '.join(extra)}; "
                                f"known: {', '.join(sorted(known))}")


def parse_pse(profile: Mapping[str, Any], source: str = "board profile") -> PseLayout:
    """The validated `[pse]` section of a parsed profile."""
    pse = profile.get("pse")
    if not isinstance(pse, Mapping):
        raise BoardProfileError(f"{source}: no [pse] section")
    sec = f"{source} [pse]"
    _unknown(sec, pse, PSE_KEYS)
    for key in ("controller", "i2c_bus", "total_budget_w", "port_budget_w", "chips"):
        if key not in pse:
            raise BoardProfileError(f"{sec}: {key} is missing")
    controller = pse["controller"]
    if controller not in CONTROLLERS:
        raise BoardProfileError(f"{sec}.controller: {controller!r} is not one of "
                                f"{', '.join(CONTROLLERS)}")
    bus = int(_number(sec, "i2c_bus", pse["i2c_bus"], 0, 255, whole=True))
    sense = pse.get("sense_resistor_mohm", 255)
    if sense not in (250, 255) or isinstance(sense, bool):
        raise BoardProfileError(f"{sec}.sense_resistor_mohm: {sense!r} is not 250 or 255")
    max_w = MAX_PORT_W[controller]
    port_w = float(_number(sec, "port_budget_w", pse["port_budget_w"], 1.0, max_w))
    total_w = float(_number(sec, "total_budget_w", pse["total_budget_w"], 1.0, 2000.0))
    interfaces = {}
    for key in ("camera_interface", "uplink_interface"):
        name = pse.get(key, "")
        if not isinstance(name, str) or not INTERFACE_NAME.match(name):
            raise BoardProfileError(f"{sec}.{key}: {name!r} is not a network interface name")
        interfaces[key] = name
    if interfaces["camera_interface"] == interfaces["uplink_interface"]:
        raise BoardProfileError(f"{sec}: camera_interface and uplink_interface must differ "
                                "(cameras live on their own network)")

    chips_raw = pse["chips"]
    if not isinstance(chips_raw, list) or not chips_raw:
        raise BoardProfileError(f"{sec}.chips: expected at least one [[pse.chips]] entry")
    chips: list[ChipSpec] = []
    ports: list[PortSpec] = []
    seen_addresses: set[int] = set()
    seen_labels: set[str] = set()
    per_chip = PORTS_PER_CHIP[controller]
    for index, chip in enumerate(chips_raw):
        csec = f"{sec}.chips[{index}]"
        if not isinstance(chip, Mapping):
            raise BoardProfileError(f"{csec}: expected a table")
        _unknown(csec, chip, CHIP_KEYS)
        if "address" not in chip:
            raise BoardProfileError(f"{csec}: address is missing")
        address = int(_number(csec, "address", chip["address"], 0x08, 0x77, whole=True))
        if address in seen_addresses:
            raise BoardProfileError(f"{csec}.address: 0x{address:02X} is used by another chip")
        seen_addresses.add(address)
        labels = chip.get("ports", [f"Port {len(ports) + n}" for n in range(1, per_chip + 1)])
        if not isinstance(labels, list) or not 1 <= len(labels) <= per_chip \
                or not all(isinstance(x, str) and x.strip() for x in labels):
            raise BoardProfileError(f"{csec}.ports: expected 1 to {per_chip} non-empty labels")
        chip_w = float(_number(csec, "port_budget_w", chip.get("port_budget_w", port_w),
                               1.0, max_w))
        for channel, label in enumerate(labels, 1):
            if label in seen_labels:
                raise BoardProfileError(f"{csec}.ports: label {label!r} is used twice")
            seen_labels.add(label)
            ports.append(PortSpec(number=len(ports) + 1, label=label, chip=index,
                                  channel=channel, max_w=chip_w))
        chips.append(ChipSpec(address=address, labels=tuple(labels)))

    sim = None
    if "sim" in pse:
        sim = _parse_sim(f"{sec}.sim", pse["sim"], len(ports))
    return PseLayout(controller=controller, i2c_bus=bus, sense_resistor_mohm=sense,
                     total_budget_w=total_w, port_budget_w=port_w,
                     camera_interface=interfaces["camera_interface"],
                     uplink_interface=interfaces["uplink_interface"],
                     chips=tuple(chips), ports=tuple(ports), sim=sim)


def _parse_sim(sec: str, raw: Any, port_count: int) -> SimSpec:
    if not isinstance(raw, Mapping):
        raise BoardProfileError(f"{sec}: expected a table")
    _unknown(sec, raw, SIM_KEYS)
    vin = float(_number(sec, "input_voltage_v", raw.get("input_voltage_v", 53.5), 0.0, 60.0))
    temp = float(_number(sec, "temperature_c", raw.get("temperature_c", 45.0), -20.0, 146.0))
    devices = []
    used: set[int] = set()
    for i, dev in enumerate(raw.get("devices", [])):
        dsec = f"{sec}.devices[{i}]"
        if not isinstance(dev, Mapping):
            raise BoardProfileError(f"{dsec}: expected a table")
        _unknown(dsec, dev, DEVICE_KEYS)
        port = int(_number(dsec, "port", dev.get("port"), 1, port_count, whole=True))
        if port in used:
            raise BoardProfileError(f"{dsec}.port: port {port} has two devices")
        used.add(port)
        devices.append(SimDeviceSpec(
            port=port, pd_class=int(_number(dsec, "class", dev.get("class"), 0, 4, whole=True)),
            load_w=float(_number(dsec, "load_w", dev.get("load_w"), 0.0, 40.0))))
    return SimSpec(input_voltage_v=vin, temperature_c=temp, devices=tuple(devices))


def load_layout(name: str) -> PseLayout:
    """Read hw/boards/<name>.toml and validate its [pse] section."""
    return parse_pse(load_profile(name), source=f"hw/boards/{name}.toml")


def build_controllers(layout: PseLayout, bus: SMBusLike) -> list[Tps23861]:
    """Drivers for every chip on the layout, on an already open bus (not opened yet)."""
    return [Tps23861(bus, chip.address, bus_number=layout.i2c_bus,
                     sense_resistor_mohm=layout.sense_resistor_mohm) for chip in layout.chips]
