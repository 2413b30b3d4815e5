"""RAUC's system.conf per board: the slots must be the partitions the image really has,
and each board must get the boot selection back end its boot loader understands."""

import configparser
import stat

import pytest

from appliance.core.errors import InvalidConfig
from appliance.update import rauc_config
from tests.unit.image.image_conf import image_settings

COMPATIBLE = "vigil-nvr-arm64"


def parsed(text):
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


@pytest.mark.parametrize("backend", sorted(rauc_config.BACKENDS))
def test_both_boards_get_verity_bundles_the_keyring_and_the_handlers(backend):
    conf = parsed(rauc_config.render(COMPATIBLE, backend))
    system = conf["system"]
    assert system["compatible"] == COMPATIBLE
    assert system["bundle-formats"] == "-plain"          # verity only: plain bundles refused
    assert system["data-directory"] == "/persist/rauc"   # slot status survives updates
    assert dict(conf["keyring"]) == {"path": "/usr/share/vigil/rauc/keyring.pem"}
    assert conf["handlers"]["pre-install"] == "/usr/lib/vigil/rauc-pre-install"
    assert conf["handlers"]["post-install"] == "/usr/lib/vigil/rauc-post-install"


def test_qemu_uses_rauc_s_own_u_boot_back_end():
    conf = parsed(rauc_config.render(COMPATIBLE, "uboot"))
    assert conf["system"]["bootloader"] == "uboot"
    assert "bootloader-custom-backend" not in conf["handlers"]


def test_the_pi_uses_the_tryboot_script_as_a_custom_back_end():
    conf = parsed(rauc_config.render(COMPATIBLE, "pi-tryboot"))
    assert conf["system"]["bootloader"] == "custom"
    # RAUC reads the custom back end from [handlers], not [system].
    assert conf["handlers"]["bootloader-custom-backend"] == "/usr/lib/vigil/rauc-tryboot-backend"
    assert "bootloader-custom-backend" not in conf["system"]


def test_each_root_slot_has_its_boot_partition_as_a_child():
    conf = parsed(rauc_config.render(COMPATIBLE, "uboot"))
    slots = {name: dict(conf[name]) for name in conf.sections() if name.startswith("slot.")}
    assert slots == {
        "slot.rootfs.0": {"device": "/dev/disk/by-partlabel/vigil-root-a", "type": "raw", "bootname": "A"},
        "slot.boot.0": {"device": "/dev/disk/by-partlabel/vigil-boot-a", "type": "vfat", "parent": "rootfs.0"},
        "slot.rootfs.1": {"device": "/dev/disk/by-partlabel/vigil-root-b", "type": "raw", "bootname": "B"},
        "slot.boot.1": {"device": "/dev/disk/by-partlabel/vigil-boot-b", "type": "vfat", "parent": "rootfs.1"},
    }


def test_the_slot_devices_are_the_image_s_partition_names():
    settings = image_settings()
    conf = parsed(rauc_config.render(settings["RAUC_COMPATIBLE"], "pi-tryboot"))
    devices = {name: conf[name]["device"] for name in conf.sections() if name.startswith("slot.")}
    by_label = "/dev/disk/by-partlabel/"
    assert devices == {"slot.rootfs.0": by_label + settings["ROOT_A_NAME"],
                       "slot.rootfs.1": by_label + settings["ROOT_B_NAME"],
                       "slot.boot.0": by_label + settings["SLOT_BOOT_A_NAME"],
                       "slot.boot.1": by_label + settings["SLOT_BOOT_B_NAME"]}
    assert conf["system"]["compatible"] == COMPATIBLE


def test_an_unknown_back_end_is_refused():
    with pytest.raises(InvalidConfig, match=r"back end 'grub' is not one of \['pi-tryboot', 'uboot'\]"):
        rauc_config.render(COMPATIBLE, "grub")


@pytest.mark.parametrize("compatible", ["", "vigil nvr", "vigil-nvr\n[system]", "vigil\tnvr"])
def test_a_compatible_that_is_not_one_word_is_refused(compatible):
    with pytest.raises(InvalidConfig, match="must be one word"):
        rauc_config.render(compatible, "uboot")


def test_write_puts_the_file_in_place_readable_by_rauc(tmp_path):
    target = tmp_path / "run/rauc/system.conf"
    rauc_config.write(target, COMPATIBLE, "pi-tryboot")
    assert target.read_text() == rauc_config.render(COMPATIBLE, "pi-tryboot")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["system.conf"]
