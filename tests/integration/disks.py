"""Real small filesystems for storage tests: ext4 on a loop device, mounted and marked."""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from appliance.storage.volume import write_marker


def need_root_and_loop() -> None:
    if os.geteuid() != 0:
        pytest.skip("loop devices and mounts need root (CI and the dev machines run as root)")
    if not Path("/dev/loop-control").exists():
        pytest.skip("no loop device support on this machine")


class LoopDisk:
    """A file-backed ext4 "data disk": mount, unmount (as an unplug would), remount."""

    def __init__(self, image: Path, mountpoint: Path, size_mib: int) -> None:
        self.image, self.mountpoint = image, mountpoint
        with open(image, "wb") as out:
            out.truncate(size_mib * 1024 * 1024)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-L", "vigil-test", str(image)],
                       check=True, timeout=60)
        mountpoint.mkdir(parents=True, exist_ok=True)

    def mount(self) -> None:
        subprocess.run(["mount", "-o", "loop,noatime", str(self.image), str(self.mountpoint)],
                       check=True, timeout=30)

    def unmount(self) -> None:
        """Lazy, like the kernel after a USB unplug: the path no longer reaches the disk."""
        subprocess.run(["umount", "-l", str(self.mountpoint)], check=False, timeout=30)

    def is_mounted(self) -> bool:
        return subprocess.run(["findmnt", "-n", str(self.mountpoint)], capture_output=True,
                              timeout=10).returncode == 0


@contextmanager
def loop_disk(tmp_path: Path, size_mib: int = 64, marked: bool = True) -> Iterator[LoopDisk]:
    need_root_and_loop()
    disk = LoopDisk(tmp_path / "disk.img", tmp_path / "disk", size_mib)
    disk.mount()
    try:
        if marked:
            write_marker(disk.mountpoint)
        yield disk
    finally:
        while disk.is_mounted():
            disk.unmount()
