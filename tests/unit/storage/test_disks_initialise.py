"""Planning and running a disk initialisation with hand-made disks and a scripted runner:
what is refused, which commands run in which order, the confirmation token, progress."""

from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path

import pytest

from appliance.core.clock import SimulatedClock
from appliance.core.errors import FailedPrecondition, InvalidConfig
from appliance.core.commands import CommandResult
from appliance.storage.disks import Disk, Mount, Partition
from appliance.storage.initialise import (GIB, RAID_DEVICE, StepFailed, confirmation_token,
                                          format_bytes, mirror_problem, partition_node,
                                          plan_initialise, run_initialise)
from appliance.storage.raid import RaidMonitor

UUID = "0d6f3a52-8c1b-4e7a-9f20-3b4c5d6e7f80"
TB = 10 ** 12


def make_disk(name: str = "sda", serial: str = "WD-WX12D81ABCDE", size: int = 4 * TB,
              partitions: tuple[Partition, ...] = (), **fields) -> Disk:
    values = dict(name=name, device_node=f"/dev/{name}", sys_path=f"/sys/block/{name}",
                  model="WDC WD40EFPX", vendor="", serial=serial, wwn="", size_bytes=size,
                  bus="ata", usb_driver=None, id_path=f"pci-ata-{name}", is_boot_media=False,
                  partitions=partitions)
    values.update(fields)
    return Disk(**values)


def part(disk: str, number: int, **fields) -> Partition:
    return Partition(f"{disk}{number}", f"/dev/{disk}{number}", number, 100 * GIB, **fields)


def plan(disks, raid1=False, **kwargs):
    kwargs.setdefault("mounts", [])
    kwargs.setdefault("fs_uuid", UUID)
    kwargs.setdefault("mountpoint", "/srv/vigil")
    return plan_initialise(disks, raid1, **kwargs)


def commands(p) -> list[str]:
    return [shlex.join(s.argv) for s in p.steps if s.kind == "run"]


class ScriptedRunner:
    def __init__(self, fail: str = "", code: int = 1) -> None:
        self.fail, self.code = fail, code
        self.calls: list[tuple[list[str], str | None]] = []
        self.held: tuple[str, ...] = ()          # the disks locked while a command ran
        self.log: list[tuple[str, tuple[str, ...]]] = []

    def __call__(self, argv, *, timeout, input=None) -> CommandResult:
        self.calls.append((list(argv), input))
        self.log.append((argv[0], self.held))
        if self.fail and argv[0] == self.fail:
            return CommandResult(self.code, "", f"{argv[0]}: something went wrong")
        return CommandResult(0, "", "")


class LocksOf:
    """Stands in for the BSD locks on /dev nodes this test does not have (test_disk_lock
    covers the real ones): tells the runner what is held."""

    def __init__(self, runner: ScriptedRunner) -> None:
        self.runner = runner

    def __call__(self, nodes, timeout, clock):
        self.runner.held += tuple(nodes)
        return self

    def release(self) -> None:
        self.runner.held = ()


def run(p, tmp_path: Path, runner=None, **kwargs):
    markers = []
    kwargs.setdefault("reinspect", None)
    runner = runner or ScriptedRunner()
    kwargs.setdefault("lock_disks", LocksOf(runner))
    kwargs.setdefault("check_mirror", lambda device: "")
    result = run_initialise(p, p.token, runner=runner,
                            node_exists=kwargs.pop("node_exists", lambda path: True),
                            write_marker=lambda root, vid: markers.append((root, vid)) or vid,
                            clock=SimulatedClock(), **kwargs)
    return result, markers


# --- the plan -------------------------------------------------------------------------

def test_a_single_disk_plan_lists_every_command():
    p = plan([make_disk(partitions=(part("sda", 1), part("sda", 2)))])
    assert commands(p) == [
        "wipefs -a /dev/sda1 /dev/sda2 /dev/sda",
        "sfdisk --wipe always --wipe-partitions always /dev/sda",
        "partx -u /dev/sda",
        "udevadm settle --timeout=120",
        f"mkfs.ext4 -L vigil-data -U {UUID} -m 1 -T largefile -E lazy_itable_init=1 /dev/sda1",
        f"mount -t ext4 -o noatime UUID={UUID} /srv/vigil",
    ]
    sfdisk = next(s for s in p.steps if s.argv[:1] == ("sfdisk",))
    assert sfdisk.stdin == ('label: gpt\n'
                            'type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="vigil-data"\n')
    assert [s.kind for s in p.steps] == ["lock", "run", "run", "run", "wait", "unlock", "run",
                                         "run", "mkdir", "run", "marker"]
    assert p.steps[0].devices == p.steps[5].devices == ("/dev/sda",)
    assert p.target == "/dev/sda1" and p.fs_uuid == UUID


def test_the_plan_says_what_will_be_erased():
    p = plan([make_disk()])
    assert p.erases() == [{"device": "/dev/sda", "model": "WDC WD40EFPX",
                           "serial": "WD-WX12D81ABCDE", "size_bytes": 4 * TB,
                           "size": "4.0 TB"}]
    text = p.describe()
    assert "WD-WX12D81ABCDE" in text and "4.0 TB" in text and p.token in text
    assert p.to_json()["steps"][0]["command"] == ("keep udev off /dev/sda while they are "
                                                  "rewritten")
    assert p.to_json()["steps"][1]["command"] == "wipefs -a /dev/sda"


def test_a_raid1_plan_partitions_both_then_creates_the_array():
    p = plan([make_disk("sda"), make_disk("sdb", serial="WD-OTHER")], raid1=True)
    cmds = commands(p)
    assert cmds[:3] == ["wipefs -a /dev/sda",
                        "sfdisk --wipe always --wipe-partitions always /dev/sda",
                        "partx -u /dev/sda"]
    assert cmds[6] == "udevadm settle --timeout=120"
    assert cmds[7] == ("mdadm --create /dev/md/vigil-data --level=1 --raid-devices=2 "
                       "--metadata=1.2 --bitmap=internal --run /dev/sda1 /dev/sdb1")
    assert cmds[8] == "udevadm settle --timeout=120"
    assert cmds[9].endswith(RAID_DEVICE) and cmds[9].startswith("mkfs.ext4 -L vigil-data")
    sfdisk = next(s for s in p.steps if s.argv[:1] == ("sfdisk",))
    assert "type=A19D880F-05FC-4D3B-A006-743F0F84911E" in sfdisk.stdin
    assert p.target == RAID_DEVICE


@pytest.mark.parametrize("node, expected", [("/dev/sda", "/dev/sda1"),
                                            ("/dev/nvme0n1", "/dev/nvme0n1p1"),
                                            ("/dev/mmcblk1", "/dev/mmcblk1p1"),
                                            ("/dev/loop3", "/dev/loop3p1")])
def test_partition_nodes_follow_the_kernel_naming(node, expected):
    assert partition_node(node, 1) == expected


def test_the_token_depends_on_the_disks():
    disk = make_disk()
    token = confirmation_token([disk], False, "/srv/vigil")
    assert len(token) == 8 and token == plan([disk]).token
    assert token != confirmation_token([replace(disk, serial="X")], False, "/srv/vigil")
    assert token != confirmation_token([replace(disk, size_bytes=TB)], False, "/srv/vigil")
    assert token != confirmation_token([disk], False, "/mnt/other")


def test_format_bytes_uses_the_units_on_the_label():
    assert (format_bytes(4 * TB), format_bytes(256 * 1024 ** 2), format_bytes(512)) == \
        ("4.0 TB", "268.4 MB", "512 B")


# --- refusals -------------------------------------------------------------------------

@pytest.mark.parametrize("disk, reason", [
    (make_disk(is_boot_media=True), "boot media"),
    (make_disk(partitions=(part("sda", 1, mountpoint="/home"),)), "mounted at /home"),
    (make_disk(partitions=(part("sda", 2, mountpoint="[SWAP]"),)), "mounted at [SWAP]"),
    (make_disk(partitions=(part("sda", 1, fs_type="linux_raid_member", holders=("md127",)),),
               is_raid_member=True), "active md array md127"),
    (make_disk(partitions=(part("sda", 1, holders=("dm-0",)),)), "in use by dm-0"),
    (make_disk(size=4 * GIB), "too small"),
    (make_disk(read_only=True), "write-protected"),
])
def test_disks_that_must_not_be_erased_are_refused(disk, reason):
    with pytest.raises(FailedPrecondition, match=reason.replace("[", r"\[")):
        plan([disk])


def test_every_problem_is_listed_at_once():
    with pytest.raises(FailedPrecondition) as error:
        plan([make_disk(is_boot_media=True, size=GIB)])
    assert "boot media" in str(error.value) and "too small" in str(error.value)


def test_the_minimum_size_is_configurable():
    small = make_disk(size=256 * 1024 ** 2)
    assert plan([small], min_size_bytes=128 * 1024 ** 2).disks == (small,)


def test_a_busy_mount_point_is_refused():
    with pytest.raises(FailedPrecondition, match="already mounted at /srv/vigil"):
        plan([make_disk()], mounts=[Mount(2049, "/srv/vigil", "/dev/sdz1", "ext4")])


@pytest.mark.parametrize("disks, raid1, reason", [
    ([], False, "choose the disk"),
    ([make_disk("sda"), make_disk("sdb"), make_disk("sdc")], True, "at most two"),
    ([make_disk()], True, "exactly two"),
    ([make_disk("sda"), make_disk("sdb")], False, "only as a RAID1 pair"),
    ([make_disk(), make_disk()], True, "twice"),
])
def test_wrong_disk_counts_are_invalid(disks, raid1, reason):
    with pytest.raises(InvalidConfig, match=reason):
        plan(disks, raid1)


def test_raid1_disks_of_very_different_sizes_are_refused():
    with pytest.raises(FailedPrecondition, match="differ in size by 50%"):
        plan([make_disk("sda", size=4 * TB), make_disk("sdb", size=2 * TB)], raid1=True)


def test_raid1_disks_of_nearly_the_same_size_use_the_smaller_with_a_warning():
    p = plan([make_disk("sda", size=4 * TB), make_disk("sdb", size=int(3.92 * TB))], raid1=True)
    assert any("smaller size, 3.9 TB" in w for w in p.warnings)


def test_an_old_raid_signature_is_a_warning_not_a_refusal():
    stale = make_disk(partitions=(part("sda", 1, fs_type="linux_raid_member"),),
                      is_raid_member=True)
    p = plan([stale])
    assert any("old RAID signature" in w for w in p.warnings)


# --- running --------------------------------------------------------------------------

@pytest.mark.parametrize("token", [None, "", "nope"])
def test_a_missing_or_wrong_token_runs_nothing(tmp_path, token):
    p = plan([make_disk()], mountpoint=str(tmp_path / "vigil"))
    runner = ScriptedRunner()
    with pytest.raises(InvalidConfig, match="confirmation token"):
        run_initialise(p, token, runner=runner, reinspect=None)
    assert runner.calls == []


def test_a_run_executes_the_plan_in_order_and_reports_progress(tmp_path):
    mountpoint = tmp_path / "vigil"
    p = plan([make_disk()], mountpoint=str(mountpoint))
    runner, seen = ScriptedRunner(), []
    result, markers = run(p, tmp_path, runner, progress=lambda *a: seen.append(a))
    assert [shlex.join(argv) for argv, _ in runner.calls] == commands(p)
    assert runner.calls[1][1].startswith("label: gpt")
    assert mountpoint.is_dir() and markers == [(mountpoint, UUID)]
    assert (result.fs_uuid, result.mountpoint, result.device) == (UUID, str(mountpoint),
                                                                  "/dev/sda1")
    n = len(p.steps)
    assert seen[:2] == [(1, n, p.steps[0].name, 0.0), (1, n, p.steps[0].name, 100.0)]
    assert len(seen) == 2 * n and seen[-1] == (n, n, p.steps[-1].name, 100.0)


def test_a_failing_step_stops_the_run_and_says_which(tmp_path):
    p = plan([make_disk()], mountpoint=str(tmp_path / "vigil"))
    runner = ScriptedRunner(fail="mkfs.ext4")
    with pytest.raises(StepFailed, match="step 8 .* something went wrong") as error:
        run(p, tmp_path, runner)
    assert error.value.step.argv[0] == "mkfs.ext4"
    assert [argv[0] for argv, _ in runner.calls][-1] == "mkfs.ext4", "nothing after it ran"


def test_partx_may_fail_when_the_kernel_already_knows_the_partition(tmp_path):
    p = plan([make_disk()], mountpoint=str(tmp_path / "vigil"))
    result, _ = run(p, tmp_path, ScriptedRunner(fail="partx"))
    assert result.device == "/dev/sda1"


def test_a_partition_that_never_appears_is_a_bounded_wait(tmp_path):
    p = plan([make_disk("loop7")], mountpoint=str(tmp_path / "vigil"))
    with pytest.raises(FailedPrecondition, match="did not appear within 10 s.*losetup -P"):
        run(p, tmp_path, node_exists=lambda path: False)


def test_the_disks_are_checked_again_just_before_running(tmp_path):
    disk = make_disk()
    p = plan([disk], mountpoint=str(tmp_path / "vigil"))
    cases = [([], "no longer connected"),
             ([replace(disk, serial="SWAPPED")], "changed since the plan"),
             ([replace(disk, partitions=(part("sda", 1, mountpoint="/x"),))], "mounted at /x")]
    for current, reason in cases:
        runner = ScriptedRunner()
        with pytest.raises(FailedPrecondition, match=reason):
            run(p, tmp_path, runner, reinspect=lambda: current)
        assert runner.calls == []
    result, _ = run(p, tmp_path, reinspect=lambda: [disk])
    assert result.fs_uuid == UUID


# --- udev kept off the disks ------------------------------------------------------------

def test_a_raid1_array_is_created_only_after_udev_caught_up_with_both_tables(tmp_path):
    """udev re-reads a table sfdisk wrote once the disk is unlocked; that removes and
    re-adds the partitions, and mdadm's udev rule fails a member removed from an array.
    So: partition both under the lock, unlock, settle, and only then create."""
    p = plan([make_disk("sda"), make_disk("sdb", serial="WD-OTHER")], raid1=True,
             mountpoint=str(tmp_path / "vigil"))
    runner = ScriptedRunner()
    run(p, tmp_path, runner)
    both = ("/dev/sda", "/dev/sdb")
    assert runner.log == [("wipefs", both), ("sfdisk", both), ("partx", both),
                          ("wipefs", both), ("sfdisk", both), ("partx", both),
                          ("udevadm", ()), ("mdadm", ()), ("udevadm", ()),
                          ("mkfs.ext4", ()), ("mount", ())]


def test_a_single_disk_is_unlocked_before_mkfs_so_udev_can_link_its_uuid(tmp_path):
    p = plan([make_disk()], mountpoint=str(tmp_path / "vigil"))
    runner = ScriptedRunner()
    run(p, tmp_path, runner)
    assert [name for name, held in runner.log if held == ("/dev/sda",)] == [
        "wipefs", "sfdisk", "partx"]
    assert [name for name, held in runner.log if not held] == ["udevadm", "mkfs.ext4",
                                                                "mount"]


def test_a_failure_while_locked_gives_the_disks_back_to_udev(tmp_path):
    p = plan([make_disk("sda"), make_disk("sdb", serial="WD-OTHER")], raid1=True,
             mountpoint=str(tmp_path / "vigil"))
    runner = ScriptedRunner(fail="sfdisk")
    with pytest.raises(StepFailed, match="write a GPT with one partition on /dev/sda"):
        run(p, tmp_path, runner)
    assert runner.held == ()


def test_udevadm_settle_may_fail_without_udev(tmp_path):
    p = plan([make_disk()], mountpoint=str(tmp_path / "vigil"))
    result, _ = run(p, tmp_path, ScriptedRunner(fail="udevadm"))
    assert result.device == "/dev/sda1"


# --- the new mirror is checked before mkfs ------------------------------------------------

MDSTAT = Path(__file__).resolve().parents[2] / "fixtures" / "storage" / "mdstat"


def test_a_mirror_that_lost_a_member_at_creation_is_stopped_and_the_job_fails(tmp_path):
    p = plan([make_disk("sda"), make_disk("sdb", serial="WD-OTHER")], raid1=True,
             mountpoint=str(tmp_path / "vigil"))
    kinds = [s.kind for s in p.steps]
    assert kinds[kinds.index("mirror") + 1:kinds.index("mirror") + 2] == ["run"]
    assert p.steps[kinds.index("mirror") + 1].argv[0] == "mkfs.ext4"
    runner = ScriptedRunner()
    with pytest.raises(FailedPrecondition, match="failed sdb1 as soon as it was created.*"
                                                 "mirror was stopped"):
        run(p, tmp_path, runner, check_mirror=lambda device: "the new mirror failed sdb1 "
            "as soon as it was created")
    assert runner.calls[-1][0] == ["mdadm", "--stop", RAID_DEVICE]
    assert "mkfs.ext4" not in [argv[0] for argv, _ in runner.calls]


def monitor_of(tmp_path, fixture: str) -> RaidMonitor:
    (tmp_path / "proc").mkdir(exist_ok=True)
    (tmp_path / "proc" / "mdstat").write_text((MDSTAT / fixture).read_text())
    return RaidMonitor(proc_root=tmp_path / "proc", sys_root=tmp_path / "sys",
                       use_mdadm=False)


@pytest.mark.parametrize("fixture, name, problem", [
    ("raid1-resync", "md0", ""),
    ("raid1-clean", "md0", ""),
    ("raid1-pending", "md127", ""),
    ("raid1-faulty", "md0", "failed sda1 as soon as it was created"),
    ("raid1-degraded", "md0", "is degraded: raid1 running on 1 of 2 devices"),
    ("no-arrays", "md0", "is not running"),
])
def test_the_new_mirror_must_run_on_both_disks(tmp_path, fixture, name, problem):
    node = tmp_path / "vigil-data"
    node.symlink_to(name)                        # as /dev/md/vigil-data -> ../md127
    found = mirror_problem(str(node), monitor_of(tmp_path, fixture).read)
    assert (problem in found) if problem else found == "", found
