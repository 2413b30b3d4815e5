"""Hotplug scenarios that run inside a umockdev testbed (the child side of
test_disk_hotplug_udev.py): fake sysfs and udev devices, real libudev and pyudev, our code.

umockdev works by LD_PRELOAD, so this runs in its own process:

    umockdev-wrapper .venv/bin/python udev_scenarios.py SCENARIO FIXTURES_DIR WORK_DIR

with PYTHONPATH set to a directory that holds nothing but a symlink to Debian's `gi`
package (python3-gi is built for /usr/bin/python3, the interpreter the venv was made
from). It prints one JSON document on stdout; the test asserts on it.

Only e2fsck and mount are faked here (a recording runner): umockdev's /dev nodes hold no
filesystem. The real commands run in test_disk_remount_loop.py on a loop device.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402

import pyudev  # noqa: E402

from appliance.core.commands import CommandResult  # noqa: E402
from appliance.storage.disks import (DataDiskTracker, DataVolume,  # noqa: E402
                                     DiskState, DiskWatcher, Mount, check_and_mount,
                                     list_disks)

USB_UUID = "5b1a0c2e-3f4d-4e5f-8a9b-0c1d2e3f4a5b"
USB_KEY = "575833314141334C38453935"
SATA_KEY = "0x50014ee2b1c2d3e4"
USB_INTERFACE = ("/sys/devices/platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/"
                 "0000:01:00.0/usb2/2-1/2-1:1.0")
USB_DISK = f"{USB_INTERFACE}/host0/target0:0:0/0:0:0:0/block/sdb"
SATA_DISK = ("/sys/devices/platform/axi/1000110000.pcie/pci0001:00/0001:00:00.0/0001:01:00.0/"
             "ata1/host1/target1:0:0/1:0:0:0/block/sda")
ROOT = Mount(os.makedev(179, 2), "/", "/dev/mmcblk0p2", "ext4")
BOOT = Mount(os.makedev(179, 1), "/boot/firmware", "/dev/mmcblk0p1", "vfat")


class RecordingRunner:
    """Answers like a healthy system: nothing mounted at the mount point, fsck clean."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], *, timeout: float,
                 input: str | None = None) -> CommandResult:
        self.calls.append(list(argv))
        if argv[0] == "findmnt":
            return CommandResult(1, "", "")
        return CommandResult(0, "", "")


def load(bed: UMockdev.Testbed, fixtures: Path, name: str,
         renames: Sequence[tuple[str, str]] = ()) -> None:
    text = (fixtures / f"{name}.umockdev").read_text(encoding="utf-8")
    for old, new in renames:
        text = text.replace(old, new)
    if not bed.add_from_string(text):
        raise RuntimeError(f"umockdev could not load {name}")


def unplug(bed: UMockdev.Testbed, disk: str, partitions: Sequence[str],
           parents: Sequence[str] = ()) -> None:
    """What the kernel does on a pull: remove events for the partitions, the disk, then
    the devices above it (umockdev's remove_device sends no uevent by itself)."""
    paths = [f"{disk}/{p}" for p in partitions] + [disk] + list(parents)
    for path in paths:
        bed.uevent(path, "remove")
    for path in paths:
        bed.remove_device(path)


def pump(watcher: DiskWatcher, until: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Let the watcher handle events until the condition holds (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if until():
            return True
        watcher.poll(0.05)
    return until()


def drain(watcher: DiskWatcher, quiet: float = 0.3, timeout: float = 5.0) -> None:
    """Handle events until none arrives for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and watcher.poll(quiet):
        pass


def states(tracker: DataDiskTracker) -> dict[str, str]:
    return {t.key: t.state.value for t in tracker.tracked()}


def scenario_inventory(fixtures: Path, work: Path) -> dict[str, Any]:
    bed = UMockdev.Testbed.new()
    for name in ("emmc-boot", "sata-disk", "usb-uas-disk", "virtual"):
        load(bed, fixtures, name)
    data = Mount(os.makedev(8, 17), "/srv/vigil", "/dev/sdb1", "ext4")
    context = pyudev.Context()
    return {
        "disks": [d.to_json() for d in list_disks(context, mounts=[ROOT, BOOT, data])],
        "with_virtual": [d.name for d in list_disks(context, include_virtual=True,
                                                     mounts=[ROOT, BOOT])],
    }


def watcher_for(volume: DataVolume, mounts: list[Mount],
                runner: RecordingRunner) -> tuple[DiskWatcher, DataDiskTracker, list]:
    tracker = DataDiskTracker([volume])
    alerts: list = []
    watcher = DiskWatcher(tracker, on_alerts=alerts.extend, context=pyudev.Context(),
                          mounts=lambda: list(mounts),
                          checker=lambda req: check_and_mount(req.device_node, req.volume,
                                                              runner))
    return watcher, tracker, alerts


def scenario_hotplug(fixtures: Path, work: Path) -> dict[str, Any]:
    """The data disk is mounted at start; pulled; plugged back (as sdc); udev repeats
    change events; an unrelated disk is pulled."""
    bed = UMockdev.Testbed.new()
    for name in ("emmc-boot", "sata-disk", "usb-uas-disk"):
        load(bed, fixtures, name)
    volume = DataVolume(USB_UUID, str(work / "vigil"))
    mounts = [ROOT, BOOT, Mount(os.makedev(8, 17), volume.mountpoint, "/dev/sdb1", "ext4")]
    runner = RecordingRunner()
    watcher, tracker, alerts = watcher_for(volume, mounts, runner)
    out: dict[str, Any] = {}
    watcher.start()
    out["start"] = {"states": states(tracker), "alerts": [a.to_json() for a in alerts]}

    t0 = time.monotonic()
    unplug(bed, USB_DISK, ["sdb1"], [USB_INTERFACE])
    mounts[2:] = []  # (the dead mount lingers on a real box; check_and_mount detaches it)
    pump(watcher, lambda: tracker.state_of(USB_KEY) == DiskState.MISSING)
    out["unplugged"] = {"states": states(tracker), "alerts": [a.to_json() for a in alerts],
                        "seconds": time.monotonic() - t0}

    alerts.clear()
    load(bed, fixtures, "usb-uas-disk", renames=[("sdb", "sdc"), ("8:16", "8:32"),
                                                 ("8:17", "8:33"), ("MINOR=16", "MINOR=32"),
                                                 ("MINOR=17", "MINOR=33")])
    pump(watcher, lambda: tracker.state_of(USB_KEY) == DiskState.MOUNTED)
    disk = next(t.disk for t in tracker.tracked() if t.key == USB_KEY)
    out["replugged"] = {"states": states(tracker), "alerts": [a.to_json() for a in alerts],
                        "node": disk.device_node if disk else None, "commands": runner.calls}

    alerts.clear()
    before = tracker.counters.debounced
    sdc = USB_DISK.replace("sdb", "sdc")
    for _ in range(3):
        bed.uevent(sdc, "change")
    drain(watcher)
    out["changes"] = {"states": states(tracker), "alerts": [a.to_json() for a in alerts],
                      "debounced": tracker.counters.debounced - before}

    unplug(bed, SATA_DISK, ["sda1"])
    drain(watcher)
    out["other_disk_removed"] = {"states": states(tracker),
                                 "alerts": [a.to_json() for a in alerts]}
    watcher.close()
    return out


def scenario_missing_at_start(fixtures: Path, work: Path) -> dict[str, Any]:
    """The box starts without its data disk; the owner plugs it in later."""
    bed = UMockdev.Testbed.new()
    load(bed, fixtures, "emmc-boot")
    volume = DataVolume(USB_UUID, str(work / "vigil"))
    runner = RecordingRunner()
    watcher, tracker, alerts = watcher_for(volume, [ROOT, BOOT], runner)
    out: dict[str, Any] = {}
    watcher.start()
    out["start"] = {"states": states(tracker), "alerts": [a.to_json() for a in alerts]}
    alerts.clear()
    load(bed, fixtures, "usb-uas-disk")
    pump(watcher, lambda: tracker.state_of(USB_KEY) == DiskState.MOUNTED)
    out["plugged"] = {"states": states(tracker), "alerts": [a.to_json() for a in alerts],
                      "commands": runner.calls}
    watcher.close()
    return out


def scenario_initialised_while_running(fixtures: Path, work: Path) -> dict[str, Any]:
    """A box without a data volume; the owner initialises the USB disk (it ends mounted)
    and, still in the same run, pulls it out."""
    bed = UMockdev.Testbed.new()
    for name in ("emmc-boot", "usb-uas-disk"):
        load(bed, fixtures, name)
    volume = DataVolume(USB_UUID, str(work / "vigil"))
    mounts = [ROOT, BOOT]
    runner = RecordingRunner()
    tracker = DataDiskTracker([])
    alerts: list = []
    watcher = DiskWatcher(tracker, on_alerts=alerts.extend, context=pyudev.Context(),
                          mounts=lambda: list(mounts),
                          checker=lambda req: check_and_mount(req.device_node, req.volume,
                                                              runner))
    out: dict[str, Any] = {}
    watcher.start()
    out["start"] = {"states": states(tracker), "alerts": [a.to_json() for a in alerts]}
    mounts.append(Mount(os.makedev(8, 17), volume.mountpoint, "/dev/sdb1", "ext4"))
    watcher.add_volume(volume)                    # from the initialise job's thread
    pump(watcher, lambda: tracker.state_of(USB_KEY) == DiskState.MOUNTED)
    out["initialised"] = {"states": states(tracker), "alerts": [a.to_json() for a in alerts],
                          "commands": list(runner.calls)}
    unplug(bed, USB_DISK, ["sdb1"], [USB_INTERFACE])
    mounts[2:] = []
    pump(watcher, lambda: tracker.state_of(USB_KEY) == DiskState.MISSING)
    out["unplugged"] = {"states": states(tracker), "alerts": [a.to_json() for a in alerts]}
    watcher.close()
    return out


SCENARIOS = {"inventory": scenario_inventory, "hotplug": scenario_hotplug,
             "missing_at_start": scenario_missing_at_start,
             "initialised_while_running": scenario_initialised_while_running}


def main(argv: list[str]) -> int:
    scenario, fixtures, work = argv[1], Path(argv[2]), Path(argv[3])
    json.dump(SCENARIOS[scenario](fixtures, work), sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
