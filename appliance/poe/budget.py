"""The PoE power budget: what each port is charged, who is admitted, who is shed.

Pure functions over small records, so the policy is tested without a chip.

- A port is charged its **class allocation** (the IEEE PSE output minimum for its class,
  capped at the port's own limit; an unknown or reserved class counts as class 0), or
  under the `measured` policy its measured draw plus a margin once it is delivering power.
- Order of precedence: priority (critical > high > low), then the **lower port number**.
  Shedding goes the other way: lowest priority first, and among equals the highest port
  number first (VIVOTEK's documented rule; hardware.md §2).
- A port asking for power is admitted if it fits. If it does not, ports of *strictly*
  lower priority are shed, in shedding order, until it fits; if even that is not enough,
  nobody is shed and the port is denied. An equal-priority newcomer never switches off a
  camera that is already recording: plugging a camera in must not stop another one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

PRIORITIES = ("critical", "high", "low")
RANK = {"critical": 2, "high": 1, "low": 0}
# IEEE 802.3 PSE output power by class (W); class 0 is the 802.3af default.
CLASS_ALLOCATION_W = {0: 15.4, 1: 4.0, 2: 7.0, 3: 15.4, 4: 30.0}
UNKNOWN_CLASS_W = CLASS_ALLOCATION_W[0]


def class_allocation_w(pd_class: int | None, port_max_w: float) -> float:
    return min(CLASS_ALLOCATION_W.get(pd_class, UNKNOWN_CLASS_W) if pd_class is not None
               else UNKNOWN_CLASS_W, port_max_w)


@dataclass(frozen=True)
class Claim:
    """One port's standing in the budget."""

    port: int
    priority: str
    allocation_w: float           # class allocation
    measured_w: float | None = None
    delivering: bool = False      # power good (measured draw is meaningful)

    @property
    def rank(self) -> int:
        return RANK[self.priority]


def charge_w(claim: Claim, policy: str, margin_w: float) -> float:
    """What a port counts against the budget under `policy` ("class" or "measured")."""
    if policy == "measured" and claim.delivering and claim.measured_w is not None:
        return min(claim.measured_w + margin_w, max(claim.allocation_w, claim.measured_w))
    return claim.allocation_w


def precedence_key(claim: Claim) -> tuple[int, int]:
    """Sort key: first = most entitled to power."""
    return (-claim.rank, claim.port)


def shedding_order(claims: Iterable[Claim]) -> list[Claim]:
    """Who goes first when power must be cut: lowest priority, then highest port number."""
    return sorted(claims, key=precedence_key, reverse=True)


@dataclass(frozen=True)
class Admission:
    granted: bool
    shed: tuple[int, ...] = ()     # ports to switch off first
    in_use_w: float = 0.0          # charged before the decision
    needed_w: float = 0.0


def admit(candidate: Claim, powered: Sequence[Claim], budget_w: float, *,
          policy: str = "class", margin_w: float = 0.0) -> Admission:
    in_use = sum(charge_w(c, policy, margin_w) for c in powered)
    need = candidate.allocation_w
    if in_use + need <= budget_w + 1e-9:
        return Admission(True, (), in_use, need)
    freed, victims = 0.0, []
    for claim in shedding_order(c for c in powered if c.rank < candidate.rank):
        victims.append(claim.port)
        freed += charge_w(claim, policy, margin_w)
        if in_use - freed + need <= budget_w + 1e-9:
            return Admission(True, tuple(victims), in_use, need)
    return Admission(False, (), in_use, need)


def overrun(powered: Sequence[Claim], budget_w: float, *, policy: str = "class",
            margin_w: float = 0.0) -> tuple[int, ...]:
    """Ports to shed, in order, so that both the charged and the measured totals fit."""
    charged = sum(charge_w(c, policy, margin_w) for c in powered)
    measured = sum(c.measured_w or 0.0 for c in powered)
    victims = []
    for claim in shedding_order(powered):
        if charged <= budget_w + 1e-9 and measured <= budget_w + 1e-9:
            break
        victims.append(claim.port)
        charged -= charge_w(claim, policy, margin_w)
        measured -= claim.measured_w or 0.0
    return tuple(victims)
