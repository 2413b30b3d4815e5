"""The first-boot wizard's disk step in a real headless Chromium (Debian's), issue 12:
recordings are never written to the SD card or eMMC, so a box without a data disk must
say so there. On the box the disk list is never empty (the boot disk is in it), which is
why "no disk found" alone told the owner nothing.

vigil-hwd's real storage commands (appliance.storage.control) answer on a real control
socket in this process; only their inventory is injected: the Disk objects udev would
report, changed between the cases as if a disk were plugged in.
"""

from __future__ import annotations

import json
import math

import pytest

from appliance.core.control import ControlServer
from appliance.storage.control import control_handlers
from appliance.storage.disks import Disk, Partition
from appliance.storage.initialise import MIN_SIZE_BYTES
from appliance.web.security import COOKIE
from tests.integration.web.cdp import Chromium, find_chromium
from tests.integration.web.manage_site import ManageSite

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="Debian's chromium is not installed (make setup installs it; see the Makefile DEBS)")

GB = 10 ** 9
WAIT_S = 15


def disk(name: str, size: int, *, bus: str = "usb", boot: bool = False,
         partitions: tuple[Partition, ...] = ()) -> Disk:
    return Disk(name=name, device_node=f"/dev/{name}", sys_path=f"/sys/block/{name}",
                model=f"Disk {name}", vendor="", serial=f"SER-{name}", wwn="",
                size_bytes=size, bus=bus, usb_driver="uas" if bus == "usb" else None,
                id_path=f"platform-{name}", is_boot_media=boot, partitions=partitions)


BOOT_SD = disk("mmcblk0", 32 * GB, bus="mmc", boot=True, partitions=(
    Partition("mmcblk0p1", "/dev/mmcblk0p1", 1, 512 * 10 ** 6, fs_type="vfat",
              mountpoint="/boot/firmware"),
    Partition("mmcblk0p2", "/dev/mmcblk0p2", 2, 31 * GB, fs_type="ext4", mountpoint="/")))
FREE_16GB = disk("sda", 16 * GB)
SMALL_STICK = disk("sdb", 4 * GB)


@pytest.fixture(scope="module")
def plugged():
    """The disks vigil-hwd's inventory reports: each test says which are connected."""
    return []


@pytest.fixture(scope="module")
def hwd(tmp_path_factory, plugged):
    tmp = tmp_path_factory.mktemp("hwd")
    server = ControlServer(tmp / "h.sock", control_handlers(
        tmp / "data-volumes.json", inventory=lambda: list(plugged))).start()
    yield tmp / "h.sock"
    server.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory, hwd):
    """The admin exists and the network step is done: /setup opens on the disk step."""
    s = ManageSite(tmp_path_factory.mktemp("site"), hwd_socket=hwd)
    status, answer = s.admin.json("POST", "/api/v1/setup/wizard", {"step": "network"})
    assert status == 200, answer
    yield s
    s.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory, site):
    chrome = Chromium(tmp_path_factory.mktemp("chromium-profile"))
    token = next(c.value for c in site.admin.jar if c.name == COOKIE)
    chrome.set_cookie(site.base + "/", COOKIE, token)       # logged in as the admin
    yield chrome
    chrome.close()


def open_disk_step(browser: Chromium, site: ManageSite, disks: int) -> None:
    """/setup on the disk step, once its list shows `disks` rows (one checkbox each)."""
    browser.navigate(f"{site.base}/setup", timeout=WAIT_S)
    browser.wait_for("!document.getElementById('step-disks').hidden", WAIT_S)
    wait_for_rows(browser, disks)


def wait_for_rows(browser: Chromium, disks: int) -> None:
    browser.wait_for("document.querySelectorAll('#disk-list input[type=checkbox]').length",
                     WAIT_S, check=lambda n: n == disks)
    assert browser.evaluate("document.getElementById('status').textContent") == ""


def warning(browser: Chromium) -> str | None:
    """The no-data-disk warning's text while it is shown, else None."""
    return browser.evaluate("(() => { const e = document.getElementById('no-data-disk'); "
                            "return e && e.checkVisibility() ? e.textContent : null; })()")


def checkbox_enabled(browser: Chromium, device: str) -> bool:
    return browser.evaluate(f"!document.querySelector('#disk-list input[value="
                            f"{json.dumps(device)}]').disabled")


@pytest.mark.timeout(60)
def test_with_only_the_boot_disk_the_wizard_says_nothing_is_recorded(site, browser, plugged):
    plugged[:] = [BOOT_SD]
    open_disk_step(browser, site, 1)
    text = warning(browser)
    assert text is not None, browser.evaluate("document.getElementById('disk-list').innerHTML")
    assert "No data disk is connected" in text and "nothing is recorded" in text
    assert "SD card" in text and f"{math.ceil(MIN_SIZE_BYTES / GB)} GB or more" in text
    assert not checkbox_enabled(browser, "/dev/mmcblk0")

    # the owner plugs a disk in and looks again: the warning gives way to the disk
    plugged.append(FREE_16GB)
    browser.click(*browser.center_of("#no-data-disk button"))
    wait_for_rows(browser, 2)
    assert warning(browser) is None
    assert checkbox_enabled(browser, "/dev/sda")


@pytest.mark.timeout(60)
def test_a_free_16gb_disk_is_offered_without_a_warning(site, browser, plugged):
    plugged[:] = [BOOT_SD, FREE_16GB]
    open_disk_step(browser, site, 2)
    assert warning(browser) is None
    assert checkbox_enabled(browser, "/dev/sda")
    assert "Initialise the ticked disks" in browser.evaluate(
        "document.getElementById('disk-list').textContent")


@pytest.mark.timeout(60)
def test_a_disk_too_small_to_initialise_does_not_hide_the_warning(site, browser, plugged):
    plugged[:] = [BOOT_SD, SMALL_STICK]
    open_disk_step(browser, site, 2)
    assert warning(browser) is not None
