"""The storage monitor of `vigil-hwd`: disks, hotplug, md RAID and SMART, with alerts.

One loop: udev events are handled as they come (a removed data disk is unmounted lazily
at once, so the recorder's volume check fails within its 2 s poll and no write can reach
the SD card through the empty mount point); RAID state is read every `raid_every`
seconds and SMART every `smart_every` (with `-n standby`, so sleeping disks stay
asleep). Every change that matters becomes an `Alert`, appended to the alert log; the
whole picture is written atomically to a snapshot file that `nvr health` and (later)
the web UI read.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable

from appliance.core.clock import Clock, RealClock
from appliance.storage.alerts import Alert
from appliance.core.commands import Runner, run_command
from appliance.core.files import atomic_write, read_fresh_json
from appliance.storage.disks import (DataDiskTracker, DataVolume, DiskState, DiskWatcher,
                                     check_and_mount, list_disks, read_mounts)
from appliance.storage.raid import ArrayHealth, RaidMonitor, raid_alerts
from appliance.storage.smart import SmartHistory, SmartReader

log = logging.getLogger(__name__)

SNAPSHOT_NAME = "storage.json"
ALERTS_NAME = "alerts.jsonl"
ALERT_LOG_MAX_BYTES = 1_000_000


class AlertLog:
    """Append-only JSON lines, one file kept as `.1` when the current one grows too big."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path, self.clock = Path(path), clock
        self._lock = threading.Lock()

    def add(self, alerts: list[Alert]) -> None:
        if not alerts:
            return
        lines = "".join(json.dumps({"time": self.clock.wall(), **a.to_json()}) + "\n"
                        for a in alerts)
        with self._lock:
            for alert in alerts:
                log.warning("alert severity=%s source=%s: %s", alert.severity, alert.source,
                            alert.message)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists() and self.path.stat().st_size > ALERT_LOG_MAX_BYTES:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(lines)
                out.flush()
                os.fsync(out.fileno())

    def read(self, limit: int = 100) -> list[dict[str, Any]]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines[-limit:]:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a torn last line after a power cut
        return out


class StorageMonitor:
    def __init__(self, state_dir: Path, history_path: Path, volumes: list[DataVolume],
                 clock: Clock | None = None, raid: RaidMonitor | None = None,
                 smart: SmartReader | None = None, runner: Runner = run_command,
                 watcher_factory: Callable[..., DiskWatcher] = DiskWatcher,
                 smart_devices: Callable[[], list[str]] | None = None,
                 raid_every: float = 10.0, smart_every: float = 1800.0) -> None:
        self.state_dir = Path(state_dir)
        self.clock = clock or RealClock()
        self.tracker = DataDiskTracker(volumes, self.clock)
        self.raid = raid or RaidMonitor()
        self.smart = smart or SmartReader()
        self.history = SmartHistory(history_path)
        self.runner = runner
        self.alerts = AlertLog(self.state_dir / ALERTS_NAME, self.clock)
        # Returned and known data disks are checked and mounted with the daemon's runner:
        # on the box it mounts in the system's mount namespace (--system-mounts), where the
        # recorder and the web see it. (Found by the update test in QEMU: after a reboot
        # the disk was mounted, but only inside vigil-hwd's own sandbox.)
        self.watcher = watcher_factory(
            self.tracker, self.alerts.add,
            checker=lambda request: check_and_mount(request.device_node, request.volume, runner))
        self.smart_devices = smart_devices or disk_nodes
        self.raid_every, self.smart_every = raid_every, smart_every
        self.arrays: dict[str, ArrayHealth] = {}
        self.smart_results: dict[str, dict[str, Any]] = {}
        self._unmounted: set[str] = set()

    def add_volume(self, volume: DataVolume) -> None:
        """A data disk initialised while running: watch it from now on (thread-safe)."""
        self.watcher.add_volume(volume)

    # --- the loop ---------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        self.watcher.start()
        next_raid = next_smart = self.clock.monotonic()
        try:
            while not stop.is_set():
                self.watcher.poll(1.0)
                self.unmount_missing()
                now = self.clock.monotonic()
                if now >= next_raid:
                    next_raid = now + self.raid_every
                    self.check_raid()
                if now >= next_smart:
                    next_smart = now + self.smart_every
                    self.check_smart()
                self.write_snapshot()
        finally:
            self.watcher.close()

    def check_raid(self) -> None:
        arrays = self.raid.read()
        self.alerts.add(raid_alerts(self.arrays, arrays))
        self.arrays = arrays

    def check_smart(self) -> None:
        for node in self.smart_devices():
            result = self.smart.read(node)
            self.alerts.add(self.history.observe(result))
            self.smart_results[node] = result.to_json()
        self.history.save()

    def unmount_missing(self) -> None:
        """A data disk that vanished keeps its stale mount; drop it (lazily) so the path
        no longer leads to a dead filesystem and nothing can be written there."""
        mounted = {m.mountpoint for m in read_mounts()}
        for tracked in self.tracker.tracked():
            point = tracked.volume.mountpoint
            if tracked.state != DiskState.MISSING:
                self._unmounted.discard(point)
                continue
            if point in mounted and point not in self._unmounted:
                result = self.runner(["umount", "-l", point], timeout=30)
                self._unmounted.add(point)
                log.error("data disk %s gone: unmounted %s (exit %s)", tracked.label, point,
                          result.returncode)

    def snapshot(self) -> dict[str, Any]:
        return {
            "time": self.clock.wall(),
            "data_disks": [t.to_json() for t in self.tracker.tracked()],
            "raid": {name: a.to_json() for name, a in self.arrays.items()},
            "smart": self.smart_results,
        }

    def write_snapshot(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.state_dir / SNAPSHOT_NAME,
                     json.dumps(self.snapshot(), indent=1, sort_keys=True).encode(),
                     durable=False)


def disk_nodes() -> list[str]:
    """Device nodes of the real disks (no loop, ram, md or dm devices)."""
    return [d.device_node for d in list_disks(mounts=read_mounts()) if d.device_node]


def read_alerts(state_dir: Path, limit: int = 500) -> list[dict[str, Any]]:
    """The newest `limit` entries of hwd's alert log (storage, SMART, RAID, PoE), oldest
    first, including the rotated `.1` file when the current one holds fewer."""
    path = Path(state_dir) / ALERTS_NAME
    clock = RealClock()
    entries = AlertLog(path, clock).read(limit)
    if len(entries) < limit:
        older = AlertLog(path.with_name(path.name + ".1"), clock).read(limit - len(entries))
        entries = older + entries
    return entries


def read_snapshot(state_dir: Path, max_age: float = 120.0) -> dict[str, Any] | None:
    """hwd's last snapshot, if it is fresh (hwd is running)."""
    return read_fresh_json(Path(state_dir) / SNAPSHOT_NAME, max_age)
