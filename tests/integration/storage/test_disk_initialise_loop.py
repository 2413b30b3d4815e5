"""Initialising data disks on a real kernel: the whole single-disk sequence on a loop
device, RAID1 where md exists, and the refusals that protect the system."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.core.errors import FailedPrecondition, InvalidConfig
from appliance.core.commands import CommandResult, run_command
from appliance.storage.disks import Disk, list_disks
from appliance.storage.initialise import LABEL, RAID_DEVICE, plan_initialise, run_initialise
from tests.integration.storage.loopdev import LoopDisk, loop_disks, mounts_from, sh

MIB = 1024 * 1024
TEST_MIN_SIZE = 128 * MIB  # the appliance wants 8 GiB; a sparse 256 MiB file stands in


class RecordingRunner:
    """The real runner, remembering what ran."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, argv, *, timeout, input=None) -> CommandResult:
        self.calls.append(list(argv))
        return run_command(argv, timeout=timeout, input=input)


def inventory_entry(node: str) -> Disk:
    [disk] = [d for d in list_disks(include_virtual=True) if d.device_node == node]
    return disk


def blkid(node: str) -> dict[str, str]:
    out = sh("blkid", "-p", "-o", "export", node).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.fixture
def one_disk(tmp_path) -> LoopDisk:
    with loop_disks(tmp_path, 1, size_mib=256) as disks:
        yield disks[0]


def test_initialise_one_disk_end_to_end(one_disk, tmp_path):
    mountpoint = tmp_path / "vigil"
    plan = plan_initialise([inventory_entry(one_disk.node)], raid1=False,
                           mountpoint=str(mountpoint), min_size_bytes=TEST_MIN_SIZE)
    assert plan.erases()[0]["device"] == one_disk.node
    seen = []
    runner = RecordingRunner()
    result = run_initialise(plan, confirm=plan.token, runner=runner,
                            progress=lambda *args: seen.append(args))

    part = one_disk.partition(1)
    assert result.device == part and result.fs_uuid == plan.fs_uuid
    assert blkid(one_disk.node)["PTTYPE"] == "gpt"
    fs = blkid(part)
    assert (fs["TYPE"], fs["LABEL"], fs["PART_ENTRY_NAME"], fs["UUID"]) == \
        ("ext4", LABEL, LABEL, result.fs_uuid)
    assert ["mount", "-t", "ext4", "-o", "noatime", f"UUID={result.fs_uuid}",
            str(mountpoint)] in runner.calls, "mounted by UUID, not by device name"
    assert mounts_from(one_disk.node) == [str(mountpoint)]
    marker = json.loads((mountpoint / ".vigil-volume").read_text())
    assert marker["volume_id"] == result.fs_uuid

    tune = sh("tune2fs", "-l", part).stdout
    fields = dict(line.split(":", 1) for line in tune.splitlines() if ":" in line)
    blocks, reserved = int(fields["Block count"]), int(fields["Reserved block count"])
    assert abs(reserved / blocks - 0.01) < 0.001, "-m 1"
    inodes, block_size = int(fields["Inode count"]), int(fields["Block size"])
    assert blocks * block_size / inodes >= MIB * 0.9, "-T largefile: one inode per MiB"

    total = len(plan.steps)
    assert seen[0] == (1, total, plan.steps[0].name, 0.0)
    assert seen[-1] == (total, total, plan.steps[-1].name, 100.0)
    assert [s[0] for s in seen] == sorted(s[0] for s in seen)


def test_the_disk_holding_root_is_refused(tmp_path):
    boot = [d for d in list_disks(include_virtual=True) if d.is_boot_media]
    if not boot:
        pytest.skip("/ is not on a block device here (overlay or tmpfs root)")
    with pytest.raises(FailedPrecondition, match="boot media"):
        plan_initialise(boot[:1], raid1=False, mountpoint=str(tmp_path / "vigil"),
                        min_size_bytes=1)


def test_a_disk_with_a_mounted_partition_is_refused(one_disk, tmp_path):
    part = one_disk.make_partition()
    sh("mkfs.ext4", "-q", part)
    somewhere = tmp_path / "in-use"
    somewhere.mkdir()
    sh("mount", part, str(somewhere))
    with pytest.raises(FailedPrecondition, match=f"mounted at {somewhere}"):
        plan_initialise([inventory_entry(one_disk.node)], raid1=False,
                        mountpoint=str(tmp_path / "vigil"), min_size_bytes=TEST_MIN_SIZE)


def test_a_wrong_token_runs_nothing(one_disk, tmp_path):
    plan = plan_initialise([inventory_entry(one_disk.node)], raid1=False,
                           mountpoint=str(tmp_path / "vigil"), min_size_bytes=TEST_MIN_SIZE)
    runner = RecordingRunner()
    for token in (None, "", "00000000" if plan.token != "00000000" else "11111111"):
        with pytest.raises(InvalidConfig, match="confirmation token"):
            run_initialise(plan, confirm=token, runner=runner)
    assert runner.calls == []
    assert "PTTYPE" not in blkid_or_empty(one_disk.node)


def test_a_disk_mounted_after_planning_is_refused_at_run_time(one_disk, tmp_path):
    part = one_disk.make_partition()
    sh("mkfs.ext4", "-q", part)
    plan = plan_initialise([inventory_entry(one_disk.node)], raid1=False,
                           mountpoint=str(tmp_path / "vigil"), min_size_bytes=TEST_MIN_SIZE)
    somewhere = tmp_path / "in-use"
    somewhere.mkdir()
    sh("mount", part, str(somewhere))
    runner = RecordingRunner()
    with pytest.raises(FailedPrecondition, match="mounted at"):
        run_initialise(plan, confirm=plan.token, runner=runner)
    assert runner.calls == []


def blkid_or_empty(node: str) -> dict[str, str]:
    out = sh("blkid", "-p", "-o", "export", node, check=False).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.mark.skipif(not Path("/proc/mdstat").exists(),
                    reason="needs the md kernel module; runs in the image VM test")
def test_initialise_a_raid1_pair_end_to_end(tmp_path):
    with loop_disks(tmp_path, 2, size_mib=256) as (a, b):
        mountpoint = tmp_path / "vigil"
        plan = plan_initialise([inventory_entry(a.node), inventory_entry(b.node)], raid1=True,
                               mountpoint=str(mountpoint), min_size_bytes=TEST_MIN_SIZE)
        try:
            result = run_initialise(plan, confirm=plan.token)
            assert result.device == RAID_DEVICE
            fs = blkid(RAID_DEVICE)
            assert (fs["TYPE"], fs["LABEL"], fs["UUID"]) == ("ext4", LABEL, result.fs_uuid)
            for disk in (a, b):
                assert blkid(disk.partition(1))["TYPE"] == "linux_raid_member"
            assert sh("findmnt", "-rn", "-o", "TARGET", "--source", RAID_DEVICE,
                      check=False).stdout.strip() == str(mountpoint)
        finally:
            sh("umount", "-l", str(mountpoint), check=False)
            sh("mdadm", "--stop", RAID_DEVICE, check=False)
            for disk in (a, b):
                sh("mdadm", "--zero-superblock", disk.partition(1), check=False)
