"""Alerts raised by the storage monitors: a severity, where it comes from, and what to do.

Monitors compare the state they read now with the state they read before and return a
list of `Alert` for every change that an owner must hear about. The caller stores them
(the index's alerts table, the hwd alert log) and later the web UI and MQTT show them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class Alert:
    severity: str      # one of SEVERITIES
    source: str        # e.g. "raid:md0", "smart:WD-WX12345", "disk:WD-WX12345", "retention"
    message: str       # one sentence a person can act on
    key: str = ""      # stable identifier of the condition, for de-duplication

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"alert severity must be one of {SEVERITIES}, not {self.severity!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
