"""Data disks: what is plugged in (inventory) and what happens when one goes away (hotplug).

Why it looks like this (docs/design/disks.md has the long form):

* A disk is recognised by its WWN or serial number, never by its kernel name: a USB disk
  that is pulled and plugged back in often returns as `sdc` instead of `sdb`. The data
  *volume* is recognised by the UUID of its filesystem, which survives a change of
  enclosure too.
* Inventory reads udev (pyudev), so tests can run it against umockdev's fake sysfs and
  udev database. md arrays and other virtual block devices are left to their own modules.
* Hotplug is a pure state machine (`DataDiskTracker`) fed by a thin udev loop
  (`DiskWatcher`). Removing a data disk raises a critical alert at once. A disk that
  comes back is checked with `e2fsck -p` before it is mounted again, and it is never
  mounted while the check reports errors it could not repair.
* Every external command goes through an injectable runner (argv -> returncode, stdout,
  stderr), so the policy is unit-tested without root and integration-tested on real loop
  devices.
"""

from __future__ import annotations

import enum
import logging
import os
import queue
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pyudev

from appliance.core.clock import Clock, RealClock
from appliance.core.commands import Runner, run_command
from appliance.storage.alerts import Alert

log = logging.getLogger(__name__)

SECTOR_BYTES = 512  # the sysfs `size` attribute counts 512-byte sectors on every device
# Virtual block devices: listed only on request. md arrays belong to the RAID module.
VIRTUAL_NAME = re.compile(r"^(loop|ram|zram|md|dm-|nbd)")
# Never data disks: optical drives, floppies, the eMMC boot and RPMB hardware partitions.
NEVER_NAME = re.compile(r"^(sr\d+|fd\d+|mmcblk\d+(boot\d+|rpmb))$")
BOOT_MOUNTPOINTS = ("/", "/boot", "/boot/firmware")
SWAP = "[SWAP]"
RAID_MEMBER_FS = "linux_raid_member"
FSCK_TIMEOUT = 3600.0  # a full check of a multi-terabyte disk takes minutes, not hours
MOUNT_TIMEOUT = 60.0


# --- commands -------------------------------------------------------------------------

# --- mounts ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Mount:
    device: int       # st_rdev style device number (os.makedev(major, minor))
    mountpoint: str   # SWAP for an active swap device
    source: str
    fstype: str


def _unescape_mount(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def parse_mountinfo(text: str) -> list[Mount]:
    """Mounts from /proc/self/mountinfo text (device numbers, not names: /dev/root works)."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 2:
            continue
        major, _, minor = fields[2].partition(":")
        mounts.append(Mount(os.makedev(int(major), int(minor)), _unescape_mount(fields[4]),
                            _unescape_mount(tail[1]), tail[0]))
    return mounts


def parse_swaps(text: str, stat: Callable[[str], os.stat_result] = os.stat) -> list[Mount]:
    """Active swap partitions from /proc/swaps (swap files are not disks and are skipped)."""
    swaps = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 2 or parts[1] != "partition":
            continue
        path = _unescape_mount(parts[0])
        try:
            swaps.append(Mount(stat(path).st_rdev, SWAP, path, "swap"))
        except OSError:
            continue
    return swaps


_MOUNT_TABLE = [Path("/proc/self/mountinfo")]


def use_mount_table(mountinfo: Path) -> None:
    """Read mounts from `mountinfo` from now on: vigil-hwd on the box reads PID 1's, the
    system's, not its sandbox's (appliance/storage/mount_namespace.py)."""
    _MOUNT_TABLE[0] = Path(mountinfo)


def read_mounts(mountinfo: Path | None = None,
                swaps: Path = Path("/proc/swaps")) -> list[Mount]:
    mountinfo = mountinfo or _MOUNT_TABLE[0]
    mounts = parse_mountinfo(mountinfo.read_text(encoding="utf-8", errors="replace"))
    try:
        mounts += parse_swaps(swaps.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        pass
    return mounts


def boot_disk_names(mounts: Iterable[Mount], mountpoints: Sequence[str] = BOOT_MOUNTPOINTS,
                    sys_root: Path = Path("/sys")) -> frozenset[str]:
    """Kernel names of the disks under the root and boot filesystems.

    Follows each mount's device number through sysfs: a partition leads to its disk, an
    md or dm device to every disk below it (root on RAID, LVM or dm-crypt). A virtual
    filesystem (overlay, tmpfs; major 0) leads nowhere: add the mount point of the real
    filesystem below it (the persist partition) to `mountpoints`.
    """
    names: set[str] = set()
    for mount in mounts:
        if mount.mountpoint in mountpoints and os.major(mount.device) != 0:
            names |= _disks_below(mount.device, sys_root, depth=0)
    return frozenset(names)


def _disks_below(device: int, sys_root: Path, depth: int) -> set[str]:
    link = sys_root / "dev" / "block" / f"{os.major(device)}:{os.minor(device)}"
    if depth > 8 or not os.path.exists(link):
        return set()
    path = Path(os.path.realpath(link))
    try:
        slaves = sorted(os.listdir(path / "slaves"))
    except OSError:
        slaves = []
    if slaves:
        found: set[str] = set()
        for slave in slaves:
            try:
                dev = (path / "slaves" / slave / "dev").read_text().strip()
                major, _, minor = dev.partition(":")
                found |= _disks_below(os.makedev(int(major), int(minor)), sys_root, depth + 1)
            except (OSError, ValueError):
                continue
        return found
    if (path / "partition").exists():
        return {path.parent.name}
    return {path.name}


# --- inventory ------------------------------------------------------------------------

@dataclass(frozen=True)
class Partition:
    name: str                # kernel name, e.g. sda1
    device_node: str
    number: int
    size_bytes: int
    fs_type: str = ""        # ID_FS_TYPE: ext4, vfat, linux_raid_member, ...
    fs_uuid: str = ""        # ID_FS_UUID (for an md member: the array's UUID)
    fs_label: str = ""
    part_label: str = ""     # GPT partition name (ID_PART_ENTRY_NAME)
    mountpoint: str | None = None
    holders: tuple[str, ...] = ()  # md127, dm-0: devices stacked on this one


@dataclass(frozen=True)
class Disk:
    """One whole disk as udev sees it now. A filesystem written straight onto the disk
    (no partition table) appears as a `Partition` with number 0 and the disk's own node."""

    name: str                # kernel name now (sda); may differ after a re-plug
    device_node: str
    sys_path: str
    model: str
    vendor: str
    serial: str              # ID_SERIAL_SHORT
    wwn: str
    size_bytes: int
    bus: str                 # ata, usb, nvme, mmc, virtio, scsi, loop, ...
    usb_driver: str | None   # uas or usb-storage when bus == usb
    id_path: str             # the physical slot (ID_PATH)
    is_boot_media: bool
    partitions: tuple[Partition, ...] = ()
    is_raid_member: bool = False
    read_only: bool = False
    removable: bool = False
    holders: tuple[str, ...] = ()

    @property
    def identity(self) -> str:
        """What recognises this disk after a re-plug: WWN (from the drive), else serial.

        A USB bridge may report its own serial; the WWN comes from the drive itself and so
        survives a change of enclosure. Empty when the disk reports neither (loop, some SD).
        """
        return self.wwn or self.serial

    @property
    def label(self) -> str:
        """A name a person can find on the sticker: model and serial."""
        serial = self.serial or self.wwn or "no serial"
        return f"{self.model or self.name} (serial {serial})"

    @property
    def mountpoints(self) -> tuple[str, ...]:
        return tuple(p.mountpoint for p in self.partitions if p.mountpoint)

    @property
    def md_holders(self) -> tuple[str, ...]:
        """Active md arrays using this disk or one of its partitions."""
        every = self.holders + tuple(h for p in self.partitions for h in p.holders)
        return tuple(h for h in every if h.startswith("md"))

    def partition_with_uuid(self, fs_uuid: str) -> Partition | None:
        for part in self.partitions:
            if part.fs_uuid and part.fs_uuid.lower() == fs_uuid.lower():
                return part
        return None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["identity"] = self.identity
        data["partitions"] = [asdict(p) for p in self.partitions]
        return data


def udev_decode(text: str) -> str:
    """Undo udev's \\xHH escaping (ID_MODEL_ENC, ID_FS_LABEL_ENC)."""
    raw = re.sub(rb"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m.group(1), 16)]),
                 text.encode("utf-8", "surrogateescape"))
    return raw.decode("utf-8", "replace").strip()


def is_listed(name: str, include_virtual: bool) -> bool:
    if NEVER_NAME.match(name):
        return False
    return include_virtual or not VIRTUAL_NAME.match(name)


def _prop(device: pyudev.Device, *names: str) -> str:
    for name in names:
        value = device.properties.get(name)
        if value:
            return udev_decode(value) if name.endswith("_ENC") else value.strip()
    return ""


def _attr(device: pyudev.Device, name: str) -> str:
    try:
        value = device.attributes.get(name)
    except (KeyError, OSError, UnicodeDecodeError):
        return ""
    return value.decode("utf-8", "replace").strip() if value else ""


def _size_bytes(device: pyudev.Device) -> int:
    try:
        return device.attributes.asint("size") * SECTOR_BYTES
    except (KeyError, ValueError, OSError):
        return 0


def _holders(device: pyudev.Device) -> tuple[str, ...]:
    try:
        return tuple(sorted(os.listdir(os.path.join(device.sys_path, "holders"))))
    except OSError:
        return ()


def _bus(device: pyudev.Device) -> str:
    bus = _prop(device, "ID_BUS")
    if bus:
        return bus
    name = device.sys_name
    for prefix, guess in (("nvme", "nvme"), ("mmcblk", "mmc"), ("vd", "virtio"),
                          ("loop", "loop"), ("sd", "scsi")):
        if name.startswith(prefix):
            return guess
    return ""


def _usb_driver(device: pyudev.Device) -> str | None:
    driver = _prop(device, "ID_USB_DRIVER")
    if driver:
        return driver
    interface = device.find_parent("usb", "usb_interface")
    return interface.driver if interface is not None and interface.driver else None


def _mount_index(mounts: Iterable[Mount]) -> dict[int, str]:
    index: dict[int, str] = {}
    for mount in mounts:
        index.setdefault(mount.device, mount.mountpoint)
    return index


def _partition_from_device(device: pyudev.Device, mounted: dict[int, str]) -> Partition:
    number = _prop(device, "PARTN") or _attr(device, "partition") or "0"
    return Partition(
        name=device.sys_name,
        device_node=device.device_node or f"/dev/{device.sys_name}",
        number=int(number) if number.isdigit() else 0,
        size_bytes=_size_bytes(device),
        fs_type=_prop(device, "ID_FS_TYPE"),
        fs_uuid=_prop(device, "ID_FS_UUID"),
        fs_label=_prop(device, "ID_FS_LABEL_ENC", "ID_FS_LABEL"),
        part_label=_prop(device, "ID_PART_ENTRY_NAME"),
        mountpoint=mounted.get(device.device_number) if device.device_number else None,
        holders=_holders(device),
    )


def disk_from_device(device: pyudev.Device, mounts: Iterable[Mount],
                     boot_names: frozenset[str]) -> Disk | None:
    """A `Disk` from a udev block device of DEVTYPE=disk; None for an empty card reader."""
    size = _size_bytes(device)
    if size == 0:
        return None
    mounted = _mount_index(mounts)
    partitions = tuple(sorted(
        (_partition_from_device(child, mounted) for child in device.children
         if child.subsystem == "block" and child.device_type == "partition"),
        key=lambda p: (p.number, p.name)))
    holders = _holders(device)
    bus = _bus(device)
    own_fs = _prop(device, "ID_FS_TYPE")
    raid = (own_fs == RAID_MEMBER_FS or any(p.fs_type == RAID_MEMBER_FS for p in partitions)
            or any(h.startswith("md") for h in holders + tuple(x for p in partitions
                                                              for x in p.holders)))
    own_mount = mounted.get(device.device_number) if device.device_number else None
    if own_fs or own_mount:  # a filesystem on the whole disk: reported as partition 0
        partitions = (Partition(device.sys_name, device.device_node or "", 0, size, own_fs,
                                _prop(device, "ID_FS_UUID"),
                                _prop(device, "ID_FS_LABEL_ENC", "ID_FS_LABEL"), "",
                                own_mount, holders),) + partitions
    return Disk(
        name=device.sys_name,
        device_node=device.device_node or f"/dev/{device.sys_name}",
        sys_path=device.sys_path,
        model=_prop(device, "ID_MODEL_ENC", "ID_MODEL").replace("_", " ")
        or _attr(device, "device/model"),
        vendor=_prop(device, "ID_VENDOR_ENC", "ID_VENDOR").replace("_", " "),
        serial=_prop(device, "ID_SERIAL_SHORT") or _attr(device, "device/serial"),
        wwn=_prop(device, "ID_WWN_WITH_EXTENSION", "ID_WWN"),
        size_bytes=size,
        bus=bus,
        usb_driver=_usb_driver(device) if bus == "usb" else None,
        id_path=_prop(device, "ID_PATH"),
        is_boot_media=device.sys_name in boot_names,
        partitions=partitions,
        is_raid_member=raid,
        read_only=_attr(device, "ro") == "1",
        removable=_attr(device, "removable") == "1",
        holders=holders,
    )


def list_disks(context: pyudev.Context | None = None, *, include_virtual: bool = False,
               mounts: Sequence[Mount] | None = None,
               boot_mountpoints: Sequence[str] = BOOT_MOUNTPOINTS) -> list[Disk]:
    """Every disk udev knows, sorted by kernel name (md arrays: see the RAID module)."""
    context = context or pyudev.Context()
    mounts = read_mounts() if mounts is None else mounts
    boot = boot_disk_names(mounts, boot_mountpoints)
    disks = []
    for device in context.list_devices(subsystem="block", DEVTYPE="disk"):
        if not is_listed(device.sys_name, include_virtual):
            continue
        disk = disk_from_device(device, mounts, boot)
        if disk is not None:
            disks.append(disk)
    return sorted(disks, key=lambda d: d.name)


# --- hotplug: the tracker -------------------------------------------------------------

class DiskState(str, enum.Enum):
    PRESENT = "present"            # an md member: present, md assembles it (RAID module)
    MOUNTED = "mounted"            # present and its data filesystem is mounted
    MISSING = "missing"            # removed (or never seen since start)
    RETURNED = "returned"          # back, the filesystem must be checked before use
    CHECKING = "checking"          # e2fsck -p running
    FAILED_CHECK = "failed_check"  # e2fsck found errors it could not repair: not mounted


@dataclass(frozen=True)
class DataVolume:
    """A configured data filesystem: the UUID that initialise wrote and where it goes."""

    uuid: str
    mountpoint: str


@dataclass
class TrackedDisk:
    key: str                 # Disk.identity, or "fs:<uuid>" while unknown / without one
    volume: DataVolume
    state: DiskState
    disk: Disk | None        # as last seen (kept while missing, for the alert text)
    since: float             # clock.monotonic() when the state was entered
    detail: str = ""
    generation: int = 0      # bumped on every state change; stale check results are dropped

    @property
    def source(self) -> str:
        if self.disk is not None and (self.disk.serial or self.disk.wwn):
            return f"disk:{self.disk.serial or self.disk.wwn}"
        return f"disk:volume-{self.volume.uuid}"

    @property
    def label(self) -> str:
        return self.disk.label if self.disk is not None else f"with data volume {self.volume.uuid}"

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "state": self.state.value, "volume": asdict(self.volume),
                "detail": self.detail, "since": self.since,
                "disk": self.disk.to_json() if self.disk is not None else None}


@dataclass(frozen=True)
class CheckRequest:
    key: str
    device_node: str
    volume: DataVolume
    generation: int


@dataclass(frozen=True)
class CheckOutcome:
    mounted: bool
    fsck_code: int | None
    detail: str
    warning: str = ""


@dataclass
class TrackerCounters:
    events: int = 0
    debounced: int = 0
    stale: int = 0


class DataDiskTracker:
    """The hotplug state machine for the configured data disk(s). Pure: no I/O, no udev.

    Fed with `Disk` snapshots (add/change) and sys paths (remove); returns `Alert`s.
    Keys are WWN/serial, so a disk that returns under another kernel name is recognised.
    A remove event cannot be re-read from sysfs (the device is gone), so the sys_path of
    every disk seen is remembered. Not thread-safe: one owner (the watcher loop) calls it.
    """

    def __init__(self, volumes: Sequence[DataVolume], clock: Clock | None = None) -> None:
        # No volumes (a box before its disk is initialised): nothing is tracked, no alerts.
        self.volumes = tuple(volumes)
        self.clock = clock or RealClock()
        self.counters = TrackerCounters()
        self._tracked: dict[str, TrackedDisk] = {}
        self._paths: dict[str, str] = {}          # sys_path -> key, from add/change
        self._last_seen: dict[str, Disk] = {}     # sys_path -> last snapshot (debounce)
        self._last_seq: dict[str, int] = {}       # sys_path -> last udev SEQNUM

    # queries

    def tracked(self) -> list[TrackedDisk]:
        return sorted(self._tracked.values(), key=lambda t: (t.volume.uuid, t.key))

    def state_of(self, key: str) -> DiskState | None:
        tracked = self._tracked.get(key)
        return tracked.state if tracked is not None else None

    def pending_checks(self) -> list[str]:
        return [t.key for t in self.tracked() if t.state == DiskState.RETURNED]

    def volume_available(self, uuid: str) -> bool:
        return any(t.state == DiskState.MOUNTED for t in self._tracked.values()
                   if t.volume.uuid.lower() == uuid.lower())

    # events

    def start(self, disks: Iterable[Disk]) -> list[Alert]:
        """The snapshot taken right after the monitor started."""
        alerts: list[Alert] = []
        for disk in disks:
            alerts += self.disk_seen(disk, action="add", initial=True)
        for volume in self.volumes:
            if not any(t.volume == volume for t in self._tracked.values()):
                key = f"fs:{volume.uuid}"
                self._tracked[key] = TrackedDisk(key, volume, DiskState.MISSING, None,
                                                 self.clock.monotonic(), "not connected")
                log.warning("data disk missing at start volume=%s", volume.uuid)
                alerts.append(Alert(
                    "critical", self._tracked[key].source,
                    f"No connected disk holds data volume {volume.uuid}: nothing can be "
                    f"recorded to {volume.mountpoint}. Connect the data disk.",
                    key=f"volume-missing:{volume.uuid}"))
        return alerts

    def add_volume(self, volume: DataVolume, disks: Iterable[Disk]) -> list[Alert]:
        """A volume initialised while running (data-volumes.json is read only at start):
        it replaces any volume at the same mount point, and the disks connected now are
        looked at again, as at start, so the new one is tracked from this moment on."""
        replaced = [v for v in self.volumes if v.mountpoint == volume.mountpoint]
        self.volumes = tuple(v for v in self.volumes if v not in replaced) + (volume,)
        for key, tracked in list(self._tracked.items()):
            if tracked.volume in replaced:
                del self._tracked[key]
        alerts: list[Alert] = []
        for disk in disks:
            self._last_seen.pop(disk.sys_path, None)
            alerts += self.disk_seen(disk, action="add", initial=True)
        log.info("data volume added volume=%s mountpoint=%s tracked=%s", volume.uuid,
                 volume.mountpoint, [t.key for t in self.tracked() if t.volume == volume])
        return alerts

    def disk_seen(self, disk: Disk, action: str = "add", seqnum: int | None = None,
                  initial: bool = False) -> list[Alert]:
        """An add or change of a disk or one of its partitions (re-read as a whole disk)."""
        self.counters.events += 1
        if self._is_duplicate(disk, action, seqnum):
            self.counters.debounced += 1
            return []
        self._last_seen[disk.sys_path] = disk
        found = self._volume_on(disk)
        key = disk.identity or (f"fs:{found[0].uuid}" if found else f"path:{disk.sys_path}")
        self._paths[disk.sys_path] = key
        if found is None:
            return []
        volume, part = found
        tracked = self._tracked.get(key) or self._take_over(key, volume)
        if tracked is None:
            state = self._first_state(part, volume, initial)
            tracked = TrackedDisk(key, volume, state, disk, self.clock.monotonic())
            self._tracked[key] = tracked
            log.info("data disk seen disk=%s node=%s state=%s", key, disk.device_node,
                     state.value)
            if initial:
                return []
            return [self._returned_alert(tracked, disk)]
        tracked.disk = disk
        if tracked.state != DiskState.MISSING:
            return []
        self._enter(tracked, DiskState.PRESENT if part.fs_type == RAID_MEMBER_FS
                    else DiskState.RETURNED, f"back as {disk.device_node}")
        return [self._returned_alert(tracked, disk)]

    def disk_removed(self, sys_path: str, seqnum: int | None = None) -> list[Alert]:
        self.counters.events += 1
        if seqnum is not None:
            self._last_seq[sys_path] = max(seqnum, self._last_seq.get(sys_path, 0))
        self._last_seen.pop(sys_path, None)
        key = self._paths.pop(sys_path, None)
        tracked = self._tracked.get(key) if key is not None else None
        if tracked is None or tracked.state == DiskState.MISSING:
            return []
        was = tracked.state
        self._enter(tracked, DiskState.MISSING, f"removed while {was.value}")
        log.error("data disk removed disk=%s was=%s", key, was.value)
        effect = ("its RAID1 array runs without redundancy" if was == DiskState.PRESENT
                  else f"recording to {tracked.volume.mountpoint} has stopped")
        return [Alert("critical", tracked.source,
                      f"Data disk {tracked.label} was removed: {effect}. Reconnect it.",
                      key=f"disk-missing:{key}")]

    # the check of a returned disk

    def begin_check(self, key: str) -> CheckRequest | None:
        tracked = self._tracked.get(key)
        if tracked is None or tracked.state != DiskState.RETURNED or tracked.disk is None:
            return None
        part = tracked.disk.partition_with_uuid(tracked.volume.uuid)
        if part is None:
            return None
        self._enter(tracked, DiskState.CHECKING, f"e2fsck -p {part.device_node}")
        return CheckRequest(key, part.device_node, tracked.volume, tracked.generation)

    def finish_check(self, request: CheckRequest, outcome: CheckOutcome) -> list[Alert]:
        tracked = self._tracked.get(request.key)
        if tracked is None or tracked.generation != request.generation:
            self.counters.stale += 1
            log.warning("stale check result dropped disk=%s", request.key)
            return []
        if not outcome.mounted:
            self._enter(tracked, DiskState.FAILED_CHECK, outcome.detail)
            log.error("data disk not mounted disk=%s detail=%s", request.key, outcome.detail)
            return [Alert("critical", tracked.source,
                          f"Data disk {tracked.label} was not mounted: {outcome.detail}. "
                          f"Repair it on a computer with e2fsck -f, or re-initialise it.",
                          key=f"disk-check-failed:{request.key}")]
        self._enter(tracked, DiskState.MOUNTED, outcome.detail)
        log.info("data disk mounted again disk=%s fsck=%s", request.key, outcome.fsck_code)
        alerts = [Alert("info", tracked.source,
                        f"Data disk {tracked.label} was checked ({outcome.detail}) and is "
                        f"mounted at {request.volume.mountpoint}; recording resumes.",
                        key=f"disk-mounted:{request.key}")]
        if outcome.warning:
            alerts.append(Alert("warning", tracked.source, outcome.warning,
                                key=f"disk-check-warning:{request.key}"))
        return alerts

    def retry_check(self, key: str) -> bool:
        """After a failed check (e.g. the owner repaired the disk): check it again."""
        tracked = self._tracked.get(key)
        if tracked is None or tracked.state != DiskState.FAILED_CHECK:
            return False
        self._enter(tracked, DiskState.RETURNED, "check requested again")
        return True

    # internals

    def _is_duplicate(self, disk: Disk, action: str, seqnum: int | None) -> bool:
        if seqnum is not None:
            if seqnum <= self._last_seq.get(disk.sys_path, -1):
                return True
            self._last_seq[disk.sys_path] = seqnum
        return action == "change" and self._last_seen.get(disk.sys_path) == disk

    def _volume_on(self, disk: Disk) -> tuple[DataVolume, Partition] | None:
        for volume in self.volumes:
            part = disk.partition_with_uuid(volume.uuid)
            if part is not None:
                return volume, part
        return None

    def _take_over(self, key: str, volume: DataVolume) -> TrackedDisk | None:
        """A disk we do not know holds a volume whose disk is missing: the same disk in
        another enclosure (new serial), or the first sighting after a start without it."""
        for old_key, tracked in list(self._tracked.items()):
            if tracked.volume == volume and tracked.state == DiskState.MISSING:
                del self._tracked[old_key]
                tracked.key = key
                self._tracked[key] = tracked
                log.info("data volume now on another disk volume=%s old=%s new=%s",
                         volume.uuid, old_key, key)
                return tracked
        return None

    @staticmethod
    def _first_state(part: Partition, volume: DataVolume, initial: bool) -> DiskState:
        if part.fs_type == RAID_MEMBER_FS:
            return DiskState.PRESENT
        if initial and part.mountpoint == volume.mountpoint:
            return DiskState.MOUNTED
        return DiskState.RETURNED

    def _enter(self, tracked: TrackedDisk, state: DiskState, detail: str) -> None:
        tracked.state = state
        tracked.detail = detail
        tracked.since = self.clock.monotonic()
        tracked.generation += 1

    def _returned_alert(self, tracked: TrackedDisk, disk: Disk) -> Alert:
        what = ("the RAID module re-adds it to the array" if tracked.state == DiskState.PRESENT
                else "checking its filesystem before recording resumes")
        return Alert("info", tracked.source,
                     f"Data disk {tracked.label} is connected (as {disk.device_node}); {what}.",
                     key=f"disk-returned:{tracked.key}")


# --- check and mount ------------------------------------------------------------------

def check_and_mount(device_node: str, volume: DataVolume, runner: Runner = run_command, *,
                    fsck_timeout: float = FSCK_TIMEOUT) -> CheckOutcome:
    """e2fsck -p the returned data filesystem, then mount it by UUID (noatime).

    e2fsck exit codes are bits: 1 = errors corrected, 2 = reboot wanted (meant for a
    mounted root; here a warning), 4 and up = errors left, operational error, usage,
    cancelled: the filesystem is not mounted, whatever else happens.
    """
    stale = runner(["findmnt", "-rn", "-o", "SOURCE", "--mountpoint", volume.mountpoint],
                   timeout=MOUNT_TIMEOUT)
    if stale.returncode == 0 and stale.stdout.strip():
        # The dead mount of the removed disk: detach it, or the new mount would stack on it.
        log.warning("detaching stale mount mountpoint=%s source=%s", volume.mountpoint,
                    stale.stdout.strip())
        runner(["umount", "-l", volume.mountpoint], timeout=MOUNT_TIMEOUT)
    fsck = runner(["e2fsck", "-p", device_node], timeout=fsck_timeout)
    code = fsck.returncode
    if code < 0 or code >= 4:
        return CheckOutcome(False, code, f"e2fsck -p {device_node} exited {code} "
                                         f"({fsck.tail() or 'no output'})")
    warning = ""
    if code & 2:
        warning = (f"e2fsck repaired {device_node} and asks for a reboot (exit {code}); "
                   f"it was mounted anyway. Restart the box when convenient.")
    Path(volume.mountpoint).mkdir(parents=True, exist_ok=True)
    mount = runner(["mount", "-t", "ext4", "-o", "noatime", f"UUID={volume.uuid}",
                    volume.mountpoint], timeout=MOUNT_TIMEOUT)
    if mount.returncode != 0:
        return CheckOutcome(False, code, f"mount UUID={volume.uuid} failed "
                                         f"({mount.tail() or f'exit {mount.returncode}'})")
    detail = "errors corrected by e2fsck" if code & 1 else "filesystem clean"
    return CheckOutcome(True, code, detail, warning)


def remount_returned(tracker: DataDiskTracker, runner: Runner = run_command, *,
                     fsck_timeout: float = FSCK_TIMEOUT) -> list[Alert]:
    """Check and mount every returned data disk, one after the other (blocking)."""
    alerts: list[Alert] = []
    for key in tracker.pending_checks():
        request = tracker.begin_check(key)
        if request is None:
            continue
        outcome = check_and_mount(request.device_node, request.volume, runner,
                                  fsck_timeout=fsck_timeout)
        alerts += tracker.finish_check(request, outcome)
    return alerts


# --- hotplug: the udev loop -----------------------------------------------------------

@dataclass
class DiskWatcher:
    """Feeds udev block events into a `DataDiskTracker` and runs the checks it asks for.

    The monitor starts before the snapshot is taken, so no event falls in between. Checks
    (e2fsck can take minutes) run on a worker thread; their outcomes come back through a
    queue that the event loop drains, so only the loop thread touches the tracker and a
    removal alert is never stuck behind a running check.
    """

    tracker: DataDiskTracker
    on_alerts: Callable[[list[Alert]], None]
    context: pyudev.Context = field(default_factory=pyudev.Context)
    include_virtual: bool = False
    mounts: Callable[[], Sequence[Mount]] = read_mounts
    checker: Callable[[CheckRequest], CheckOutcome] | None = None
    _monitor: pyudev.Monitor | None = field(default=None, init=False)
    _done: queue.Queue = field(default_factory=queue.Queue, init=False)
    _new_volumes: queue.Queue = field(default_factory=queue.Queue, init=False)
    _pool: ThreadPoolExecutor | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.checker is None:
            self.checker = lambda req: check_and_mount(req.device_node, req.volume)

    def start(self) -> None:
        self._monitor = pyudev.Monitor.from_netlink(self.context, source="udev")
        self._monitor.filter_by(subsystem="block")
        self._monitor.start()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="disk-check")
        disks = list_disks(self.context, include_virtual=self.include_virtual,
                           mounts=self.mounts())
        self._emit(self.tracker.start(disks))

    def add_volume(self, volume: DataVolume) -> None:
        """From any thread (the initialise job): track `volume` from the next poll on."""
        self._new_volumes.put(volume)

    def poll(self, timeout: float) -> bool:
        """Handle at most one udev event; False when none came within `timeout`."""
        if self._monitor is None:
            raise RuntimeError("DiskWatcher.start() first")
        self._drain_new_volumes()
        self._drain_checks()
        device = self._monitor.poll(timeout=timeout)
        if device is not None:
            self._emit(self.handle(device))
        self._drain_checks()
        return device is not None

    def handle(self, device: pyudev.Device) -> list[Alert]:
        action, seqnum = device.action or "change", device.sequence_number or None
        if device.device_type == "disk":
            if not is_listed(device.sys_name, self.include_virtual):
                return []
            if action == "remove":
                return self.tracker.disk_removed(device.sys_path, seqnum)
            parent = device
        elif device.device_type == "partition":
            if action == "remove":
                return []  # the disk's own remove follows (or the table is being rewritten)
            parent = device.find_parent("block", "disk")
            if parent is None or not is_listed(parent.sys_name, self.include_virtual):
                return []
            action = "change"
        else:
            return []
        mounts = self.mounts()
        disk = disk_from_device(parent, mounts, boot_disk_names(mounts))
        return self.tracker.disk_seen(disk, action, seqnum) if disk is not None else []

    def run(self, stop: threading.Event, poll_seconds: float = 1.0) -> None:
        self.start()
        try:
            while not stop.is_set():
                self.poll(poll_seconds)
        finally:
            self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _drain_new_volumes(self) -> None:
        while True:
            try:
                volume = self._new_volumes.get_nowait()
            except queue.Empty:
                return
            disks = list_disks(self.context, include_virtual=self.include_virtual,
                               mounts=self.mounts())
            self._emit(self.tracker.add_volume(volume, disks))

    def _emit(self, alerts: list[Alert]) -> None:
        if alerts:
            self.on_alerts(alerts)
        self._dispatch_checks()

    def _dispatch_checks(self) -> None:
        if self._pool is None or self.checker is None:
            return
        for key in self.tracker.pending_checks():
            request = self.tracker.begin_check(key)
            if request is not None:
                self._pool.submit(self._check, request)

    def _check(self, request: CheckRequest) -> None:
        try:
            outcome = self.checker(request)  # type: ignore[misc]
        except Exception as exc:  # a bug in a check must not leave the disk "checking"
            log.exception("disk check crashed disk=%s", request.key)
            outcome = CheckOutcome(False, None, f"the check failed ({exc})")
        self._done.put((request, outcome))

    def _drain_checks(self) -> None:
        while True:
            try:
                request, outcome = self._done.get_nowait()
            except queue.Empty:
                return
            self._emit(self.tracker.finish_check(request, outcome))
