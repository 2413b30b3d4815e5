"""What the box tells the broker: one event, its topic and its JSON payload.

Every payload has the same keys, so a consumer can handle all kinds with one parser:
`kind`, `id` (stable: a redelivery after a lost acknowledgement carries the same id, so
consumers can drop duplicates), `time` (ISO 8601 UTC, milliseconds) and `time_us`,
`camera` (null for the box's own events), `cause`, `detail`, and the kind's own fields.
docs/design/mqtt.md lists the kinds and their fields.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

# kind -> what it means (docs/design/mqtt.md has the fields of each)
KINDS = {
    "camera_online": "the camera records again",
    "camera_offline": "the camera stopped recording (cause: the recorder's state)",
    "camera_auth_failed": "the camera refused the box's user name and password",
    "gap_opened": "a span without footage began (cause: the gap's cause)",
    "gap_closed": "a span without footage ended",
    "camera_event": "the camera's own detection (motion, tamper, ...) started or ended",
    "retention_deletion": "retention deleted footage (one event per camera and rule)",
    "dropped": "the queue was full while the broker was away: the oldest events were dropped",
}
# Alerts become `<category>_alert`, the category being the alert source's first part
# (disk, raid, smart, poe, camera, retention, licence, recording, events, ...).
ALERT_SUFFIX = "_alert"


def iso_time(time_us: int) -> str:
    return datetime.fromtimestamp(time_us / 1e6, timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class BoxEvent:
    kind: str
    time_us: int
    id: str
    camera: str | None = None
    cause: str = ""
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "time": iso_time(self.time_us),
                "time_us": self.time_us, "camera": self.camera, "cause": self.cause,
                "detail": self.detail, **self.extra}

    def payload_text(self) -> str:
        return json.dumps(self.payload(), sort_keys=True, separators=(",", ":"))


def event_topic(prefix: str, kind: str) -> str:
    return f"{prefix}/event/{kind}"


def alert_kind(source: str) -> str:
    """`raid:md0` -> raid_alert; a source we cannot use as a topic level -> alert."""
    category = source.split(":", 1)[0].lower()
    if category.isascii() and category.replace("_", "").isalnum() and len(category) <= 24:
        return category + ALERT_SUFFIX
    return "alert"
