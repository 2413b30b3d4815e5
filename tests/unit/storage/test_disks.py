"""Disk inventory helpers, the hotplug state machine and the fsck/mount policy, without
hardware: Disk values built by hand, a fake sysfs tree, a scripted command runner."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from appliance.core.clock import SimulatedClock
from appliance.core.commands import CommandResult
from appliance.storage.disks import (CheckOutcome, DataDiskTracker, DataVolume,
                                     Disk, DiskState, Mount, Partition, boot_disk_names,
                                     check_and_mount, is_listed, parse_mountinfo, parse_swaps,
                                     remount_returned, run_command, udev_decode)

UUID = "5b1a0c2e-3f4d-4e5f-8a9b-0c1d2e3f4a5b"
SERIAL = "WX12A3456789"
MOUNTPOINT = "/srv/vigil"
TB = 10 ** 12


def make_disk(name: str = "sdb", serial: str = SERIAL, wwn: str = "", fs_uuid: str = UUID,
              fs_type: str = "ext4", mountpoint: str | None = None, **fields) -> Disk:
    part = Partition(f"{name}1", f"/dev/{name}1", 1, 2 * TB - 2 * 1024 ** 2, fs_type, fs_uuid,
                     "vigil-data", "vigil-data", mountpoint)
    values = dict(name=name, device_node=f"/dev/{name}",
                  sys_path=f"/sys/devices/usb2/2-1/host0/block/{name}", model="Elements 25A3",
                  vendor="WD", serial=serial, wwn=wwn, size_bytes=2 * TB, bus="usb",
                  usb_driver="uas", id_path="platform-usb-0:1:1.0", is_boot_media=False,
                  partitions=(part,) if fs_uuid or fs_type else ())
    values.update(fields)
    return Disk(**values)


def tracker_with_mounted_disk() -> tuple[DataDiskTracker, Disk, SimulatedClock]:
    clock = SimulatedClock()
    tracker = DataDiskTracker([DataVolume(UUID, MOUNTPOINT)], clock)
    disk = make_disk(mountpoint=MOUNTPOINT)
    assert tracker.start([disk, make_disk("sda", serial="OTHER", fs_uuid="1111")]) == []
    return tracker, disk, clock


class ScriptedRunner:
    """Answers from a table keyed by the command name; records every call."""

    def __init__(self, **answers: CommandResult) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def __call__(self, argv, *, timeout, input=None) -> CommandResult:
        self.calls.append(list(argv))
        return self.answers.get(argv[0].replace(".", "_"), CommandResult(0, "", ""))


NOT_MOUNTED = CommandResult(1, "", "")


# --- mount table and boot media -------------------------------------------------------

def test_mountinfo_gives_device_numbers_and_unescaped_paths():
    text = ("27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/root rw\n"
            "40 27 8:17 / /srv/my\\040disk rw,noatime - ext4 /dev/sdb1 rw\n"
            "22 27 0:21 / /proc rw - proc proc rw\n")
    mounts = parse_mountinfo(text)
    assert mounts[0] == Mount(os.makedev(254, 0), "/", "/dev/root", "ext4")
    assert mounts[1].mountpoint == "/srv/my disk" and mounts[1].device == os.makedev(8, 17)
    assert len(mounts) == 3


def test_swaps_become_swap_mounts_by_device_number():
    text = ("Filename\tType\tSize\tUsed\tPriority\n"
            "/dev/sda2   partition\t1048572\t0\t-2\n"
            "/swapfile   file\t1048572\t0\t-3\n")
    [swap] = parse_swaps(text, stat=lambda path: FakeStat(os.makedev(8, 2)))
    assert (swap.mountpoint, swap.source, swap.device) == ("[SWAP]", "/dev/sda2",
                                                          os.makedev(8, 2))


class FakeStat:
    def __init__(self, rdev: int) -> None:
        self.st_rdev = rdev


def fake_sysfs(root: Path) -> Path:
    """/sys/dev/block links for an SD card (mmcblk0p2) and an md root over sda1+sdb1."""
    def device(path: str, dev: str, partition: bool = False) -> Path:
        full = root / "devices" / path
        full.mkdir(parents=True)
        (full / "dev").write_text(dev + "\n")
        if partition:
            (full / "partition").write_text("1\n")
        link = root / "dev" / "block" / dev
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(full)
        return full

    device("platform/mmc0/block/mmcblk0", "179:0")
    device("platform/mmc0/block/mmcblk0/mmcblk0p2", "179:2", partition=True)
    for name, minor in (("sda", 0), ("sdb", 16)):
        device(f"usb/block/{name}", f"8:{minor}")
        device(f"usb/block/{name}/{name}1", f"8:{minor + 1}", partition=True)
    md = device("virtual/block/md0", "9:0")
    (md / "slaves").mkdir()
    for name, minor in (("sda1", 1), ("sdb1", 17)):
        (md / "slaves" / name).symlink_to(root / "dev" / "block" / f"8:{minor}")
    return root


def test_boot_media_is_found_through_partitions_and_md_arrays(tmp_path):
    sys_root = fake_sysfs(tmp_path)
    sd_root = [Mount(os.makedev(179, 2), "/", "/dev/mmcblk0p2", "ext4"),
               Mount(os.makedev(8, 17), "/srv/vigil", "/dev/sdb1", "ext4")]
    assert boot_disk_names(sd_root, sys_root=sys_root) == {"mmcblk0"}
    md_root = [Mount(os.makedev(9, 0), "/", "/dev/md0", "ext4"),
               Mount(os.makedev(0, 30), "/boot", "overlay", "overlay")]
    assert boot_disk_names(md_root, sys_root=sys_root) == {"sda", "sdb"}


def test_virtual_and_never_data_devices_are_filtered():
    assert is_listed("sda", False) and is_listed("nvme0n1", False) and is_listed("mmcblk0", False)
    for name in ("loop0", "md127", "dm-0", "zram0", "ram0"):
        assert not is_listed(name, False) and is_listed(name, True)
    for name in ("sr0", "mmcblk0boot0", "mmcblk0rpmb"):
        assert not is_listed(name, True)


def test_udev_escapes_are_decoded():
    assert udev_decode("WDC\\x20WD40EFPX\\x20\\x20") == "WDC WD40EFPX"


# --- the Disk value -------------------------------------------------------------------

def test_identity_prefers_the_drive_wwn_over_a_bridge_serial():
    assert make_disk(wwn="0x50014ee2b1c2d3e4").identity == "0x50014ee2b1c2d3e4"
    assert make_disk().identity == SERIAL
    assert make_disk(serial="").identity == ""


def test_to_json_lists_partitions_and_identity():
    data = make_disk(mountpoint=MOUNTPOINT).to_json()
    assert data["identity"] == SERIAL and data["usb_driver"] == "uas"
    assert data["partitions"][0]["mountpoint"] == MOUNTPOINT


def test_md_holders_cover_the_disk_and_its_partitions():
    disk = make_disk()
    disk = replace(disk, partitions=(replace(disk.partitions[0], holders=("md127",)),))
    assert disk.md_holders == ("md127",)


# --- the tracker ----------------------------------------------------------------------

def test_a_mounted_data_disk_at_start_raises_nothing():
    tracker, _, _ = tracker_with_mounted_disk()
    assert tracker.state_of(SERIAL) == DiskState.MOUNTED
    assert [t.key for t in tracker.tracked()] == [SERIAL], "only the data disk is tracked"
    assert tracker.volume_available(UUID)


def test_removing_the_data_disk_alerts_at_once():
    tracker, disk, _ = tracker_with_mounted_disk()
    [alert] = tracker.disk_removed(disk.sys_path)
    assert alert.severity == "critical" and alert.source == f"disk:{SERIAL}"
    assert alert.key == f"disk-missing:{SERIAL}" and MOUNTPOINT in alert.message
    assert tracker.state_of(SERIAL) == DiskState.MISSING
    assert not tracker.volume_available(UUID)
    assert tracker.disk_removed(disk.sys_path) == [], "the second remove is not news"


def test_removing_another_disk_or_a_partition_is_quiet():
    tracker, disk, _ = tracker_with_mounted_disk()
    assert tracker.disk_removed(make_disk("sda").sys_path) == []
    assert tracker.disk_removed(disk.sys_path + "/sdb1") == []
    assert tracker.state_of(SERIAL) == DiskState.MOUNTED


def test_a_replugged_disk_is_recognised_by_serial_under_a_new_name():
    tracker, disk, _ = tracker_with_mounted_disk()
    tracker.disk_removed(disk.sys_path)
    back = make_disk("sdc")
    [alert] = tracker.disk_seen(back, "add")
    assert alert.severity == "info" and "/dev/sdc" in alert.message
    assert tracker.state_of(SERIAL) == DiskState.RETURNED
    assert tracker.pending_checks() == [SERIAL]


def test_a_replug_seen_first_without_its_filesystem_returns_on_the_partition_event():
    tracker, disk, _ = tracker_with_mounted_disk()
    tracker.disk_removed(disk.sys_path)
    bare = make_disk("sdc", fs_uuid="", fs_type="")  # disk add: partitions not probed yet
    assert tracker.disk_seen(bare, "add", seqnum=10) == []
    assert tracker.state_of(SERIAL) == DiskState.MISSING
    assert len(tracker.disk_seen(make_disk("sdc"), "change", seqnum=11)) == 1
    assert tracker.state_of(SERIAL) == DiskState.RETURNED


def test_the_volume_moved_to_another_enclosure_takes_over_the_missing_record():
    tracker, disk, _ = tracker_with_mounted_disk()
    tracker.disk_removed(disk.sys_path)
    tracker.disk_seen(make_disk("sdc", serial="BRIDGE-2"))
    assert tracker.state_of("BRIDGE-2") == DiskState.RETURNED
    assert tracker.state_of(SERIAL) is None


def test_duplicate_change_events_are_debounced():
    tracker, disk, _ = tracker_with_mounted_disk()
    for seq in (20, 21, 22):
        assert tracker.disk_seen(disk, "change", seqnum=seq) == []
    assert tracker.counters.debounced == 3
    assert tracker.disk_seen(disk, "change", seqnum=21) == []  # out of order: dropped
    assert tracker.counters.debounced == 4


def test_a_box_started_without_its_data_disk():
    tracker = DataDiskTracker([DataVolume(UUID, MOUNTPOINT)], SimulatedClock())
    [alert] = tracker.start([make_disk("sda", serial="OTHER", fs_uuid="1111")])
    assert alert.severity == "critical" and alert.key == f"volume-missing:{UUID}"
    assert alert.source == f"disk:volume-{UUID}"
    [alert] = tracker.disk_seen(make_disk())
    assert alert.severity == "info"
    assert tracker.state_of(SERIAL) == DiskState.RETURNED


def test_a_disk_without_serial_or_wwn_is_keyed_by_its_filesystem():
    tracker = DataDiskTracker([DataVolume(UUID, MOUNTPOINT)], SimulatedClock())
    tracker.start([make_disk("loop0", serial="", mountpoint=MOUNTPOINT)])
    assert tracker.state_of(f"fs:{UUID}") == DiskState.MOUNTED
    assert len(tracker.disk_removed(make_disk("loop0").sys_path)) == 1


def test_present_but_unmounted_at_start_is_checked_before_use():
    tracker = DataDiskTracker([DataVolume(UUID, MOUNTPOINT)], SimulatedClock())
    assert tracker.start([make_disk()]) == []
    assert tracker.pending_checks() == [SERIAL]


def returned_tracker() -> DataDiskTracker:
    tracker, disk, _ = tracker_with_mounted_disk()
    tracker.disk_removed(disk.sys_path)
    tracker.disk_seen(make_disk("sdc"))
    return tracker


def test_a_good_check_mounts_again():
    tracker = returned_tracker()
    request = tracker.begin_check(SERIAL)
    assert request.device_node == "/dev/sdc1" and tracker.state_of(SERIAL) == DiskState.CHECKING
    assert tracker.begin_check(SERIAL) is None, "one check at a time"
    [alert] = tracker.finish_check(request, CheckOutcome(True, 1, "errors corrected by e2fsck"))
    assert alert.severity == "info" and alert.key == f"disk-mounted:{SERIAL}"
    assert tracker.state_of(SERIAL) == DiskState.MOUNTED


def test_a_failed_check_leaves_the_disk_unmounted_until_retried():
    tracker = returned_tracker()
    request = tracker.begin_check(SERIAL)
    [alert] = tracker.finish_check(request, CheckOutcome(False, 4, "e2fsck -p exited 4"))
    assert alert.severity == "critical" and "not mounted" in alert.message
    assert tracker.state_of(SERIAL) == DiskState.FAILED_CHECK
    assert tracker.pending_checks() == []
    assert tracker.retry_check(SERIAL) and tracker.pending_checks() == [SERIAL]


def test_a_reboot_request_from_e2fsck_is_a_warning():
    tracker = returned_tracker()
    request = tracker.begin_check(SERIAL)
    alerts = tracker.finish_check(request, CheckOutcome(True, 2, "filesystem clean", "reboot"))
    assert [a.severity for a in alerts] == ["info", "warning"]


def test_a_check_result_for_a_disk_pulled_meanwhile_is_dropped():
    tracker = returned_tracker()
    request = tracker.begin_check(SERIAL)
    assert len(tracker.disk_removed(make_disk("sdc").sys_path)) == 1
    assert tracker.finish_check(request, CheckOutcome(True, 0, "clean")) == []
    assert tracker.state_of(SERIAL) == DiskState.MISSING and tracker.counters.stale == 1


def test_a_returning_raid_member_is_left_to_md():
    tracker = DataDiskTracker([DataVolume(UUID, MOUNTPOINT)], SimulatedClock())
    member = make_disk(fs_type="linux_raid_member")
    tracker.start([member])
    assert tracker.state_of(SERIAL) == DiskState.PRESENT
    [alert] = tracker.disk_removed(member.sys_path)
    assert alert.severity == "critical" and "without redundancy" in alert.message
    [alert] = tracker.disk_seen(make_disk("sdc", fs_type="linux_raid_member"))
    assert "RAID" in alert.message and tracker.state_of(SERIAL) == DiskState.PRESENT
    assert tracker.begin_check(SERIAL) is None


def test_state_changes_are_timestamped_by_the_injected_clock():
    tracker, disk, clock = tracker_with_mounted_disk()
    clock.advance(42)
    tracker.disk_removed(disk.sys_path)
    [tracked] = tracker.tracked()
    assert tracked.since == clock.monotonic() and tracked.to_json()["state"] == "missing"


# --- check and mount ------------------------------------------------------------------

@pytest.fixture
def volume(tmp_path) -> DataVolume:
    return DataVolume(UUID, str(tmp_path / "vigil"))


@pytest.mark.parametrize("code, detail", [(0, "filesystem clean"),
                                          (1, "errors corrected by e2fsck")])
def test_fsck_ok_then_mount_by_uuid(volume, code, detail):
    runner = ScriptedRunner(findmnt=NOT_MOUNTED, e2fsck=CommandResult(code, "", ""))
    outcome = check_and_mount("/dev/sdc1", volume, runner)
    assert outcome == CheckOutcome(True, code, detail, "")
    assert runner.calls[1:] == [
        ["e2fsck", "-p", "/dev/sdc1"],
        ["mount", "-t", "ext4", "-o", "noatime", f"UUID={UUID}", volume.mountpoint]]


@pytest.mark.parametrize("code", [2, 3])
def test_fsck_reboot_wanted_mounts_with_a_warning(volume, code):
    runner = ScriptedRunner(findmnt=NOT_MOUNTED, e2fsck=CommandResult(code, "", ""))
    outcome = check_and_mount("/dev/sdc1", volume, runner)
    assert outcome.mounted and "reboot" in outcome.warning


@pytest.mark.parametrize("code", [4, 8, 12, 32, -9])
def test_fsck_failure_never_mounts(volume, code):
    runner = ScriptedRunner(findmnt=NOT_MOUNTED,
                            e2fsck=CommandResult(code, "", "UNEXPECTED INCONSISTENCY"))
    outcome = check_and_mount("/dev/sdc1", volume, runner)
    assert not outcome.mounted and outcome.fsck_code == code
    assert f"exited {code}" in outcome.detail and "UNEXPECTED" in outcome.detail
    assert not any(call[0] == "mount" for call in runner.calls)


def test_a_failing_mount_is_reported(volume):
    runner = ScriptedRunner(findmnt=NOT_MOUNTED,
                            mount=CommandResult(32, "", "mount: wrong fs type"))
    outcome = check_and_mount("/dev/sdc1", volume, runner)
    assert not outcome.mounted and "wrong fs type" in outcome.detail


def test_a_stale_mount_is_detached_before_the_check(volume):
    runner = ScriptedRunner(findmnt=CommandResult(0, "/dev/sdb1\n", ""))
    assert check_and_mount("/dev/sdc1", volume, runner).mounted
    assert [c[0] for c in runner.calls] == ["findmnt", "umount", "e2fsck", "mount"]
    assert runner.calls[1] == ["umount", "-l", volume.mountpoint]


def test_remount_returned_runs_the_whole_cycle(tmp_path):
    tracker = DataDiskTracker([DataVolume(UUID, str(tmp_path / "vigil"))], SimulatedClock())
    tracker.start([])
    tracker.disk_seen(make_disk("sdc"))
    alerts = remount_returned(tracker, ScriptedRunner(findmnt=NOT_MOUNTED))
    assert [a.key for a in alerts] == [f"disk-mounted:{SERIAL}"]
    assert tracker.state_of(SERIAL) == DiskState.MOUNTED


# --- the real runner ------------------------------------------------------------------

def test_run_command_reports_exit_codes_input_and_missing_commands():
    assert run_command(["true"]).returncode == 0
    assert run_command(["false"]).returncode == 1
    assert run_command(["cat"], input="hello").stdout == "hello"
    missing = run_command(["vigil-no-such-command"])
    assert missing.returncode == 127 and "not found" in missing.stderr


def test_run_command_kills_at_the_timeout():
    start = time.monotonic()
    result = run_command(["sleep", "5"], timeout=0.2)
    assert result.returncode < 0 and "timed out" in result.stderr
    assert time.monotonic() - start < 3


def test_a_volume_added_while_running_replaces_the_old_one_at_its_mount_point():
    tracker, old_disk, _ = tracker_with_mounted_disk()
    new = make_disk("sdc", serial="NEWDISK", fs_uuid="2222", mountpoint=MOUNTPOINT)
    assert tracker.add_volume(DataVolume("2222", MOUNTPOINT), [new]) == []
    assert [(t.key, t.state) for t in tracker.tracked()] == [("NEWDISK", DiskState.MOUNTED)]
    assert tracker.disk_removed(old_disk.sys_path) == [], "the old volume is not watched"
    [alert] = tracker.disk_removed(new.sys_path)
    assert alert.key == "disk-missing:NEWDISK"
