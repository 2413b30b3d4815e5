"""The board's serial number: what a licence is bound to.

Raspberry Pi: the SoC serial from the device tree (/sys/firmware/devicetree/base/
serial-number, NUL-terminated) or /proc/cpuinfo's "Serial" line; other ARM64 boards:
the eMMC's CID (unique per chip). The simulated board names its own in its profile.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

SERIAL_CHARS = re.compile(r"^[A-Za-z0-9]{4,64}$")


class NoBoardSerial(RuntimeError):
    """No serial number could be read; the message lists where it looked."""


def board_serial(profile: dict[str, Any], root: Path = Path("/")) -> str:
    configured = profile.get("board", {}).get("serial")
    if configured:
        return str(configured)
    tried = []
    for reader in (_device_tree, _cpuinfo, _emmc_cid):
        value, where = reader(Path(root))
        tried.append(where)
        if value and SERIAL_CHARS.match(value) and set(value) != {"0"}:
            return value.lower()
    raise NoBoardSerial("no board serial number found (looked in " + ", ".join(tried) + ")")


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("ascii", "replace").strip("\0\n ")
    except OSError:
        return ""


def _device_tree(root: Path) -> tuple[str, str]:
    path = root / "sys/firmware/devicetree/base/serial-number"
    return _read(path), str(path)


def _cpuinfo(root: Path) -> tuple[str, str]:
    path = root / "proc/cpuinfo"
    for line in _read(path).splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "serial":
            return value.strip(), str(path)
    return "", str(path)


def _emmc_cid(root: Path) -> tuple[str, str]:
    base = root / "sys/block"
    for cid in sorted(base.glob("mmcblk*/device/cid")):
        if _read(cid.parent / "type") == "MMC":  # eMMC, not a removable SD card
            return _read(cid), str(cid)
    return "", str(base / "mmcblk*/device/cid")
