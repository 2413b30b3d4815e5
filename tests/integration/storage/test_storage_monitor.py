"""vigil-hwd's storage monitor: alerts and snapshot from real parsers, a real alert log,
and a real unmount of a data disk that vanished."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from appliance.storage.disks import DiskState
from appliance.storage.monitor import ALERTS_NAME, SNAPSHOT_NAME, StorageMonitor, read_snapshot
from appliance.storage.raid import RaidMonitor
from appliance.storage.smart import SmartReader
from tests.integration.storage.test_disk_remount_loop import (SERIAL, as_udev_sees_it, loop,
                                                              make_data_fs, mounted_source)
from tests.integration.storage.loopdev import sh

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "storage"
__all__ = ["loop"]  # the loop-device fixture, shared with the remount tests


def alert_log(state: Path) -> list[dict]:
    return [json.loads(line) for line in (state / ALERTS_NAME).read_text().splitlines()]


class Smartctl:
    """smartctl's recorded JSON output for one disk, changed between polls (security.md
    B: "mocked smartctl output with a rising Reallocated_Sector_Ct")."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, argv):
        text = (FIXTURES / "smartctl" / self.name).read_text()
        return json.loads(text)["smartctl"]["exit_status"], text


def monitor_for(tmp_path, proc_root, smartctl, volumes=()):
    return StorageMonitor(tmp_path / "state", tmp_path / "persist" / "smart.json", list(volumes),
                          raid=RaidMonitor(proc_root, tmp_path / "nosys", use_mdadm=False),
                          smart=SmartReader(run=smartctl), smart_devices=lambda: ["/dev/sda"])


def test_raid_and_smart_changes_become_alerts_and_a_snapshot(tmp_path):
    proc = tmp_path / "proc"
    proc.mkdir()
    shutil.copy(FIXTURES / "mdstat" / "raid1-clean", proc / "mdstat")
    smartctl = Smartctl("sata-hdd-healthy.json")
    monitor = monitor_for(tmp_path, proc, smartctl)
    monitor.check_raid()
    monitor.check_smart()
    monitor.write_snapshot()
    first = alert_log(tmp_path / "state")
    assert all(a["severity"] == "info" for a in first), first  # a healthy box: no warnings
    snap = read_snapshot(tmp_path / "state")
    assert {a["state"] for a in snap["raid"].values()} == {"healthy"}
    assert snap["smart"]["/dev/sda"]["overall"] == "passed"

    shutil.copy(FIXTURES / "mdstat" / "raid1-degraded", proc / "mdstat")
    smartctl.name = "sata-hdd-failing.json"
    monitor.check_raid()
    monitor.check_smart()
    monitor.write_snapshot()
    new = alert_log(tmp_path / "state")[len(first):]
    critical = [a for a in new if a["severity"] == "critical"]
    assert any(a["source"].startswith("raid:") and "degraded" in a["message"] for a in critical)
    assert any(a["source"].startswith("smart:") for a in critical)
    snap = json.loads((tmp_path / "state" / SNAPSHOT_NAME).read_text())
    assert {a["state"] for a in snap["raid"].values()} == {"degraded"}
    assert (tmp_path / "persist" / "smart.json").exists()  # trend baseline kept

    monitor.check_raid()
    monitor.check_smart()
    assert len(alert_log(tmp_path / "state")) == len(first) + len(new)  # no repeats


def test_a_vanished_data_disk_is_unmounted_and_alerted(loop, tmp_path):
    from appliance.storage.disks import DataVolume

    part, uuid = make_data_fs(loop)
    mountpoint = tmp_path / "vigil"
    mountpoint.mkdir()
    sh("mount", part, str(mountpoint))
    disk = as_udev_sees_it(loop, part, uuid)
    monitor = monitor_for(tmp_path, tmp_path / "noproc", Smartctl("sata-hdd-healthy.json"),
                          [DataVolume(uuid, str(mountpoint))])
    monitor.alerts.add(monitor.tracker.start([disk]))
    assert monitor.tracker.state_of(SERIAL) == DiskState.MOUNTED
    monitor.alerts.add(monitor.tracker.disk_removed(disk.sys_path))  # the USB disk is pulled
    assert monitor.tracker.state_of(SERIAL) == DiskState.MISSING
    monitor.unmount_missing()
    assert mounted_source(mountpoint) is None
    removal = [a for a in alert_log(tmp_path / "state") if a["severity"] == "critical"]
    assert len(removal) == 1 and SERIAL in removal[0]["message"] + removal[0]["source"]
    monitor.write_snapshot()
    [tracked] = read_snapshot(tmp_path / "state")["data_disks"]
    assert tracked["state"] == "missing"


def test_a_torn_alert_log_line_is_skipped(tmp_path):
    monitor = monitor_for(tmp_path, tmp_path / "noproc", Smartctl("sata-hdd-healthy.json"))
    from appliance.storage.alerts import Alert
    monitor.alerts.add([Alert("warning", "test", "first")])
    with open(tmp_path / "state" / ALERTS_NAME, "a") as out:
        out.write('{"time": 1, "sever')  # power cut mid-write
    assert [a["message"] for a in monitor.alerts.read()] == ["first"]
