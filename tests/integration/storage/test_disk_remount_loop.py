"""A returned data disk on a real kernel: e2fsck -p and mount by UUID on a loop device,
and a damaged filesystem that must never be mounted."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from uuid import uuid4

import pytest

from appliance.storage.disks import (DataDiskTracker, DataVolume, Disk, DiskState,
                                     list_disks, remount_returned)
from tests.integration.storage.loopdev import LoopDisk, loop_disks, mounts_from, sh

SERIAL = "LOOP-TEST-0001"


@pytest.fixture
def loop(tmp_path) -> LoopDisk:
    with loop_disks(tmp_path, 1, size_mib=64) as disks:
        yield disks[0]


def make_data_fs(loop: LoopDisk) -> tuple[str, str]:
    part = loop.make_partition("vigil-data")
    uuid = str(uuid4())
    sh("mkfs.ext4", "-q", "-U", uuid, "-L", "vigil-data", part)
    return part, uuid


def as_udev_sees_it(loop: LoopDisk, part: str, uuid: str) -> Disk:
    """The loop disk from the real inventory, with what udevd would add on the box.

    There is no udevd here, so the udev database has no ID_FS_* for the partition (blkid
    supplies them) and a loop device has no serial (one is made up)."""
    [disk] = [d for d in list_disks(include_virtual=True) if d.device_node == loop.node]
    [partition] = [p for p in disk.partitions if p.device_node == part]
    probed = dict(line.split("=", 1) for line in
                  sh("blkid", "-o", "export", part).stdout.splitlines() if "=" in line)
    assert probed["UUID"] == uuid
    partition = replace(partition, fs_type=probed["TYPE"], fs_uuid=probed["UUID"],
                        fs_label=probed.get("LABEL", ""))
    return replace(disk, serial=SERIAL, partitions=(partition,))


def returned(loop: LoopDisk, part: str, uuid: str, mountpoint: Path) -> DataDiskTracker:
    """A tracker that saw the data disk go (the box started without it) and come back."""
    tracker = DataDiskTracker([DataVolume(uuid, str(mountpoint))])
    assert [a.severity for a in tracker.start([])] == ["critical"]
    alerts = tracker.disk_seen(as_udev_sees_it(loop, part, uuid))
    assert [a.severity for a in alerts] == ["info"]
    assert tracker.state_of(SERIAL) == DiskState.RETURNED
    return tracker


def mounted_source(mountpoint: Path) -> str | None:
    out = sh("findmnt", "-rn", "-o", "SOURCE", "--mountpoint", str(mountpoint), check=False)
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def test_a_returned_disk_is_checked_and_mounted_by_uuid(loop, tmp_path):
    part, uuid = make_data_fs(loop)
    mountpoint = tmp_path / "vigil"
    tracker = returned(loop, part, uuid, mountpoint)
    alerts = remount_returned(tracker)
    assert tracker.state_of(SERIAL) == DiskState.MOUNTED
    assert [(a.severity, a.key) for a in alerts] == [("info", f"disk-mounted:{SERIAL}")]
    assert mounted_source(mountpoint) == part
    options = sh("findmnt", "-rn", "-o", "OPTIONS", "--mountpoint", str(mountpoint)).stdout
    assert "noatime" in options.strip().split(",")
    assert tracker.volume_available(uuid)


def test_a_stale_mount_left_by_the_removed_disk_is_detached_first(loop, tmp_path):
    part, uuid = make_data_fs(loop)
    mountpoint = tmp_path / "vigil"
    mountpoint.mkdir()
    sh("mount", part, str(mountpoint))  # stands in for the dead mount of the pulled disk
    tracker = returned(loop, part, uuid, mountpoint)
    remount_returned(tracker)
    assert tracker.state_of(SERIAL) == DiskState.MOUNTED
    assert mounts_from(loop.node) == [str(mountpoint)], "one mount, not two stacked"


@pytest.mark.parametrize("damage, code", [
    ("root inode cleared", 4),      # e2fsck -p: UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY
    ("superblock overwritten", 8),  # e2fsck cannot even open it
])
def test_a_damaged_filesystem_fails_the_check_and_is_never_mounted(loop, tmp_path, damage,
                                                                    code):
    part, uuid = make_data_fs(loop)
    mountpoint = tmp_path / "vigil"
    tracker = returned(loop, part, uuid, mountpoint)
    if damage == "root inode cleared":
        sh("debugfs", "-w", "-R", "clri <2>", part)
        sh("tune2fs", "-E", "force_fsck", part)  # as the kernel does when it meets an error
    else:
        fd = os.open(part, os.O_WRONLY)
        try:
            os.pwrite(fd, b"\xa5" * 1024, 1024)  # the primary superblock; 64 MiB has no backup
            os.fsync(fd)
        finally:
            os.close(fd)
    alerts = remount_returned(tracker)
    assert tracker.state_of(SERIAL) == DiskState.FAILED_CHECK
    [alert] = alerts
    assert alert.severity == "critical" and f"exited {code}" in alert.message
    assert "not mounted" in alert.message
    assert mounted_source(mountpoint) is None
    assert not tracker.volume_available(uuid)
