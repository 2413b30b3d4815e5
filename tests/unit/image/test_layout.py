"""The partition table: aligned, in order, named as fstab and the kernel command line expect."""

import json
import shutil
import subprocess
import sys

import pytest

from image_conf import IMAGE, OVERLAY, image_settings

sys.path.insert(0, str(IMAGE / "tools"))
import layout  # noqa: E402  (image/tools is not a package: it runs on the build machine)


@pytest.fixture(scope="module")
def settings():
    return image_settings()


def test_partitions_are_aligned_in_order_and_do_not_overlap(settings):
    parts = layout.plan(settings)
    assert [p.name for p in parts] == [settings["BOOT_NAME"], settings["SLOT_BOOT_A_NAME"],
                                      settings["SLOT_BOOT_B_NAME"], settings["ROOT_A_NAME"],
                                      settings["ROOT_B_NAME"], settings["PERSIST_NAME"]]
    for before, after in zip(parts, parts[1:]):
        assert before.end <= after.start
    assert all(p.start % layout.MIB == 0 and p.size % layout.MIB == 0 for p in parts)
    assert parts[0].start >= layout.MIB  # the primary GPT fits before the first partition
    assert layout.image_size(parts) >= parts[-1].end + 33 * layout.SECTOR  # the backup GPT


def test_both_slots_are_the_same_size_so_an_update_can_write_either(settings):
    parts = {p.name: p for p in layout.plan(settings)}
    assert parts[settings["ROOT_A_NAME"]].size == parts[settings["ROOT_B_NAME"]].size
    assert parts[settings["ROOT_A_NAME"]].type_guid == layout.ROOT_ARM64
    assert parts[settings["SLOT_BOOT_A_NAME"]].size == parts[settings["SLOT_BOOT_B_NAME"]].size
    assert parts[settings["SLOT_BOOT_A_NAME"]].type_guid == layout.BASIC_DATA


def test_the_rauc_slots_name_these_partitions(settings):
    from appliance.update.rauc_config import render

    conf = render("vigil-nvr-arm64", "uboot")
    for key in ("ROOT_A_NAME", "ROOT_B_NAME", "SLOT_BOOT_A_NAME", "SLOT_BOOT_B_NAME"):
        assert f"device=/dev/disk/by-partlabel/{settings[key]}\n" in conf


def test_partition_ids_are_fixed_and_distinct(settings):
    first, second = layout.plan(settings), layout.plan(dict(settings))
    assert [p.uuid for p in first] == [p.uuid for p in second]
    assert len({p.uuid for p in first}) == len(first)


def test_fstab_and_kernel_command_line_find_partitions_by_these_names(settings):
    fstab = (OVERLAY / "etc/fstab").read_text()
    assert f"PARTLABEL={settings['PERSIST_NAME']} " in fstab
    assert f"PARTLABEL={settings['BOOT_NAME']} " in fstab
    cmdline = (IMAGE / "boot/cmdline.txt").read_text()
    assert f"root=PARTLABEL={settings['ROOT_A_NAME']} rauc.slot=A " in cmdline
    assert " ro " in cmdline and "rootfstype=squashfs" in cmdline
    assert cmdline.count("\n") == 1  # the Pi firmware reads one line


@pytest.mark.skipif(shutil.which("sfdisk") is None, reason="sfdisk (fdisk) not installed")
def test_sfdisk_writes_exactly_this_table(tmp_path, settings):
    parts = layout.plan(settings)
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as handle:
        handle.truncate(layout.image_size(parts))
    subprocess.run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(disk)],
                   input=layout.sfdisk_script(settings, parts), text=True, check=True, timeout=30)
    table = json.loads(subprocess.run(["sfdisk", "--json", str(disk)], capture_output=True,
                                      text=True, check=True, timeout=30).stdout)["partitiontable"]
    assert table["label"] == "gpt" and table["id"] == settings["DISK_ID"].upper()
    got = [(p["name"], p["start"] * 512, p["size"] * 512, p["uuid"], p["type"])
           for p in table["partitions"]]
    assert got == [(p.name, p.start, p.size, p.uuid, p.type_guid) for p in parts]


@pytest.mark.parametrize("change, message", [
    ({"ROOT_SIZE": "0"}, "positive size"),
    ({"ROOT_SIZE": "1.5"}, "whole number"),
    ({"DISK_ID": "not-a-uuid"}, "UUID"),
    ({"ROOT_B_NAME": "vigil-root-a"}, "distinct"),
    ({"PERSIST_NAME": "x" * 37}, "36 characters"),
])
def test_bad_settings_are_refused_with_the_reason(settings, change, message):
    with pytest.raises(layout.LayoutError, match=message):
        layout.plan({**settings, **change})


def test_missing_setting_is_named(settings):
    without = {key: value for key, value in settings.items() if key != "BOOT_SIZE"}
    with pytest.raises(layout.LayoutError, match="BOOT_SIZE is not set"):
        layout.plan(without)


def test_command_line_prints_an_error_not_a_traceback(capsys):
    assert layout.main(["sfdisk"], {}) == 2
    assert "error: DISK_ID" in capsys.readouterr().err
    assert layout.main(["nonsense"], {}) == 2
