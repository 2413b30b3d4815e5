"""RAUC's Raspberry Pi back end walked through whole updates: a select directory and a
device tree in tmp_path, and a stand-in for the firmware that boots what autoboot.txt and
the tryboot flag say, as the Pi does."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.core.errors import DataLoss
from appliance.update import tryboot
from appliance.update.tryboot import Autoboot, main, parse_autoboot, reboot_arguments

REPO = Path(__file__).resolve().parents[3]
IMAGE_AUTOBOOT = REPO / "image/boot/autoboot.txt"
WRAPPER = REPO / "rootfs-overlay/usr/lib/vigil/rauc-tryboot-backend"


def firmware_partition(autoboot_text, tryboot_flag):
    """The Pi firmware's choice, written independently of the module under test: the
    [tryboot] section's boot_partition on a tryboot, else the [all] one."""
    section, partitions = None, {}
    for line in autoboot_text.splitlines():
        if line.startswith("["):
            section = line
        elif line.startswith("boot_partition="):
            partitions[section] = int(line.split("=")[1])
    return partitions["[tryboot]" if tryboot_flag else "[all]"]


class Box:
    """A Pi: partition 1's files, the device tree of the current boot, and reboots."""

    def __init__(self, tmp_path):
        self.select = tmp_path / "select"
        self.select.mkdir()
        self.autoboot = self.select / "autoboot.txt"
        self.state = self.select / "vigil-tryboot.json"
        self.autoboot.write_bytes(IMAGE_AUTOBOOT.read_bytes())
        self.device_tree = tmp_path / "device-tree"
        (self.device_tree / "chosen/bootloader").mkdir(parents=True)
        self.env = {"VIGIL_BOOT_SELECT": str(self.select),
                    "VIGIL_DEVICE_TREE": str(self.device_tree)}
        self.boot(partition=2, tryboot_flag=False)

    def boot(self, partition, tryboot_flag):
        bootloader = self.device_tree / "chosen/bootloader"
        (bootloader / "partition").write_bytes(partition.to_bytes(4, "big"))
        (bootloader / "tryboot").write_bytes(int(tryboot_flag).to_bytes(4, "big"))

    def firmware_boot(self, tryboot_flag):
        self.boot(firmware_partition(self.autoboot.read_text(), tryboot_flag), tryboot_flag)

    def reboot(self):
        """A deliberate reboot, with the arguments the back end asks for."""
        arguments = reboot_arguments(self.select)
        assert arguments in ([], ["0 tryboot"])
        self.firmware_boot(tryboot_flag=arguments == ["0 tryboot"])

    def power_cut(self):
        self.firmware_boot(tryboot_flag=False)

    def partitions(self):
        """([all], [tryboot]) boot partitions as the firmware would read them."""
        text = self.autoboot.read_text()
        return firmware_partition(text, False), firmware_partition(text, True)


@pytest.fixture
def box(tmp_path):
    return Box(tmp_path)


@pytest.fixture
def rauc(box, capsys):
    """Run the back end as RAUC does: (exit status, stdout stripped, stderr)."""
    def run(*argv):
        status = main(list(argv), box.env)
        out, err = capsys.readouterr()
        return status, out.strip(), err
    return run


def answer(rauc, *argv):
    status, out, err = rauc(*argv)
    assert status == 0, err
    return out


def install(rauc, slot):
    """What RAUC's install does with the boot selection around writing `slot`."""
    answer(rauc, "set-state", slot, "bad")
    answer(rauc, "set-primary", slot)


def commit_b(box, rauc):
    install(rauc, "B")
    box.reboot()
    answer(rauc, "set-state", "B", "good")


def test_a_fresh_image_runs_and_prefers_slot_a(box, rauc):
    assert answer(rauc, "get-primary") == "A"
    assert answer(rauc, "get-current") == "A"
    assert answer(rauc, "get-state", "A") == answer(rauc, "get-state", "B") == "good"
    assert reboot_arguments(box.select) == []


def test_an_install_to_b_makes_a_trial_for_the_next_reboot_without_committing(box, rauc):
    answer(rauc, "set-state", "B", "bad")
    assert answer(rauc, "get-state", "B") == "bad"
    answer(rauc, "set-primary", "B")
    assert answer(rauc, "get-primary") == "B"
    assert answer(rauc, "get-state", "B") == "good"  # made primary
    assert reboot_arguments(box.select) == ["0 tryboot"]
    assert box.partitions() == (2, 3)


def test_a_good_trial_of_b_commits_it(box, rauc):
    install(rauc, "B")
    box.reboot()
    assert answer(rauc, "get-current") == "B"
    answer(rauc, "set-state", "B", "good")
    assert box.partitions() == (3, 2)
    assert answer(rauc, "get-primary") == "B"
    assert reboot_arguments(box.select) == []
    box.reboot()
    assert answer(rauc, "get-current") == "B"


def test_a_failed_trial_leaves_a_committed_and_cancels_the_trial(box, rauc):
    install(rauc, "B")
    box.reboot()
    answer(rauc, "set-state", "B", "bad")
    assert box.partitions() == (2, 3)
    assert reboot_arguments(box.select) == []
    assert answer(rauc, "get-primary") == "A"
    box.reboot()
    assert answer(rauc, "get-current") == "A"
    assert answer(rauc, "get-state", "B") == "bad"


def test_a_power_cut_during_the_trial_comes_back_on_a_and_keeps_the_trial(box, rauc):
    install(rauc, "B")
    box.reboot()
    box.power_cut()
    assert answer(rauc, "get-current") == "A"
    assert box.partitions() == (2, 3)
    assert tryboot.read_autoboot(box.select).committed == "A"
    # A power cut is not the new image's fault: the next deliberate reboot tries again.
    assert answer(rauc, "get-primary") == "B"
    assert reboot_arguments(box.select) == ["0 tryboot"]


def test_the_second_update_goes_back_from_b_to_a(box, rauc):
    commit_b(box, rauc)
    box.reboot()
    install(rauc, "A")
    assert answer(rauc, "get-primary") == "A"
    assert box.partitions() == (3, 2)
    assert reboot_arguments(box.select) == ["0 tryboot"]
    box.reboot()
    assert answer(rauc, "get-current") == "A"
    answer(rauc, "set-state", "A", "good")
    assert box.autoboot.read_bytes() == IMAGE_AUTOBOOT.read_bytes()
    assert answer(rauc, "get-primary") == "A"
    assert reboot_arguments(box.select) == []


def test_making_the_committed_slot_primary_cancels_a_pending_trial(box, rauc):
    install(rauc, "B")
    answer(rauc, "set-primary", "A")
    assert answer(rauc, "get-primary") == "A"
    assert reboot_arguments(box.select) == []
    assert box.partitions() == (2, 3)


def test_marking_good_a_slot_neither_booted_nor_committed_is_refused(box, rauc):
    install(rauc, "B")
    box.reboot()
    box.power_cut()  # running A normally, trial of B pending
    before = box.autoboot.read_bytes(), box.state.read_bytes()
    status, out, err = rauc("set-state", "B", "good")
    assert status == 1 and out == ""
    assert "cannot mark slot B good" in err and "Traceback" not in err
    assert (box.autoboot.read_bytes(), box.state.read_bytes()) == before


def test_marking_the_committed_slot_good_clears_its_bad_mark(box, rauc):
    answer(rauc, "set-state", "B", "bad")
    answer(rauc, "set-state", "A", "bad")  # B is bad: A stays committed
    assert box.partitions() == (2, 3)
    answer(rauc, "set-state", "A", "good")
    assert answer(rauc, "get-state", "A") == "good"
    assert answer(rauc, "get-state", "B") == "bad"


def test_marking_the_committed_slot_bad_commits_the_other_so_a_plain_reboot_leaves_it(
        box, rauc):
    commit_b(box, rauc)
    answer(rauc, "set-state", "B", "bad")
    assert box.partitions() == (2, 3)
    assert answer(rauc, "get-primary") == "A"
    box.reboot()
    assert answer(rauc, "get-current") == "A"


def test_a_power_cut_between_the_two_writes_of_a_commit_is_harmless(box, rauc):
    install(rauc, "B")
    box.reboot()
    pending_b = box.state.read_bytes()
    answer(rauc, "set-state", "B", "good")
    box.state.write_bytes(pending_b)  # autoboot.txt written, the state file not yet
    assert answer(rauc, "get-primary") == "B"
    assert reboot_arguments(box.select) == []


def test_a_commit_writes_atomically_autoboot_first(box, rauc, monkeypatch):
    install(rauc, "B")
    box.reboot()
    written = []

    def recording_write(path, data, **kwargs):
        written.append(Path(path).name)
        tryboot_atomic_write(path, data, **kwargs)

    tryboot_atomic_write = tryboot.atomic_write
    monkeypatch.setattr(tryboot, "atomic_write", recording_write)
    answer(rauc, "set-state", "B", "good")
    assert written == ["autoboot.txt", "vigil-tryboot.json"]
    assert sorted(p.name for p in box.select.iterdir()) == written


@pytest.mark.parametrize("committed", ["A", "B"])
def test_the_autoboot_txt_written_is_small_and_parses_back(committed):
    autoboot = Autoboot(committed, tryboot.other_slot(committed))
    data = autoboot.render()
    assert len(data) < 512
    assert parse_autoboot(data.decode("ascii"), "test") == autoboot


def test_the_image_ships_exactly_the_format_the_back_end_writes():
    assert Autoboot("A", "B").render() == IMAGE_AUTOBOOT.read_bytes()


GARBLED_AUTOBOOT = {
    "not text": b"\xff\xfe\x00garbage",
    "no sections": b"boot_partition=2\n",
    "no tryboot_a_b": b"[all]\nboot_partition=2\n[tryboot]\nboot_partition=3\n",
    "no tryboot section": b"[all]\ntryboot_a_b=1\nboot_partition=2\n",
    "tryboot_a_b off": b"[all]\ntryboot_a_b=0\nboot_partition=2\n[tryboot]\nboot_partition=3\n",
    "foreign partition": b"[all]\ntryboot_a_b=1\nboot_partition=7\n[tryboot]\nboot_partition=3\n",
    "not a number": b"[all]\ntryboot_a_b=1\nboot_partition=x\n[tryboot]\nboot_partition=3\n",
    "unknown key": b"[all]\ntryboot_a_b=1\nboot_partition=2\nfoo=1\n[tryboot]\nboot_partition=3\n",
    "repeated section": IMAGE_AUTOBOOT.read_bytes() * 2,
    "over 512 bytes": IMAGE_AUTOBOOT.read_bytes() + b"#" * 512 + b"\n",
    "empty": b"",
}


@pytest.mark.parametrize("content", GARBLED_AUTOBOOT.values(), ids=GARBLED_AUTOBOOT.keys())
def test_a_garbled_autoboot_txt_is_a_clear_error_and_is_not_replaced(box, rauc, content):
    box.autoboot.write_bytes(content)
    for command in (["get-primary"], ["set-primary", "B"], ["set-state", "B", "bad"]):
        status, out, err = rauc(*command)
        assert status == 1 and out == ""
        assert "autoboot.txt" in err and "Traceback" not in err
    assert box.autoboot.read_bytes() == content
    assert not box.state.exists()
    with pytest.raises(DataLoss):
        reboot_arguments(box.select)


def test_a_missing_autoboot_txt_is_a_clear_error(box, rauc):
    box.autoboot.unlink()
    status, _, err = rauc("get-primary")
    assert status == 1 and "cannot read" in err and "autoboot.txt" in err
    assert not box.autoboot.exists()


GARBLED_STATE = {
    "not JSON": b"{",
    "not text": b'{"pending": "\xff", "bad": []}',
    "not an object": b"[]",
    "unknown slot": b'{"pending": "C", "bad": []}',
    "bad not a list": b'{"pending": null, "bad": "B"}',
    "unhashable slot": b'{"pending": ["B"], "bad": [["A"]]}',
    "extra key": b'{"pending": null, "bad": [], "tries": 3}',
}


@pytest.mark.parametrize("content", GARBLED_STATE.values(), ids=GARBLED_STATE.keys())
def test_a_garbled_state_file_is_a_clear_error_and_is_not_replaced(box, rauc, content):
    box.state.write_bytes(content)
    status, out, err = rauc("set-primary", "B")
    assert status == 1 and out == ""
    assert "vigil-tryboot.json" in err and "Traceback" not in err
    assert box.state.read_bytes() == content
    assert box.autoboot.read_bytes() == IMAGE_AUTOBOOT.read_bytes()


@pytest.mark.parametrize("partition, expected", [
    ((1).to_bytes(4, "big"), "partition 1 is neither slot A"),
    (b"\x00\x02", "expected a 4-byte"),
])
def test_get_current_refuses_a_partition_that_is_no_slot(box, rauc, partition, expected):
    (box.device_tree / "chosen/bootloader/partition").write_bytes(partition)
    status, out, err = rauc("get-current")
    assert status == 1 and out == "" and expected in err


@pytest.mark.parametrize("argv, status", [
    ([], 2), (["get-primary", "A"], 2), (["reboot"], 2), (["set-state", "B"], 2),
    (["set-primary", "C"], 1), (["set-state", "B", "maybe"], 1),
])
def test_wrong_requests_are_refused_with_a_message(rauc, argv, status):
    code, out, err = rauc(*argv)
    assert code == status and out == "" and err.strip()


def test_the_module_runs_as_raucs_handler_with_paths_from_the_environment(box):
    result = subprocess.run(
        [sys.executable, "-m", "appliance.update.tryboot", "get-current"],
        cwd=REPO, env={**os.environ, **box.env}, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, "A\n"), result.stderr


def test_the_overlay_wrapper_is_executable_and_runs_the_module():
    assert stat.S_IMODE(WRAPPER.stat().st_mode) == 0o755
    lines = WRAPPER.read_text().splitlines()
    assert len(lines) == 3 and lines[0] == "#!/bin/sh"
    assert "bootloader-custom-backend" in lines[1]
    assert lines[2] == 'exec /opt/vigil/venv/bin/python -m appliance.update.tryboot "$@"'
