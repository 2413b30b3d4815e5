"""The files the image lays onto its root keep the appliance's promises: read-only root,
logs in RAM, every unit sandboxed to what it writes, every unit the build enables present."""

import configparser
import re

import pytest

from image_conf import IMAGE, OVERLAY

UNITS = sorted((OVERLAY / "etc/systemd/system").glob("vigil-*.service"))
OVERLAY_HOOK = IMAGE / "steps/40-lay-overlay.sh"


def unit(path):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(path)
    return parser


def fstab_entries():
    lines = (OVERLAY / "etc/fstab").read_text().splitlines()
    rows = [line.split() for line in lines if line.strip() and not line.startswith("#")]
    return {row[1]: row for row in rows}


def test_root_is_not_in_fstab_and_persist_is_found_by_name_without_exec():
    entries = fstab_entries()
    assert "/" not in entries  # the initramfs mounts the boot loader's slot read-only
    persist = entries["/persist"]
    assert persist[0].startswith("PARTLABEL=") and persist[2] == "ext4"
    assert {"nodev", "nosuid", "noexec"} <= set(persist[3].split(","))
    # The boot selection (p1) is written by the update back ends, synchronously; nothing
    # on it is executable from Linux.
    select = entries["/boot/select"]
    assert select[0] == "PARTLABEL=vigil-boot" and select[2] == "vfat"
    assert {"rw", "sync", "nodev", "nosuid", "noexec"} <= set(select[3].split(","))


@pytest.mark.parametrize("mountpoint", ["/var", "/tmp"])
def test_what_the_system_writes_is_in_ram(mountpoint):
    row = fstab_entries()[mountpoint]
    assert row[2] == "tmpfs" and {"nodev", "nosuid"} <= set(row[3].split(","))


def test_journal_is_volatile():
    conf = unit(OVERLAY / "etc/systemd/journald.conf.d/10-vigil-volatile.conf")
    assert conf["Journal"]["Storage"] == "volatile"


def test_hardware_watchdog_is_enabled():
    conf = unit(OVERLAY / "etc/systemd/system.conf.d/10-vigil-watchdog.conf")
    assert conf["Manager"]["RuntimeWatchdogSec"].rstrip("s").isdigit()


def test_slow_boot_media_delay_the_boot_instead_of_failing_it():
    """systemd's 90 s would send a box whose card (or CI's emulated CPU) is slow into
    emergency mode: its own partitions get 5 minutes."""
    manager = unit(OVERLAY / "etc/systemd/system.conf.d/20-vigil-slow-media.conf")["Manager"]
    assert manager["DefaultDeviceTimeoutSec"] == "5min"
    assert manager["DefaultTimeoutStartSec"] == "3min"


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_every_unit_is_sandboxed_to_the_paths_it_writes(path):
    service = unit(path)["Service"]
    if path.name in ("vigil-persist.service", "vigil-update-usb@.service"):
        # The exceptions, each saying why: their mounts must reach the whole system (the
        # machine-id bind mount; the USB stick that rauc.service reads the bundle from).
        assert "ProtectSystem" not in service
        assert "Not sandboxed" in path.read_text()
        return
    assert service["ProtectSystem"] == "strict", path.name
    assert service.get("NoNewPrivileges") == "yes", path.name
    assert service.get("ReadWritePaths", "").strip(), path.name


# Shipped but not enabled, each with the reason.
NOT_ENABLED = {"vigil-update-usb@.service": "a template udev starts per USB file system"}


def test_every_vigil_unit_is_enabled_by_the_build_or_says_why_not():
    enabled = set(re.findall(r"(vigil-[a-z-]+\.service)", OVERLAY_HOOK.read_text()))
    assert enabled == {path.name for path in UNITS} - set(NOT_ENABLED)
    assert "vigil-restream" in (IMAGE / "image.conf").read_text()


def test_first_boot_keys_are_made_where_prepare_persist_gives_the_web_user_a_directory():
    script = (OVERLAY / "usr/lib/vigil/prepare-persist").read_text()
    firstboot = unit(OVERLAY / "etc/systemd/system/vigil-firstboot.service")["Service"]
    assert firstboot["User"] == "vigil"
    for path in firstboot["ReadWritePaths"].split():
        assert re.search(rf"-o vigil -g vigil -m 07[05]0 .*\"\$P/{path.split('/')[-1]}\"", script), path


def test_the_appliance_user_has_fixed_ids():
    text = (OVERLAY / "usr/lib/sysusers.d/vigil.conf").read_text()
    assert re.search(r"^u vigil 900:900 ", text, re.M) and re.search(r"^g vigil 900$", text, re.M)


def persist_directories_made_at_boot() -> set[str]:
    """The /persist directories prepare-persist makes every boot, before the appliance."""
    script = (OVERLAY / "usr/lib/vigil/prepare-persist").read_text()
    made = set()
    for line in script.splitlines():
        if line.strip().startswith("install -d"):
            made.update("/persist/" + name for name in re.findall(r'"\$P/([^"]+)"', line))
    return made


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_a_units_sandbox_never_needs_a_persist_directory_that_may_not_exist(path):
    """systemd fails to start a command whose ReadWritePaths= names a missing directory
    (exit 226); for an ExecCondition= that reads as "condition false" and the unit is
    skipped without a word. Each such path is made at boot, or marked "-" (optional)."""
    made = persist_directories_made_at_boot()
    service = unit(path)["Service"] if unit(path).has_section("Service") else {}
    for entry in service.get("ReadWritePaths", "").split():
        if entry.startswith("/persist/"):
            assert entry in made, f"{path.name}: {entry} is not made by prepare-persist; " \
                                  f"make it there or write -{entry}"
