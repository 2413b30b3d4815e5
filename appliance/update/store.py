"""What the update machinery remembers across reboots and slot switches, on /persist
(shared by both slots, never written by an install):

    pending.json   an installed update waiting for its trial boot to pass the health
                   gate: from/to release and slot, the cameras that recorded before, and
                   the reason its last trial failed (if it did). Written by RAUC's
                   post-install handler, removed when the update is committed or rolled back.
    floor.json     the monotonic anti-rollback counter: the newest release ever committed
                   on this box. It only goes up; no bundle older than it installs.
    history.json   the last results (committed, rolled back, refused), newest last.

Every write is atomic (appliance.core.files.atomic_write): a power cut leaves the old or
the new file, never half of one.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from appliance.core.errors import DataLoss
from appliance.core.files import atomic_write
from appliance.update.versions import Release

HISTORY_KEPT = 20


@dataclass
class Pending:
    to_version: str
    to_build: int
    to_slot: str
    from_version: str
    from_build: int
    from_slot: str
    cameras: list[str] = field(default_factory=list)   # recorded in the minutes before
    storage_mounted: bool = False                        # a data disk was in use before
    installed_at: float = 0.0
    failure: str = ""                                    # why the last trial failed

    @property
    def target(self) -> Release:
        return Release.parse(self.to_version, self.to_build)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Pending":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


class UpdateStore:
    def __init__(self, directory: Path, now: Callable[[], float] = time.time) -> None:
        self.dir = Path(directory)
        self.now = now

    def _read(self, name: str) -> Any:
        path = self.dir / name
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise DataLoss(f"update state {path} is unreadable ({exc}); "
                           f"remove it to start afresh") from None

    def _write(self, name: str, data: Any) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.dir / name, json.dumps(data, indent=1, sort_keys=True).encode(), 0o644)

    # --- the update waiting for its trial -------------------------------------------------
    def pending(self) -> Pending | None:
        data = self._read("pending.json")
        if data is None:
            return None
        try:
            return Pending.from_json(data)
        except (TypeError, AttributeError):
            raise DataLoss(f"update state {self.dir / 'pending.json'} is not a pending update; "
                           f"remove it to start afresh") from None

    def set_pending(self, pending: Pending) -> None:
        self._write("pending.json", asdict(pending))

    def clear_pending(self) -> None:
        (self.dir / "pending.json").unlink(missing_ok=True)

    # --- anti-rollback --------------------------------------------------------------------
    def floor(self) -> Release | None:
        data = self._read("floor.json")
        if not isinstance(data, dict):
            return None
        return Release.parse(data.get("version"), data.get("build", 0))

    def raise_floor(self, release: Release) -> None:
        """Never lowers it: the counter is monotonic."""
        current = self.floor()
        if current is None or release > current:
            self._write("floor.json", release.to_json())

    # --- results ----------------------------------------------------------------------------
    def history(self) -> list[dict[str, Any]]:
        data = self._read("history.json")
        return data if isinstance(data, list) else []

    def record(self, outcome: str, message: str, **details: Any) -> dict[str, Any]:
        entry = {"time": round(self.now(), 3), "outcome": outcome, "message": message, **details}
        self._write("history.json", (self.history() + [entry])[-HISTORY_KEPT:])
        return entry

    def last_result(self) -> dict[str, Any] | None:
        history = self.history()
        return history[-1] if history else None
