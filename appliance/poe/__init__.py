"""PoE: port states, power budget and priorities, faults, power cycles (vigil-hwd).

Public API: `PoeManager` (build it with `PoeManager.from_profile(profile, bus, ...)`),
`PortState`, `PowerChange`, `CycleDecision`, the settings in `appliance.poe.settings`.
"""

from appliance.poe.cycles import CycleDecision, CyclePolicy
from appliance.poe.manager import PoeManager, PoeSnapshot, PortState, PowerChange
from appliance.poe.settings import PoeConfig, PoeSettings, PortSettings, build_poe_settings

__all__ = ["CycleDecision", "CyclePolicy", "PoeConfig", "PoeManager", "PoeSettings",
           "PoeSnapshot", "PortSettings", "PortState", "PowerChange", "build_poe_settings"]
