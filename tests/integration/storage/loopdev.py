"""Loop devices for storage tests: a sparse file as a disk, always detached afterwards.

Needs root and a kernel with loop devices (CI and the dev machines have both); the
fixtures skip with the reason otherwise. Partitions on a loop device exist only with
partition scanning (`losetup -P`), which `LoopDisk` turns on.
"""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from tests.waiting import wait_until

MIB = 1024 * 1024


def sh(*argv: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=60,
                          check=check, env={**os.environ, "LC_ALL": "C"})


def require_loop_devices() -> None:
    if os.geteuid() != 0:
        pytest.skip("loop devices and mounts need root (CI and the dev machines run as root)")
    if not Path("/dev/loop-control").exists() or sh("losetup", "-f", check=False).returncode:
        pytest.skip("no free loop device on this machine")


def wait_for_path(path: str, timeout: float = 10.0) -> None:
    wait_until(lambda: os.path.exists(path), timeout, f"{path} to appear", step=0.02)


def mounts_from(node: str) -> list[str]:
    """Mount points of `node` and its partitions (findmnt lists the newest first)."""
    out = sh("findmnt", "-rn", "-o", "SOURCE,TARGET", check=False).stdout
    return [target for source, _, target in (line.partition(" ") for line in out.splitlines())
            if source == node or source.startswith(node + "p")]


class LoopDisk:
    """A sparse backing file attached with partition scanning; `close` undoes everything
    (unmounts whatever is mounted from it, then detaches), even after a failed test."""

    def __init__(self, backing: Path, size_mib: int) -> None:
        with open(backing, "wb") as out:
            out.truncate(size_mib * MIB)
        self.backing = backing
        self.node = sh("losetup", "-f", "--show", "-P", str(backing)).stdout.strip()

    def partition(self, number: int = 1) -> str:
        return f"{self.node}p{number}"

    def make_partition(self, label: str = "test") -> str:
        """One GPT partition over the whole disk; returns its node once it exists."""
        sh("sfdisk", "--wipe", "always", self.node,
           input=f'label: gpt\ntype=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="{label}"\n')
        sh("partx", "-u", self.node)  # sfdisk's re-read is not always honoured for loop devices
        wait_for_path(self.partition())
        return self.partition()

    def close(self) -> None:
        for target in mounts_from(self.node):
            sh("umount", "-l", target, check=False)
        sh("losetup", "-d", self.node, check=False)


@contextmanager
def loop_disks(tmp_path: Path, count: int, size_mib: int) -> Iterator[list[LoopDisk]]:
    require_loop_devices()
    disks: list[LoopDisk] = []
    try:
        for i in range(count):
            disks.append(LoopDisk(tmp_path / f"disk{i}.img", size_mib))
        yield disks
    finally:
        for disk in disks:
            disk.close()
