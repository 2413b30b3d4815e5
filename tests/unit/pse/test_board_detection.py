"""One image, several boards: the profile comes from the device tree when the image says "auto"."""

import pytest

from appliance.licensing.cli import default_board
from hw.board import COMPATIBLE_PROFILES, BoardProfileError, detect_profile_name, load_profile


def device_tree(root, *compatible):
    path = root / "proc/device-tree"
    path.mkdir(parents=True)
    (path / "compatible").write_bytes(b"".join(c.encode() + b"\0" for c in compatible))
    return root


@pytest.mark.parametrize("compatible, profile", [
    (("raspberrypi,4-model-b", "brcm,bcm2711"), "pi4-poe4"),
    (("raspberrypi,5-model-b", "brcm,bcm2712"), "pi5-poe8"),
    (("linux,dummy-virt",), "qemu-virt"),
])
def test_known_machines_get_their_profile(tmp_path, compatible, profile):
    assert detect_profile_name(device_tree(tmp_path, *compatible)) == profile


def test_every_detected_profile_exists():
    for name in COMPATIBLE_PROFILES.values():
        assert load_profile(name)["board"]["name"] == name


def test_an_unknown_machine_is_refused_naming_what_it_is(tmp_path):
    with pytest.raises(BoardProfileError, match="brcm,bcm2837.*/etc/vigil/board"):
        detect_profile_name(device_tree(tmp_path, "raspberrypi,3-model-b", "brcm,bcm2837"))


def test_no_device_tree_is_refused(tmp_path):
    with pytest.raises(BoardProfileError, match="cannot tell which board"):
        detect_profile_name(tmp_path)


def test_board_file_auto_detects_and_a_name_is_taken_as_is(tmp_path):
    board_file = tmp_path / "board"
    root = device_tree(tmp_path / "root", "linux,dummy-virt")
    assert default_board(board_file, root) == "sim"  # no file: development
    board_file.write_text("auto\n")
    assert default_board(board_file, root) == "qemu-virt"
    board_file.write_text("pi4-poe4\n")
    assert default_board(board_file, root) == "pi4-poe4"


def test_the_qemu_profile_trusts_only_the_development_licence_key_and_has_no_cameras():
    profile = load_profile("qemu-virt")
    assert profile["licence"]["trusted_keys"] == ["dev"]
    assert profile["pse"]["sim"]["devices"] == [] and "sim_cameras" not in profile
