"""Prepare a data disk, or a RAID1 pair, for recordings: partition, mkfs, mount, mark.

Initialising erases a disk, so it happens in two calls. `plan_initialise` checks the
disks and refuses anything that could destroy the system or data in use: the boot media,
a disk with a mounted partition or active swap, a member of a running md array, a disk
that is too small, a RAID1 pair of very different sizes. It returns a `Plan` that lists
every command and what will be erased, and a short confirmation token derived from the
disks. `run_initialise` runs the plan only when given that token, after checking again
that the same disks are still there and still unused.

Every command goes through the runner of `disks` (argv -> returncode, stdout, stderr),
so the policy is unit-tested without root and the whole sequence is integration-tested
on a loop device. docs/design/disks.md explains the mkfs options.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence
from uuid import uuid4

from appliance.core.clock import Clock, RealClock
from appliance.core.errors import FailedPrecondition, InvalidConfig
from appliance.storage import volume
from appliance.core.commands import CommandResult, Runner, run_command
from appliance.storage.disk_lock import LOCK_WAIT_SECONDS, DiskLocks
from appliance.storage.raid import ArrayHealth, RaidMonitor
from appliance.storage.disks import Disk, Mount, list_disks, read_mounts

log = logging.getLogger(__name__)

GIB = 1024 ** 3
MIN_SIZE_BYTES = 8 * GIB
RAID1_SIZE_TOLERANCE = 0.03   # members may differ by this share; md uses the smaller one
LABEL = "vigil-data"
DEFAULT_MOUNTPOINT = "/srv/vigil"
RAID_DEVICE = "/dev/md/vigil-data"
GPT_LINUX_FS = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
GPT_LINUX_RAID = "A19D880F-05FC-4D3B-A006-743F0F84911E"
NODE_WAIT_SECONDS = 10.0
SETTLE_SECONDS = 120          # udevadm settle's own limit; an emulated CPU is slow
MKFS_TIMEOUT = 900.0          # lazy_itable_init keeps mkfs of 4 TB to seconds; discard may not
MOUNT_OPTIONS = "noatime"
DATA_DIR_OWNER = "vigil"  # the recorder's user (rootfs-overlay units)

Progress = Callable[[int, int, str, "float | None"], None]


@dataclass(frozen=True)
class Step:
    """One step of a plan. `kind` is "run" (argv, maybe with stdin), "wait" (for a device
    node to appear), "lock" and "unlock" (udev kept off `devices` in between: disk_lock),
    "mirror" (the new array at `path` runs on both disks), "mkdir" (the mount point) or
    "marker" (the data volume marker)."""

    kind: str
    name: str
    argv: tuple[str, ...] = ()
    stdin: str | None = None
    path: str = ""
    devices: tuple[str, ...] = ()
    timeout: float = 60.0
    must_succeed: bool = True

    def describe(self) -> str:
        if self.kind == "run":
            text = shlex.join(self.argv)
            return text + (f"  <<< {self.stdin.strip()!r}" if self.stdin else "")
        return self.name


@dataclass(frozen=True)
class Plan:
    disks: tuple[Disk, ...]
    raid1: bool
    steps: tuple[Step, ...]
    token: str
    fs_uuid: str
    mountpoint: str
    target: str                    # the device that gets the filesystem
    min_size_bytes: int
    warnings: tuple[str, ...] = ()

    def erases(self) -> list[dict[str, Any]]:
        return [{"device": d.device_node, "model": d.model, "serial": d.serial,
                 "size_bytes": d.size_bytes, "size": format_bytes(d.size_bytes)}
                for d in self.disks]

    def describe(self) -> str:
        """The plan as text for a confirmation screen."""
        lines = ["This erases everything on:"]
        lines += [f"  {e['device']}: {e['model'] or 'unknown model'}, serial "
                  f"{e['serial'] or 'none'}, {e['size']}" for e in self.erases()]
        lines += [f"Warning: {w}" for w in self.warnings]
        lines.append("Steps:")
        lines += [f"  {i}. {step.describe()}" for i, step in enumerate(self.steps, 1)]
        lines.append(f"Confirm with token {self.token}.")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"raid1": self.raid1, "erases": self.erases(), "warnings": list(self.warnings),
                "steps": [{"name": s.name, "command": s.describe()} for s in self.steps],
                "token": self.token, "fs_uuid": self.fs_uuid, "mountpoint": self.mountpoint,
                "target": self.target}


@dataclass(frozen=True)
class InitResult:
    fs_uuid: str
    mountpoint: str
    device: str
    raid1: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class StepFailed(FailedPrecondition):
    """A command of the plan failed; the disk may be half initialised (plan again)."""

    def __init__(self, index: int, step: Step, result: CommandResult) -> None:
        super().__init__(f"step {index} ({step.name}) failed with exit {result.returncode}: "
                         f"{result.tail() or 'no output'}")
        self.index, self.step, self.result = index, step, result


def format_bytes(size: int) -> str:
    """Decimal units, as printed on the disk's label."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def partition_node(disk_node: str, number: int) -> str:
    """sda -> sda1; nvme0n1, mmcblk0, loop0 -> ...p1 (the kernel's naming rule)."""
    return f"{disk_node}p{number}" if disk_node[-1:].isdigit() else f"{disk_node}{number}"


def confirmation_token(disks: Sequence[Disk], raid1: bool, mountpoint: str) -> str:
    """8 hex digits over what will be erased: a different disk gives a different token."""
    items = sorted((d.device_node, d.serial, d.wwn, d.size_bytes) for d in disks)
    blob = json.dumps([raid1, mountpoint, items]).encode()
    return hashlib.sha256(blob).hexdigest()[:8]


# --- the plan -------------------------------------------------------------------------

def plan_initialise(disks: Sequence[Disk], raid1: bool, *,
                    mountpoint: str = DEFAULT_MOUNTPOINT,
                    min_size_bytes: int = MIN_SIZE_BYTES,
                    mounts: Sequence[Mount] | None = None,
                    fs_uuid: str | None = None) -> Plan:
    """Check the disks and list what initialising them would do; changes nothing."""
    _check_count(disks, raid1)
    mounts = read_mounts() if mounts is None else mounts
    problems = [p for disk in disks for p in _refusals(disk, min_size_bytes)]
    if any(m.mountpoint == mountpoint for m in mounts):
        problems.append(f"something is already mounted at {mountpoint}")
    warnings = [f"{d.device_node} carries an old RAID signature; it will be erased"
                for d in disks if d.is_raid_member and not d.md_holders]
    if raid1:
        problem, warning = _size_mismatch(disks[0], disks[1])
        problems += [problem] if problem else []
        warnings += [warning] if warning else []
    if problems:
        raise FailedPrecondition("refusing to initialise: " + "; ".join(problems))
    fs_uuid = fs_uuid or str(uuid4())
    steps, target = (_raid1_steps(disks, fs_uuid, mountpoint) if raid1
                     else _single_steps(disks[0], fs_uuid, mountpoint))
    return Plan(tuple(disks), raid1, tuple(steps),
                confirmation_token(disks, raid1, mountpoint), fs_uuid, mountpoint, target,
                min_size_bytes, tuple(warnings))


def _check_count(disks: Sequence[Disk], raid1: bool) -> None:
    if not disks:
        raise InvalidConfig("choose the disk to initialise")
    if len(disks) > 2:
        raise InvalidConfig(f"at most two disks can be initialised together, not {len(disks)}")
    if len({d.sys_path for d in disks}) != len(disks):
        raise InvalidConfig("the same disk was chosen twice")
    if raid1 and len(disks) != 2:
        raise InvalidConfig("RAID1 needs exactly two disks")
    if not raid1 and len(disks) != 1:
        raise InvalidConfig("two disks are initialised together only as a RAID1 pair")


def refusals(disk: Disk, min_size_bytes: int = MIN_SIZE_BYTES) -> list[str]:
    """Why this disk cannot be initialised (boot media, mounted, an array member, in use,
    too small, write-protected); empty when it can."""
    return _refusals(disk, min_size_bytes)


def _refusals(disk: Disk, min_size_bytes: int) -> list[str]:
    name = f"{disk.device_node} ({disk.label})"
    problems = []
    if disk.is_boot_media:
        problems.append(f"{name} holds the running system (boot media)")
    if disk.mountpoints:
        problems.append(f"{name} is in use: mounted at {', '.join(disk.mountpoints)}")
    if disk.md_holders:
        problems.append(f"{name} is a member of the active md array "
                        f"{', '.join(sorted(set(disk.md_holders)))}")
    other = sorted({h for h in disk.holders + tuple(x for p in disk.partitions
                                                   for x in p.holders)
                    if not h.startswith("md")})
    if other:
        problems.append(f"{name} is in use by {', '.join(other)}")
    if disk.size_bytes < min_size_bytes:
        problems.append(f"{name} is too small: {format_bytes(disk.size_bytes)}, "
                        f"at least {format_bytes(min_size_bytes)} needed")
    if disk.read_only:
        problems.append(f"{name} is write-protected")
    return problems


def _size_mismatch(a: Disk, b: Disk) -> tuple[str, str]:
    small, big = sorted((a, b), key=lambda d: d.size_bytes)
    if big.size_bytes == small.size_bytes:
        return "", ""
    share = (big.size_bytes - small.size_bytes) / big.size_bytes
    if share > RAID1_SIZE_TOLERANCE:
        return (f"the RAID1 disks differ in size by {share:.0%} ({format_bytes(small.size_bytes)}"
                f" and {format_bytes(big.size_bytes)}); use two disks of the same size", "")
    return "", (f"the RAID1 disks differ in size by {share:.1%}: the array uses the smaller "
                f"size, {format_bytes(small.size_bytes)}")


def _wipe_and_partition(disk: Disk, part_type: str) -> list[Step]:
    node = disk.device_node
    old = [p.device_node for p in disk.partitions if p.number > 0]
    part = partition_node(node, 1)
    script = f'label: gpt\ntype={part_type}, name="{LABEL}"\n'
    return [
        Step("run", f"erase old signatures on {node}", ("wipefs", "-a", *old, node)),
        Step("run", f"write a GPT with one partition on {node}",
             ("sfdisk", "--wipe", "always", "--wipe-partitions", "always", node),
             stdin=script),
        # sfdisk asks the kernel to re-read the table; partx covers a refused re-read.
        Step("run", f"tell the kernel about {part}", ("partx", "-u", node), must_succeed=False),
        Step("wait", f"wait for {part} to appear", path=part, timeout=NODE_WAIT_SECONDS),
    ]


def _mkfs_and_mount(target: str, fs_uuid: str, mountpoint: str) -> list[Step]:
    return [
        Step("run", f"make an ext4 filesystem on {target}",
             ("mkfs.ext4", "-L", LABEL, "-U", fs_uuid, "-m", "1", "-T", "largefile",
              "-E", "lazy_itable_init=1", target), timeout=MKFS_TIMEOUT),
        Step("mkdir", f"create the mount point {mountpoint}", path=mountpoint),
        Step("run", f"mount the new filesystem at {mountpoint}",
             ("mount", "-t", "ext4", "-o", MOUNT_OPTIONS, f"UUID={fs_uuid}", mountpoint)),
        Step("marker", f"mark {mountpoint} as a Vigil data volume", path=mountpoint),
    ]


def _single_steps(disk: Disk, fs_uuid: str, mountpoint: str) -> tuple[list[Step], str]:
    target = partition_node(disk.device_node, 1)
    return _udev_held_off([disk], _wipe_and_partition(disk, GPT_LINUX_FS)) + \
        _mkfs_and_mount(target, fs_uuid, mountpoint), target


def _raid1_steps(disks: Sequence[Disk], fs_uuid: str, mountpoint: str) -> tuple[list[Step], str]:
    members = [partition_node(d.device_node, 1) for d in disks]
    # udev re-reads a disk's partition table after sfdisk closed it, which removes and
    # re-adds its partitions; done after mdadm --create, that removal makes mdadm's own
    # udev rule fail the member (mdadm -If). So the array is created only once udev has
    # caught up with both new tables.
    steps = _udev_held_off(disks, [s for d in disks
                                   for s in _wipe_and_partition(d, GPT_LINUX_RAID)])
    steps += [
        # --bitmap=internal: after a USB hiccup only the changed regions resync.
        Step("run", "create the RAID1 array",
             ("mdadm", "--create", RAID_DEVICE, "--level=1", "--raid-devices=2",
              "--metadata=1.2", "--bitmap=internal", "--run", *members)),
        Step("wait", f"wait for {RAID_DEVICE} to appear", path=RAID_DEVICE,
             timeout=NODE_WAIT_SECONDS),
        _udev_settle(),
        Step("mirror", "check that both disks are in the new mirror", path=RAID_DEVICE),
    ]
    return steps + _mkfs_and_mount(RAID_DEVICE, fs_uuid, mountpoint), RAID_DEVICE


def _udev_held_off(disks: Sequence[Disk], steps: list[Step]) -> list[Step]:
    """`steps` with udev kept off the disks while they run (disk_lock), then given time
    to catch up: to re-read the new tables and make links such as /dev/disk/by-uuid."""
    nodes = tuple(d.device_node for d in disks)
    return [
        Step("lock", f"keep udev off {' and '.join(nodes)} while they are rewritten",
             devices=nodes, timeout=LOCK_WAIT_SECONDS),
        *steps,
        Step("unlock", f"let udev see the new layout of {' and '.join(nodes)}",
             devices=nodes),
        _udev_settle(),
    ]


def _udev_settle() -> Step:
    """Wait for udev's queue to drain (may fail: no udev on a development machine)."""
    return Step("run", "wait for udev to finish", ("udevadm", "settle",
                                                    f"--timeout={SETTLE_SECONDS}"),
                timeout=SETTLE_SECONDS + 10, must_succeed=False)


# --- running it -----------------------------------------------------------------------

def current_disks() -> list[Disk]:
    """The inventory used to re-check a plan just before it runs (virtual disks too,
    so a plan made for a loop device in a test can be re-checked)."""
    return list_disks(include_virtual=True)


def run_initialise(plan: Plan, confirm: str | None, progress: Progress | None = None, *,
                   runner: Runner = run_command, clock: Clock | None = None,
                   reinspect: Callable[[], Sequence[Disk]] | None = current_disks,
                   node_exists: Callable[[str], bool] = os.path.exists,
                   write_marker: Callable[[Path, str], str] = volume.write_marker,
                   lock_disks: Callable[[Sequence[str], float, Clock], DiskLocks] = DiskLocks,
                   check_mirror: Callable[[str], str] | None = None,
                   ) -> InitResult:
    """Run a plan made by `plan_initialise`; `confirm` must be its token.

    `progress(step_index, step_count, step_name, percent)` is called when each step starts
    (0) and ends (100); step_index counts from 1. Returns the new filesystem's UUID and
    mount point for the storage settings.
    """
    if not confirm or not hmac.compare_digest(str(confirm), plan.token):
        raise InvalidConfig("the confirmation token does not match this plan: show the plan "
                            "to the owner and pass the token it lists")
    if reinspect is not None:
        _recheck(plan, reinspect())
    clock = clock or RealClock()
    total = len(plan.steps)
    log.warning("initialising disks=%s raid1=%s", ",".join(d.device_node for d in plan.disks),
                plan.raid1)
    locks: list[DiskLocks] = []
    try:
        for index, step in enumerate(plan.steps, 1):
            if progress is not None:
                progress(index, total, step.name, 0.0)
            if step.kind == "lock":
                locks.append(lock_disks(step.devices, step.timeout, clock))
            elif step.kind == "unlock":
                while locks:
                    locks.pop().release()
            else:
                _run_step(index, step, plan, runner, clock, node_exists, write_marker,
                          check_mirror or mirror_problem)
            if progress is not None:
                progress(index, total, step.name, 100.0)
    finally:
        for held in locks:          # a failed step: udev gets the disks back
            held.release()
    log.info("initialised device=%s uuid=%s mountpoint=%s", plan.target, plan.fs_uuid,
             plan.mountpoint)
    return InitResult(plan.fs_uuid, plan.mountpoint, plan.target, plan.raid1)


def _recheck(plan: Plan, disks: Sequence[Disk]) -> None:
    """The same disks, still unused: plan again from a fresh inventory, compare tokens."""
    by_node = {d.device_node: d for d in disks}
    gone = [d.device_node for d in plan.disks if d.device_node not in by_node]
    if gone:
        raise FailedPrecondition(f"{', '.join(gone)} is no longer connected; plan again")
    again = plan_initialise([by_node[d.device_node] for d in plan.disks], plan.raid1,
                            mountpoint=plan.mountpoint, min_size_bytes=plan.min_size_bytes,
                            fs_uuid=plan.fs_uuid)
    if again.token != plan.token:
        raise FailedPrecondition("the disks changed since the plan was made; plan again")


def _run_step(index: int, step: Step, plan: Plan, runner: Runner, clock: Clock,
              node_exists: Callable[[str], bool],
              write_marker: Callable[[Path, str], str],
              check_mirror: Callable[[str], str]) -> None:
    if step.kind == "run":
        result = runner(step.argv, timeout=step.timeout, input=step.stdin)
        if result.returncode != 0 and step.must_succeed:
            raise StepFailed(index, step, result)
    elif step.kind == "wait":
        if not wait_for_node(step.path, step.timeout, clock, node_exists):
            raise FailedPrecondition(
                f"step {index}: {step.path} did not appear within {step.timeout:g} s (a loop "
                f"device needs partition scanning: losetup -P)")
    elif step.kind == "mirror":
        problem = check_mirror(step.path)
        if problem:
            # Stopped, so the disks are free to be initialised again (a running array
            # would make the next plan refuse them as its members).
            runner(("mdadm", "--stop", step.path), timeout=60, input=None)
            raise FailedPrecondition(
                f"step {index}: {problem}. The mirror was stopped: initialise the two disks "
                f"again; if it happens again, check their cables, power and SMART health")
    elif step.kind == "mkdir":
        Path(step.path).mkdir(parents=True, exist_ok=True)
    elif step.kind == "marker":
        write_marker(Path(step.path), plan.fs_uuid)
    else:
        raise InvalidConfig(f"unknown step kind {step.kind!r}")


def mirror_problem(device: str,
                   read_arrays: Callable[[], dict[str, ArrayHealth]] | None = None) -> str:
    """Empty when the array just created at `device` runs on both members (resyncing is
    fine); otherwise what is wrong, in one sentence for the owner."""
    name = os.path.basename(os.path.realpath(device))
    arrays = (read_arrays or RaidMonitor(use_mdadm=False).read)()
    health = arrays.get(name)
    if health is None:
        return f"the new mirror {device} ({name}) is not running"
    if health.faulty_members:
        return (f"the new mirror {device} failed {', '.join(health.faulty_members)} as soon "
                f"as it was created ({health.state}: {health.detail})")
    if health.state not in ("healthy", "resyncing", "resync_pending") or \
            (health.configured, health.working) != (2, 2):
        return f"the new mirror {device} is {health.state}: {health.detail}"
    return ""


def prepare_data_dir(path: Path) -> None:
    """The recorder's directory on the new filesystem, owned by the recorder's user."""
    import pwd

    path.mkdir(exist_ok=True)
    try:
        user = pwd.getpwnam(DATA_DIR_OWNER)
    except KeyError:
        return  # a development machine without the appliance's users
    os.chown(path, user.pw_uid, user.pw_gid)


def complete_initialise(result: InitResult, volumes_path: Path) -> None:
    """After `run_initialise`: the recorder's directory, and the box remembers the volume
    (data-volumes.json). The CLI and vigil-hwd's control command both end with this."""
    prepare_data_dir(Path(result.mountpoint) / "data")
    volume.remember_volume(Path(volumes_path), result.fs_uuid, result.mountpoint)


def wait_for_node(path: str, timeout: float, clock: Clock,
                  exists: Callable[[str], bool] = os.path.exists,
                  interval: float = 0.05) -> bool:
    """Poll for a device node (devtmpfs creates it shortly after the kernel sees it)."""
    deadline = clock.monotonic() + timeout
    while not exists(path):
        if clock.monotonic() >= deadline:
            return False
        clock.sleep(interval)
    return True
