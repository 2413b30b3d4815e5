"""What the box is like now, as retained messages: each camera's state and the box's
health. Home Assistant's entities (discovery.py) read these topics; a retained message
gives a subscriber the current value at once, and only changes are published again.

    <prefix>/camera/<camera>/state   {"state", "recording", "detail", "motion", "last_motion"}
    <prefix>/health                  {"disk_free_gb", "disk_total_gb", "disk_free_percent",
                                      "raid_state", "raid_detail", "poe_budget_w",
                                      "poe_allocated_w", "poe_measured_w"}

Figures are rounded (0.1 GB, 0.1 %, 0.1 W) so a recording disk does not publish a new
health message every few seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from appliance.core.errors import DataLoss
from appliance.mqtt.events import iso_time
from appliance.mqtt.sources import current_state
from appliance.recorder.index import RecordingIndex
from appliance.storage.retention.policy import disk_space
from appliance.storage.volume import check_data_dir

# The worst first: the box's RAID state is that of its worst array.
RAID_RANK = ("failed", "inactive", "degraded", "rebuilding", "resync_pending", "resyncing",
             "reshaping", "checking", "unknown", "healthy")


def camera_topic(prefix: str, camera: str) -> str:
    return f"{prefix}/camera/{camera}/state"


def health_topic(prefix: str) -> str:
    return f"{prefix}/health"


def status_topic(prefix: str) -> str:
    """Availability: "online" while connected, "offline" (the broker's Last Will, or a
    clean stop) otherwise; retained."""
    return f"{prefix}/status"


def camera_states(data_dir: Path, now_us: int) -> dict[str, dict[str, Any]]:
    """Each camera the recorder reports, with its motion state from the cameras' events."""
    try:
        index = RecordingIndex(data_dir, readonly=True)
    except DataLoss:
        return {}
    try:
        out = {}
        for camera, status in index.statuses().items():
            state = current_state(status, now_us)
            last = index.query("SELECT start_us FROM events WHERE camera = ? AND kind = 'motion' "
                               "ORDER BY start_us DESC LIMIT 1", (camera,))
            ongoing = index.query("SELECT 1 FROM events WHERE camera = ? AND end_us IS NULL "
                                  "AND kind = 'motion' LIMIT 1", (camera,))
            out[camera] = {"state": state, "recording": state == "recording",
                           "detail": status.get("detail", "") if state == status.get("state")
                           else "", "motion": bool(ongoing),
                           "last_motion": iso_time(last[0]["start_us"]) if last else None}
        return out
    finally:
        index.close()


def box_health(data_dir: Path, hwd_state: Path | None, allow_boot_media: bool) -> dict[str, Any]:
    """Disk space of the data disk (none while there is no data disk), RAID from
    vigil-hwd's storage snapshot, PoE from its PoE snapshot (none on a board without)."""
    health: dict[str, Any] = {"disk_free_gb": None, "disk_total_gb": None,
                              "disk_free_percent": None}
    if check_data_dir(data_dir, allow_boot_media).ok and Path(data_dir).is_dir():
        space = disk_space(Path(data_dir))
        health.update(disk_free_gb=round(space.free_bytes / 1e9, 1),
                      disk_total_gb=round(space.total_bytes / 1e9, 1),
                      disk_free_percent=round(space.free_percent, 1))
    health.update(raid_health(hwd_state))
    health.update(poe_health(hwd_state))
    return health


def raid_health(hwd_state: Path | None) -> dict[str, Any]:
    from appliance.storage.monitor import read_snapshot

    snapshot = read_snapshot(hwd_state) if hwd_state else None
    arrays = (snapshot or {}).get("raid") or {}
    if not arrays:
        return {"raid_state": "none", "raid_detail": ""}
    name, array = min(arrays.items(), key=lambda item: RAID_RANK.index(item[1]["state"])
                      if item[1].get("state") in RAID_RANK else len(RAID_RANK))
    return {"raid_state": array.get("state", "unknown"),
            "raid_detail": f"{name}: {array.get('detail', '')}".rstrip(": ")}


def poe_health(hwd_state: Path | None) -> dict[str, Any]:
    from appliance.poe.runtime import read_snapshot

    snapshot = read_snapshot(hwd_state) if hwd_state else None
    if not snapshot:
        return {"poe_budget_w": None, "poe_allocated_w": None, "poe_measured_w": None}
    return {key: round(float(snapshot[source]), 1) for key, source in (
        ("poe_budget_w", "budget_w"), ("poe_allocated_w", "allocated_w"),
        ("poe_measured_w", "measured_w"))}


def state_messages(prefix: str, cameras: dict[str, dict[str, Any]],
                   health: dict[str, Any]) -> dict[str, str]:
    """topic -> retained payload."""
    messages = {camera_topic(prefix, camera): as_text(state) for camera, state in cameras.items()}
    messages[health_topic(prefix)] = as_text(health)
    return messages


def as_text(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
