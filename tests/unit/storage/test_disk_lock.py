"""The BSD locks that keep udev off a disk being rewritten, taken on real files: the same
`flock` udev tries with LOCK_SH|LOCK_NB (probing) or LOCK_EX|LOCK_NB (re-reading a
partition table) fails while they are held, and succeeds once they are released."""

from __future__ import annotations

import fcntl
import os

import pytest

from appliance.core.clock import SimulatedClock
from appliance.core.errors import FailedPrecondition
from appliance.storage.disk_lock import DiskLocks


@pytest.fixture
def disks(tmp_path):
    nodes = [tmp_path / "vdc", tmp_path / "vdb"]
    for node in nodes:
        node.write_bytes(b"\0" * 4096)
    return [str(n) for n in nodes]


def udev_can_lock(node: str, how: int) -> bool:
    fd = os.open(node, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_udev_can_neither_probe_nor_reread_while_held(disks):
    with DiskLocks(disks) as locks:
        assert locks.held and locks.nodes == tuple(sorted(disks))
        for node in disks:
            assert not udev_can_lock(node, fcntl.LOCK_SH)
            assert not udev_can_lock(node, fcntl.LOCK_EX)
    assert all(udev_can_lock(node, fcntl.LOCK_EX) for node in disks)


def test_release_is_idempotent(disks):
    locks = DiskLocks(disks)
    locks.release()
    locks.release()
    assert not locks.held and udev_can_lock(disks[0], fcntl.LOCK_EX)


def test_udev_busy_with_a_disk_is_waited_for_a_bounded_time(disks):
    busy = os.open(disks[0], os.O_RDONLY | os.O_CLOEXEC)
    fcntl.flock(busy, fcntl.LOCK_SH)                    # udev probing vdc
    clock = SimulatedClock()
    start = clock.monotonic()
    try:
        with pytest.raises(FailedPrecondition, match=r"vdc stayed locked .* for 2 s"):
            DiskLocks(disks, timeout=2, clock=clock)
        assert 2 <= clock.monotonic() - start < 3
        assert udev_can_lock(disks[1], fcntl.LOCK_EX), "vdb, locked first, was let go"
    finally:
        os.close(busy)
    with DiskLocks(disks, timeout=2, clock=clock):
        pass


def test_a_disk_that_is_gone_is_a_clear_error(disks, tmp_path):
    with pytest.raises(FailedPrecondition, match="cannot open .*/gone to lock it"):
        DiskLocks([*disks, str(tmp_path / "gone")])
    assert all(udev_can_lock(node, fcntl.LOCK_EX) for node in disks)
