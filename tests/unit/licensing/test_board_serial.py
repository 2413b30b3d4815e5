"""The board serial a licence binds to: device tree, /proc/cpuinfo, eMMC CID, simulated."""

from __future__ import annotations

import pytest

from hw.identity import NoBoardSerial, board_serial


def test_simulated_board_names_its_serial():
    assert board_serial({"board": {"serial": "SIM00000001"}}) == "SIM00000001"


def test_device_tree_first(tmp_path):
    dt = tmp_path / "sys/firmware/devicetree/base/serial-number"
    dt.parent.mkdir(parents=True)
    dt.write_bytes(b"10000000ABCDEF01\0")
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text("Serial\t\t: 1000000099999999\n")
    assert board_serial({}, tmp_path) == "10000000abcdef01"


def test_cpuinfo_then_emmc(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text("processor\t: 0\nSerial\t\t: 00000000c0ffee42\n")
    assert board_serial({}, tmp_path) == "00000000c0ffee42"
    (tmp_path / "proc/cpuinfo").write_text("processor\t: 0\nSerial\t\t: 0000000000000000\n")
    mmc = tmp_path / "sys/block/mmcblk0/device"
    mmc.mkdir(parents=True)
    (mmc / "type").write_text("MMC\n")
    (mmc / "cid").write_text("150100414a544434520559b5a2db8a00\n")
    assert board_serial({}, tmp_path) == "150100414a544434520559b5a2db8a00"


def test_no_serial_is_a_clear_error(tmp_path):
    sd = tmp_path / "sys/block/mmcblk0/device"
    sd.mkdir(parents=True)
    (sd / "type").write_text("SD\n")  # a removable card is not the board's identity
    (sd / "cid").write_text("035344534331323880ffffffff0138\n")
    with pytest.raises(NoBoardSerial, match="devicetree.*cpuinfo.*cid"):
        board_serial({}, tmp_path)
