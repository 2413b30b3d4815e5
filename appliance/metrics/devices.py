"""Disk, RAID and PoE metrics from vigil-hwd's snapshots (storage.json, poe.json).

vigil-hwd (root) reads SMART every 30 minutes, md arrays every 10 s and the PoE
controllers every second, and writes what it found atomically; the web server has no
root and never runs smartctl or touches I2C itself. A snapshot older than its reader's
limit means vigil-hwd is not running: the source is down rather than showing old news.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

from appliance.core.errors import Unavailable
from appliance.metrics.sources import MetricSources, number, require
from appliance.poe.manager import PortState
from appliance.poe.runtime import read_snapshot as read_poe_snapshot
from appliance.storage.monitor import read_snapshot as read_storage_snapshot
from appliance.storage.raid import STATES as RAID_STATES
from appliance.storage.smart import VERDICTS

SMART_JUDGED = ("healthy", "warning", "critical")   # verdicts that say something of the disk
PORT_STATES = tuple(state.value for state in PortState)


def _objects(value: Any) -> dict[str, dict]:
    """The entries of a snapshot mapping that are objects (others are skipped)."""
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, dict)}


def _add(family: GaugeMetricFamily, labels: list[str], value: Any, scale: float = 1.0) -> None:
    found = number(value)
    if found is not None:
        family.add_metric(labels, found * scale)


def _one_hot(family: GaugeMetricFamily, labels: list[str], known: tuple[str, ...],
             current: str) -> None:
    for name in known + (() if current in known else (current,)):
        family.add_metric(labels + [name], 1.0 if name == current else 0.0)


# --- disks and RAID ---------------------------------------------------------------------------

def disk_metrics(sources: MetricSources) -> list[Metric]:
    state_dir = require(sources.hwd_state, "vigil-hwd's state directory")
    snapshot = read_storage_snapshot(state_dir)
    if snapshot is None:
        raise Unavailable(f"vigil-hwd's storage snapshot in {state_dir} is missing or older "
                          "than 2 minutes (is vigil-hwd running?)")
    return smart_families(_objects(snapshot.get("smart"))) + \
        raid_families(_objects(snapshot.get("raid")))


def smart_families(disks: dict[str, dict]) -> list[Metric]:
    info = GaugeMetricFamily("vigil_disk_info", "A disk SMART reads (always 1)",
                             labels=["device", "model", "serial", "firmware", "protocol"])
    verdict = GaugeMetricFamily("vigil_disk_smart_verdict", "The SMART verdict: 1 for the "
                                "current one", labels=["device", "verdict"])
    healthy = GaugeMetricFamily("vigil_disk_smart_healthy", "1 when SMART finds nothing wrong, "
                                "0 for a warning or a critical finding (absent when SMART "
                                "cannot be read)", labels=["device"])
    temperature = GaugeMetricFamily("vigil_disk_temperature_celsius", "Disk temperature",
                                    labels=["device"], unit="celsius")
    powered = GaugeMetricFamily("vigil_disk_power_on_seconds", "Time the disk has been "
                                "powered on over its life", labels=["device"], unit="seconds")
    cycles = GaugeMetricFamily("vigil_disk_power_cycles", "Power cycles over the disk's life",
                               labels=["device"])
    attribute = GaugeMetricFamily("vigil_disk_smart_attribute", "A SMART event counter's raw "
                                  "value (reallocated_sectors, pending_sectors, "
                                  "udma_crc_errors, media_errors, ...)",
                                  labels=["device", "attribute"])
    for device, disk in sorted(disks.items()):
        info.add_metric([device] + [str(disk.get(k) or "") for k in
                                    ("model", "serial", "firmware", "protocol")], 1.0)
        current = str(disk.get("verdict", "unknown"))
        _one_hot(verdict, [device], VERDICTS, current)
        if current in SMART_JUDGED:
            healthy.add_metric([device], 1.0 if current == "healthy" else 0.0)
        _add(temperature, [device], disk.get("temperature_c"))
        _add(powered, [device], disk.get("power_on_hours"), 3600.0)
        _add(cycles, [device], disk.get("power_cycles"))
        counters = disk.get("counters")
        for name, value in sorted(counters.items() if isinstance(counters, dict) else ()):
            _add(attribute, [device, str(name)], value)
    return [info, verdict, healthy, temperature, powered, cycles, attribute]


def raid_families(arrays: dict[str, dict]) -> list[Metric]:
    state = GaugeMetricFamily("vigil_raid_state", "The md array's state: 1 for the current "
                              "one", labels=["array", "state"])
    progress = GaugeMetricFamily("vigil_raid_sync_progress_ratio", "Progress (0-1) of a "
                                 "rebuild, resync, check or reshape", labels=["array", "action"],
                                 unit="ratio")
    remaining = GaugeMetricFamily("vigil_raid_sync_remaining_seconds", "md's estimate of the "
                                  "time the running sync still needs", labels=["array"],
                                  unit="seconds")
    devices = GaugeMetricFamily("vigil_raid_devices", "Devices the array is made of",
                                labels=["array"])
    working = GaugeMetricFamily("vigil_raid_working_devices", "Devices in sync",
                                labels=["array"])
    faulty = GaugeMetricFamily("vigil_raid_faulty_devices", "Members marked faulty",
                               labels=["array"])
    for name, array in sorted(arrays.items()):
        _one_hot(state, [name], RAID_STATES, str(array.get("state", "unknown")))
        _add(progress, [name, str(array.get("sync_action") or "")],
             array.get("progress_percent"), 0.01)
        _add(remaining, [name], array.get("eta_seconds"))
        _add(devices, [name], array.get("configured"))
        _add(working, [name], array.get("working"))
        members = array.get("members") if isinstance(array.get("members"), list) else []
        faulty.add_metric([name], float(sum(
            1 for m in members if isinstance(m, dict) and "faulty" in (m.get("flags") or ()))))
    return [state, progress, remaining, devices, working, faulty]


# --- PoE ---------------------------------------------------------------------------------------

def poe_metrics(sources: MetricSources) -> list[Metric]:
    state_dir = require(sources.hwd_state, "vigil-hwd's state directory")
    snapshot = read_poe_snapshot(state_dir)
    if snapshot is None:
        raise Unavailable(f"vigil-hwd's PoE snapshot in {state_dir} is missing or older than "
                          "a minute (no PoE controllers, or vigil-hwd is not running)")
    return budget_families(snapshot) + port_families(snapshot.get("ports")) + \
        chip_families(snapshot.get("chips"))


def budget_families(snapshot: dict[str, Any]) -> list[Metric]:
    out = []
    for name, key, text in (
            ("vigil_poe_budget_watts", "budget_w", "The PoE power budget"),
            ("vigil_poe_allocated_watts", "allocated_w", "Power allocated to powered ports "
             "(what counts against the budget)"),
            ("vigil_poe_power_watts", "measured_w", "Power the ports draw, measured"),
            ("vigil_poe_input_voltage_volts", "input_voltage_v", "The PoE supply's voltage")):
        family = GaugeMetricFamily(name, text, unit=name.rsplit("_", 1)[1])
        _add(family, [], snapshot.get(key))
        out.append(family)
    return out


def port_families(ports: Any) -> list[Metric]:
    labels = ["port", "label"]
    state = GaugeMetricFamily("vigil_poe_port_state", "The port's state: 1 for the current "
                              "one", labels=labels + ["state"])
    power = GaugeMetricFamily("vigil_poe_port_power_watts", "Power the port delivers, "
                              "measured", labels=labels, unit="watts")
    allocated = GaugeMetricFamily("vigil_poe_port_allocated_watts", "Power the port counts "
                                  "against the budget", labels=labels, unit="watts")
    enabled = GaugeMetricFamily("vigil_poe_port_enabled", "1 when the port may give power",
                                labels=labels)
    for port in ports if isinstance(ports, list) else ():
        if not isinstance(port, dict):
            continue
        ids = [str(port.get("port", "")), str(port.get("label", ""))]
        _one_hot(state, ids, PORT_STATES, str(port.get("state", "unknown")))
        _add(power, ids, port.get("power_w"))
        _add(allocated, ids, port.get("allocated_w"))
        enabled.add_metric(ids, 1.0 if port.get("enabled") is True else 0.0)
    return [state, power, allocated, enabled]


def chip_families(chips: Any) -> list[Metric]:
    up = GaugeMetricFamily("vigil_poe_controller_up", "1 when the PoE controller answers",
                           labels=["controller"])
    temperature = GaugeMetricFamily("vigil_poe_controller_temperature_celsius", "The PoE "
                                    "controller's die temperature", labels=["controller"],
                                    unit="celsius")
    for chip in chips if isinstance(chips, list) else ():
        if not isinstance(chip, dict):
            continue
        address = str(chip.get("address", ""))
        up.add_metric([address], 1.0 if chip.get("ok") is True else 0.0)
        _add(temperature, [address], chip.get("temperature_c"))
    return [up, temperature]
