"""Inventory and hotplug against umockdev: fake USB, SATA and eMMC disks with the udev
properties a Raspberry Pi reports, real libudev/pyudev, synthesised add/remove/change
uevents received by a real `pyudev.Monitor`.

umockdev needs LD_PRELOAD, so each scenario runs in a child process (udev_scenarios.py)
under `umockdev-wrapper`, with the venv's interpreter and only Debian's `gi` package
added to its path (see docs/design/disks.md, "Testing").
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "storage" / "udev"
SCENARIOS = HERE / "udev_scenarios.py"
SYSTEM_PYTHON = "/usr/bin/python3"
USB_KEY = "575833314141334C38453935"
USB_UUID = "5b1a0c2e-3f4d-4e5f-8a9b-0c1d2e3f4a5b"


def system_gi_dir() -> Path:
    """Where Debian's python3-gi lives, asked from the interpreter it was built for."""
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('UMockdev', '1.0'); "
         "from gi.repository import UMockdev; print(gi.__path__[0])"],
        capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"umockdev's GI bindings are missing (python3-gi, gir1.2-umockdev-1.0): "
                    f"{probe.stderr.strip().splitlines()[-1:]}")
    return Path(probe.stdout.strip())


@pytest.fixture(scope="module")
def gi_path(tmp_path_factory) -> Path:
    """A directory holding only a `gi` symlink: the child gets gi, and nothing else from
    dist-packages can shadow the venv's packages."""
    if shutil.which("umockdev-wrapper") is None:
        pytest.skip("umockdev-wrapper is not installed (Debian package umockdev)")
    path = tmp_path_factory.mktemp("gi-only")
    (path / "gi").symlink_to(system_gi_dir())
    return path


def run_scenario(name: str, gi_path: Path, work: Path) -> dict:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(gi_path),
           "LC_ALL": "C", "TZ": "UTC"}
    proc = subprocess.run(["umockdev-wrapper", sys.executable, str(SCENARIOS), name,
                           str(FIXTURES), str(work)],
                          capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert proc.returncode == 0, f"scenario {name} failed:\n{proc.stderr}"
    return json.loads(proc.stdout)


def by_name(disks: list[dict]) -> dict[str, dict]:
    return {d["name"]: d for d in disks}


def test_inventory_reads_usb_sata_and_boot_disks_from_udev(gi_path, tmp_path):
    out = run_scenario("inventory", gi_path, tmp_path)
    disks = by_name(out["disks"])
    assert set(disks) == {"mmcblk0", "sda", "sdb"}, "loop, md and eMMC boot0 are not listed"

    usb = disks["sdb"]
    assert (usb["bus"], usb["usb_driver"], usb["model"], usb["vendor"]) == \
        ("usb", "uas", "Elements 25A3", "WD")
    assert usb["serial"] == USB_KEY and usb["identity"] == USB_KEY
    assert usb["size_bytes"] == 3907029168 * 512
    assert usb["id_path"] == "platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1:1.0-scsi-0:0:0:0"
    assert usb["is_boot_media"] is False and usb["is_raid_member"] is False
    [part] = usb["partitions"]
    assert (part["device_node"], part["fs_type"], part["fs_uuid"], part["fs_label"],
            part["part_label"], part["mountpoint"]) == \
        ("/dev/sdb1", "ext4", USB_UUID, "vigil-data", "vigil-data", "/srv/vigil")

    sata = disks["sda"]
    assert (sata["bus"], sata["usb_driver"], sata["model"], sata["serial"]) == \
        ("ata", None, "WDC WD40EFPX-68C6CN0", "WD-WX12D81ABCDE")
    assert sata["wwn"] == "0x50014ee2b1c2d3e4" and sata["identity"] == sata["wwn"]
    assert sata["is_raid_member"] is True, "its partition is a linux_raid_member"

    emmc = disks["mmcblk0"]
    assert emmc["bus"] == "mmc" and emmc["is_boot_media"] is True
    assert [p["mountpoint"] for p in emmc["partitions"]] == ["/boot/firmware", "/"]

    assert out["with_virtual"] == ["loop0", "md127", "mmcblk0", "sda", "sdb"]


def test_pulling_and_replugging_the_data_disk(gi_path, tmp_path):
    out = run_scenario("hotplug", gi_path, tmp_path)
    assert out["start"] == {"states": {USB_KEY: "mounted"}, "alerts": []}

    unplugged = out["unplugged"]
    assert unplugged["states"] == {USB_KEY: "missing"}
    [alert] = unplugged["alerts"]
    assert alert["severity"] == "critical" and alert["source"] == f"disk:{USB_KEY}"
    assert "removed" in alert["message"] and "Elements 25A3" in alert["message"]
    assert unplugged["seconds"] < 10, "the removal alert is due within 10 s of the event"

    replugged = out["replugged"]
    assert replugged["node"] == "/dev/sdc", "it came back under another kernel name"
    assert replugged["states"] == {USB_KEY: "mounted"}, "recognised by serial, not by name"
    assert [(a["severity"], a["key"]) for a in replugged["alerts"]] == [
        ("info", f"disk-returned:{USB_KEY}"), ("info", f"disk-mounted:{USB_KEY}")]
    mountpoint = str(tmp_path / "vigil")
    assert replugged["commands"][1:] == [
        ["e2fsck", "-p", "/dev/sdc1"],
        ["mount", "-t", "ext4", "-o", "noatime", f"UUID={USB_UUID}", mountpoint]]

    assert out["changes"]["alerts"] == [] and out["changes"]["debounced"] >= 3
    assert out["other_disk_removed"] == {"states": {USB_KEY: "mounted"}, "alerts": []}


def test_a_box_started_without_its_data_disk_alerts_and_mounts_it_when_plugged(
        gi_path, tmp_path):
    out = run_scenario("missing_at_start", gi_path, tmp_path)
    [alert] = out["start"]["alerts"]
    assert alert["severity"] == "critical" and alert["key"] == f"volume-missing:{USB_UUID}"
    assert out["plugged"]["states"] == {USB_KEY: "mounted"}
    assert [a["severity"] for a in out["plugged"]["alerts"]] == ["info", "info"]


def test_a_disk_initialised_while_running_is_watched_at_once(gi_path, tmp_path):
    """data-volumes.json is read at start; a disk initialised after that must not wait
    for the next start to be watched (tests/image/test_image_usb_data_disk.py found a
    pulled-out new disk with no alert and no remount)."""
    out = run_scenario("initialised_while_running", gi_path, tmp_path)
    assert out["start"] == {"states": {}, "alerts": []}
    assert out["initialised"] == {"states": {USB_KEY: "mounted"}, "alerts": [],
                                  "commands": []}, "mounted by initialise: nothing to check"
    assert out["unplugged"]["states"] == {USB_KEY: "missing"}
    [alert] = out["unplugged"]["alerts"]
    assert alert["severity"] == "critical" and "removed" in alert["message"]
