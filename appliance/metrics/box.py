"""The box as a whole: licensed channels, the recorder's processes, the running version.

The recorder's CPU and memory: vigil-recorder is another process (another user, no
socket to ask), and its status rows carry no process id. systemd keeps every service in
its own cgroup, whose `cgroup.procs` lists the service's processes; psutil reads their
counters from /proc (world-readable). Where there is no such cgroup (development mode
runs the recorder inside `nvr run`, outside systemd) the source is down.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

import appliance
from appliance.core.errors import Unavailable
from appliance.metrics.sources import MetricSources


def licence_metrics(sources: MetricSources) -> list[Metric]:
    if sources.licence is None:
        raise Unavailable("licensing is not configured in this process")
    status = sources.licence().status()
    allowed = GaugeMetricFamily("vigil_licence_channels_allowed", "Cameras the licence in "
                                "force lets the box record (the board's default without one)")
    allowed.add_metric([], status.channels)
    valid = GaugeMetricFamily("vigil_licence_valid", "1 when an installed licence counts, 0 "
                              "when the board's default channels apply (none, or it does not "
                              "count: expired, another box's, damaged)")
    valid.add_metric([], 1.0 if status.licence is not None else 0.0)
    families = [allowed, valid]
    if status.licence is not None and status.licence.expires:
        expiry = GaugeMetricFamily("vigil_licence_expiry_timestamp_seconds", "When the "
                                   "licence stops counting (the end of its expiry day, UTC)",
                                   unit="seconds")
        expiry.add_metric([], end_of_day(date.fromisoformat(status.licence.expires)))
        families.append(expiry)
    if sources.registry is not None:
        used = GaugeMetricFamily("vigil_licence_channels_used", "Enabled cameras in the "
                                 "camera registry (each takes a channel)")
        used.add_metric([], enabled_cameras(Path(sources.registry)))
        families.append(used)
    return families


def end_of_day(day: date) -> float:
    return datetime.combine(day + timedelta(days=1), time(), timezone.utc).timestamp()


def enabled_cameras(registry: Path) -> int:
    """Counted the way the cameras page counts channels in use (a missing list: none)."""
    from appliance.cameras.credentials import CredentialStore
    from appliance.cameras.registry import CameraRegistry
    from appliance.config.cameras import CameraSettings

    store = CredentialStore(registry.parent)     # not read: only the list is
    return sum(1 for cam in CameraRegistry(registry, store, CameraSettings()).cameras()
               if cam.enabled)


def recorder_process_metrics(sources: MetricSources) -> list[Metric]:
    pids = recorder_pids(sources.recorder_cgroup)
    cpu = resident = 0.0
    running = 0
    for pid in pids:
        try:
            process = psutil.Process(pid)
            with process.oneshot():
                times = process.cpu_times()
                memory = process.memory_info()
        except psutil.NoSuchProcess:
            continue                  # it ended between the list and the read
        cpu += times.user + times.system
        resident += memory.rss
        running += 1
    if not running:
        raise Unavailable("vigil-recorder has no running process")
    seconds = CounterMetricFamily("vigil_recorder_cpu_seconds", "CPU time (user and system) "
                                  "of the recorder's processes", unit="seconds")
    seconds.add_metric([], cpu)
    memory_family = GaugeMetricFamily("vigil_recorder_resident_memory_bytes", "Resident memory "
                                      "of the recorder's processes", unit="bytes")
    memory_family.add_metric([], resident)
    return [seconds, memory_family]


def recorder_pids(cgroup: Path) -> list[int]:
    try:
        text = (Path(cgroup) / "cgroup.procs").read_text(encoding="ascii")
    except FileNotFoundError:
        raise Unavailable(f"no recorder service here ({cgroup} does not exist: not "
                          "started by systemd, or not running)") from None
    return [int(word) for word in text.split()]


def update_metrics(sources: MetricSources) -> list[Metric]:
    info = GaugeMetricFamily("vigil_update_info", "The running software version (always 1)",
                             labels=["version"])
    info.add_metric([appliance.__version__], 1.0)
    return [info]
