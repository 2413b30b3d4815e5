"""Jittered exponential backoff for one camera's reconnects."""

from __future__ import annotations

import random


class Backoff:
    """delay(n) = min(cap, initial * 2**(n-1)) scaled by a random factor in [0.5, 1].

    The jitter spreads the reconnects of many cameras that failed together (a switch
    reboot) so they do not hit the network or a shared relay at the same instant.
    """

    def __init__(self, initial: float, cap: float, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.cap = cap
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        self.failures += 1
        base = min(self.cap, self.initial * 2 ** min(self.failures - 1, 30))
        return base * self._rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.failures = 0

    def jitter(self, seconds: float, spread: float = 0.25) -> float:
        """`seconds` shortened by up to `spread` (never longer, so deadlines hold)."""
        return seconds * self._rng.uniform(1.0 - spread, 1.0)
