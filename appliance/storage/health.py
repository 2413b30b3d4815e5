"""The storage health report: `nvr health --json`, and later the web UI and metrics.

One JSON document: the data directory (is it a data disk, how full), retention per
camera (held, retained days, forecast and the rule that limits it), the latest storage
alerts, and the devices (disks, md arrays, SMART) when asked for.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from appliance.config.storage import CameraRetention, StorageSettings
from appliance.core.errors import DataLoss
from appliance.recorder.index import RecordingIndex
from appliance.storage.retention.forecast import forecast
from appliance.storage.retention.policy import RetentionPolicy, disk_space
from appliance.storage.volume import check_data_dir

ALERTS_SHOWN = 20


def storage_report(data_dir: Path, settings: StorageSettings,
                   cameras: dict[str, CameraRetention], devices: bool = True,
                   now_us: int | None = None, state_dir: Path | None = None) -> dict[str, Any]:
    now_us = now_us if now_us is not None else int(time.time() * 1_000_000)
    volume = check_data_dir(data_dir, settings.allow_boot_media)
    report: dict[str, Any] = {
        "data": {"path": str(data_dir), "volume_ok": volume.ok, "volume": volume.detail,
                 "low_water_percent": settings.min_free_percent,
                 "full_disk_action": settings.full_disk_action},
        "cameras": {}, "alerts": [], "deletions_24h": 0,
    }
    if volume.ok and Path(data_dir).is_dir():
        space = disk_space(Path(data_dir))
        report["data"].update(total_bytes=space.total_bytes, free_bytes=space.free_bytes,
                              free_percent=round(space.free_percent, 2))
        _add_index_figures(report, Path(data_dir), RetentionPolicy(settings, cameras), space,
                           now_us)
    if devices:
        report["devices"] = device_report(state_dir)
    return report


def _add_index_figures(report, data_dir, policy, space, now_us) -> None:
    try:
        index = RecordingIndex(data_dir, readonly=True)
    except DataLoss:
        return  # nothing recorded yet
    try:
        report["cameras"] = {cam: fc.to_json()
                             for cam, fc in forecast(index, policy, space, now_us).items()}
        report["alerts"] = index.alerts()[-ALERTS_SHOWN:]
        day_ago = now_us - 86_400 * 1_000_000
        report["deletions_24h"] = sum(1 for d in index.deletions(limit=100_000)
                                      if d.time_us >= day_ago)
    finally:
        index.close()


def device_report(state_dir: Path | None = None) -> dict[str, Any]:
    """Disks, md arrays and SMART read from the system now; the data disks' hotplug
    states from vigil-hwd's snapshot when hwd is running."""
    from appliance.storage.disks import list_disks, read_mounts
    from appliance.storage.monitor import read_snapshot
    from appliance.storage.raid import RaidMonitor
    from appliance.storage.smart import SmartReader

    disks = list_disks(mounts=read_mounts())
    reader = SmartReader()
    snapshot = read_snapshot(state_dir) if state_dir else None
    from appliance.poe.runtime import read_snapshot as read_poe
    poe = read_poe(state_dir) if state_dir else None
    return {
        "poe": poe,
        "disks": [d.to_json() for d in disks],
        "raid": {name: a.to_json() for name, a in RaidMonitor().read().items()},
        "smart": {d.device_node: reader.read(d.device_node).to_json()
                  for d in disks if d.device_node},
        "data_disks": snapshot["data_disks"] if snapshot else None,
    }


def render(report: dict[str, Any]) -> str:
    data = report["data"]
    lines = [f"data: {data['path']}  {'OK' if data['volume_ok'] else 'NOT USABLE'}: "
             f"{data['volume']}"]
    if "total_bytes" in data:
        lines.append(f"  {data['free_bytes'] / 1e9:.1f} GB free of {data['total_bytes'] / 1e9:.1f}"
                     f" GB ({data['free_percent']:.1f} %); low-water mark "
                     f"{data['low_water_percent']:g} %, then {data['full_disk_action']}")
    for cam, fc in report["cameras"].items():
        days = "no limit" if fc["forecast_days"] is None else \
            f"{fc['forecast_days']:.1f} days ({fc['limited_by']})"
        lines.append(f"  {cam:<16} {fc['bytes_held'] / 1e9:8.2f} GB held, "
                     f"{fc['retained_days']:.1f} days on disk, forecast {days}")
    lines.append(f"deletions in the last 24 h: {report['deletions_24h']}")
    devices = report.get("devices")
    if devices:
        for disk in devices["disks"]:
            smart = devices["smart"].get(disk["device_node"], {})
            lines.append(f"disk {disk['device_node']}: {disk['model'] or disk['name']} "
                         f"{disk['size_bytes'] / 1e9:.0f} GB, {disk['bus']}; SMART "
                         f"{smart.get('verdict', smart.get('overall', 'unknown'))}"
                         + (f" ({'; '.join(smart['reasons'])})" if smart.get("reasons") else ""))
        for name, array in devices["raid"].items():
            lines.append(f"RAID {name}: {array['state']} {array.get('detail', '')}")
        poe = devices.get("poe")
        if poe:
            lines.append(f"PoE: {poe['allocated_w']:.1f} of {poe['budget_w']:.0f} W allocated, "
                         f"{poe['measured_w']:.1f} W measured")
            for port in poe["ports"]:
                lines.append(f"  {port['label']:<8} {port['state']:<10} class {port['class']} "
                             f"{port['power_w']:.1f} W {port['detail']}")
    for alert in report["alerts"][-5:]:
        lines.append(f"  alert [{alert['severity']}] {alert['source']}: {alert['message']}")
    return "\n".join(lines)
