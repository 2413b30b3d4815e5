"""A PoE manager on the simulated eight-port board, driven by a SimulatedClock."""

from __future__ import annotations

from dataclasses import dataclass, field

from appliance.core.clock import SimulatedClock
from appliance.poe import PoeManager, PortState, PowerChange, build_poe_settings
from appliance.storage.alerts import Alert
from hw.board import load_profile
from hw.pse.board import parse_pse
from hw.pse.tps23861_sim import SimulatedBus


@dataclass
class Rig:
    clock: SimulatedClock
    bus: SimulatedBus
    manager: PoeManager
    changes: list[PowerChange] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)

    def poll(self, seconds: float = 1.0, times: int = 1) -> list[Alert]:
        """Advance the clock and poll, `times` times; the alerts of all those polls."""
        out = []
        for _ in range(times):
            self.clock.advance(seconds)
            out += self.manager.poll()
        return out

    def settle(self, seconds: float = 6.0) -> list[Alert]:
        """Poll once a second for `seconds`."""
        return self.poll(1.0, int(seconds))

    def state(self, port: int) -> PortState:
        return self.manager.port_state(port)

    def states(self) -> list[str]:
        return [self.manager.port_state(p).value for p in range(1, 9)]

    def port_json(self, port: int) -> dict:
        return self.manager.snapshot().to_json()["ports"][port - 1]


def make_rig(poe: dict | None = None, devices: bool = False, setup=None,
             start: bool = True) -> Rig:
    """The sim board; its scripted cameras only with `devices`; `setup(bus)` before start."""
    clock = SimulatedClock()
    profile = load_profile("sim")
    if not devices:
        profile["pse"].pop("sim", None)
    layout = parse_pse(profile)
    bus = SimulatedBus.from_layout(layout, clock.monotonic)
    if setup:
        setup(bus)
    rig = Rig(clock=clock, bus=bus, manager=None)   # type: ignore[arg-type]
    rig.manager = PoeManager.from_profile(profile, bus, config=build_poe_settings(poe or {}),
                                          clock=clock, alert_sink=rig.alerts.extend)
    rig.manager.add_power_listener(rig.changes.append)
    if start:
        rig.manager.start()
    return rig


def keys(alerts: list[Alert]) -> list[str]:
    return [a.key for a in alerts]
