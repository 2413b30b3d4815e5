"""PoE settings: polling, the budget policy, fault retry, power-cycle limits, per-port choices.

```toml
[poe]
budget_w = 90              # below the board's supply rating, never above
max_cycles_per_hour = 3

[poe.ports."Port 1"]       # by label (or by number: [poe.ports.1])
priority = "critical"
[poe.ports."Port 8"]
enabled = false
```
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from appliance.config.model import load_section, setting
from appliance.core.errors import InvalidConfig
from appliance.poe.budget import PRIORITIES


@dataclasses.dataclass(frozen=True)
class PoeSettings:
    poll_interval: float = setting(
        1.0, "seconds between reads of the PoE controllers (events are latched by the chip, "
        "so none is missed between reads)", low=0.2, high=10)
    budget_w: float = setting(
        0.0, "total PoE power budget in watts; 0 = the board's supply rating (it can only be "
        "lowered)", low=0, high=2000)
    budget_policy: str = setting(
        "class", "what a powered port counts against the budget: its class allocation "
        "(15.4 W for class 0/3, 30 W for class 4...), or its measured draw plus "
        "measured_margin_w (more cameras per supply, less headroom)",
        choices=("class", "measured"))
    measured_margin_w: float = setting(
        2.0, "with budget_policy = measured: watts added to each port's measured draw",
        low=0, high=30)
    fault_retry: float = setting(
        10.0, "seconds a port stays off after an overload, short, start fault, over-temperature "
        "or supply drop before it looks for its camera again", low=1, high=3600)
    cycle_off_seconds: float = setting(
        10.0, "how long an automatic power cycle keeps a port off", low=3, high=120)
    max_cycles_per_hour: int = setting(
        3, "power cycles allowed per port in any 60 minutes; automatic requests beyond it are "
        "refused with the reason (0 = never cycle automatically)", low=0, high=60)
    min_input_voltage: float = setting(
        44.0, "alert when the PoE supply reads below this many volts (802.3af PSE minimum 44 V, "
        "802.3at Type 2 50 V)", low=30, high=57)
    temperature_alert_c: float = setting(
        120.0, "alert when a PoE controller's die is hotter than this (it shuts down by itself "
        "at about 145 C)", low=60, high=140)
    default_priority: str = setting(
        "low", "priority of ports without their own: who keeps power when the budget runs "
        "short (ties: the lower port number)", choices=PRIORITIES)


@dataclasses.dataclass(frozen=True)
class PortSettings:
    enabled: bool = setting(True, "deliver power on this port")
    priority: str = setting(
        "", "critical, high or low; empty = poe.default_priority", choices=("",) + PRIORITIES)


@dataclasses.dataclass(frozen=True)
class PoeConfig:
    settings: PoeSettings = dataclasses.field(default_factory=PoeSettings)
    ports: Mapping[str, PortSettings] = dataclasses.field(default_factory=dict)
    # The owner's choices made at run time, by label (appliance/poe/port_choices.py):
    # each field given there overrides the same field of `ports`.
    owner: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)

    def port(self, number: int, label: str) -> PortSettings:
        base = self.ports.get(label) or self.ports.get(str(number)) or PortSettings()
        choice = self.owner.get(label)
        return dataclasses.replace(base, **choice) if choice else base

    def check_ports(self, known: Mapping[int, str]) -> None:
        """Every per-port key must name a port of the board (by label or number)."""
        names = set(known.values()) | {str(n) for n in known}
        unknown = sorted(set(self.ports) - names)
        if unknown:
            raise InvalidConfig(f"poe.ports: no port {', '.join(map(repr, unknown))} on this "
                                f"board (ports: {', '.join(known.values())})")


def build_poe_settings(values: Mapping[str, Any]) -> PoeConfig:
    values = dict(values)
    raw_ports = values.pop("ports", {})
    if not isinstance(raw_ports, Mapping):
        raise InvalidConfig("poe.ports: expected a table of ports")
    settings = load_section(PoeSettings, values, "poe")
    ports = {}
    for name, port_values in raw_ports.items():
        if not isinstance(port_values, Mapping):
            raise InvalidConfig(f"poe.ports.{name}: expected a table")
        ports[str(name)] = load_section(PortSettings, port_values, f"poe.ports.{name}")
    return PoeConfig(settings=settings, ports=ports)
