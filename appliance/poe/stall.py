"""Stall recovery: power-cycle the PoE port of a camera that stopped delivering video.

The recorder publishes each camera's state (camera_status in the index, every 2 s). A
camera that stays in a state a power cycle can cure (unreachable, retrying, connecting,
waiting for a keyframe) for `stall_seconds` gets its port cycled through the PoE
manager's `request_power_cycle`, which enforces the hourly limit and says why when it
refuses. States a power cycle cannot cure (wrong password, unsupported stream, full
disk, not licensed, stopped) never trigger one. Each cycle is written as a note for the
camera, and the recorder appends it to the gap's detail when the camera is back, so the
gap says "PoE Port 3 power-cycled ...".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from appliance.core.clock import Clock
from appliance.poe.cycles import CycleDecision
from appliance.poe.manager import PoeManager

log = logging.getLogger(__name__)

CURABLE = frozenset({"unreachable", "retrying", "connecting", "waiting_keyframe"})


@dataclass
class _Watch:
    state: str
    since: float
    cycled: bool = False


class StallRecovery:
    def __init__(self, manager: PoeManager, statuses: Callable[[], dict[str, dict]],
                 ports: Callable[[], dict[str, str]], note: Callable[[str, int, str], None],
                 clock: Clock, stall_seconds: float = 120.0) -> None:
        self.manager = manager
        self.statuses = statuses      # camera -> {"state": ..., "detail": ...}
        self.ports = ports            # camera -> PoE port label
        self.note = note              # (camera, time_us, text)
        self.clock = clock
        self.stall_seconds = stall_seconds
        self._watch: dict[str, _Watch] = {}

    def check(self) -> list[CycleDecision]:
        now = self.clock.monotonic()
        decisions = []
        labels = {p.label: p.number for p in self.manager.layout.ports}
        for camera, status in self.statuses().items():
            state = status.get("state", "")
            watch = self._watch.get(camera)
            if state not in CURABLE:
                self._watch.pop(camera, None)
                continue
            if watch is None:
                self._watch[camera] = _Watch(state, now)
                continue
            label = self.ports().get(camera)
            if watch.cycled or label not in labels or now - watch.since < self.stall_seconds:
                continue
            reason = (f"camera {camera} {state} for {now - watch.since:.0f} s "
                      f"({status.get('detail', '')})")
            decision = self.manager.request_power_cycle(labels[label], reason)
            decisions.append(decision)
            if decision.allowed:
                watch.cycled = True
                at = datetime.fromtimestamp(self.clock.wall(), timezone.utc)
                self.note(camera, int(self.clock.wall() * 1e6),
                          f"PoE {label} power-cycled at {at:%H:%M:%S} UTC after "
                          f"{now - watch.since:.0f} s without video")
                log.warning("stall recovery: %s", decision.reason)
            else:
                watch.since = now  # ask again after another stall period (the limit may lift)
        return decisions
