"""How often a port may be power-cycled: a sliding one-hour window per port.

Switch vendors' "PoE watchdog" features (hardware.md §2) bound the damage a wrong
diagnosis can do: a camera in a boot loop, or one whose firmware update a power cut would
brick, must not be cycled forever. Every cycle counts (the owner's and the automatic
ones: both stress the camera the same); only automatic requests are refused at the limit.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from appliance.core.clock import Clock

WINDOW_S = 3600.0


@dataclass(frozen=True)
class CycleDecision:
    port: int
    allowed: bool
    reason: str                     # why it was refused, or what was done
    retry_after_s: float | None = None   # refused for the rate limit: when it would be allowed
    back_at: float | None = None         # allowed: monotonic time the port is switched on again

    def to_json(self) -> dict:
        return {"port": self.port, "allowed": self.allowed, "reason": self.reason,
                "retry_after_s": self.retry_after_s}


class CyclePolicy:
    def __init__(self, clock: Clock, max_per_hour: int, window_s: float = WINDOW_S) -> None:
        self.clock, self.max_per_hour, self.window_s = clock, max_per_hour, window_s
        self._history: dict[int, deque[float]] = {}

    def _recent(self, port: int) -> deque[float]:
        times = self._history.setdefault(port, deque())
        cutoff = self.clock.monotonic() - self.window_s
        while times and times[0] <= cutoff:
            times.popleft()
        return times

    def count(self, port: int) -> int:
        """Cycles of `port` in the last hour."""
        return len(self._recent(port))

    def check(self, port: int, label: str) -> CycleDecision:
        times = self._recent(port)
        if self.max_per_hour == 0:
            return CycleDecision(port, False, f"{label}: automatic power cycling is off "
                                 "(poe.max_cycles_per_hour = 0)")
        if len(times) >= self.max_per_hour:
            retry = times[0] + self.window_s - self.clock.monotonic()
            return CycleDecision(
                port, False, f"{label} was power-cycled {len(times)} times in the last hour "
                f"(limit {self.max_per_hour}, poe.max_cycles_per_hour); next allowed in "
                f"{retry:.0f} s", retry_after_s=retry)
        return CycleDecision(port, True, "within the hourly limit")

    def record(self, port: int) -> None:
        self._recent(port).append(self.clock.monotonic())
